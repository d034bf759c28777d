/**
 * Evaluation of a BlockDrop policy on a split: the greedy policy u = [s ≥ 0.5] decides the blocks of each
 * image, the ResNet classifies with them. Shared by the trainer (validation) and `blockdrop eval --policy`.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../data/cifar.js';
import { normalizeBatch } from '../data/batches.js';
import type { Normalization } from '../models/config.js';
import type { PolicyModel, RewardOracle } from '../train/models.js';
import { blocksUsed, forceLeadingBlocks, greedyPolicy, rewards } from '../train/reinforce.js';

export interface PolicyEvaluation {
  readonly images: number;
  readonly correct: number;
  readonly accuracy: number;
  /** Mean reward of the greedy policy: 1 − (blocks/K)² if correct, −γ if wrong. */
  readonly reward: number;
  readonly blocksMean: number;
  /** Population standard deviation (as the reference's test.py). */
  readonly blocksStd: number;
  /** FLOPs per image including the policy network (when a FLOP counter was given, else 0). */
  readonly flopsMean: number;
  readonly flopsStd: number;
  readonly distinctPolicies: number;
  /** Fraction of images that execute block k. */
  readonly blockUsage: number[];
  readonly perClassAccuracy: number[];
  readonly perClassBlocks: number[];
  /** The most frequent policies ('1' = executed), with their image counts. */
  readonly topPolicies: { readonly policy: string; readonly images: number }[];
  readonly imagesPerSecond: number;
  readonly seconds: number;
}

