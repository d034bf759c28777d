/**
 * One BlockDrop training step, shared by both stages (the original copied it between cl_training.py and
 * finetune.py). Stage 1: `trainResNet: false` (frozen ResNet, eval-mode BN, rewards from a RewardOracle).
 * Stage 2: `trainResNet: true` (ResNet BN in train mode, cross-entropy of the sampled-policy logits added).
 *
 *   s  = policy(x)                       probabilities [B, K], batch-norm batch statistics
 *   ũ  = [s ≥ 0.5];  s' = αs + (1−α)(1−s) (optionally another floor);  u ~ Bernoulli(s')  (M samples per image)
 *   curriculum: first K − c blocks forced on in ũ and u, masked out of the gradient
 *   R  = 1 − (|u|/K)² if correct else −γ;   A = R(u) − R(ũ)
 *   loss = mean_rows Σ_k m·(−log p(u))·A − β·H(s')/B  [+ CE(ResNet(x; u), y), optionally blended with distillation,
 *          optionally on the greedy policy ũ instead of u]
 *
 * The policy runs twice: once without a gradient tape to get s (the rewards need it, and the ONNX oracle is
 * asynchronous, which a tfjs gradient closure cannot wait for), once under the tape with the same batch
 * statistics; its running statistics are restored afterwards, so they are updated once per step as in the original.
 */
import * as tf from '@tensorflow/tfjs';
import { BlockdropError } from '../errors.js';
import { blendLosses, crossEntropyWithGrad, distillationWithGrad } from './classifier-loss.js';
import { tfjsBackboneModule, tfjsPolicyModule, type SavedState, type TrainableModule } from './engine.js';
import type { BackboneModel, RewardOracle, TrainableBackbone, TrainablePolicy } from './models.js';
import type { Optimizer } from './optimizer.js';
import {
  advantages,
  blocksUsed,
  clipAdvantages,
  boundProbabilities,
  boundProbabilitiesTf,
  correctPredictions,
  curriculumMask,
  forceLeadingBlocks,
  greedyPolicy,
  leaveOneOutAdvantages,
  reinforceLoss,
  rewards,
  samplePolicy,
  type EntropyKind,
} from './reinforce.js';
import type { Rng } from '../util/rng.js';

export interface StepState {
  readonly policy: TrainablePolicy;
  readonly resnet: BackboneModel;
  /** Frozen-ResNet reward passes (stage 1); stage 2 with distillation: the teacher's logits. */
  readonly oracle: RewardOracle;
  /** Over the policy's variables, then (stage 2) the ResNet's. */
  readonly optimizer: Optimizer;
  readonly params: readonly tf.Variable[];
  /** Draws the sampled policies. */
  readonly rng: Rng;
  /**
   * The engine of the policy's (and in stage 2 the ResNet's) training passes (src/train/engine.ts);
   * default: TensorFlow.js on `policy` and `resnet`.
   */
  readonly modules?: { readonly policy: TrainableModule; readonly resnet?: TrainableModule };
}

export interface Batch {
  /** Normalised (augmented) images, NHWC float32. */
  readonly images: Float32Array;
  readonly labels: Int32Array;
  readonly size: number;
  /** Image side in pixels. */
  readonly side: number;
}

