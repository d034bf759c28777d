/**
 * The training loop shared by both stages. Reads like nanoGPT's train.py: evaluate and checkpoint every
 * `evalEvery` iterations, pick the learning rate and curriculum, take one step, repeat.
 *
 * Everything a resumed run needs is in the last checkpoint: weights, Adam moments, both random generators,
 * the batch sampler, the iteration and the best validation score, so `resume` replays exactly the numbers
 * an uninterrupted run would have produced.
 */
import { availableParallelism } from 'node:os';
import type { ImageSet } from '../data/cifar.js';
import { batchLabels, EpochSampler, normalizeBatch } from '../data/batches.js';
import { BlockdropError } from '../errors.js';
import { evaluatePolicy, type PolicyEvaluation } from '../eval/evaluate.js';
import type { Normalization } from '../models/config.js';
import type { JsonObject } from '../checkpoint/json.js';
import type { TensorMap } from '../tensor.js';
import { Rng } from '../util/rng.js';
import type * as tf from '@tensorflow/tfjs';
import { Adam } from './adam.js';
import type { Optimizer } from './optimizer.js';
import { Sgd } from './sgd.js';
import { alphaAt, learningRate, type CommonConfig, type Stage1Config, type Stage2Config } from './config.js';
import type { RewardOracle, TrainableBackbone, TrainablePolicy } from './models.js';
import { learnableBlocks, type CurriculumSchedule } from './reinforce.js';
import { RunDirectory, type EvalRecord, type TrainingCheckpointMeta } from './run-dir.js';
import { createTrainModules } from './engine.js';
import { pretrainPolicyFeatures, type PretrainOptions } from './pretrain.js';
import { blockDropStep, type StepResult } from './step.js';

/** Everything the loop needs, already built (the CLI-facing `trainPolicy` / `finetune` build it from a config). */
export interface TrainingSetup {
  readonly stage: 1 | 2;
  readonly config: CommonConfig &
    Partial<Pick<Stage1Config, 'curriculumEvery' | 'curriculumUnit' | 'curriculumStart'>> &
    Partial<Pick<Stage2Config, 'policyLr' | 'freezePolicy' | 'distillWeight' | 'distillTemperature' | 'classifierPolicy' | 'blockExecution'>>;
  /** Number of blocks K. */
  readonly k: number;
  readonly policy: TrainablePolicy;
  readonly resnet: TrainableBackbone;
  /** Frozen-ResNet reward passes (stage 1). */
  readonly oracle: RewardOracle;
  /** Validation / test passes of the ResNet (stage 2: the live, training ResNet in eval mode). */
  readonly evalOracle: RewardOracle;
  readonly train: ImageSet;
  readonly val: ImageSet;
  /** Loaded only for the one final test evaluation. */
  readonly loadTest?: () => ImageSet | Promise<ImageSet>;
  readonly normalization: Normalization;
  /** FLOPs per image (ResNet with this policy + policy network). */
  readonly flops?: (keep: Uint8Array) => number;
  /** Random crop + flip of training images (default true). */
  readonly augment?: boolean;
  /** Recorded in every checkpoint (preset, sources, …). */
  readonly meta?: Record<string, string | number | boolean>;
  /** Fresh runs only: pretrain the policy's features as a classifier before policy learning. */
  readonly pretrain?: Omit<PretrainOptions, 'rng' | 'onProgress' | 'normalization'>;
}

export interface TrainProgress {
  readonly phase: 'pretrain' | 'train' | 'eval' | 'test';
  readonly iteration: number;
  readonly totalIterations: number;
  readonly epoch: number;
  readonly lr: number;
  readonly learnable: number;
  /** Running means since the last evaluation. */
  readonly loss: number;
  readonly reward: number;
  readonly accuracy: number;
  readonly blocks: number;
  readonly imagesPerSecond: number;
  readonly elapsedSeconds: number;
  /** During evaluation: images done / total. */
  readonly evalDone?: number;
  readonly evalTotal?: number;
  /** The latest evaluation record. */
  readonly lastEval?: EvalRecord;
}

export interface TrainHooks {
  onProgress?(progress: TrainProgress): void;
  /** Aborting stops after the current step and saves a checkpoint to resume from. */
  readonly signal?: AbortSignal;
  /** One-line messages (resume notices, the engine picked, …). */
  log?(message: string): void;
}

