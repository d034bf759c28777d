/**
 * Training configuration: plain typed objects with the reference's defaults (blockdrop-reference.md §3.1, §4),
 * a validator, and a flag table from which the CLI builds its options.
 */
import type { BlockExecution } from './onnx-graph.js';
import { BlockdropError } from '../errors.js';
import type { TrainEngine } from './engine.js';
import type { OptimizerKind } from './optimizer.js';
import type { EntropyKind } from './reinforce.js';

export type LrSchedule = 'step' | 'cosine' | 'constant';
export type RewardEngine = 'auto' | 'tfjs' | 'onnx';
export type DataSplit = 'train' | 'val' | 'trainval' | 'test';

/** Fields both stages share. */
export interface CommonConfig {
  /** Backbone checkpoint (PyTorch .t7/.th/.pt or blockdrop safetensors). */
  readonly resnet: string;
  /** Architecture preset (e.g. resnet32, resnet56a); detected from the checkpoint when omitted. */
  readonly arch?: string;
  /** CIFAR-10 directory; located automatically when omitted. */
  readonly dataDir?: string;
  /** Run directory: config.json, metrics.jsonl, checkpoints/. */
  readonly runDir: string;
  /** Continue the run in `runDir` from its last checkpoint. */
  readonly resume: boolean;
  readonly seed: number;
  readonly batchSize: number;
  /** Run length in epochs over the training split. */
  readonly epochs: number;
  /** Run length in iterations; overrides `epochs` when > 0. */
  readonly iterations: number;
  /** Stop (with a final evaluation and checkpoint) once this much training time has passed; 0 = no limit. */
  readonly timeLimitMinutes: number;
  readonly lr: number;
  /** 'step': × lrDecayRatio every lrDecayEvery epochs (the original); 'cosine': to lrMin over the run. */
  readonly lrSchedule: LrSchedule;
  readonly lrDecayEvery: number;
  readonly lrDecayRatio: number;
  readonly lrMin: number;
  /** L2 weight decay added to the gradient (PyTorch's `weight_decay`). */
  readonly weightDecay: number;
  /**
   * 'adam' (the reference, both stages) or 'sgd' with momentum (how the CIFAR ResNets were trained). Not in the
   * paper; older run directories lack it (= 'adam').
   */
  readonly optimizer?: OptimizerKind;
  /** Momentum of 'sgd' (default 0.9). */
  readonly momentum?: number;
  /** Side in pixels of the cutout square of each training image (DeVries & Taylor 2017); 0 or absent = off. */
  readonly cutout?: number;
  /** γ ≥ 0: the reward of a wrong prediction is −γ. */
  readonly penalty: number;
  /** Probability bound α: sampling probabilities stay in [1 − α, α]. */
  readonly alpha: number;
  /** If > 0, α moves linearly from `alpha` to this value over the run (less exploration late); 0 = constant α. */
  readonly alphaFinal: number;
  /**
   * Sampling probability of a block the policy drops (s = 0); unset = 1 − α, the original's symmetric bound. Lower
   * values make exploration lean towards dropping blocks (kept ones are still dropped with probability 1 − α).
   */
  readonly sampleFloor?: number;
  /** Advantage baseline: 'greedy' (self-critical, the original) or 'samples' (leave-one-out mean; needs samples ≥ 2). */
  readonly baseline: 'greedy' | 'samples';
  /** 'signed' = REINFORCE (the original); 'positive' = only samples that beat the baseline are reinforced (self-imitation). */
  readonly advantage: 'signed' | 'positive';
  /** β, weight of the entropy bonus. */
  readonly entropyWeight: number;
  /** 'original' = −Σ s' log s' as in the reference code; 'bernoulli' = the full Bernoulli entropy. */
  readonly entropy: EntropyKind;
  /** Sampled policies per image per step (the original: 1). */
  readonly samples: number;
  /** Evaluate (validation split, greedy policy), log and checkpoint every this many iterations. */
  readonly evalEvery: number;
  /** Split the model is selected on; never the test split. */
  readonly evalSplit: 'val';
  /** Evaluate on only the first n validation images (0 = all). */
  readonly evalLimit: number;
  readonly trainSplit: 'train' | 'trainval';
  /** After training, evaluate the best checkpoint once on the test split. */
  readonly testAtEnd: boolean;
  /** Engine of the frozen ResNet's reward passes and of evaluation. */
  readonly engine: RewardEngine;
  /**
   * Engine of the training passes (the policy's forward and backward; stage 2: the ResNet's too): 'auto' = ONNX
   * Runtime (all cores) when it loads, else TensorFlow.js. Older run directories lack it (= 'auto').
   */
  readonly trainEngine?: TrainEngine;
  /**
   * ONNX training engine: worker threads that split each batch, one ORT thread each (0 = one per CPU core; 1 = one
   * process, ORT's intra-op threads). Older run directories lack it (= 1, as they were trained).
   */
  readonly trainWorkers?: number;
  readonly backend: 'wasm' | 'cpu';
  /** Stop when |loss| exceeds this. */
  readonly lossLimit: number;
  /**
   * Which validation metric picks the best checkpoint; 'last' takes the latest evaluation (the honest choice with
   * `trainSplit: 'trainval'`, whose validation images are training images).
   */
  readonly selectBy: 'reward' | 'accuracy' | 'last';
  /**
   * A block budget for that choice: checkpoints whose mean validation blocks exceed it are chosen only while no
   * checkpoint within it exists (0 = no budget). Older run directories lack it (= 0).
   */
  readonly selectMaxBlocks?: number;
}

