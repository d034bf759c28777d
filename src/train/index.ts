/**
 * The two training commands as library functions:
 *   trainPolicy(config)  stage 1, curriculum policy learning with the ResNet frozen (`blockdrop train-policy`)
 *   finetune(config)     stage 2, policy and ResNet trained jointly (`blockdrop finetune`)
 * Both build the models, data and reward engine from a plain config, then hand over to `runTraining`.
 */
import { initBackend } from '../backend/index.js';
import { loadCifar10 } from '../data/cifar.js';
import { BlockdropError } from '../errors.js';
import { blockCount, type ResNetConfig } from '../models/config.js';
import { policyFlops, resnetFlops } from '../models/flops.js';
import { loadBackbone } from '../models/load.js';
import { PolicyNetwork } from '../models/policy.js';
import { ResNet } from '../models/resnet.js';
import {
  defaultStage1Config,
  defaultStage2Config,
  RANDOM_POLICY,
  validateConfig,
  type CommonConfig,
  type Stage1Config,
  type Stage2Config,
} from './config.js';
import { createRewardOracle, loadPolicyWeights, teacherOracle, tfjsOracle } from './models.js';
import { RunDirectory } from './run-dir.js';
import { runTraining, type TrainHooks, type TrainResult } from './trainer.js';

export { createRewardOracle, loadPolicyWeights, onnxOracle, tfjsOracle } from './models.js';
export type { RewardOracle, PolicyModel, TrainablePolicy, BackboneModel } from './models.js';
export { configFromOptions, defaultStage1Config, defaultStage2Config, flagAttribute, parseFlagValue, stage1Flags, stage2Flags, validateConfig } from './config.js';
export type { Stage1Config, Stage2Config, CommonConfig, ConfigFlag } from './config.js';
export type { TrainHooks, TrainProgress, TrainResult, TrainingSetup } from './trainer.js';
export type { EvalRecord } from './run-dir.js';
export { runTraining } from './trainer.js';
export { blockDropStep } from './step.js';

/**
 * The configuration a run starts with: the defaults under what the caller gave or, on resume, the run directory's
 * own config, so that the run continues as it was started. Its time limit counts training time across resumes and
 * holds too, unless the caller gives a new one (a resumed run once forgot it and trained on past its budget).
 */
export function startingConfig<C extends CommonConfig>(defaults: C, given: Partial<C> & Pick<C, 'runDir'>): C {
  if (!given.resume) return { ...defaults, ...given };
  const { stage, ...saved } = RunDirectory.readConfig<C & { stage?: number }>(given.runDir);
  void stage;
  const timeLimit = given.timeLimitMinutes !== undefined ? { timeLimitMinutes: given.timeLimitMinutes } : {};
  return { ...(saved as unknown as C), resume: true, runDir: given.runDir, ...timeLimit };
}

function flopsCounter(arch: ResNetConfig): (keep: Uint8Array) => number {
  const policy = policyFlops(arch);
  return (keep) => resnetFlops(arch, keep) + policy;
}

type LoadedBackbone = Awaited<ReturnType<typeof loadBackbone>>;

/** A distillation teacher: any checkpoint for the same classes and image size (its depth and input normalisation may differ). */
async function loadTeacher(path: string, student: LoadedBackbone): Promise<{ model: ResNet; backbone: LoadedBackbone }> {
  const backbone = await loadBackbone(path);
  const { arch } = backbone;
  if (arch.numClasses !== student.arch.numClasses || arch.inputSize !== student.arch.inputSize) {
    throw new BlockdropError(
      `teacher ${path} (${backbone.preset}: ${arch.numClasses} classes, ${arch.inputSize}px) does not match the ResNet (${student.preset}: ${student.arch.numClasses} classes, ${student.arch.inputSize}px); pass a teacher for the same task`,
    );
  }
  return { model: ResNet.fromWeights(arch, backbone.tensors, { trainable: false }), backbone };
}

/**
 * The policy a run starts from: stage 2's --policy (a checkpoint, or `random` for a fresh seeded one), stage 1's
 * --policy-init, else a fresh one seeded by --seed. On --resume the trainer then loads the checkpoint's weights over it.
 */
export async function startingPolicy(
  stage: 1 | 2,
  config: Stage1Config | Stage2Config,
  arch: ResNetConfig,
): Promise<{ policy: PolicyNetwork; source: string }> {
  const path = stage === 2 ? (config as Stage2Config).policy : (config as Stage1Config).policyInit;
  if (stage === 2 && !path) throw new BlockdropError('finetuning needs a stage-1 policy; pass --policy CHECKPOINT (or --policy random)');
  if (!path || path === RANDOM_POLICY) return { policy: PolicyNetwork.init(arch, config.seed), source: 'random init' };
  return { policy: PolicyNetwork.fromWeights(arch, await loadPolicyWeights(path)), source: path };
}

