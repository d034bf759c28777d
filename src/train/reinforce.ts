/**
 * The pure pieces of BlockDrop's policy gradient (reference §3.2), each small enough to test by hand.
 *
 * Policies are row-major 0/1 arrays of shape [rows, K] (1 = execute the block). Host-side helpers work on
 * typed arrays because B×K is tiny; only the loss, which must be differentiated, is a TensorFlow.js op.
 */
import * as tf from '@tensorflow/tfjs';
import { keepFromProbabilities } from '../executor/path.js';

/** Which "entropy" bonus to add: the original's one-sided −Σ s' log s' (maximal at s' = 1/e), or the true Bernoulli entropy. */
export type EntropyKind = 'original' | 'bernoulli';

/** Clamp used by the original for the entropy's logarithm. */
const ENTROPY_EPS = 1e-15;

/**
 * Test-time / self-critical policy: execute block k iff s_k ≥ 0.5 (from the unbounded probabilities). The
 * executor's own rule, so that training, evaluation and deployment (Node and browser) threshold identically.
 */
export const greedyPolicy: (probs: ArrayLike<number>, threshold?: number) => Uint8Array = keepFromProbabilities;

/**
 * s' = α·s + (1 − α)·(1 − s): keeps every sampling probability in [1 − α, α] (for α ≥ 0.5). With a `floor` other
 * than 1 − α the map is s' = floor + (α − floor)·s: a block the policy drops (s = 0) is still sampled with
 * probability `floor`, one it keeps (s = 1) dropped with probability 1 − α, so exploration can lean towards dropping.
 */
export function boundProbability(s: number, alpha: number, floor = 1 - alpha): number {
  return floor + (alpha - floor) * s;
}

export function boundProbabilities(probs: ArrayLike<number>, alpha: number, floor = 1 - alpha): Float32Array {
  const out = new Float32Array(probs.length);
  for (let i = 0; i < probs.length; i++) out[i] = boundProbability(probs[i]!, alpha, floor);
  return out;
}

/** The same bound as a differentiable op. */
export function boundProbabilitiesTf(probs: tf.Tensor2D, alpha: number, floor = 1 - alpha): tf.Tensor2D {
  return tf.tidy(() => probs.mul(alpha - floor).add(floor) as tf.Tensor2D);
}

/**
 * Draws u ~ Bernoulli(p) for every entry; `uniform()` returns numbers in [0, 1).
 * With `repeats` = M > 1, each row of p is sampled M times: output row r·M + m is sample m of input row r.
 */
export function samplePolicy(bounded: ArrayLike<number>, k: number, uniform: () => number, repeats = 1): Uint8Array {
  const rows = bounded.length / k;
  const out = new Uint8Array(rows * repeats * k);
  let o = 0;
  for (let r = 0; r < rows; r++) {
    for (let m = 0; m < repeats; m++) {
      for (let j = 0; j < k; j++) out[o++] = uniform() < bounded[r * k + j]! ? 1 : 0;
    }
  }
  return out;
}

/** Repeats each row of a [rows, k] array M times (row r·M + m = row r), to pair with `samplePolicy(…, M)`. */
export function repeatRows<T extends Float32Array | Uint8Array | Int32Array>(values: T, k: number, repeats: number): T {
  if (repeats === 1) return values;
  const rows = values.length / k;
  const out = new (values.constructor as { new (n: number): T })(rows * repeats * k);
  for (let r = 0; r < rows; r++) {
    const row = values.subarray(r * k, (r + 1) * k);
    for (let m = 0; m < repeats; m++) out.set(row, (r * repeats + m) * k);
  }
  return out;
}

/** When and how fast the curriculum hands blocks to the policy. */
export interface CurriculumSchedule {
  /** Advance by one block every `every` units; 0 disables the curriculum (all K blocks learnable from the start). */
  readonly every: number;
  /** 'epoch' (the original) or 'iteration'. */
  readonly unit: 'epoch' | 'iteration';
  /** Blocks learnable at the start (the original's cl_step: 1). */
  readonly start: number;
}

/**
 * Number of learnable (last) blocks at a point in training: min(start + ⌊progress / every⌋, K).
 * The original (`every` 1 epoch, start 1) learns the last e + 1 blocks in epoch e (0-based).
 */
export function learnableBlocks(schedule: CurriculumSchedule, k: number, epoch: number, iteration: number): number {
  if (schedule.every <= 0) return k;
  const progress = schedule.unit === 'epoch' ? epoch : iteration;
  return Math.max(1, Math.min(k, schedule.start + Math.floor(progress / schedule.every)));
}

/** Forces the first K − learnable blocks of every row to 1 (executed), in place. */
export function forceLeadingBlocks(policy: Uint8Array, k: number, learnable: number): Uint8Array {
  const forced = k - Math.min(k, learnable);
  if (forced <= 0) return policy;
  for (let r = 0; r < policy.length / k; r++) policy.fill(1, r * k, r * k + forced);
  return policy;
}

/** Gradient mask [rows, K]: 0 on the forced leading blocks, 1 on the learnable ones. */
export function curriculumMask(rows: number, k: number, learnable: number): Float32Array {
  const forced = k - Math.min(k, learnable);
  const mask = new Float32Array(rows * k).fill(1);
  if (forced > 0) for (let r = 0; r < rows; r++) mask.fill(0, r * k, r * k + forced);
  return mask;
}

/** Blocks executed per row. */
export function blocksUsed(policy: ArrayLike<number>, k: number): Int32Array {
  const rows = policy.length / k;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let n = 0;
    for (let j = 0; j < k; j++) n += policy[r * k + j]!;
    out[r] = n;
  }
  return out;
}

