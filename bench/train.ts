/**
 * Training-step benchmark, both engines in one run (issue 9):
 *
 *   npm run bench -- train [--json] [--steps N] [--batch B] [--tfjs-stage2-batch B] [--weights file]
 *
 * Real CIFAR-10 training batches (augmented and normalised as the trainer does), BlockDrop's ResNet-32 and a
 * ResNet-8 policy (random init: the step's cost does not depend on what the policy learned).
 * - stage 1: one full step (policy forward + backward, the two frozen-ResNet reward passes through the ONNX
 *   executor, REINFORCE, Adam), ONNX Runtime training engine vs the TensorFlow.js one;
 * - stage 2: one joint step (ResNet-32 greedy + sampled passes in train mode, its backward, the policy's).
 * Reports images/s (median step), CPU use (process CPU time / wall time, in cores), peak RSS sampled during the
 * ONNX stage-2 steps, and the ONNX/tfjs ratios. The tfjs engine's stage 2 runs at a smaller batch by default (its
 * wasm heap is capped at 4 GB); its rate is per image.
 */
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend/index.js';
import { batchLabels, EpochSampler, normalizeBatch } from '../src/data/batches.js';
import { loadCifar10, type ImageSet } from '../src/data/cifar.js';
import { blockCount } from '../src/models/config.js';
import { loadBackbone } from '../src/models/load.js';
import { PolicyNetwork } from '../src/models/policy.js';
import { ResNet } from '../src/models/resnet.js';
import { weightsDir } from '../src/testing/shared.js';
import { Adam } from '../src/train/adam.js';
import { createTrainModules, type TrainEngine } from '../src/train/engine.js';
import { createRewardOracle, type RewardOracle } from '../src/train/models.js';
import { blockDropStep } from '../src/train/step.js';
import { Rng } from '../src/util/rng.js';
import { load1, median, round, runIfScript } from './stats.js';

const DEFAULT_WEIGHTS = join(weightsDir, 'blockdrop_R32_C10_pk_E_164_A_0.923.t7');

interface StageResult {
  readonly engine: 'onnx' | 'tfjs';
  readonly batch: number;
  readonly steps: number;
  readonly stepSeconds: number;
  readonly imagesPerSecond: number;
  /** Process CPU time / wall time over the timed steps (cores busy). */
  readonly cpuCores: number;
  readonly cpuUtilisation: number;
  readonly peakRssMb: number;
}

/** Samples the resident set size every 10 ms (ONNX Runtime's peaks happen inside a session run). */
function rssSampler(): { stop(): number } {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage.rss()) / 1e6;
    },
  };
}

async function measureStage(options: {
  stage: 1 | 2;
  engine: Exclude<TrainEngine, 'auto'>;
  batch: number;
  steps: number;
  weights: Awaited<ReturnType<typeof loadBackbone>>;
  oracle?: RewardOracle;
  train: ImageSet;
  log: (m: string) => void;
}): Promise<StageResult> {
  const { stage, engine, batch, weights } = options;
  const arch = weights.arch;
  const k = blockCount(arch);
  const train = options.train;
  const resnet = ResNet.fromWeights(arch, weights.tensors, { trainable: stage === 2 });
  const policy = PolicyNetwork.init(arch, 1);
  const params = [...policy.variables(), ...(stage === 2 ? resnet.variables() : [])];
  const optimizer = new Adam(params, { lr: stage === 1 ? 1e-3 : 1e-4 });
  const modules = await createTrainModules(engine, policy, stage === 2 ? resnet : undefined, { k, side: 32, log: options.log });
  const seed = new Rng(0);
  const sampler = new EpochSampler(train.count, batch, seed);
  const augmentRng = new Rng(1);
  const rng = new Rng(2);
  const images = new Float32Array(batch * 32 * 32 * 3);
  const oracle = options.oracle;
  const times: number[] = [];
  let cpu = 0;
  let wall = 0;
  const rss = rssSampler();
  try {
    for (let i = 0; i < options.steps + 1; i++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const indices = sampler.nextBatch();
      normalizeBatch(train, indices, weights.normalization, { rng: augmentRng }, images);
      await blockDropStep(
        { policy, resnet, oracle: oracle!, optimizer, params, rng, modules },
        { images, labels: batchLabels(train, indices), size: batch, side: 32 },
        {
          k,
          learnable: k,
          entropyWeight: stage === 1 ? 0.1 : 0,
          entropy: 'original',
          penalty: stage === 1 ? 1 : 5,
          alpha: 0.8,
          trainResNet: stage === 2,
          samples: 1,
          baseline: 'greedy',
          advantage: 'signed',
          lossLimit: Infinity,
        },
      );
      const seconds = (performance.now() - t0) / 1000;
      const used = process.cpuUsage(c0);
      if (i === 0) continue; // warm-up: session and kernel set-up, first allocations
      times.push(seconds);
      wall += seconds;
      cpu += (used.user + used.system) / 1e6;
    }
  } finally {
    modules.dispose();
    optimizer.dispose();
    policy.dispose();
    resnet.dispose();
  }
  const peak = rss.stop();
  const step = median(times);
  return {
    engine,
    batch,
    steps: times.length,
    stepSeconds: round(step, 3),
    imagesPerSecond: round(batch / step, 1),
    cpuCores: round(cpu / wall, 2),
    cpuUtilisation: round(cpu / wall / availableParallelism(), 2),
    peakRssMb: Math.round(peak),
  };
}

