/**
 * The blockdrop library (what `import … from 'blockdrop'` gives): export a trained BlockDrop model to ONNX, run it
 * with real block skipping, train policies, evaluate. The CLI (`src/cli/`) is built on exactly these.
 *
 *   const model = await BlockDropModel.load(dir);   // or BlockDropPool.load(dir) for batches on several cores
 *   const out = await model.predict(pixels);         // classes, probabilities, keep decisions, FLOPs per image
 */
export { BlockdropError, isBlockdropError } from './errors.js';
export {
  BlockDropModel,
  syntheticKeep,
  type BlockDropPredictor,
  type ExecutorInfo,
  type KernelChoice,
  type LoadOptions,
  type Prediction,
  type PredictOptions,
  type Strategy,
} from './executor/model.js';
export { BlockDropPool, type PoolOptions } from './executor/pool.js';
export { measureSpeedup, type SpeedMeasurement, type SpeedOptions } from './executor/speed.js';
export type { ImageInputOptions, ImageLayout } from './executor/input.js';
export { exportBlockDrop, type BlockDropManifest, type ExportOptions, type ExportResult } from './export/onnx.js';
export { loadBackbone, type LoadedBackbone, type LoadBackboneOptions } from './models/load.js';
export { finetune, loadPolicyWeights, trainPolicy } from './train/index.js';
export type { Stage1Config, Stage2Config } from './train/index.js';