/**
 * Per-image reward: 1 − (blocks used / K)² when the prediction is correct, −γ (`penalty` γ ≥ 0) when wrong.
 * Forced (curriculum) blocks count as used; K is always the full block count.
 */
export function rewards(policy: ArrayLike<number>, correct: ArrayLike<number | boolean>, k: number, penalty: number): Float32Array {
  const used = blocksUsed(policy, k);
  const out = new Float32Array(used.length);
  for (let r = 0; r < used.length; r++) {
    const fraction = used[r]! / k;
    out[r] = correct[r] ? 1 - fraction * fraction : -penalty;
  }
  return out;
}

/** Self-critical advantage A = R(sampled) − R(greedy); with M samples per image, greedy row ⌊i / M⌋ is the baseline of sample i. */
export function advantages(sampled: ArrayLike<number>, greedy: ArrayLike<number>, repeats = 1): Float32Array {
  const out = new Float32Array(sampled.length);
  for (let i = 0; i < sampled.length; i++) out[i] = sampled[i]! - greedy[Math.floor(i / repeats)]!;
  return out;
}

/**
 * Leave-one-out advantage for M ≥ 2 samples per image: A_i = R_i − mean of the other M − 1 samples of the
 * same image (an unbiased baseline with lower variance than the greedy one when M is large).
 */
export function leaveOneOutAdvantages(sampled: ArrayLike<number>, repeats: number): Float32Array {
  if (repeats < 2) throw new RangeError('leave-one-out advantages need at least two samples per image');
  const out = new Float32Array(sampled.length);
  for (let start = 0; start < sampled.length; start += repeats) {
    let total = 0;
    for (let m = 0; m < repeats; m++) total += sampled[start + m]!;
    for (let m = 0; m < repeats; m++) {
      const r = sampled[start + m]!;
      out[start + m] = r - (total - r) / (repeats - 1);
    }
  }
  return out;
}

/** 'positive' keeps only advantages > 0 (self-imitation learning, Oh et al. 2018), in place; 'signed' leaves them. */
export function clipAdvantages(values: Float32Array, mode: 'signed' | 'positive'): Float32Array {
  if (mode === 'positive') for (let i = 0; i < values.length; i++) values[i] = Math.max(0, values[i]!);
  return values;
}

/** Argmax per row of [rows, classes] logits compared with the labels (label of row i is labels[⌊i / repeats⌋]). */
export function correctPredictions(predicted: ArrayLike<number>, labels: ArrayLike<number>, repeats = 1): Uint8Array {
  const out = new Uint8Array(predicted.length);
  for (let i = 0; i < predicted.length; i++) out[i] = predicted[i] === labels[Math.floor(i / repeats)] ? 1 : 0;
  return out;
}

export interface ReinforceInputs {
  /** Bounded probabilities s' [rows, K] (differentiable). */
  readonly bounded: tf.Tensor2D;
  /** Sampled policy u [rows, K], 0/1. */
  readonly policy: tf.Tensor2D;
  /** Advantage per row [rows] (a constant). */
  readonly advantage: tf.Tensor1D;
  /** Curriculum mask [rows, K]; omitted = all ones. */
  readonly mask?: tf.Tensor2D;
  /** β; 0 switches the entropy term off (stage 2). */
  readonly entropyWeight: number;
  readonly entropy?: EntropyKind;
}

/**
 * The REINFORCE loss of one batch: (Σ_{r,k} m·(−log Bern(u; s'))·A_r − β·H) / rows,
 * with H summed over all entries (the original does not mask the entropy).
 */
export function reinforceLoss(inputs: ReinforceInputs): tf.Scalar {
  return tf.tidy(() => {
    const { bounded, policy, advantage } = inputs;
    const rows = bounded.shape[0];
    const logProb = policy.mul(bounded.log()).add(tf.scalar(1).sub(policy).mul(tf.scalar(1).sub(bounded).log()));
    let negLog = logProb.neg();
    if (inputs.mask) negLog = negLog.mul(inputs.mask);
    const pg = negLog.mul(advantage.expandDims(1)).sum();
    let loss = pg;
    if (inputs.entropyWeight !== 0) {
      const p = bounded.clipByValue(ENTROPY_EPS, 1 - ENTROPY_EPS);
      let h = p.mul(p.log()).neg();
      if ((inputs.entropy ?? 'original') === 'bernoulli') {
        const q = tf.scalar(1).sub(p);
        h = h.sub(q.mul(q.log()));
      }
      loss = loss.sub(h.sum().mul(inputs.entropyWeight));
    }
    return loss.div(rows) as tf.Scalar;
  });
}

/** The same loss in double precision on the host: the reference for tests and numeric gradients. */
export function reinforceLossHost(
  bounded: ArrayLike<number>,
  policy: ArrayLike<number>,
  advantage: ArrayLike<number>,
  k: number,
  options: { mask?: ArrayLike<number>; entropyWeight: number; entropy?: EntropyKind },
): number {
  const rows = bounded.length / k;
  let pg = 0;
  let h = 0;
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      const i = r * k + j;
      const p = bounded[i]!;
      const logProb = policy[i] ? Math.log(p) : Math.log(1 - p);
      pg += (options.mask ? options.mask[i]! : 1) * -logProb * advantage[r]!;
      const c = Math.min(Math.max(p, ENTROPY_EPS), 1 - ENTROPY_EPS);
      h += -c * Math.log(c);
      if ((options.entropy ?? 'original') === 'bernoulli') h += -(1 - c) * Math.log(1 - c);
    }
  }
  return (pg - options.entropyWeight * h) / rows;
}