export async function main(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      json: { type: 'boolean', default: false },
      steps: { type: 'string', default: '4' },
      batch: { type: 'string', default: '256' },
      'tfjs-stage2-batch': { type: 'string', default: '64' },
      'tfjs-steps': { type: 'string', default: '2' },
      weights: { type: 'string', default: DEFAULT_WEIGHTS },
      'skip-tfjs': { type: 'boolean', default: false },
    },
  });
  const json = values.json;
  const log = (m: string): void => {
    if (!json) process.stderr.write(`${m}\n`);
  };
  await initBackend('wasm');
  const weights = await loadBackbone(resolve(values.weights));
  const batch = Number(values.batch);
  const steps = Number(values.steps);
  const tfjsSteps = Number(values['tfjs-steps']);
  const frozen = ResNet.fromWeights(weights.arch, weights.tensors);
  const oracle = await createRewardOracle('onnx', frozen, weights, log);
  const train = loadCifar10({ split: 'train' });
  const load = load1();
  let result: Record<string, unknown>;
  try {
    const stage1 = await measureStage({ stage: 1, engine: 'onnx', batch, steps, weights, oracle, train, log });
    log(`stage 1, ONNX engine: ${stage1.imagesPerSecond} img/s, ${stage1.cpuCores} cores`);
    const stage1Tfjs = values['skip-tfjs'] ? undefined : await measureStage({ stage: 1, engine: 'tfjs', batch, steps: tfjsSteps, weights, oracle, train, log });
    if (stage1Tfjs) log(`stage 1, tfjs engine: ${stage1Tfjs.imagesPerSecond} img/s, ${stage1Tfjs.cpuCores} cores`);
    const stage2 = await measureStage({ stage: 2, engine: 'onnx', batch, steps, weights, train, log });
    log(`stage 2, ONNX engine: ${stage2.imagesPerSecond} img/s, ${stage2.cpuCores} cores, peak RSS ${stage2.peakRssMb} MB`);
    const stage2Tfjs = values['skip-tfjs']
      ? undefined
      : await measureStage({ stage: 2, engine: 'tfjs', batch: Number(values['tfjs-stage2-batch']), steps: tfjsSteps, weights, train, log });
    if (stage2Tfjs) log(`stage 2, tfjs engine: ${stage2Tfjs.imagesPerSecond} img/s, ${stage2Tfjs.cpuCores} cores`);
    result = {
      benchmark: 'train',
      backbone: weights.preset,
      batch,
      cores: availableParallelism(),
      loadAverage1mAtStart: round(load, 2),
      loadAverage1mAtEnd: round(load1(), 2),
      stage1: { ...stage1, tfjs: stage1Tfjs ?? null, speedup: stage1Tfjs ? round(stage1.imagesPerSecond / stage1Tfjs.imagesPerSecond, 2) : null },
      stage2: { ...stage2, tfjs: stage2Tfjs ?? null, speedup: stage2Tfjs ? round(stage2.imagesPerSecond / stage2Tfjs.imagesPerSecond, 2) : null },
      targets: {
        stage1ImagesPerSecond: 320,
        stage2ImagesPerSecond: 160,
        stage2PeakRssMb: 6000,
        stage1Met: stage1.imagesPerSecond >= 320,
        stage2Met: stage2.imagesPerSecond >= 160,
        rssMet: stage2.peakRssMb <= 6000,
      },
    };
  } finally {
    oracle.dispose();
    frozen.dispose();
  }
  if (json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const s1 = result.stage1 as StageResult & { speedup: number | null };
  const s2 = result.stage2 as StageResult & { speedup: number | null };
  process.stdout.write(
    `stage 1: ${s1.imagesPerSecond} img/s (${s1.cpuCores} cores)${s1.speedup ? `, ${s1.speedup}× tfjs` : ''}\n` +
      `stage 2: ${s2.imagesPerSecond} img/s (${s2.cpuCores} cores, peak RSS ${s2.peakRssMb} MB)${s2.speedup ? `, ${s2.speedup}× tfjs` : ''}\n`,
  );
}

runIfScript(import.meta.url, main);