async function run(stage: 1 | 2, input: Stage1Config | Stage2Config, hooks: TrainHooks): Promise<TrainResult> {
  const config = validateConfig(input);
  const log = hooks.log ?? (() => {});
  const backbone = await loadBackbone(config.resnet, { arch: config.arch });
  await initBackend(config.backend);
  const { arch } = backbone;
  const k = blockCount(arch);
  const train = loadCifar10({ dataDir: config.dataDir, split: config.trainSplit });
  const val = loadCifar10({ dataDir: config.dataDir, split: 'val' });
  const resnet = ResNet.fromWeights(arch, backbone.tensors, { trainable: stage === 2 });
  const { policy, source: policySource } = await startingPolicy(stage, config, arch);
  // Stage 1: the frozen ResNet's reward passes. Stage 2 computes its rewards with the training ResNet and asks this
  // oracle only for the distillation teacher's logits (a frozen copy of --teacher, default the starting ResNet); without
  // distillation it asks nothing, so no executor is built. The teacher is a model of its own: the tfjs oracle would
  // otherwise run the live, training ResNet.
  const stage2 = config as Partial<Stage2Config>;
  const teacher =
    stage === 2 && (stage2.distillWeight ?? 0) > 0 ? await loadTeacher(stage2.teacher || config.resnet, backbone) : undefined;
  // Stage 2 changes the ResNet every step: evaluate its live tfjs weights.
  const evalOracle = stage === 2 ? tfjsOracle(resnet, k, arch.inputSize) : undefined;
  const oracle = teacher
    ? teacherOracle(
        await createRewardOracle(config.engine, teacher.model, teacher.backbone, log),
        blockCount(teacher.backbone.arch),
        backbone.normalization,
        teacher.backbone.normalization,
      )
    : (evalOracle ?? (await createRewardOracle(config.engine, resnet, backbone, log)));
  try {
    return await runTraining(
      {
        stage,
        config,
        k,
        policy,
        resnet,
        oracle,
        evalOracle: evalOracle ?? oracle,
        train,
        val,
        loadTest: () => loadCifar10({ dataDir: config.dataDir, split: 'test' }),
        normalization: backbone.normalization,
        flops: flopsCounter(arch),
        meta: { preset: backbone.preset, resnetSource: config.resnet, policySource, normalization: backbone.normalization.name },
        pretrain:
          stage === 1 && (config as Stage1Config).policyPretrainEpochs > 0
            ? {
                policyArch: policy.arch,
                classes: arch.numClasses,
                epochs: (config as Stage1Config).policyPretrainEpochs,
                lr: (config as Stage1Config).policyPretrainLr,
                batchSize: 128,
                seed: config.seed,
              }
            : undefined,
      },
      hooks,
    );
  } finally {
    oracle.dispose();
    if (evalOracle && evalOracle !== oracle) evalOracle.dispose();
    teacher?.model.dispose();
    policy.dispose();
    resnet.dispose();
  }
}

/** Stage 1: curriculum policy learning on a frozen ResNet. Unset fields take `defaultStage1Config`'s values. */
export async function trainPolicy(config: Partial<Stage1Config> & Pick<Stage1Config, 'resnet' | 'runDir'>, hooks: TrainHooks = {}): Promise<TrainResult> {
  return run(1, startingConfig(defaultStage1Config, config), hooks);
}

/** Stage 2: joint finetuning of policy and ResNet. Unset fields take `defaultStage2Config`'s values. */
export async function finetune(
  config: Partial<Stage2Config> & Pick<Stage2Config, 'resnet' | 'runDir' | 'policy'>,
  hooks: TrainHooks = {},
): Promise<TrainResult> {
  return run(2, startingConfig(defaultStage2Config, config), hooks);
}

/**
 * `--resume RUN_DIR`: continues a killed or stopped run with the configuration it was started with (its stage is in
 * config.json), its time limit included; only the time limit may be changed.
 */
export async function resumeTraining(
  runDir: string,
  hooks: TrainHooks = {},
  overrides: { timeLimitMinutes?: number } = {},
): Promise<TrainResult> {
  const saved = RunDirectory.readConfig<(Stage1Config | Stage2Config) & { stage?: 1 | 2 }>(runDir);
  const { stage, ...config } = saved;
  const resumed = { ...config, runDir, resume: true, timeLimitMinutes: overrides.timeLimitMinutes ?? config.timeLimitMinutes ?? 0 };
  return stage === 2 ? run(2, resumed as Stage2Config, hooks) : run(1, resumed as Stage1Config, hooks);
}