export interface TrainResult {
  readonly runDir: string;
  readonly iterations: number;
  readonly stoppedBy: 'done' | 'time-limit' | 'aborted';
  readonly best?: EvalRecord;
  readonly last?: EvalRecord;
  /** The best checkpoint on the test split (when `testAtEnd`). */
  readonly test?: PolicyEvaluation;
  /** The best policy alone (`<runDir>/policy.safetensors`). */
  readonly policyPath?: string;
  readonly elapsedSeconds: number;
}

/** Running sums of step results between two evaluations. */
class StepStats {
  steps = 0;
  images = 0;
  /** Images whose greedy / sampled pass ran (a frozen policy's stage 2 runs only the trained one). */
  imagesGreedy = 0;
  imagesSampled = 0;
  seconds = 0;
  loss = 0;
  crossEntropy = 0;
  rewardSampled = 0;
  rewardGreedy = 0;
  correctSampled = 0;
  correctGreedy = 0;
  blocksSampled = 0;
  blocksGreedy = 0;
  blocksGreedySq = 0;

  add(r: StepResult, seconds: number): void {
    this.steps++;
    this.seconds += seconds;
    this.images += r.images;
    this.loss += r.loss;
    this.crossEntropy += r.crossEntropy;
    // Per-image means weighted by the batch size (the last batch of an epoch is smaller).
    if (!Number.isNaN(r.rewardSampled)) {
      this.imagesSampled += r.images;
      this.rewardSampled += r.rewardSampled * r.images;
      this.correctSampled += r.correctSampled * r.images;
    }
    if (!Number.isNaN(r.rewardGreedy)) {
      this.imagesGreedy += r.images;
      this.rewardGreedy += r.rewardGreedy * r.images;
      this.correctGreedy += r.correctGreedy * r.images;
    }
    this.blocksSampled += r.blocksSampled * r.images;
    this.blocksGreedy += r.blocksGreedy * r.images;
    this.blocksGreedySq += r.blocksGreedySq;
  }

  /** The mean over the images whose pass ran; null when none did. */
  mean(field: 'rewardSampled' | 'rewardGreedy' | 'correctSampled' | 'correctGreedy' | 'blocksSampled' | 'blocksGreedy'): number | null {
    const n = field === 'rewardSampled' || field === 'correctSampled' ? this.imagesSampled : field === 'rewardGreedy' || field === 'correctGreedy' ? this.imagesGreedy : this.images;
    return n > 0 ? this[field] / n : null;
  }
}

function curriculumOf(setup: TrainingSetup): CurriculumSchedule {
  const c = setup.config;
  return { every: c.curriculumEvery ?? 0, unit: c.curriculumUnit ?? 'epoch', start: c.curriculumStart ?? 1 };
}

/** Stage 2's distillation option, when its weight is set. */
function distillation(config: TrainingSetup['config']): { weight: number; temperature: number } | undefined {
  const weight = config.distillWeight ?? 0;
  return weight > 0 ? { weight, temperature: config.distillTemperature ?? 4 } : undefined;
}

type SelectionConfig = Pick<CommonConfig, 'selectBy' | 'selectMaxBlocks'>;

function selectionScore(config: SelectionConfig, e: Pick<PolicyEvaluation, 'accuracy' | 'reward'>): number {
  return config.selectBy === 'accuracy' ? e.accuracy : e.reward;
}

/** Within the selection's block budget (`selectMaxBlocks`; none = every checkpoint is). */
function withinBudget(config: SelectionConfig, blocksMean: number): boolean {
  return !(config.selectMaxBlocks! > 0) || blocksMean <= config.selectMaxBlocks!;
}

/**
 * Whether a new evaluation beats the best so far: a checkpoint within the block budget beats any outside it, then
 * the higher score wins (ties keep the earlier one).
 */
export function beatsBest(
  config: SelectionConfig,
  e: Pick<PolicyEvaluation, 'accuracy' | 'reward' | 'blocksMean'>,
  best: Pick<EvalRecord, 'valBlocksMean' | 'selectionScore'> | undefined,
): boolean {
  if (!best || config.selectBy === 'last') return true;
  const inNew = withinBudget(config, e.blocksMean);
  const inBest = withinBudget(config, best.valBlocksMean);
  if (inNew !== inBest) return inNew;
  return selectionScore(config, e) > best.selectionScore;
}