export interface StepOptions {
  /** Number of blocks K. */
  readonly k: number;
  /** Learnable last blocks (curriculum); K = no curriculum. */
  readonly learnable: number;
  /** β (0 in stage 2). */
  readonly entropyWeight: number;
  readonly entropy: EntropyKind;
  /** γ ≥ 0: a wrong prediction earns −γ. */
  readonly penalty: number;
  /** Probability bound α. */
  readonly alpha: number;
  /** Sampling probability of a block with s = 0 (default 1 − α, the original's symmetric bound). */
  readonly sampleFloor?: number;
  /** Stage 2: ResNet trained jointly (BN train mode, cross-entropy). */
  readonly trainResNet: boolean;
  /** Sampled policies per image (the original: 1). */
  readonly samples: number;
  /** Baseline of the advantage: the greedy policy's reward (self-critical, the original) or the other samples' mean. */
  readonly baseline: 'greedy' | 'samples';
  /** 'signed' (REINFORCE) or 'positive': only samples that beat the baseline contribute (self-imitation). */
  readonly advantage: 'signed' | 'positive';
  /** Stop when |loss| exceeds this (or is not finite). */
  readonly lossLimit: number;
  /**
   * Stage 2 only: distil the frozen ResNet behind `state.oracle` (every block kept) into the training ResNet. The
   * classification term becomes (1 − weight)·CE + weight·T²·KL(teacher ‖ student) at temperature T. Off when absent.
   */
  readonly distillation?: { readonly weight: number; readonly temperature: number };
  /**
   * Stage 2 only: which policies' forward pass the classification term trains the ResNet on: 'sampled' (the
   * original) or 'greedy' (the paths evaluation runs). The other pass still gives the rewards. Default 'sampled'.
   */
  readonly classifierPolicy?: 'sampled' | 'greedy';
  /**
   * False freezes the policy (stage 2's --freeze-policy): its backward pass is skipped and its parameters get no
   * gradient, so the optimiser leaves them (and their moments) as they are; its forward still samples the paths.
   * With no policy gradient to compute, stage 2 runs only the ResNet pass the classification term trains (the
   * greedy or the sampled policies); the other pass's statistics come back as NaN. Default true.
   */
  readonly trainPolicy?: boolean;
}

export interface StepResult {
  readonly loss: number;
  /** Classification term (stage 2: cross-entropy, blended with distillation when on), else 0. */
  readonly crossEntropy: number;
  readonly gradNorm: number;
  /** Means over the batch (sampled: over all B·M samples); NaN for a pass the step did not run (frozen policy). */
  readonly rewardSampled: number;
  readonly rewardGreedy: number;
  readonly correctSampled: number;
  readonly correctGreedy: number;
  readonly blocksSampled: number;
  readonly blocksGreedy: number;
  readonly images: number;
  /** Sum of squared greedy block counts (for a running std). */
  readonly blocksGreedySq: number;
}

/** A diverged run: the caller stops without saving, leaving the last good checkpoint in place. */
export class TrainingDivergedError extends BlockdropError {}

function sum(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]!;
  return s;
}

function argmaxRows(values: Float32Array, rows: number, width: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < width; c++) if (values[r * width + c]! > values[r * width + best]!) best = c;
    out[r] = best;
  }
  return out;
}

