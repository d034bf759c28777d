/**
 * Reward passes of a frozen backbone: "which class does the ResNet predict for this image with these blocks?".
 * Stage 1 asks this twice per image (greedy and sampled policy); any engine that answers it will do, so the
 * TensorFlow.js masked forward and the ONNX Runtime block-skipping executor sit behind one interface.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BlockExecution } from './onnx-graph.js';
import { renormalizeBatch } from '../data/batches.js';
import { loadAnyCheckpoint } from '../checkpoint/store.js';
import { blockCount } from '../models/config.js';
import type { Normalization, ResNetConfig } from '../models/config.js';
import { tensorSection, type TensorMap } from '../tensor.js';
import type { BlockDropPredictor } from '../executor/model.js';

/** What evaluation needs from a policy network (PolicyNetwork fits). */
export interface PolicyModel {
  /** Keep probabilities s [B, K] (sigmoid). `training`: batch-norm batch statistics, running stats updated. */
  probabilities(x: tf.Tensor4D, options?: { training?: boolean }): tf.Tensor2D;
}

/** What the trainer needs from a policy network (PolicyNetwork fits). */
export interface TrainablePolicy extends PolicyModel {
  variables(): tf.Variable[];
  /** All tensors, batch-norm running statistics included. */
  toTensorMap(): TensorMap;
  assignWeights(tensors: TensorMap): void;
}

/** What the trainer needs from the ResNet whose blocks are dropped (ResNet fits). */
export interface BackboneModel {
  /** Logits [B, classes]; `keep` [B, K] 0/1 executes block k of row b iff keep[b, k] = 1. */
  forward(x: tf.Tensor4D, options?: { keep?: tf.Tensor2D; training?: boolean; blockExecution?: BlockExecution }): tf.Tensor2D;
  variables(): tf.Variable[];
}

export interface TrainableBackbone extends BackboneModel {
  toTensorMap(): TensorMap;
  assignWeights(tensors: TensorMap): void;
}

export interface RewardOracle {
  /** Short description for logs, e.g. `tfjs masked forward`. */
  readonly name: string;
  /**
   * Predicted class per row. Row r is image `rowImage[r]` of `images` (NHWC float32, `imageCount` images of
   * side × side × 3) run with the blocks of `policy` row r ([rows, K], 0/1).
   */
  predict(images: Float32Array, imageCount: number, policy: Uint8Array, rowImage: Int32Array): Promise<Int32Array>;
  /** The same rows' logits [rows, classes] (stage 2's distillation teacher); engines that cannot give them omit it. */
  logits?(images: Float32Array, imageCount: number, policy: Uint8Array, rowImage: Int32Array): Promise<Float32Array>;
  dispose(): void;
}

