/**
 * Training-step benchmark, both engines in one run (issue 9):
 *
 *   npm run bench -- train [--json] [--steps N] [--batch B] [--tfjs-stage2-batch B] [--weights file] [--train-workers n]
 *
 * Real CIFAR-10 training batches (augmented and normalised as the trainer does), BlockDrop's ResNet-32 and a
 * ResNet-8 policy (random init: the step's cost does not depend on what the policy learned).
 * - stage 1: one full step (policy forward + backward, the two frozen-ResNet reward passes through the ONNX
 *   executor, REINFORCE, Adam), ONNX Runtime training engine vs the TensorFlow.js one;
 * - stage 2: one joint step (ResNet-32 greedy + sampled passes in train mode, its backward, the policy's), with the
 *   original's masked blocks and with gathered ones (each block on the rows that keep it);
 * - stage 2 with the policy frozen and the cross-entropy on the greedy paths (the ResNet-only steps of the
 *   stochastic-depth pipeline: one ResNet pass and its backward), masked and gathered.
 * The policy is freshly initialised, so about half the blocks run per image (greedy ≈ 7 of 15): the block counts
 * of the pipeline's ResNet-only steps.
 * The ONNX engine runs as training does by default (--train-workers 0: one worker thread per core, each batch split
 * between them) and, for the ratio, in one process with ORT's intra-op threads (`onnxOneProcess`).
 * Every measurement runs in its own child process (`--only stage:engine:workers`), so its peak RSS (the process's
 * maximum resident set, worker threads included) is its own. Reports images/s (median step), CPU use (process CPU
 * time / wall time, in cores), peak RSS, and the ONNX/tfjs ratios. The tfjs engine's stage 2 runs at a smaller batch by default (its
 * wasm heap is capped at 4 GB); its rate is per image.
 */
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
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
import type { BlockExecution } from '../src/train/onnx-graph.js';
import { Rng } from '../src/util/rng.js';
import { load1, median, peakRssMb, round, runIfScript } from './stats.js';

const execFileAsync = promisify(execFile);

const DEFAULT_WEIGHTS = join(weightsDir, 'blockdrop_R32_C10_pk_E_164_A_0.923.t7');

/** Stage-2 variants: the joint step, or the policy frozen with the cross-entropy on the greedy paths. */
type Variant = 'joint' | 'frozen';

interface StageResult {
  readonly engine: 'onnx' | 'tfjs';
  readonly variant: Variant;
  readonly blockExecution: BlockExecution;
  /** Mean blocks run per image in the greedy (and, joint, sampled) passes. */
  readonly blocksGreedy: number;
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
  workers?: number;
  variant?: Variant;
  blockExecution?: BlockExecution;
  log: (m: string) => void;
}): Promise<StageResult> {
  const variant = options.variant ?? 'joint';
  const blockExecution = options.blockExecution ?? 'masked';
  const { stage, engine, batch, weights } = options;
  const arch = weights.arch;
  const k = blockCount(arch);
  const train = options.train;
  const resnet = ResNet.fromWeights(arch, weights.tensors, { trainable: stage === 2 });
  const policy = PolicyNetwork.init(arch, 1);
  const params = [...policy.variables(), ...(stage === 2 ? resnet.variables() : [])];
  const optimizer = new Adam(params, { lr: stage === 1 ? 1e-3 : 1e-4 });
  const modules = await createTrainModules(engine, policy, stage === 2 ? resnet : undefined, {
    k,
    side: 32,
    log: options.log,
    blockExecution,
    ...(options.workers ? { workers: options.workers } : {}),
  });
  let blocks = 0;
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
      const r = await blockDropStep(
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
          ...(variant === 'frozen' ? { trainPolicy: false, classifierPolicy: 'greedy' as const } : {}),
        },
      );
      blocks += r.blocksGreedy;
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
    variant,
    blockExecution,
    blocksGreedy: round(blocks / (options.steps + 1), 2),
    batch,
    steps: times.length,
    stepSeconds: round(step, 3),
    imagesPerSecond: round(batch / step, 1),
    cpuCores: round(cpu / wall, 2),
    cpuUtilisation: round(cpu / wall / availableParallelism(), 2),
    peakRssMb: Math.round(peak),
  };
}

