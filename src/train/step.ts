/**
 * One BlockDrop training step, shared by both stages (the original copied it between cl_training.py and
 * finetune.py). Stage 1: `trainResNet: false` (frozen ResNet, eval-mode BN, rewards from a RewardOracle).
 * Stage 2: `trainResNet: true` (ResNet BN in train mode, cross-entropy of the sampled-policy logits added).
 *
 *   s  = policy(x)                       probabilities [B, K], batch-norm batch statistics
 *   ũ  = [s ≥ 0.5];  s' = αs + (1−α)(1−s);  u ~ Bernoulli(s')  (M samples per image)
 *   curriculum: first K − c blocks forced on in ũ and u, masked out of the gradient
 *   R  = 1 − (|u|/K)² if correct else −γ;   A = R(u) − R(ũ)
 *   loss = mean_rows Σ_k m·(−log p(u))·A − β·H(s')/B  [+ CE(ResNet(x; u), y)]
 *
 * The policy runs twice: once without a gradient tape to get s (the rewards need it, and the ONNX oracle is
 * asynchronous, which a tfjs gradient closure cannot wait for), once under the tape with the same batch
 * statistics; its running statistics are restored afterwards, so they are updated once per step as in the original.
 */
import * as tf from '@tensorflow/tfjs';
import { BlockdropError } from '../errors.js';
import type { Adam } from './adam.js';
import type { BackboneModel, RewardOracle, TrainablePolicy } from './models.js';
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
  /** Frozen-ResNet reward passes (stage 1). */
  readonly oracle: RewardOracle;
  /** Over the policy's variables, then (stage 2) the ResNet's. */
  readonly optimizer: Adam;
  readonly params: readonly tf.Variable[];
  /** Draws the sampled policies. */
  readonly rng: Rng;
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
}

export interface StepResult {
  readonly loss: number;
  /** Cross-entropy term (stage 2), else 0. */
  readonly crossEntropy: number;
  readonly gradNorm: number;
  /** Means over the batch (sampled: over all B·M samples). */
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

export async function blockDropStep(state: StepState, batch: Batch, options: StepOptions): Promise<StepResult> {
  const { k, learnable, samples } = options;
  const b = batch.size;
  const rows = b * samples;
  const x = tf.tensor4d(batch.images, [b, batch.side, batch.side, 3]);
  try {
    // 1. Probabilities (updates the policy's running statistics once), greedy and sampled policies.
    const probsT = tf.tidy(() => state.policy.probabilities(x, { training: true }));
    const probs = (await probsT.data()) as Float32Array;
    probsT.dispose();
    const greedy = forceLeadingBlocks(greedyPolicy(probs), k, learnable);
    const sampled = forceLeadingBlocks(
      samplePolicy(boundProbabilities(probs, options.alpha), k, () => state.rng.next(), samples),
      k,
      learnable,
    );
    const rowImage = Int32Array.from({ length: rows }, (_, r) => Math.floor(r / samples));

    // 2. Greedy rewards: the frozen ResNet (stage 1) or the training ResNet with batch statistics (stage 2).
    let greedyPredicted: Int32Array;
    let sampledPredicted: Int32Array | undefined;
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
      const predictedT = tf.tidy(() =>
        state.resnet.forward(x, { keep: tf.tensor2d(greedy, [b, k], 'float32'), training: true }).argMax(1),
      );
      greedyPredicted = (await predictedT.data()) as Int32Array;
      predictedT.dispose();
    }
    const greedyCorrect = correctPredictions(greedyPredicted, batch.labels);
    const greedyReward = rewards(greedy, greedyCorrect, k, options.penalty);

    // 3. The loss under the gradient tape. Stage 2's sampled rewards come from the same taped forward pass.
    let sampledCorrect = sampledPredicted ? correctPredictions(sampledPredicted, batch.labels, samples) : undefined;
    let sampledReward: Float32Array | undefined;
    let crossEntropy = 0;
    const mask = learnable < k ? tf.tensor2d(curriculumMask(rows, k, learnable), [rows, k]) : undefined;
    const policyT = tf.tensor2d(sampled, [rows, k], 'float32');
    // The taped pass repeats the batch statistics of pass 1 and would update the running statistics a second
    // time; put back the state after pass 1.
    const statsAfterPass1 = state.policy.toTensorMap();
    const { value, grads } = tf.variableGrads(() => {
      const s = state.policy.probabilities(x, { training: true });
      let bounded = boundProbabilitiesTf(s, options.alpha);
      if (samples > 1) bounded = bounded.expandDims(1).tile([1, samples, 1]).reshape([rows, k]) as tf.Tensor2D;
      let ce: tf.Scalar | undefined;
      if (options.trainResNet) {
        const xs = samples > 1 ? (tf.gather(x, tf.tensor1d(rowImage, 'int32')) as tf.Tensor4D) : x;
        const logits = state.resnet.forward(xs, { keep: policyT, training: true });
        sampledCorrect = correctPredictions(logits.argMax(1).dataSync(), batch.labels, samples);
        const rowLabels = tf.gather(tf.tensor1d(batch.labels, 'int32'), tf.tensor1d(rowImage, 'int32'));
        const labels = tf.oneHot(rowLabels as tf.Tensor1D, logits.shape[1]);
        ce = tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
        crossEntropy = ce.dataSync()[0]!;
      }
      sampledReward = rewards(sampled, sampledCorrect!, k, options.penalty);
      const pg = reinforceLoss({
        bounded,
        policy: policyT,
        advantage: tf.tensor1d(clipAdvantages(
          options.baseline === 'samples'
            ? leaveOneOutAdvantages(sampledReward, samples)
            : advantages(sampledReward, greedyReward, samples),
          options.advantage,
        )),
        mask,
        entropyWeight: options.entropyWeight,
        entropy: options.entropy,
      });
      return ce ? pg.add(ce) : pg;
    }, state.params as tf.Variable[]);
    state.policy.assignWeights(statsAfterPass1);
    policyT.dispose();
    mask?.dispose();
    const gradList = state.params.map((p) => grads[p.name] ?? undefined);
    try {
      const loss = (await value.data())[0]!;
      const normT = tf.tidy(() =>
        tf.addN(gradList.filter((g): g is tf.Tensor => g !== undefined).map((g) => g.square().sum())).sqrt(),
      );
      const gradNorm = (await normT.data())[0]!;
      normT.dispose();
      if (!Number.isFinite(loss) || Math.abs(loss) > options.lossLimit || !Number.isFinite(gradNorm)) {
        throw new TrainingDivergedError(
          `training diverged: loss ${loss}, gradient norm ${gradNorm}; stopped before the update, the last checkpoint is intact — lower --lr (or raise --loss-limit if the loss is legitimately large)`,
        );
      }
      // 4. Adam.
      state.optimizer.apply(gradList);
      const used = blocksUsed(greedy, k);
      const usedSampled = blocksUsed(sampled, k);
      return {
        loss,
        crossEntropy,
        gradNorm,
        rewardSampled: sum(sampledReward!) / rows,
        rewardGreedy: sum(greedyReward) / b,
        correctSampled: sum(sampledCorrect!) / rows,
        correctGreedy: sum(greedyCorrect) / b,
        blocksSampled: sum(usedSampled) / rows,
        blocksGreedy: sum(used) / b,
        blocksGreedySq: used.reduce((acc, n) => acc + n * n, 0),
        images: b,
      };
    } finally {
      value.dispose();
      for (const g of Object.values(grads)) g?.dispose();
    }
  } finally {
    x.dispose();
  }
}
