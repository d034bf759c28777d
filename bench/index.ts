/**
 * Benchmark entry point: `node dist/bench/index.js <name> [options]` (npm run bench -- <name>).
 *   data         CIFAR-10 load and decode time (no cache, warm cache)
 *   inference    full fused ResNet vs the BlockDrop executor on the CIFAR-10 test set
 *   strategies   the executor's skipping strategies against each other (docs/executor.md)
 *   train        stage-1 / stage-2 training steps, ONNX Runtime engine vs TensorFlow.js (docs/training.md)
 *   imagenet     ResNet-50/101 at 224×224 (random weights): full fused ONNX vs the executor (docs/imagenet.md)
 *   profile      ONNX Runtime's per-op kernel times: `profile executor` or `profile train`
 */
import { BlockdropError } from '../src/errors.js';
import { runIfScript } from './stats.js';

const BENCHMARKS: Record<string, () => Promise<{ main(argv: readonly string[]): Promise<void> }>> = {
  data: () => import('./data.js'),
  inference: () => import('./inference.js'),
  strategies: () => import('./strategies.js'),
  train: () => import('./train.js'),
  imagenet: () => import('./imagenet.js'),
  profile: () => import('./profile.js'),
};

export async function main(argv: readonly string[]): Promise<void> {
  const [name, ...rest] = argv;
  const load = name ? BENCHMARKS[name] : undefined;
  if (!load) {
    throw new BlockdropError(`unknown benchmark '${name ?? ''}'; choose one of: ${Object.keys(BENCHMARKS).join(', ')}`);
  }
  await (await load()).main(rest);
}

runIfScript(import.meta.url, main);