/** One measurement, `--only stage:engine:workers:variant:blocks`, run in a child process: its peak RSS is its own. */
type Measurement = {
  stage: 1 | 2;
  engine: Exclude<TrainEngine, 'auto'>;
  workers: number;
  batch: number;
  steps: number;
  variant?: Variant;
  blockExecution?: BlockExecution;
};

async function measureInChild(m: Measurement, weights: string, log: (line: string) => void): Promise<StageResult> {
  const args = [
    fileURLToPath(import.meta.url),
    '--only',
    `${m.stage}:${m.engine}:${m.workers}:${m.variant ?? 'joint'}:${m.blockExecution ?? 'masked'}`,
    '--batch',
    String(m.batch),
    '--steps',
    String(m.steps),
    '--weights',
    weights,
  ];
  const { stdout } = await execFileAsync(process.execPath, args, { maxBuffer: 1 << 20 });
  const result = JSON.parse(stdout) as StageResult;
  log(`stage ${m.stage}${m.stage === 2 ? ` ${result.variant}, ${result.blockExecution}` : ''}, ${m.engine}${m.engine === 'onnx' ? ` (${m.workers === 1 ? 'one process' : `${m.workers} workers`})` : ''}: ` +
    `${result.imagesPerSecond} img/s, ${result.cpuCores} cores, peak RSS ${result.peakRssMb} MB`);
  return result;
}