export async function blockDropStep(state: StepState, batch: Batch, options: StepOptions): Promise<StepResult> {
  const { k, learnable, samples } = options;
  const b = batch.size;
  const rows = b * samples;
  const side = batch.side;
  const per = side * side * 3;
  const modules = state.modules ?? {
    policy: tfjsPolicyModule(state.policy, k, side),
    resnet: options.trainResNet ? tfjsBackboneModule(state.resnet as TrainableBackbone, k, side) : undefined,
  };
  if (options.trainResNet && !modules.resnet) throw new Error('blockDropStep: stage 2 needs a ResNet training module');
  const saved: SavedState[] = [];
  const grads: (tf.Tensor | undefined)[] = [];
  try {
    // 1. Probabilities (batch statistics; the policy's running statistics are updated once), greedy and sampled policies.
    const frozen = options.trainPolicy === false;
    const policyPass = await modules.policy.forward(batch.images, b, { grad: !frozen });
    if (policyPass.saved) saved.push(policyPass.saved);
    const probs = policyPass.output;
    const greedy = forceLeadingBlocks(greedyPolicy(probs), k, learnable);
    const sampled = forceLeadingBlocks(
      samplePolicy(boundProbabilities(probs, options.alpha, options.sampleFloor), k, () => state.rng.next(), samples),
      k,
      learnable,
    );
    const rowImage = Int32Array.from({ length: rows }, (_, r) => Math.floor(r / samples));

    // 2. Rewards: the frozen ResNet (stage 1) or the training ResNet with batch statistics (stage 2; both passes
    // update its running statistics, as the original's).
    let greedyPredicted: Int32Array | undefined;
    let sampledPredicted: Int32Array | undefined;
    let crossEntropy = 0;
    let resnetGrad: { saved: SavedState; dLogits: Float32Array } | undefined;
    if (!options.trainResNet) {
      const both = new Uint8Array((b + rows) * k);
      both.set(greedy, 0);
      both.set(sampled, b * k);
      const bothImage = new Int32Array(b + rows);
      for (let i = 0; i < b; i++) bothImage[i] = i;
      bothImage.set(rowImage, b);
      const predicted = await state.oracle.predict(batch.images, b, both, bothImage);
      greedyPredicted = predicted.subarray(0, b);
      sampledPredicted = predicted.subarray(b);
    } else {
      const resnet = modules.resnet!;
      // The classification term trains the ResNet on the sampled policies (the original) or on the greedy ones.
      const onGreedy = options.classifierPolicy === 'greedy';
      // A frozen policy takes no gradient from the rewards: then only the pass the classifier trains runs.
      const greedyPass = onGreedy || !frozen ? await resnet.forward(batch.images, b, { keep: greedy, grad: onGreedy }) : undefined;
      if (greedyPass) greedyPredicted = argmaxRows(greedyPass.output, b, greedyPass.output.length / b);
      let sampledPass: Awaited<ReturnType<TrainableModule['forward']>> | undefined;
      if (!onGreedy || !frozen) {
        let xs = batch.images;
        if (samples > 1) {
          xs = new Float32Array(rows * per);
          for (let r = 0; r < rows; r++) xs.set(batch.images.subarray(rowImage[r]! * per, (rowImage[r]! + 1) * per), r * per);
        }
        sampledPass = await resnet.forward(xs, rows, { keep: sampled, grad: !onGreedy });
        sampledPredicted = argmaxRows(sampledPass.output, rows, sampledPass.output.length / rows);
      }
      const trained = onGreedy
        ? { pass: greedyPass!, rows: b, image: (r: number) => r }
        : { pass: sampledPass!, rows, image: (r: number) => rowImage[r]! };
      const classes = trained.pass.output.length / trained.rows;
      saved.push(trained.pass.saved!);
      let ce = crossEntropyWithGrad(trained.pass.output, trained.rows, classes, (r) => batch.labels[trained.image(r)]!);
      if (options.distillation && options.distillation.weight > 0) {
        if (!state.oracle.logits) throw new Error(`blockDropStep: distillation needs teacher logits, which ${state.oracle.name} does not give`);
        const identity = Int32Array.from({ length: b }, (_, i) => i);
        const teacher = await state.oracle.logits(batch.images, b, new Uint8Array(b * k).fill(1), identity);
        const { weight, temperature } = options.distillation;
        ce = blendLosses(ce, distillationWithGrad(trained.pass.output, teacher, trained.rows, classes, temperature, trained.image), weight);
      }
      crossEntropy = ce.loss;
      resnetGrad = { saved: trained.pass.saved!, dLogits: ce.grad };
    }
    const greedyCorrect = greedyPredicted && correctPredictions(greedyPredicted, batch.labels);
    const greedyReward = greedyCorrect && rewards(greedy, greedyCorrect, k, options.penalty);
    const sampledCorrect = sampledPredicted && correctPredictions(sampledPredicted, batch.labels, samples);
    const sampledReward = sampledCorrect && rewards(sampled, sampledCorrect, k, options.penalty);

    // 3. The policy-gradient loss is a function of the probabilities [B, K] alone: its value and dLoss/ds here,
    // then the engine's backward passes (the cross-entropy's gradient reaches the ResNet only).
    let pgValue = 0;
    if (frozen) grads.push(...state.policy.variables().map(() => undefined));
    else pgValue = await policyGradient(modules.policy, policyPass.saved!, probs, sampled, sampledReward!, greedyReward!, options, grads);
    if (resnetGrad) {
      grads.push(...(await modules.resnet!.backward(resnetGrad.saved, resnetGrad.dLogits)));
    }
    if (grads.length !== state.params.length) {
      throw new Error(`blockDropStep: ${grads.length} gradients for ${state.params.length} parameters`);
    }
    const loss = pgValue + crossEntropy;
    const normT = tf.tidy(() =>
      tf.addN(grads.filter((g): g is tf.Tensor => g !== undefined).map((g) => g.square().sum())).sqrt(),
    );
    const gradNorm = (await normT.data())[0]!;
    normT.dispose();
    if (!Number.isFinite(loss) || Math.abs(loss) > options.lossLimit || !Number.isFinite(gradNorm)) {
      throw new TrainingDivergedError(
        `training diverged: loss ${loss}, gradient norm ${gradNorm}; stopped before the update, the last checkpoint is intact — lower --lr (or raise --loss-limit if the loss is legitimately large)`,
      );
    }
    // 4. The optimiser's update.
    state.optimizer.apply(grads);
    const used = blocksUsed(greedy, k);
    const usedSampled = blocksUsed(sampled, k);
    const meanOf = (values: ArrayLike<number> | undefined, n: number): number => (values ? sum(values) / n : NaN);
    return {
      loss,
      crossEntropy,
      gradNorm,
      rewardSampled: meanOf(sampledReward, rows),
      rewardGreedy: meanOf(greedyReward, b),
      correctSampled: meanOf(sampledCorrect, rows),
      correctGreedy: meanOf(greedyCorrect, b),
      blocksSampled: sum(usedSampled) / rows,
      blocksGreedy: sum(used) / b,
      blocksGreedySq: used.reduce((acc, n) => acc + n * n, 0),
      images: b,
    };
  } finally {
    for (const s of saved) s.release(); // idempotent: backward released the ones it used
    tf.dispose(grads.filter((g): g is tf.Tensor => g !== undefined));
  }
}