export interface Stage1Config extends CommonConfig {
  /** Advance the curriculum by one block every this many units; 0 = no curriculum. */
  readonly curriculumEvery: number;
  readonly curriculumUnit: 'epoch' | 'iteration';
  /** Learnable blocks at the start (the original's cl_step). */
  readonly curriculumStart: number;
  /** Initialise the policy from this checkpoint instead of randomly. */
  readonly policyInit?: string;
  /** Before policy learning, train the policy's features as a CIFAR classifier for this many epochs (0 = off, the original). */
  readonly policyPretrainEpochs: number;
  readonly policyPretrainLr: number;
}

/** `--policy random`: stage 2 starts from a freshly initialised policy instead of a stage-1 checkpoint. */
export const RANDOM_POLICY = 'random';

export interface Stage2Config extends CommonConfig {
  /** Stage-1 policy checkpoint to start from (required), or `RANDOM_POLICY` for a fresh one seeded by `seed`. */
  readonly policy: string;
  /**
   * Learning rate of the policy's parameters (0 = `lr`, the reference: one rate for both networks). It follows the
   * same schedule, scaled by policyLr / lr. Older run directories lack it (= 0).
   */
  readonly policyLr?: number;
  /**
   * Train the ResNet only, on the paths the (unchanging) policy samples: with `--policy random` and its probabilities
   * near 0.5 that is stochastic depth at about half the blocks. The policy's batch-norm running statistics still follow
   * the batches. Not in the paper; older run directories lack it (= false).
   */
  readonly freezePolicy?: boolean;
  /**
   * Weight w of knowledge distillation: the ResNet's classification term becomes (1 − w)·CE + w·T²·KL(teacher ‖ ResNet)
   * (0 = off, the reference). Not in the paper; older run directories lack it (= 0).
   */
  readonly distillWeight?: number;
  /** Temperature T of the distillation (default 4). */
  readonly distillTemperature?: number;
  /** Teacher checkpoint, run frozen with every block (default: `resnet`, the network finetuning starts from). */
  readonly teacher?: string;
  /**
   * The policies whose forward pass the ResNet's classification term trains: 'sampled' (the original) or 'greedy'
   * (the paths evaluation runs). Older run directories lack it (= 'sampled').
   */
  readonly classifierPolicy?: 'sampled' | 'greedy';
  /**
   * How the ResNet's training passes run a block some images drop: 'masked' (the original: every block on every
   * image, blended) or 'gathered' (only on the images that keep it: real skipping, with batch statistics over those
   * images). ONNX engine or tfjs. Older run directories lack it (= 'masked').
   */
  readonly blockExecution?: BlockExecution;
}