async function measureOnly(spec: string, batch: number, steps: number, weightsPath: string): Promise<void> {
  const [stageText, engine, workersText, variantText, blocksText] = spec.split(':');
  const stage = Number(stageText) as 1 | 2;
  await initBackend('wasm');
  const weights = await loadBackbone(weightsPath);
  const train = loadCifar10({ split: 'train' });
  const log = (m: string): void => void process.stderr.write(`${m}\n`);
  const frozen = stage === 1 ? ResNet.fromWeights(weights.arch, weights.tensors) : undefined;
  const oracle = frozen ? await createRewardOracle('onnx', frozen, weights, log) : undefined;
  try {
    const result = await measureStage({
      stage,
      engine: engine as Exclude<TrainEngine, 'auto'>,
      batch,
      steps,
      weights,
      ...(oracle ? { oracle } : {}),
      train,
      workers: Number(workersText),
      variant: (variantText ?? 'joint') as Variant,
      blockExecution: (blocksText ?? 'masked') as BlockExecution,
      log,
    });
    process.stdout.write(JSON.stringify({ ...result, peakRssMb: Math.round(Math.max(result.peakRssMb, peakRssMb())) }));
  } finally {
    oracle?.dispose();
    frozen?.dispose();
  }
  process.exit(0); // worker threads and ORT pools end with the process
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
      'train-workers': { type: 'string', default: '0' },
      only: { type: 'string' },
    },
  });
  const batch = Number(values.batch);
  const steps = Number(values.steps);
  const weights = resolve(values.weights!);
  if (values.only) return measureOnly(values.only, batch, steps, weights);
  const json = values.json;
  const log = (m: string): void => {
    if (!json) process.stderr.write(`${m}\n`);
  };
  const tfjsSteps = Number(values['tfjs-steps']);
  const workers = Number(values['train-workers']) || availableParallelism();
  const load = load1();
  // The default engine (data-parallel workers, one per core) and the one-process engine, then TensorFlow.js; each
  // in a fresh process, one after the other.
  const stage1 = await measureInChild({ stage: 1, engine: 'onnx', workers, batch, steps }, weights, log);
  const stage1OneProcess = await measureInChild({ stage: 1, engine: 'onnx', workers: 1, batch, steps }, weights, log);
  const stage1Tfjs = values['skip-tfjs'] ? undefined : await measureInChild({ stage: 1, engine: 'tfjs', workers: 1, batch, steps: tfjsSteps }, weights, log);
  const stage2 = await measureInChild({ stage: 2, engine: 'onnx', workers, batch, steps }, weights, log);
  const stage2OneProcess = await measureInChild({ stage: 2, engine: 'onnx', workers: 1, batch, steps }, weights, log);
  const stage2Gathered = await measureInChild({ stage: 2, engine: 'onnx', workers, batch, steps, blockExecution: 'gathered' }, weights, log);
  const frozenMasked = await measureInChild({ stage: 2, engine: 'onnx', workers, batch, steps, variant: 'frozen' }, weights, log);
  const frozenGathered = await measureInChild(
    { stage: 2, engine: 'onnx', workers, batch, steps, variant: 'frozen', blockExecution: 'gathered' },
    weights,
    log,
  );
  const stage2Tfjs = values['skip-tfjs']
    ? undefined
    : await measureInChild({ stage: 2, engine: 'tfjs', workers: 1, batch: Number(values['tfjs-stage2-batch']), steps: tfjsSteps }, weights, log);
  const result = {
    benchmark: 'train',
    backbone: 'BlockDrop ResNet-32',
    weights,
    batch,
    cores: availableParallelism(),
    loadAverage1mAtStart: round(load, 2),
    loadAverage1mAtEnd: round(load1(), 2),
    trainWorkers: workers,
    stage1: { ...stage1, onnxOneProcess: stage1OneProcess, tfjs: stage1Tfjs ?? null, speedup: stage1Tfjs ? round(stage1.imagesPerSecond / stage1Tfjs.imagesPerSecond, 2) : null },
    stage2: { ...stage2, onnxOneProcess: stage2OneProcess, tfjs: stage2Tfjs ?? null, speedup: stage2Tfjs ? round(stage2.imagesPerSecond / stage2Tfjs.imagesPerSecond, 2) : null },
    // Gathered blocks against the original's masked ones, in the same run: the joint step and the ResNet-only step.
    stage2Gathered: { ...stage2Gathered, speedupOverMasked: round(stage2Gathered.imagesPerSecond / stage2.imagesPerSecond, 2) },
    frozenPolicy: {
      masked: frozenMasked,
      gathered: frozenGathered,
      speedupOverMasked: round(frozenGathered.imagesPerSecond / frozenMasked.imagesPerSecond, 2),
      speedupOverJointMasked: round(frozenGathered.imagesPerSecond / stage2.imagesPerSecond, 2),
    },
    targets: {
      stage1ImagesPerSecond: 320,
      stage2ImagesPerSecond: 160,
      stage2PeakRssMb: 6000,
      stage1Met: stage1.imagesPerSecond >= 320,
      stage2Met: stage2.imagesPerSecond >= 160,
      rssMet: stage2.peakRssMb <= 6000,
    },
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  process.stdout.write(
    `stage 1: ${stage1.imagesPerSecond} img/s (${stage1.cpuCores} cores)${result.stage1.speedup ? `, ${result.stage1.speedup}× tfjs` : ''}\n` +
      `stage 2: ${stage2.imagesPerSecond} img/s (${stage2.cpuCores} cores, peak RSS ${stage2.peakRssMb} MB)${result.stage2.speedup ? `, ${result.stage2.speedup}× tfjs` : ''}\n` +
      `stage 2, gathered blocks: ${stage2Gathered.imagesPerSecond} img/s (${result.stage2Gathered.speedupOverMasked}× masked)\n` +
      `ResNet-only step (frozen policy): masked ${frozenMasked.imagesPerSecond}, gathered ${frozenGathered.imagesPerSecond} img/s (${result.frozenPolicy.speedupOverMasked}×)\n`,
  );
}

runIfScript(import.meta.url, main);