/** The frozen backbone's masked TensorFlow.js forward (eval-mode batch norm), in chunks of `maxRows`. */
export function tfjsOracle(backbone: BackboneModel, k: number, side: number, maxRows = 512): RewardOracle {
  // Image rowImage[r] run with the blocks of policy row r, for every row; `read` turns the logits into the output.
  async function forRows(images: Float32Array, imageCount: number, policy: Uint8Array, rowImage: Int32Array, read: (logits: tf.Tensor2D) => tf.Tensor): Promise<tf.TypedArray[]> {
    const rows = rowImage.length;
    const chunks: tf.TypedArray[] = [];
    const x = tf.tensor4d(images, [imageCount, side, side, 3]);
    try {
      for (let start = 0; start < rows; start += maxRows) {
        const end = Math.min(rows, start + maxRows);
        const result = tf.tidy(() => {
          const idx = tf.tensor1d(rowImage.subarray(start, end), 'int32');
          const keep = tf.tensor2d(policy.subarray(start * k, end * k), [end - start, k], 'float32');
          return read(backbone.forward(tf.gather(x, idx) as tf.Tensor4D, { keep, training: false }));
        });
        chunks.push(await result.data());
        result.dispose();
      }
    } finally {
      x.dispose();
    }
    return chunks;
  }
  function concat<T extends Int32Array | Float32Array>(chunks: tf.TypedArray[], make: (n: number) => T): T {
    const out = make(chunks.reduce((n, c) => n + c.length, 0));
    let offset = 0;
    for (const c of chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }
  return {
    name: 'tfjs masked forward',
    async predict(images, imageCount, policy, rowImage) {
      return concat(await forRows(images, imageCount, policy, rowImage, (logits) => logits.argMax(1)), (n) => new Int32Array(n));
    },
    async logits(images, imageCount, policy, rowImage) {
      return concat(await forRows(images, imageCount, policy, rowImage, (logits) => logits), (n) => new Float32Array(n));
    },
    dispose() {},
  };
}

/**
 * The frozen backbone exported to ONNX and run by the block-skipping executor (real skipping: a block runs
 * only on the rows that keep it). `dir` receives the export.
 */
export async function onnxOracle(
  options: { arch: ResNetConfig; normalization: Normalization; resnet: TensorMap; dir: string; threads?: number; workers?: number; batchSize?: number },
): Promise<RewardOracle> {
  const [{ exportBlockDrop }, { BlockDropModel }, { BlockDropPool }] = await Promise.all([
    import('../export/onnx.js'),
    import('../executor/model.js'),
    import('../executor/pool.js'),
  ]);
  await exportBlockDrop({ arch: options.arch, normalization: options.normalization, resnet: options.resnet, outDir: options.dir });
  // Reward passes are batches of hundreds of images: the worker pool (one ORT thread per core) runs them faster than
  // one process with intra-op threads (docs/executor.md).
  const workers = options.workers ?? availableParallelism();
  const batchSize = options.batchSize ?? 256;
  const model: BlockDropPredictor =
    workers > 1
      ? await BlockDropPool.load(options.dir, { workers, batchSize })
      : await BlockDropModel.load(options.dir, { threads: options.threads, batchSize });
  const side = options.arch.inputSize;
  const per = side * side * 3;
  const arrangement = model.info.workers > 0 ? `${model.info.workers} workers × 1 thread` : `${model.info.threads} threads`;
  // Row r is image rowImage[r]: gather the rows unless they are the images in order.
  const run = (images: Float32Array, imageCount: number, policy: Uint8Array, rowImage: Int32Array) => {
    const rows = rowImage.length;
    let x = images.subarray(0, imageCount * per);
    if (rows !== imageCount || !rowImage.every((r, i) => r === i)) {
      x = new Float32Array(rows * per);
      for (let r = 0; r < rows; r++) x.set(images.subarray(rowImage[r]! * per, (rowImage[r]! + 1) * per), r * per);
    }
    return model.predict(x, { keep: policy, shape: [rows, side, side, 3] });
  };
  return {
    name: `ONNX Runtime executor (${model.info.kernels} kernels, ${arrangement})`,
    predict: async (images, imageCount, policy, rowImage) => (await run(images, imageCount, policy, rowImage)).classes,
    logits: async (images, imageCount, policy, rowImage) => (await run(images, imageCount, policy, rowImage)).logits,
    dispose() {
      void model.release();
    },
  };
}

/**
 * A distillation teacher behind the oracle interface: it runs every one of its own `teacherBlocks` blocks whatever
 * policy it is asked with (its depth may differ from the student's), on the student's images re-expressed in its own
 * input normalisation (akamaster's ResNets expect ImageNet statistics, BlockDrop's ResNet-32 CIFAR ones).
 */
export function teacherOracle(
  oracle: RewardOracle,
  teacherBlocks: number,
  studentNormalization: Normalization,
  teacherNormalization: Normalization,
): RewardOracle {
  const same = studentNormalization.name === teacherNormalization.name;
  const input = (images: Float32Array): Float32Array =>
    same ? images : renormalizeBatch(images, studentNormalization, teacherNormalization);
  const everyBlock = (rows: number): Uint8Array => new Uint8Array(rows * teacherBlocks).fill(1);
  const { logits } = oracle;
  return {
    name: `teacher (${oracle.name}, every block${same ? '' : `, ${teacherNormalization.name} input`})`,
    predict: (images, imageCount, _policy, rowImage) => oracle.predict(input(images), imageCount, everyBlock(rowImage.length), rowImage),
    ...(logits
      ? {
          logits: (images: Float32Array, imageCount: number, _policy: Uint8Array, rowImage: Int32Array) =>
            logits.call(oracle, input(images), imageCount, everyBlock(rowImage.length), rowImage),
        }
      : {}),
    dispose: () => oracle.dispose(),
  };
}

/** Policy weights from a blockdrop checkpoint (`policy.*`), an original BlockDrop agent (.t7) or bare names. */
export async function loadPolicyWeights(path: string): Promise<TensorMap> {
  const loaded = await loadAnyCheckpoint(path, { prefer: ['agent', 'net', ''] });
  const policy = tensorSection(loaded.tensors, 'policy.');
  return policy.size > 0 ? policy : loaded.tensors;
}

/**
 * Reward passes of the frozen ResNet: the ONNX Runtime executor (real skipping, both cores; measured 1.4–2.4×
 * the tfjs masked forward on ResNet-32) unless `engine` is 'tfjs' or the export fails under 'auto'.
 */
export async function createRewardOracle(
  engine: 'auto' | 'tfjs' | 'onnx',
  resnet: BackboneModel,
  backbone: { arch: ResNetConfig; normalization: Normalization; tensors: TensorMap },
  log: (m: string) => void = () => {},
): Promise<RewardOracle> {
  const { arch } = backbone;
  if (engine !== 'tfjs') {
    const dir = join(mkdtempSync(join(tmpdir(), 'blockdrop-oracle-')), 'export');
    try {
      const oracle = await onnxOracle({ arch, normalization: backbone.normalization, resnet: backbone.tensors, dir });
      log(`reward passes: ${oracle.name}`);
      return {
        ...oracle,
        dispose() {
          oracle.dispose();
          rmSync(dirname(dir), { recursive: true, force: true });
        },
      };
    } catch (e) {
      rmSync(dirname(dir), { recursive: true, force: true });
      if (engine === 'onnx') throw e;
      log(`ONNX Runtime executor unavailable (${(e as Error).message}); using the tfjs masked forward`);
    }
  }
  const oracle = tfjsOracle(resnet, blockCount(arch), arch.inputSize);
  log(`reward passes: ${oracle.name}`);
  return oracle;
}