const COMMON_DEFAULTS = {
  resume: false,
  seed: 0,
  iterations: 0,
  timeLimitMinutes: 0,
  lrSchedule: 'step',
  lrDecayRatio: 0.1,
  lrMin: 0,
  weightDecay: 0,
  optimizer: 'adam',
  momentum: 0.9,
  alpha: 0.8,
  alphaFinal: 0,
  baseline: 'greedy',
  advantage: 'signed',
  entropy: 'original',
  samples: 1,
  evalEvery: 200,
  evalSplit: 'val',
  evalLimit: 0,
  trainSplit: 'train',
  testAtEnd: true,
  engine: 'auto',
  trainEngine: 'auto',
  trainWorkers: 0,
  backend: 'wasm',
  lossLimit: 1e6,
  selectBy: 'reward',
} as const;

/** cl_training.py's argparse defaults; epochs = the README's 5000 for CIFAR. `resnet` and `runDir` must be set. */
export const defaultStage1Config: Stage1Config = {
  ...COMMON_DEFAULTS,
  resnet: '',
  runDir: '',
  batchSize: 256,
  epochs: 5000,
  lr: 1e-3,
  lrDecayEvery: 10000,
  penalty: 1,
  entropyWeight: 0.1,
  curriculumEvery: 1,
  curriculumUnit: 'epoch',
  curriculumStart: 1,
  policyPretrainEpochs: 0,
  policyPretrainLr: 3e-3,
};

/** finetune.py's defaults (penalty 5 = its default and the ResNet-32 setting; the README uses 10 for ResNet-110). */
export const defaultStage2Config: Stage2Config = {
  ...COMMON_DEFAULTS,
  resnet: '',
  runDir: '',
  policy: '',
  batchSize: 256,
  epochs: 2000,
  lr: 1e-4,
  lrDecayEvery: 1600,
  penalty: 5,
  entropyWeight: 0,
  policyLr: 0,
  freezePolicy: false,
  distillWeight: 0,
  distillTemperature: 4,
  classifierPolicy: 'sampled',
  blockExecution: 'masked',
};

/**
 * One CLI option. `flag` is a commander spec; `key` is the config field it sets (`--beta` sets `entropyWeight`).
 * Defaults come from `defaultStage1Config` / `defaultStage2Config`. A `--no-x` boolean switches a true default off.
 */
export interface ConfigFlag<C> {
  readonly key: keyof C & string;
  readonly flag: string;
  readonly type: 'number' | 'int' | 'string' | 'boolean' | 'choice';
  readonly choices?: readonly string[];
  readonly help: string;
  readonly required?: boolean;
}