/** REINFORCE on the probabilities: the loss value, and the policy's gradients pushed onto `grads`. */
async function policyGradient(
  policyModule: TrainableModule,
  policySaved: SavedState,
  probs: Float32Array,
  sampled: Uint8Array,
  sampledReward: Float32Array,
  greedyReward: Float32Array,
  options: StepOptions,
  grads: (tf.Tensor | undefined)[],
): Promise<number> {
  const { k, learnable, samples } = options;
  const b = probs.length / k;
  const rows = b * samples;
  const advantage = clipAdvantages(
    options.baseline === 'samples' ? leaveOneOutAdvantages(sampledReward, samples) : advantages(sampledReward, greedyReward, samples),
    options.advantage,
  );
  const { pg, dProbs } = tf.tidy(() => {
    const mask = learnable < k ? tf.tensor2d(curriculumMask(rows, k, learnable), [rows, k]) : undefined;
    const policyT = tf.tensor2d(sampled, [rows, k], 'float32');
    const advantageT = tf.tensor1d(advantage);
    const { value, grad } = tf.valueAndGrad((s: tf.Tensor) => {
      let bounded = boundProbabilitiesTf(s as tf.Tensor2D, options.alpha, options.sampleFloor);
      if (samples > 1) bounded = bounded.expandDims(1).tile([1, samples, 1]).reshape([rows, k]) as tf.Tensor2D;
      return reinforceLoss({ bounded, policy: policyT, advantage: advantageT, mask, entropyWeight: options.entropyWeight, entropy: options.entropy });
    })(tf.tensor2d(probs, [b, k]));
    return { pg: value, dProbs: grad };
  });
  const pgValue = (await pg.data())[0]!;
  const dProbsData = (await dProbs.data()) as Float32Array;
  tf.dispose([pg, dProbs]);
  grads.push(...(await policyModule.backward(policySaved, dProbsData)));
  return pgValue;
}
