import type { Command } from 'commander';
import { initBackend } from '../../backend/index.js';
import { loadCifar10, type CifarSplit } from '../../data/cifar.js';
import { classifyImages } from '../../eval/classify.js';
import { resnetFlops } from '../../models/flops.js';
import { loadBackbone } from '../../models/load.js';
import { ResNet } from '../../models/resnet.js';
import { BlockdropError } from '../../errors.js';
import { openBackboneEngine } from '../../eval/engine.js';
import { evaluatePolicy } from '../../eval/evaluate.js';
import { blockCount } from '../../models/config.js';
import { policyFlops } from '../../models/flops.js';
import { PolicyNetwork } from '../../models/policy.js';
import { loadPolicyWeights } from '../../train/index.js';
import { formatPercent, positiveInt, printJson, probability } from '../output.js';
import { progressBar } from '../progress.js';

interface EvalOptions {
  resnet: string;
  policy?: string;
  arch?: string;
  data?: string;
  split: string;
  limit?: number;
  batchSize: number;
  threshold: number;
  json?: boolean;
}

const SPLITS: readonly CifarSplit[] = ['test', 'val', 'train', 'trainval'];

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('accuracy, FLOPs and speed of a ResNet checkpoint on CIFAR-10')
    .requiredOption('--resnet <checkpoint>', 'backbone checkpoint: PyTorch (.t7/.th/.pt, legacy or zip) or blockdrop safetensors')
    .option('--policy <checkpoint>', 'BlockDrop policy: each image runs only the blocks its policy keeps (threshold 0.5)')
    .option('--arch <name>', 'architecture preset (detected from the checkpoint when omitted)')
    .option('--data <dir>', 'CIFAR-10 directory (PNG sprites or binary batches)')
    .option('--split <name>', `data split: ${SPLITS.join(', ')}`, 'test')
    .option('--limit <n>', 'evaluate only the first n images', positiveInt('--limit'))
    .option('--batch-size <n>', 'images per forward pass', positiveInt('--batch-size'), 128)
    .option('--threshold <p>', 'policy threshold: block t runs when its keep probability is ≥ p (the paper: 0.5)', probability('--threshold', { open: true }), 0.5)
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: EvalOptions) => {
      if (!SPLITS.includes(opts.split as CifarSplit)) {
        throw new BlockdropError(`unknown split '${opts.split}'; use one of ${SPLITS.join(', ')}`);
      }
      const backbone = await loadBackbone(opts.resnet, { arch: opts.arch });
      await initBackend('wasm');
      const set = await loadCifar10({ dataDir: opts.data, split: opts.split as CifarSplit });
      if (opts.policy) return evalWithPolicy(opts, backbone, set);
      const model = ResNet.fromWeights(backbone.arch, backbone.tensors);
      const total = Math.min(opts.limit ?? set.count, set.count);
      const bar = progressBar(`eval ${opts.split}`, total);
      const result = await classifyImages(model, backbone.normalization, set, {
        batchSize: opts.batchSize,
        limit: opts.limit,
        onProgress: (done) => bar.update(done),
      });
      bar.stop();
      model.dispose();
      const report = {
        checkpoint: opts.resnet,
        arch: backbone.preset,
        normalization: backbone.normalization.name,
        split: opts.split,
        images: result.images,
        correct: result.correct,
        accuracy: result.accuracy,
        flopsPerImage: resnetFlops(backbone.arch),
        imagesPerSecond: result.imagesPerSecond,
        seconds: result.seconds,
        perClassAccuracy: result.perClassAccuracy,
      };
      if (opts.json) return printJson(report);
      process.stdout.write(
        `${backbone.preset} (${backbone.reason}) on ${result.images} ${opts.split} images\n` +
          `  accuracy       ${formatPercent(result.accuracy)} (${result.correct}/${result.images})\n` +
          `  FLOPs/image    ${report.flopsPerImage.toExponential(4)}\n` +
          `  speed          ${result.imagesPerSecond.toFixed(0)} images/s\n`,
      );
    });
}

/** BlockDrop evaluation: greedy policy, then only the kept blocks (ONNX Runtime executor, tfjs as fallback). */
async function evalWithPolicy(
  opts: EvalOptions,
  backbone: Awaited<ReturnType<typeof loadBackbone>>,
  set: Awaited<ReturnType<typeof loadCifar10>>,
): Promise<void> {
  const k = blockCount(backbone.arch);
  const policy = PolicyNetwork.fromWeights(backbone.arch, await loadPolicyWeights(opts.policy!), { trainable: false });
  const engine = await openBackboneEngine(backbone, { log: (m) => process.stderr.write(`${m}\n`) });
  const total = Math.min(opts.limit ?? set.count, set.count);
  const bar = progressBar(`eval ${opts.split}`, total);
  const policyCost = policyFlops(backbone.arch);
  try {
    const result = await evaluatePolicy(policy, engine.oracle, set, {
      k,
      normalization: backbone.normalization,
      limit: opts.limit,
      batchSize: opts.batchSize,
      flops: (keep) => resnetFlops(backbone.arch, keep) + policyCost,
      threshold: opts.threshold,
      onProgress: (done) => bar.update(done),
    });
    bar.stop();
    const fullFlops = resnetFlops(backbone.arch);
    const report = {
      checkpoint: opts.resnet,
      policy: opts.policy,
      arch: backbone.preset,
      normalization: backbone.normalization.name,
      split: opts.split,
      threshold: opts.threshold,
      engine: engine.oracle.name,
      ...result,
      blocks: k,
      fullFlops,
      flopsPerImage: result.flopsMean,
      flopsRatio: result.flopsMean / fullFlops,
    };
    if (opts.json) return printJson(report);
    process.stdout.write(
      `${backbone.preset} + BlockDrop policy on ${result.images} ${opts.split} images\n` +
        `  accuracy       ${formatPercent(result.accuracy)} (${result.correct}/${result.images})\n` +
        `  blocks used    ${result.blocksMean.toFixed(2)} ± ${result.blocksStd.toFixed(2)} of ${k}\n` +
        `  FLOPs/image    ${result.flopsMean.toExponential(3)} ± ${result.flopsStd.toExponential(2)} (policy included; ${formatPercent(report.flopsRatio, 1)} of the full network)\n` +
        `  distinct paths ${result.distinctPolicies}\n` +
        `  speed          ${result.imagesPerSecond.toFixed(0)} images/s (${engine.oracle.name})\n`,
    );
  } finally {
    bar.stop();
    await engine.close();
    policy.dispose();
  }
}