export async function runTraining(setup: TrainingSetup, hooks: TrainHooks = {}): Promise<TrainResult> {
  const { config, k, policy, resnet, stage } = setup;
  const log = hooks.log ?? (() => {});
  const run = new RunDirectory(config.runDir);
  const trainResNet = stage === 2;
  const policyParams = policy.variables();
  const params: tf.Variable[] = [...policyParams, ...(trainResNet ? resnet.variables() : [])];
  // Stage 2 may give the policy its own rate (a ratio to lr, so the schedule moves both).
  const policyLr = config.policyLr ?? 0;
  const policyScale = policyLr > 0 ? policyLr / config.lr : 1;
  const optimizerOptions = {
    lr: config.lr,
    weightDecay: config.weightDecay,
    momentum: config.momentum,
    lrScale: params.map((_, i) => (i < policyParams.length ? policyScale : 1)),
  };
  const optimizer: Optimizer = config.optimizer === 'sgd' ? new Sgd(params, optimizerOptions) : new Adam(params, optimizerOptions);
  const curriculum = curriculumOf(setup);
  const side = setup.train.height;

  // Fresh state, or the state of the last checkpoint.
  const seedRng = new Rng(config.seed);
  let sampler = new EpochSampler(setup.train.count, config.batchSize, seedRng);
  let augmentRng = new Rng(seedRng.nextUint32());
  let sampleRng = new Rng(seedRng.nextUint32());
  let iteration = 0;
  let elapsedBefore = 0;
  let best: EvalRecord | undefined;
  let last: EvalRecord | undefined;
  const resumedStats = new StepStats();
  if (config.resume) {
    const saved = await run.loadLast();
    if (!saved) throw new BlockdropError(`nothing to resume in ${config.runDir}: it has no checkpoint yet; start the run without --resume`);
    const meta = saved.meta;
    if (meta.stage !== stage) throw new BlockdropError(`${config.runDir} holds a stage-${meta.stage} run; it cannot be resumed as stage ${stage}`);
    policy.assignWeights(RunDirectory.withoutPrefix(saved.tensors, 'policy.'));
    if (trainResNet) resnet.assignWeights(RunDirectory.withoutPrefix(saved.tensors, 'resnet.'));
    optimizer.loadTensorMap(saved.tensors, meta.adamStep);
    sampler = EpochSampler.fromState(meta.sampler);
    augmentRng = Rng.fromState(meta.augmentRng);
    sampleRng = Rng.fromState(meta.sampleRng);
    iteration = meta.iteration;
    elapsedBefore = meta.elapsedSeconds;
    best = meta.best ?? undefined;
    last = meta.last ?? undefined;
    if (meta.stats) {
      Object.assign(resumedStats, meta.stats);
      // Checkpoints written before a step could skip a pass counted every image for both.
      if (!('imagesGreedy' in meta.stats)) resumedStats.imagesGreedy = resumedStats.imagesSampled = resumedStats.images;
    }
    await run.truncateMetrics(iteration, last);
    log(`resumed ${config.runDir} at iteration ${iteration} (epoch ${meta.epoch.toFixed(2)})`);
  } else {
    await run.create({ stage, ...config });
  }
  const pretrainRng = new Rng(seedRng.nextUint32());

  const perEpoch = sampler.batchesPerEpoch;
  const totalIterations = config.iterations > 0 ? config.iterations : Math.ceil(config.epochs * perEpoch);
  const started = performance.now();
  const elapsed = (): number => elapsedBefore + (performance.now() - started) / 1000;
  let stats = resumedStats;
  let lr = config.lr;
  let learnable = k;
  let lastEvaluated = config.resume ? iteration : -1;

  const progress = (phase: TrainProgress['phase'], extra: Partial<TrainProgress> = {}): void =>
    hooks.onProgress?.({
      phase,
      iteration,
      totalIterations,
      epoch: iteration / perEpoch,
      lr,
      learnable,
      loss: stats.steps > 0 ? stats.loss / stats.steps : 0,
      // A frozen policy's stage 2 runs one pass: the greedy one's figures, else the sampled one's.
      reward: stats.mean('rewardSampled') ?? stats.mean('rewardGreedy') ?? 0,
      accuracy: stats.mean('correctGreedy') ?? stats.mean('correctSampled') ?? 0,
      blocks: stats.mean('blocksGreedy') ?? 0,
      imagesPerSecond: stats.seconds > 0 ? stats.images / stats.seconds : 0,
      elapsedSeconds: elapsed(),
      lastEval: last,
      ...extra,
    });

  const evaluateAndSave = async (): Promise<void> => {
    lastEvaluated = iteration;
    const evaluation = await evaluatePolicy(policy, setup.evalOracle, setup.val, {
      k,
      normalization: setup.normalization,
      limit: config.evalLimit,
      learnable,
      penalty: config.penalty,
      flops: setup.flops,
      onProgress: (done, total) => progress('eval', { evalDone: done, evalTotal: total }),
    });
    const isBest = beatsBest(config, evaluation, best);
    const record: EvalRecord = {
      iteration,
      epoch: iteration / perEpoch,
      lr,
      learnable,
      trainLoss: stats.steps > 0 ? stats.loss / stats.steps : null,
      trainCrossEntropy: trainResNet && stats.steps > 0 ? stats.crossEntropy / stats.steps : null,
      trainAccuracy: stats.mean('correctGreedy'),
      trainAccuracySampled: stats.mean('correctSampled'),
      trainReward: stats.mean('rewardSampled'),
      trainRewardGreedy: stats.mean('rewardGreedy'),
      trainBlocks: stats.mean('blocksGreedy'),
      trainBlocksStd: stats.images > 0 ? Math.sqrt(Math.max(0, stats.blocksGreedySq / stats.images - stats.mean('blocksGreedy')! ** 2)) : null,
      trainBlocksSampled: stats.mean('blocksSampled'),
      valImages: evaluation.images,
      valAccuracy: evaluation.accuracy,
      valReward: evaluation.reward,
      valBlocksMean: evaluation.blocksMean,
      valBlocksStd: evaluation.blocksStd,
      valFlopsMean: evaluation.flopsMean,
      valDistinctPolicies: evaluation.distinctPolicies,
      valBlockUsage: evaluation.blockUsage.map((u) => Math.round(u * 1e4) / 1e4),
      selectionScore: selectionScore(config, evaluation),
      best: isBest,
      imagesPerSecond: stats.seconds > 0 ? stats.images / stats.seconds : null,
      evalImagesPerSecond: evaluation.imagesPerSecond,
      elapsedSeconds: elapsed(),
    };
    last = record;
    stats = new StepStats();
    // Metrics first: a kill between the two writes leaves them ahead of the checkpoint, which resume truncates,
    // never behind it.
    await run.appendMetrics(record);
    if (isBest) {
      best = record;
      await run.saveBest(modelTensors(), { ...(checkpointMeta() as unknown as JsonObject), iteration, record: record as unknown as JsonObject });
    }
    await run.saveLast(trainingTensors(), checkpointMeta());
  };

  const modelTensors = (): TensorMap => {
    const out: TensorMap = new Map();
    for (const [name, t] of policy.toTensorMap()) out.set(`policy.${name}`, t);
    if (trainResNet) for (const [name, t] of resnet.toTensorMap()) out.set(`resnet.${name}`, t);
    return out;
  };
  const trainingTensors = (): TensorMap => new Map([...modelTensors(), ...optimizer.toTensorMap()]);
  const checkpointMeta = (): TrainingCheckpointMeta => ({
    format: 'blockdrop-training-state',
    version: 1,
    stage,
    k,
    iteration,
    epoch: iteration / perEpoch,
    adamStep: optimizer.step,
    sampler: sampler.state(),
    augmentRng: augmentRng.state(),
    sampleRng: sampleRng.state(),
    elapsedSeconds: elapsed(),
    best: best ?? null,
    last: last ?? null,
    stats: { ...stats },
    ...(setup.meta ?? {}),
  });

  if (!config.resume && setup.pretrain && setup.pretrain.epochs > 0) {
    const accuracy = await pretrainPolicyFeatures(policy, setup.train, {
      ...setup.pretrain,
      normalization: setup.normalization,
      rng: pretrainRng,
      onProgress: (done, total, acc) => progress('pretrain', { evalDone: done, evalTotal: total, accuracy: acc }),
    });
    log(`policy features pretrained for ${setup.pretrain.epochs} epochs (classification accuracy ${(100 * accuracy).toFixed(1)} %)`);
  }

  // The loop.
  let stoppedBy: TrainResult['stoppedBy'] = 'done';
  const images = new Float32Array(config.batchSize * side * side * 3);
  const workers = config.trainWorkers === undefined ? 1 : config.trainWorkers === 0 ? availableParallelism() : config.trainWorkers;
  const modules = await createTrainModules(config.trainEngine ?? 'auto', policy, trainResNet ? resnet : undefined, {
    k,
    side,
    log,
    workers,
    blockExecution: config.blockExecution ?? 'masked',
  });
  log(`training passes: ${modules.description}`);
  if (config.trainSplit === 'trainval' && config.selectBy !== 'last') {
    log(`note: --train-split trainval trains on the validation images, so selection by validation ${config.selectBy} is not a held-out choice; --select-by last tests the final checkpoint`);
  }
  try {
    for (;;) {
      learnable = learnableBlocks(curriculum, k, sampler.epoch, iteration);
      lr = learningRate(config, iteration, sampler.epoch, totalIterations);
      if (iteration % config.evalEvery === 0 && iteration !== lastEvaluated) await evaluateAndSave();
      if (iteration >= totalIterations) break;
      if (config.timeLimitMinutes > 0 && elapsed() >= config.timeLimitMinutes * 60) {
        stoppedBy = 'time-limit';
        break;
      }
      if (hooks.signal?.aborted) {
        stoppedBy = 'aborted';
        break;
      }

      const t0 = performance.now();
      const indices = sampler.nextBatch();
      const size = indices.length;
      const x = size === config.batchSize ? images : new Float32Array(size * side * side * 3);
      normalizeBatch(setup.train, indices, setup.normalization, setup.augment === false ? undefined : { rng: augmentRng, cutout: config.cutout ?? 0 }, x);
      optimizer.lr = lr;
      const result = await blockDropStep(
        { policy, resnet, oracle: setup.oracle, optimizer, params, rng: sampleRng, modules },
        { images: x, labels: batchLabels(setup.train, indices), size, side },
        {
          k,
          learnable,
          entropyWeight: config.entropyWeight,
          entropy: config.entropy,
          penalty: config.penalty,
          alpha: alphaAt(config, iteration, totalIterations),
          sampleFloor: config.sampleFloor,
          baseline: config.baseline,
          advantage: config.advantage,
          trainResNet,
          samples: config.samples,
          lossLimit: config.lossLimit,
          distillation: distillation(config),
          classifierPolicy: config.classifierPolicy,
          trainPolicy: !config.freezePolicy,
        },
      );
      stats.add(result, (performance.now() - t0) / 1000);
      iteration++;
      progress('train');
    }
  } finally {
    modules.dispose();
  }

  if (iteration !== lastEvaluated && stoppedBy !== 'aborted') {
    learnable = learnableBlocks(curriculum, k, sampler.epoch, iteration);
    await evaluateAndSave();
  } else if (stoppedBy === 'aborted' && iteration !== lastEvaluated) {
    await run.saveLast(trainingTensors(), checkpointMeta());
  }

  // The best validation checkpoint: its policy alone, and (once) its test-split numbers.
  let test: PolicyEvaluation | undefined;
  let policyPath: string | undefined;
  if (stoppedBy !== 'aborted' && best) {
    const saved = await run.loadBest();
    policy.assignWeights(RunDirectory.withoutPrefix(saved.tensors, 'policy.'));
    if (trainResNet) resnet.assignWeights(RunDirectory.withoutPrefix(saved.tensors, 'resnet.'));
    policyPath = await run.savePolicy(policy.toTensorMap(), {
      ...(setup.meta ?? {}),
      stage,
      k,
      iteration: best.iteration,
      valAccuracy: best.valAccuracy,
      valBlocksMean: best.valBlocksMean,
    });
    if (trainResNet) {
      await run.saveResnet(resnet.toTensorMap(), { ...(setup.meta ?? {}), stage, iteration: best.iteration });
    }
    if (config.testAtEnd && setup.loadTest) {
      const testSet = await setup.loadTest();
      test = await evaluatePolicy(policy, setup.evalOracle, testSet, {
        k,
        normalization: setup.normalization,
        learnable: best.learnable,
        penalty: config.penalty,
        flops: setup.flops,
        onProgress: (done, total) => progress('test', { evalDone: done, evalTotal: total }),
      });
    }
    await run.writeResults({
      stage,
      runDir: config.runDir,
      ...(setup.meta ?? {}),
      iterations: iteration,
      elapsedSeconds: elapsed(),
      stoppedBy,
      policy: policyPath,
      config,
      best,
      test: test ?? null,
    });
  }
  optimizer.dispose();
  return { runDir: config.runDir, iterations: iteration, stoppedBy, best, last, test, policyPath, elapsedSeconds: elapsed() };
}