export interface EvaluatePolicyOptions {
  /** Number of blocks K. */
  readonly k: number;
  readonly normalization: Normalization;
  readonly numClasses?: number;
  readonly batchSize?: number;
  /** Only the first n images. */
  readonly limit?: number;
  /** Curriculum: blocks before the last `learnable` are forced on (as the original's test pass). */
  readonly learnable?: number;
  /** γ of the reward (default 1). */
  readonly penalty?: number;
  /** FLOPs of one image with this policy (ResNet + policy network). */
  readonly flops?: (keep: Uint8Array) => number;
  /** Policy threshold: block t runs when s_t ≥ threshold (default 0.5, the paper's); other values trade accuracy for FLOPs. */
  readonly threshold?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

/** Mean and population std from running sums (over n values). */
export function meanStd(sum: number, sumSq: number, n: number): { mean: number; std: number } {
  if (n === 0) return { mean: 0, std: 0 };
  const mean = sum / n;
  return { mean, std: Math.sqrt(Math.max(0, sumSq / n - mean * mean)) };
}

export async function evaluatePolicy(
  policy: PolicyModel,
  oracle: RewardOracle,
  set: ImageSet,
  options: EvaluatePolicyOptions,
): Promise<PolicyEvaluation> {
  const { k } = options;
  const total = Math.min(options.limit && options.limit > 0 ? options.limit : set.count, set.count);
  const batchSize = options.batchSize ?? 256;
  const numClasses = options.numClasses ?? set.classes.length;
  const learnable = options.learnable ?? k;
  const penalty = options.penalty ?? 1;
  const classImages = new Array<number>(numClasses).fill(0);
  const classCorrect = new Array<number>(numClasses).fill(0);
  const classBlocks = new Array<number>(numClasses).fill(0);
  const usage = new Array<number>(k).fill(0);
  const policyCounts = new Map<string, number>();
  const flopsCache = new Map<string, number>();
  let correct = 0;
  let rewardSum = 0;
  let blocksSum = 0;
  let blocksSq = 0;
  let flopsSum = 0;
  let flopsSq = 0;
  const started = performance.now();
  for (let start = 0; start < total; start += batchSize) {
    const count = Math.min(batchSize, total - start);
    const indices = Array.from({ length: count }, (_, i) => start + i);
    const images = normalizeBatch(set, indices, options.normalization);
    const probsT = tf.tidy(() =>
      policy.probabilities(tf.tensor4d(images, [count, set.height, set.width, 3]), { training: false }),
    );
    const probs = (await probsT.data()) as Float32Array;
    probsT.dispose();
    const keep = forceLeadingBlocks(greedyPolicy(probs, options.threshold), k, learnable);
    const rowImage = Int32Array.from(indices, (_, i) => i);
    const predicted = await oracle.predict(images, count, keep, rowImage);
    const labels = indices.map((i) => set.labels[i]!);
    const isCorrect = Uint8Array.from(labels, (label, i) => (predicted[i] === label ? 1 : 0));
    const reward = rewards(keep, isCorrect, k, penalty);
    const used = blocksUsed(keep, k);
    for (let i = 0; i < count; i++) {
      const row = keep.subarray(i * k, (i + 1) * k);
      const key = row.join('');
      policyCounts.set(key, (policyCounts.get(key) ?? 0) + 1);
      for (let j = 0; j < k; j++) usage[j]! += row[j]!;
      const label = labels[i]!;
      classImages[label]!++;
      classBlocks[label]! += used[i]!;
      if (isCorrect[i]) {
        correct++;
        classCorrect[label]!++;
      }
      rewardSum += reward[i]!;
      blocksSum += used[i]!;
      blocksSq += used[i]! * used[i]!;
      if (options.flops) {
        let f = flopsCache.get(key);
        if (f === undefined) {
          f = options.flops(row);
          flopsCache.set(key, f);
        }
        flopsSum += f;
        flopsSq += f * f;
      }
    }
    options.onProgress?.(start + count, total);
  }
  const seconds = (performance.now() - started) / 1000;
  const blocks = meanStd(blocksSum, blocksSq, total);
  const flops = meanStd(flopsSum, flopsSq, total);
  const topPolicies = [...policyCounts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, 10)
    .map(([p, images]) => ({ policy: p, images }));
  return {
    images: total,
    correct,
    accuracy: total > 0 ? correct / total : 0,
    reward: total > 0 ? rewardSum / total : 0,
    blocksMean: blocks.mean,
    blocksStd: blocks.std,
    flopsMean: flops.mean,
    flopsStd: flops.std,
    distinctPolicies: policyCounts.size,
    blockUsage: usage.map((u) => (total > 0 ? u / total : 0)),
    perClassAccuracy: classImages.map((n, c) => (n > 0 ? classCorrect[c]! / n : 0)),
    perClassBlocks: classImages.map((n, c) => (n > 0 ? classBlocks[c]! / n : 0)),
    topPolicies,
    imagesPerSecond: seconds > 0 ? total / seconds : 0,
    seconds,
  };
}

export interface PolicyCheckpointEvalOptions {
  /** Backbone checkpoint (PyTorch or blockdrop safetensors; a stage-2 run's policy.safetensors/best carries `resnet.*`). */
  readonly resnet: string;
  /** Policy checkpoint: a run's policy.safetensors, a training checkpoint (`policy.*`) or an original agent. */
  readonly policy: string;
  readonly arch?: string;
  readonly dataDir?: string;
  readonly split: 'train' | 'val' | 'trainval' | 'test';
  readonly limit?: number;
  readonly batchSize?: number;
  readonly engine?: 'auto' | 'tfjs' | 'onnx';
  readonly backend?: 'wasm' | 'cpu';
  /** γ of the reported reward (default 1). */
  readonly penalty?: number;
  /** Policy threshold (default 0.5). */
  readonly threshold?: number;
  readonly onProgress?: (done: number, total: number) => void;
  readonly log?: (message: string) => void;
}

export interface PolicyCheckpointEvaluation extends PolicyEvaluation {
  readonly preset: string;
  readonly split: string;
  readonly k: number;
  /** FLOPs of the full ResNet (every block), without the policy. */
  readonly fullFlops: number;
  readonly policyFlops: number;
  readonly engine: string;
}

/** `blockdrop eval --policy`: load both networks, pick the engine, evaluate the greedy policy on a split. */
export async function evaluatePolicyCheckpoint(options: PolicyCheckpointEvalOptions): Promise<PolicyCheckpointEvaluation> {
  const [{ initBackend }, { loadBackbone }, { PolicyNetwork }, { ResNet }, { loadCifar10 }, flopsModule, models, config] =
    await Promise.all([
      import('../backend/index.js'),
      import('../models/load.js'),
      import('../models/policy.js'),
      import('../models/resnet.js'),
      import('../data/cifar.js'),
      import('../models/flops.js'),
      import('../train/models.js'),
      import('../models/config.js'),
    ]);
  const backbone = await loadBackbone(options.resnet, { arch: options.arch, prefer: ['resnet', 'state_dict', 'net', 'model', ''] });
  await initBackend(options.backend ?? 'wasm');
  const k = config.blockCount(backbone.arch);
  const resnet = ResNet.fromWeights(backbone.arch, backbone.tensors);
  const policy = PolicyNetwork.fromWeights(backbone.arch, await models.loadPolicyWeights(options.policy), { trainable: false });
  const oracle = await models.createRewardOracle(options.engine ?? 'auto', resnet, backbone, options.log);
  try {
    const set = loadCifar10({ dataDir: options.dataDir, split: options.split });
    const policyFlops = flopsModule.policyFlops(backbone.arch);
    const result = await evaluatePolicy(policy, oracle, set, {
      k,
      normalization: backbone.normalization,
      numClasses: backbone.arch.numClasses,
      batchSize: options.batchSize,
      limit: options.limit,
      penalty: options.penalty,
      threshold: options.threshold,
      flops: (keep) => flopsModule.resnetFlops(backbone.arch, keep) + policyFlops,
      onProgress: options.onProgress,
    });
    return {
      ...result,
      preset: backbone.preset,
      split: options.split,
      k,
      fullFlops: flopsModule.resnetFlops(backbone.arch),
      policyFlops,
      engine: oracle.name,
    };
  } finally {
    oracle.dispose();
    policy.dispose();
    resnet.dispose();
  }
}