/** The property commander stores a flag under: `--lr-decay-every <n>` → `lrDecayEvery`, `--no-test` → `test`. */
export function flagAttribute(flag: ConfigFlag<unknown>): string {
  const long = /--(?:no-)?([a-z0-9-]+)/.exec(flag.flag)?.[1] ?? flag.key;
  return long.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Parses one raw option value (commander hands strings) into the field's type; bad values are one-line errors. */
export function parseFlagValue(flag: ConfigFlag<unknown>, raw: unknown): unknown {
  if (flag.type === 'boolean') return Boolean(raw);
  const text = String(raw);
  switch (flag.type) {
    case 'number':
    case 'int': {
      const n = Number(text);
      if (!Number.isFinite(n) || (flag.type === 'int' && !Number.isInteger(n))) {
        throw new BlockdropError(`${flag.flag.split(' ')[0]} expects ${flag.type === 'int' ? 'an integer' : 'a number'}, got '${text}'`);
      }
      return n;
    }
    case 'choice':
      if (!flag.choices!.includes(text)) {
        throw new BlockdropError(`${flag.flag.split(' ')[0]} must be one of ${flag.choices!.join(', ')}, got '${text}'`);
      }
      return text;
    default:
      return text;
  }
}

/** Config fields from parsed CLI options (only the flags the user gave; commander leaves the others undefined). */
export function configFromOptions<C>(flags: readonly ConfigFlag<C>[], options: Record<string, unknown>): Partial<C> {
  const out: Record<string, unknown> = {};
  for (const flag of flags) {
    const raw = options[flagAttribute(flag as ConfigFlag<unknown>)];
    if (raw === undefined) continue;
    out[flag.key] = parseFlagValue(flag as ConfigFlag<unknown>, raw);
  }
  return out as Partial<C>;
}

const COMMON_FLAGS: ConfigFlag<CommonConfig>[] = [
  { key: 'resnet', flag: '--resnet <checkpoint>', type: 'string', help: 'backbone ResNet checkpoint (PyTorch or blockdrop safetensors); required unless --resume (the run directory knows it)' },
  { key: 'arch', flag: '--arch <name>', type: 'string', help: 'architecture preset (detected from the checkpoint when omitted)' },
  { key: 'dataDir', flag: '--data <dir>', type: 'string', help: 'CIFAR-10 directory' },
  { key: 'runDir', flag: '--run-dir <dir>', type: 'string', required: true, help: 'run directory (config.json, metrics.jsonl, checkpoints/)' },
  { key: 'resume', flag: '--resume', type: 'boolean', help: 'continue the run in --run-dir from its last checkpoint' },
  { key: 'seed', flag: '--seed <n>', type: 'int', help: 'random seed' },
  { key: 'batchSize', flag: '--batch-size <n>', type: 'int', help: 'images per step' },
  { key: 'epochs', flag: '--epochs <n>', type: 'number', help: 'run length in epochs' },
  { key: 'iterations', flag: '--iterations <n>', type: 'int', help: 'run length in iterations (overrides --epochs when > 0)' },
  { key: 'timeLimitMinutes', flag: '--time-limit <minutes>', type: 'number', help: 'stop after this much training time in all, resumes included (0 = none); a resumed run keeps the limit it was started with unless given one' },
  { key: 'lr', flag: '--lr <rate>', type: 'number', help: 'learning rate' },
  { key: 'lrSchedule', flag: '--lr-schedule <kind>', type: 'choice', choices: ['step', 'cosine', 'constant'], help: 'step: ×ratio every --lr-decay-every epochs (original); cosine: to --lr-min over the run' },
  { key: 'lrDecayEvery', flag: '--lr-decay-every <epochs>', type: 'number', help: 'step schedule period in epochs' },
  { key: 'lrDecayRatio', flag: '--lr-decay-ratio <r>', type: 'number', help: 'step schedule factor' },
  { key: 'lrMin', flag: '--lr-min <rate>', type: 'number', help: 'final learning rate of the cosine schedule' },
  { key: 'weightDecay', flag: '--weight-decay <wd>', type: 'number', help: 'L2 weight decay, added to the gradient as in PyTorch' },
  { key: 'optimizer', flag: '--optimizer <kind>', type: 'choice', choices: ['adam', 'sgd'], help: 'adam (the reference) or sgd with momentum (how the CIFAR ResNets were trained)' },
  { key: 'momentum', flag: '--momentum <m>', type: 'number', help: 'momentum of --optimizer sgd' },
  { key: 'cutout', flag: '--cutout <px>', type: 'int', help: 'augmentation: blank a random px×px square of each training image after crop and flip (0 = off, the reference)' },
  { key: 'penalty', flag: '--penalty <gamma>', type: 'number', help: 'γ ≥ 0: reward −γ for a wrong prediction (the original\'s --penalty -5 is 5 here)' },
  { key: 'alpha', flag: '--alpha <a>', type: 'number', help: 'probability bound: sample from αs + (1−α)(1−s)' },
  { key: 'alphaFinal', flag: '--alpha-final <a>', type: 'number', help: 'anneal α linearly to this value over the run (0 = constant)' },
  { key: 'sampleFloor', flag: '--sample-floor <p>', type: 'number', help: 'sampling probability of a block the policy drops (default 1 − α, the original); lower leans exploration towards dropping' },
  { key: 'baseline', flag: '--baseline <kind>', type: 'choice', choices: ['greedy', 'samples'], help: "advantage baseline: the greedy policy's reward (original) or the mean of the other samples (needs --samples ≥ 2)" },
  { key: 'advantage', flag: '--advantage <kind>', type: 'choice', choices: ['signed', 'positive'], help: 'signed: REINFORCE (original); positive: reinforce only samples that beat the baseline' },
  { key: 'entropyWeight', flag: '--beta <b>', type: 'number', help: 'entropy bonus weight β' },
  { key: 'entropy', flag: '--entropy <kind>', type: 'choice', choices: ['original', 'bernoulli'], help: "entropy bonus: the original's −Σ s' log s', or the Bernoulli entropy" },
  { key: 'samples', flag: '--samples <m>', type: 'int', help: 'sampled policies per image per step' },
  { key: 'evalEvery', flag: '--eval-every <iterations>', type: 'int', help: 'validate, log and checkpoint every n iterations' },
  { key: 'evalLimit', flag: '--eval-limit <n>', type: 'int', help: 'validate on the first n validation images only (0 = all)' },
  { key: 'trainSplit', flag: '--train-split <split>', type: 'choice', choices: ['train', 'trainval'], help: 'training split (trainval leaves no validation data for model selection)' },
  { key: 'testAtEnd', flag: '--no-test', type: 'boolean', help: 'skip the one final test-split evaluation of the best checkpoint' },
  { key: 'engine', flag: '--engine <name>', type: 'choice', choices: ['auto', 'tfjs', 'onnx'], help: 'engine of the frozen ResNet passes and evaluation' },
  { key: 'trainEngine', flag: '--train-engine <name>', type: 'choice', choices: ['auto', 'onnx', 'tfjs'], help: 'engine of the training passes (policy; stage 2: ResNet too): auto = ONNX Runtime, else TensorFlow.js' },
  { key: 'trainWorkers', flag: '--train-workers <n>', type: 'int', help: 'ONNX training engine: worker threads that split each batch (0 = one per core, 1 = one process)' },
  { key: 'backend', flag: '--backend <name>', type: 'choice', choices: ['wasm', 'cpu'], help: 'TensorFlow.js backend' },
  { key: 'lossLimit', flag: '--loss-limit <x>', type: 'number', help: 'stop when |loss| exceeds this' },
  { key: 'selectBy', flag: '--select-by <metric>', type: 'choice', choices: ['reward', 'accuracy', 'last'], help: 'validation metric that picks the best checkpoint (last: the latest one, for --train-split trainval, which trains on the validation images)' },
  { key: 'selectMaxBlocks', flag: '--select-max-blocks <b>', type: 'number', help: 'pick the best checkpoint among those using at most b blocks per validation image on average (0 = any)' },
];

export const stage1Flags: readonly ConfigFlag<Stage1Config>[] = [
  ...(COMMON_FLAGS as ConfigFlag<Stage1Config>[]),
  { key: 'curriculumEvery', flag: '--curriculum-every <n>', type: 'number', help: 'hand one more block to the policy every n units (0 = no curriculum)' },
  { key: 'curriculumUnit', flag: '--curriculum-unit <unit>', type: 'choice', choices: ['epoch', 'iteration'], help: 'unit of --curriculum-every' },
  { key: 'curriculumStart', flag: '--curriculum-start <n>', type: 'int', help: 'learnable blocks at the start' },
  { key: 'policyInit', flag: '--policy-init <checkpoint>', type: 'string', help: 'start from this policy instead of a random one' },
  { key: 'policyPretrainEpochs', flag: '--policy-pretrain-epochs <n>', type: 'number', help: "first train the policy's features as a CIFAR classifier for n epochs (0 = off)" },
  { key: 'policyPretrainLr', flag: '--policy-pretrain-lr <rate>', type: 'number', help: 'learning rate of that pretraining (cosine to 0)' },
];

export const stage2Flags: readonly ConfigFlag<Stage2Config>[] = [
  ...(COMMON_FLAGS as ConfigFlag<Stage2Config>[]),
  { key: 'policy', flag: '--policy <checkpoint>', type: 'string', help: "stage-1 policy checkpoint, or 'random' for a freshly initialised one (seeded by --seed); required unless --resume" },
  { key: 'policyLr', flag: '--policy-lr <lr>', type: 'number', help: "the policy's learning rate (0 = --lr for both networks, the reference)" },
  { key: 'freezePolicy', flag: '--freeze-policy', type: 'boolean', help: 'do not train the policy: the ResNet learns the paths it samples (with --policy random: stochastic depth)' },
  { key: 'distillWeight', flag: '--distill <w>', type: 'number', help: 'distil a frozen teacher into the ResNet: (1 − w)·cross-entropy + w·distillation (0 = off, the reference)' },
  { key: 'distillTemperature', flag: '--distill-temperature <T>', type: 'number', help: 'softmax temperature of the distillation' },
  { key: 'classifierPolicy', flag: '--classifier-policy <kind>', type: 'choice', choices: ['sampled', 'greedy'], help: "train the ResNet's cross-entropy on the sampled policies (original) or on the greedy ones that evaluation runs" },
  { key: 'teacher', flag: '--teacher <checkpoint>', type: 'string', help: 'teacher of --distill, run with every block; any depth, its own input normalisation (default: the --resnet checkpoint)' },
  { key: 'blockExecution', flag: '--block-execution <kind>', type: 'choice', choices: ['masked', 'gathered'], help: "the ResNet's training passes: masked (original: every block on every image, blended) or gathered (each block only on the images that keep it: real skipping, batch statistics of those images)" },
];

function check(ok: boolean, message: string): void {
  if (!ok) throw new BlockdropError(message);
}

/** Validates a configuration; returns it unchanged. */
export function validateConfig<C extends CommonConfig>(config: C): C {
  check(config.resnet !== '', 'no backbone given; pass --resnet CHECKPOINT');
  check(config.runDir !== '', 'no run directory given; pass --run-dir DIR');
  check(Number.isInteger(config.batchSize) && config.batchSize >= 1, `batch size ${config.batchSize} is invalid; use a positive integer`);
  check(config.lr > 0 && Number.isFinite(config.lr), `learning rate ${config.lr} is invalid; use a positive number`);
  const policyLr = (config as { policyLr?: number }).policyLr;
  check(
    policyLr === undefined || (policyLr >= 0 && Number.isFinite(policyLr)),
    `policy learning rate ${policyLr} is invalid; use a positive number (or 0 for --lr)`,
  );
  const distill = config as { distillWeight?: number; distillTemperature?: number };
  check(
    distill.distillWeight === undefined || (distill.distillWeight >= 0 && distill.distillWeight <= 1),
    `distill weight ${distill.distillWeight} is outside [0, 1]; pass --distill between 0 (off) and 1 (distillation only)`,
  );
  check(
    distill.distillTemperature === undefined || (distill.distillTemperature > 0 && Number.isFinite(distill.distillTemperature)),
    `distill temperature ${distill.distillTemperature} is invalid; use a positive number (4 is usual)`,
  );
  check(
    config.penalty >= 0,
    `penalty ${config.penalty} is negative; give γ ≥ 0 (a wrong prediction earns −γ: the original's --penalty -5 is --penalty 5 here)`,
  );
  check(
    config.cutout === undefined || (Number.isInteger(config.cutout) && config.cutout >= 0 && config.cutout <= 32),
    `cutout ${config.cutout} is invalid; pass --cutout as a whole number of pixels from 0 (off) to 32`,
  );
  check(
    config.weightDecay >= 0 && Number.isFinite(config.weightDecay),
    `weight decay ${config.weightDecay} is invalid; use a number ≥ 0 (0 = off)`,
  );
  check(
    config.momentum === undefined || (config.momentum >= 0 && config.momentum < 1),
    `momentum ${config.momentum} is outside [0, 1); pass --momentum such as 0.9`,
  );
  check(config.alpha >= 0.5 && config.alpha <= 1, `alpha ${config.alpha} is outside [0.5, 1]`);
  check(
    config.sampleFloor === undefined ||
      (config.sampleFloor >= 0 && config.sampleFloor < config.alpha && (config.alphaFinal === 0 || config.sampleFloor < config.alphaFinal)),
    `sample floor ${config.sampleFloor} is outside [0, α = ${config.alpha}); pass --sample-floor between 0 and α (default 1 − α)`,
  );
  check(config.alphaFinal === 0 || (config.alphaFinal >= 0.5 && config.alphaFinal <= 1), `alpha-final ${config.alphaFinal} is outside [0.5, 1]`);
  check(config.baseline !== 'samples' || config.samples >= 2, 'the samples baseline needs at least two samples per image; pass --samples 2 or more');
  check(config.entropyWeight >= 0, `beta ${config.entropyWeight} is negative; use β ≥ 0`);
  check(
    config.selectMaxBlocks === undefined || (config.selectMaxBlocks >= 0 && Number.isFinite(config.selectMaxBlocks)),
    `select-max-blocks ${config.selectMaxBlocks} is invalid; pass a mean number of blocks ≥ 0 (0 = no budget)`,
  );
  check(
    config.trainWorkers === undefined || (Number.isInteger(config.trainWorkers) && config.trainWorkers >= 0),
    `train-workers ${config.trainWorkers} is invalid; use 0 (one per core) or a positive integer`,
  );
  check(Number.isInteger(config.samples) && config.samples >= 1, `samples ${config.samples} is invalid; use a positive integer`);
  check(Number.isInteger(config.evalEvery) && config.evalEvery >= 1, `eval-every ${config.evalEvery} is invalid; use a positive integer`);
  check(config.epochs > 0 || config.iterations > 0, 'the run has no length; pass --epochs or --iterations');
  check(config.lrDecayEvery > 0, `lr-decay-every ${config.lrDecayEvery} is invalid; use a positive number of epochs`);
  check((config.evalSplit as string) === 'val', 'model selection uses the validation split only');
  return config;
}

/** α at iteration `iteration` (linear annealing when `alphaFinal` > 0). */
export function alphaAt(config: CommonConfig, iteration: number, totalIterations: number): number {
  if (!(config.alphaFinal > 0)) return config.alpha;
  const t = Math.min(1, iteration / Math.max(1, totalIterations));
  return config.alpha + (config.alphaFinal - config.alpha) * t;
}

/** Learning rate at iteration `iteration` (epoch `epoch` may be fractional). */
export function learningRate(config: CommonConfig, iteration: number, epoch: number, totalIterations: number): number {
  switch (config.lrSchedule) {
    case 'constant':
      return config.lr;
    case 'step':
      return config.lr * Math.pow(config.lrDecayRatio, Math.floor(epoch / config.lrDecayEvery));
    case 'cosine': {
      const t = Math.min(1, iteration / Math.max(1, totalIterations));
      return config.lrMin + 0.5 * (config.lr - config.lrMin) * (1 + Math.cos(Math.PI * t));
    }
  }
}
