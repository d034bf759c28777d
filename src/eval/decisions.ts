/**
 * Per-image decisions of a policy (which blocks each image executes, and whether the ResNet was right), and
 * what the report draws from them: the class × block keep-rate map, the histogram of blocks used and the images
 * that use the fewest and the most blocks in each class (the paper's qualitative figure).
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../data/cifar.js';
import { normalizeBatch } from '../data/batches.js';
import { BlockdropError } from '../errors.js';
import type { Normalization } from '../models/config.js';
import type { PolicyModel, RewardOracle } from '../train/models.js';
import { greedyPolicy } from '../train/reinforce.js';

export interface PolicyDecisions {
  /** Blocks K. */
  readonly k: number;
  readonly classes: readonly string[];
  /** Index of each row's image in its set. */
  readonly imageIndices: Int32Array;
  readonly labels: Uint8Array;
  /** N × K, 1 = block executed. */
  readonly keep: Uint8Array;
  /** 1 = the ResNet's prediction with these blocks was right. */
  readonly correct: Uint8Array;
  /** What produced the decisions, e.g. 'policy runs/r32/policy.safetensors'. */
  readonly source: string;
}

export interface CollectDecisionsOptions {
  readonly k: number;
  readonly normalization: Normalization;
  readonly limit?: number;
  readonly batchSize?: number;
  /** Keep block t iff s_t ≥ threshold (default 0.5, the paper's test-time rule). */
  readonly threshold?: number;
  readonly source?: string;
  readonly onProgress?: (done: number, total: number) => void;
}

/** Runs the policy (greedy, thresholded) and the backbone over the first `limit` images of `set`. */
export async function collectDecisions(
  policy: PolicyModel,
  oracle: RewardOracle,
  set: ImageSet,
  options: CollectDecisionsOptions,
): Promise<PolicyDecisions> {
  const { k } = options;
  const total = Math.min(options.limit && options.limit > 0 ? options.limit : set.count, set.count);
  const batchSize = options.batchSize ?? 256;
  const threshold = options.threshold ?? 0.5;
  const keep = new Uint8Array(total * k);
  const correct = new Uint8Array(total);
  for (let start = 0; start < total; start += batchSize) {
    const count = Math.min(batchSize, total - start);
    const indices = Array.from({ length: count }, (_, i) => start + i);
    const images = normalizeBatch(set, indices, options.normalization);
    const probsT = tf.tidy(() => policy.probabilities(tf.tensor4d(images, [count, set.height, set.width, 3]), { training: false }));
    const probs = (await probsT.data()) as Float32Array;
    probsT.dispose();
    const rows = greedyPolicy(probs, threshold);
    const predicted = await oracle.predict(images, count, rows, Int32Array.from(indices, (_, i) => i));
    keep.set(rows, start * k);
    for (let i = 0; i < count; i++) correct[start + i] = predicted[i] === set.labels[start + i] ? 1 : 0;
    options.onProgress?.(start + count, total);
  }
  return {
    k,
    classes: set.classes,
    imageIndices: Int32Array.from({ length: total }, (_, i) => i),
    labels: set.labels.slice(0, total),
    keep,
    correct,
    source: options.source ?? 'policy',
  };
}

/** Decisions from masks already known (an executor's Prediction, a baseline, a test). */
export function decisionsFromMasks(args: {
  k: number;
  classes: readonly string[];
  labels: ArrayLike<number>;
  keep: Uint8Array;
  correct: ArrayLike<number>;
  imageIndices?: ArrayLike<number>;
  source: string;
}): PolicyDecisions {
  const n = args.labels.length;
  if (args.keep.length !== n * args.k || args.correct.length !== n) {
    throw new BlockdropError(`decisions: ${n} labels need ${n * args.k} mask values and ${n} correctness flags`);
  }
  return {
    k: args.k,
    classes: args.classes,
    imageIndices: Int32Array.from(args.imageIndices ?? Array.from({ length: n }, (_, i) => i)),
    labels: Uint8Array.from(args.labels),
    keep: args.keep,
    correct: Uint8Array.from(args.correct),
    source: args.source,
  };
}

export interface DecisionSummary {
  readonly images: number;
  readonly accuracy: number;
  readonly blocksMean: number;
  readonly blocksStd: number;
  readonly distinctPolicies: number;
  /** images[b] = images that execute exactly b blocks, b = 0..K. */
  readonly histogram: number[];
  /** keepRate[c][t] = fraction of class-c images that execute block t. */
  readonly classBlockKeepRate: number[][];
  readonly perClassAccuracy: number[];
  readonly perClassBlocks: number[];
  readonly perClassImages: number[];
  /** Per class: row numbers (into the decisions) of the images with the fewest / the most blocks. */
  readonly extremes: { readonly fewest: number[]; readonly most: number[] }[];
}

/** Blocks used by each row. */
export function blocksPerImage(d: PolicyDecisions): Int32Array {
  const n = d.labels.length;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let b = 0;
    for (let t = 0; t < d.k; t++) b += d.keep[i * d.k + t]!;
    out[i] = b;
  }
  return out;
}

/** Aggregates for the report. `perClass` = images shown per class at each extreme (default 4). */
export function summarizeDecisions(d: PolicyDecisions, perClass = 4): DecisionSummary {
  const n = d.labels.length;
  const C = d.classes.length;
  const K = d.k;
  const blocks = blocksPerImage(d);
  const histogram = new Array<number>(K + 1).fill(0);
  const classKeep = Array.from({ length: C }, () => new Array<number>(K).fill(0));
  const classImages = new Array<number>(C).fill(0);
  const classCorrect = new Array<number>(C).fill(0);
  const classBlocks = new Array<number>(C).fill(0);
  const policies = new Set<string>();
  let sum = 0;
  let sq = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const c = d.labels[i]!;
    const b = blocks[i]!;
    histogram[b]!++;
    classImages[c]!++;
    classBlocks[c]! += b;
    classCorrect[c]! += d.correct[i]!;
    correct += d.correct[i]!;
    sum += b;
    sq += b * b;
    let key = '';
    for (let t = 0; t < K; t++) {
      const v = d.keep[i * K + t]!;
      classKeep[c]![t]! += v;
      key += v ? '1' : '0';
    }
    policies.add(key);
  }
  const extremes = Array.from({ length: C }, (_, c) => {
    const rows: number[] = [];
    for (let i = 0; i < n; i++) if (d.labels[i] === c) rows.push(i);
    // Stable order: blocks, then row number, so the choice is deterministic.
    const asc = [...rows].sort((a, b) => blocks[a]! - blocks[b]! || a - b);
    const desc = [...rows].sort((a, b) => blocks[b]! - blocks[a]! || a - b);
    const take = Math.min(perClass, Math.floor(rows.length / 2) || rows.length);
    return { fewest: asc.slice(0, take), most: desc.slice(0, take) };
  });
  const mean = n > 0 ? sum / n : 0;
  return {
    images: n,
    accuracy: n > 0 ? correct / n : 0,
    blocksMean: mean,
    blocksStd: n > 0 ? Math.sqrt(Math.max(0, sq / n - mean * mean)) : 0,
    distinctPolicies: policies.size,
    histogram,
    classBlockKeepRate: classKeep.map((row, c) => row.map((v) => (classImages[c]! > 0 ? v / classImages[c]! : 0))),
    perClassAccuracy: classCorrect.map((v, c) => (classImages[c]! > 0 ? v / classImages[c]! : 0)),
    perClassBlocks: classBlocks.map((v, c) => (classImages[c]! > 0 ? v / classImages[c]! : 0)),
    perClassImages: classImages,
    extremes,
  };
}
