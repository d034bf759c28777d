/**
 * The paper's heuristic baselines at a block budget k (Table 1), on a frozen backbone:
 *   FirstK       the first k blocks, the same for every image;
 *   RandomK      k blocks drawn uniformly without replacement, independently per image (seeded);
 *   DistributeK  k blocks spread evenly over the stages (k_s per stage, proportional to the stage sizes,
 *                largest remainders to the earlier stages), the first k_s blocks of each stage.
 * The original repository has no code for them; these definitions follow the paper's wording.
 *
 * FLOPs follow BlockDrop's convention (2·MACs of convs and linears, parameter-free shortcuts free) and count the
 * backbone only: a baseline has no policy network. `policyFlops` is reported beside them for comparison with
 * BlockDrop's numbers, which include it.
 */
import type { ImageSet } from '../data/cifar.js';
import { loadCifar10 } from '../data/cifar.js';
import { normalizeBatch } from '../data/batches.js';
import { BlockdropError } from '../errors.js';
import { blockCount, type Normalization, type ResNetConfig } from '../models/config.js';
import { blockFlops, policyFlops, stemAndHeadFlops } from '../models/flops.js';
import { loadBackbone, type LoadedBackbone } from '../models/load.js';
import type { RewardOracle } from '../train/models.js';
import { Rng } from '../util/rng.js';
import { openBackboneEngine, type BackboneRunOptions } from './engine.js';

export type BaselineKind = 'firstK' | 'randomK' | 'distributeK';
export const BASELINE_KINDS: readonly BaselineKind[] = ['firstK', 'randomK', 'distributeK'];

/** What every FLOP figure of a baseline evaluation means. */
export const BASELINE_FLOPS_CONVENTION =
  "BlockDrop's: 2 x MACs of every conv and linear layer executed per image; BN, ReLU, pooling, additions and " +
  'parameter-free shortcuts count 0; backbone only, no policy network (the baselines have none)';

function checkK(K: number, k: number): void {
  if (!Number.isInteger(k) || k < 0 || k > K) {
    throw new BlockdropError(`block budget k = ${k} is invalid; use an integer from 0 to ${K} (the backbone's blocks)`);
  }
}

/** Kept blocks per stage for DistributeK: proportional to the stage sizes, largest remainders first (earlier stage on ties). */
export function distributeKPerStage(blocksPerStage: readonly number[], k: number): number[] {
  const K = blocksPerStage.reduce((a, b) => a + b, 0);
  checkK(K, k);
  const exact = blocksPerStage.map((n) => (k * n) / K);
  const counts = exact.map((x) => Math.floor(x));
  let left = k - counts.reduce((a, b) => a + b, 0);
  const order = exact
    .map((x, s) => ({ s, r: x - Math.floor(x) }))
    .sort((a, b) => b.r - a.r || a.s - b.s);
  for (const { s } of order) {
    if (left === 0) break;
    if (counts[s]! < blocksPerStage[s]!) {
      counts[s]!++;
      left--;
    }
  }
  return counts;
}

/** The one mask FirstK / DistributeK use for every image (K values, 1 = execute). */
export function staticBaselineMask(kind: 'firstK' | 'distributeK', arch: Pick<ResNetConfig, 'blocksPerStage'>, k: number): Uint8Array {
  const K = arch.blocksPerStage.reduce((a, b) => a + b, 0);
  checkK(K, k);
  const mask = new Uint8Array(K);
  if (kind === 'firstK') {
    mask.fill(1, 0, k);
    return mask;
  }
  const perStage = distributeKPerStage(arch.blocksPerStage, k);
  let offset = 0;
  arch.blocksPerStage.forEach((n, s) => {
    mask.fill(1, offset, offset + perStage[s]!);
    offset += n;
  });
  return mask;
}

/**
 * Writes k distinct random blocks into `row` (zeroed first): a partial Fisher–Yates shuffle, exactly k draws
 * from `rng`. Images are drawn in order, so the first n images get the same masks whatever the limit.
 */
function randomKRow(rng: Rng, row: Uint8Array, k: number, scratch: Int32Array): void {
  const K = row.length;
  for (let i = 0; i < K; i++) scratch[i] = i;
  row.fill(0);
  for (let i = 0; i < k; i++) {
    const j = i + rng.nextInt(K - i);
    const t = scratch[j]!;
    scratch[j] = scratch[i]!;
    scratch[i] = t;
    row[t] = 1;
  }
}

export interface BaselineMaskOptions {
  /** RandomK only (default 0). */
  readonly seed?: number;
  /** Number of images, i.e. mask rows (default 1). */
  readonly images?: number;
}

/** Keep masks of a baseline for `images` images: images × K, row-major, 1 = execute block. */
export function baselineMasks(
  kind: BaselineKind,
  arch: Pick<ResNetConfig, 'blocksPerStage'>,
  k: number,
  options: BaselineMaskOptions = {},
): Uint8Array {
  const K = arch.blocksPerStage.reduce((a, b) => a + b, 0);
  checkK(K, k);
  const images = options.images ?? 1;
  if (!Number.isInteger(images) || images < 0) throw new BlockdropError(`image count ${images} is invalid; use a non-negative integer`);
  const out = new Uint8Array(images * K);
  if (kind === 'randomK') {
    const gen = randomKGenerator(K, k, options.seed ?? 0);
    for (let i = 0; i < images; i++) gen(out.subarray(i * K, (i + 1) * K));
    return out;
  }
  const mask = staticBaselineMask(kind, arch, k);
  for (let i = 0; i < images; i++) out.set(mask, i * K);
  return out;
}

function randomKGenerator(K: number, k: number, seed: number): (row: Uint8Array) => void {
  const rng = new Rng(seed);
  const scratch = new Int32Array(K);
  return (row) => randomKRow(rng, row, k, scratch);
}

// ---------------------------------------------------------------------------------------------------
// evaluation

/** Accuracy, blocks and FLOPs of one family of keep masks on a set of images. */
export interface MaskResult {
  readonly images: number;
  readonly correct: number;
  readonly accuracy: number;
  readonly blocksMean: number;
  /** Population std over images (as BlockDrop's test.py). */
  readonly blocksStd: number;
  /** Backbone FLOPs per image (no policy network), mean and population std over images. */
  readonly flopsMean: number;
  readonly flopsStd: number;
  readonly distinctPolicies: number;
  /** Fraction of images that execute block t. */
  readonly blockUsage: number[];
  readonly perClassAccuracy: number[];
}

export interface StaticBaselineResult extends MaskResult {
  /** The mask every image uses, '1' = executed, in block order. */
  readonly mask: string;
  /** DistributeK: kept blocks per stage. */
  readonly perStage: number[];
}

export interface RandomKResult {
  readonly seeds: number[];
  /** Mean over seeds of the accuracy. */
  readonly accuracyMean: number;
  /** Sample standard deviation (n − 1) over seeds; 0 for a single seed. */
  readonly accuracyStd: number;
  /** Always k. */
  readonly blocksMean: number;
  /** Mean over every image of every seed. */
  readonly flopsMean: number;
  /** Population std over every image of every seed. */
  readonly flopsStd: number;
  readonly perSeed: MaskResult[];
}

export interface BaselineEvaluation {
  readonly kind: 'blockdrop-baselines';
  readonly version: 1;
  readonly backbone: { readonly preset: string; readonly source: string };
  readonly split: string;
  readonly images: number;
  /** The block budget. */
  readonly k: number;
  /** Blocks of the backbone. */
  readonly K: number;
  readonly flops: {
    readonly convention: string;
    readonly includesPolicy: false;
    /** The whole backbone. */
    readonly full: number;
    /** BlockDrop's policy network for this backbone: add it to compare with BlockDrop's FLOPs. */
    readonly policy: number;
  };
  readonly engine: string;
  /** Every block executed (absent when not requested). */
  readonly full?: MaskResult;
  readonly firstK: StaticBaselineResult;
  readonly distributeK: StaticBaselineResult;
  readonly randomK: RandomKResult;
  readonly seconds: number;
}

class Accumulator {
  correct = 0;
  images = 0;
  blocksSum = 0;
  blocksSq = 0;
  flopsSum = 0;
  flopsSq = 0;
  readonly usage: Float64Array;
  readonly classImages: Float64Array;
  readonly classCorrect: Float64Array;
  readonly policies = new Set<string>();

  constructor(
    private readonly K: number,
    numClasses: number,
    private readonly perBlockFlops: readonly number[],
    private readonly baseFlops: number,
  ) {
    this.usage = new Float64Array(K);
    this.classImages = new Float64Array(numClasses);
    this.classCorrect = new Float64Array(numClasses);
  }

  add(keep: Uint8Array, labels: ArrayLike<number>, predicted: Int32Array): void {
    const K = this.K;
    for (let i = 0; i < labels.length; i++) {
      let blocks = 0;
      let flops = this.baseFlops;
      let key = '';
      for (let t = 0; t < K; t++) {
        const v = keep[i * K + t]!;
        key += v ? '1' : '0';
        if (v) {
          blocks++;
          flops += this.perBlockFlops[t]!;
          this.usage[t]!++;
        }
      }
      this.policies.add(key);
      this.blocksSum += blocks;
      this.blocksSq += blocks * blocks;
      this.flopsSum += flops;
      this.flopsSq += flops * flops;
      const label = labels[i]!;
      this.classImages[label]!++;
      if (predicted[i] === label) {
        this.correct++;
        this.classCorrect[label]!++;
      }
      this.images++;
    }
  }

  result(): MaskResult {
    const n = this.images;
    const mean = (s: number) => (n > 0 ? s / n : 0);
    const std = (s: number, sq: number) => (n > 0 ? Math.sqrt(Math.max(0, sq / n - (s / n) ** 2)) : 0);
    return {
      images: n,
      correct: this.correct,
      accuracy: mean(this.correct),
      blocksMean: mean(this.blocksSum),
      blocksStd: std(this.blocksSum, this.blocksSq),
      flopsMean: mean(this.flopsSum),
      flopsStd: std(this.flopsSum, this.flopsSq),
      distinctPolicies: this.policies.size,
      blockUsage: Array.from(this.usage, (u) => (n > 0 ? u / n : 0)),
      perClassAccuracy: Array.from(this.classImages, (m, c) => (m > 0 ? this.classCorrect[c]! / m : 0)),
    };
  }
}

/** Mean and sample (n − 1) standard deviation. */
export function meanSampleStd(values: readonly number[]): { mean: number; std: number } {
  const n = values.length;
  if (n === 0) return { mean: 0, std: 0 };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, std: 0 };
  const ss = values.reduce((a, v) => a + (v - mean) ** 2, 0);
  return { mean, std: Math.sqrt(ss / (n - 1)) };
}

export interface EvaluateBaselinesOnOptions {
  readonly arch: ResNetConfig;
  readonly normalization: Normalization;
  /** The block budget. */
  readonly k: number;
  /** RandomK seeds (default 0–4). */
  readonly seeds?: readonly number[];
  /** Only the first n images of the set. */
  readonly limit?: number;
  /** Also evaluate the full network (default true). */
  readonly includeFull?: boolean;
  readonly batchSize?: number;
  readonly backbone?: { readonly preset: string; readonly source: string };
  readonly split?: string;
  readonly engineName?: string;
  readonly onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_RANDOMK_SEEDS: readonly number[] = [0, 1, 2, 3, 4];

/** The baselines with any engine that runs keep masks (the ONNX executor, the tfjs forward, or a test double). */
export async function evaluateBaselinesOn(
  oracle: RewardOracle,
  set: ImageSet,
  options: EvaluateBaselinesOnOptions,
): Promise<BaselineEvaluation> {
  const { arch, k } = options;
  const K = blockCount(arch);
  checkK(K, k);
  const seeds = [...(options.seeds ?? DEFAULT_RANDOMK_SEEDS)];
  if (seeds.length === 0) throw new BlockdropError('RandomK needs at least one seed; pass --seeds');
  const total = Math.min(options.limit && options.limit > 0 ? options.limit : set.count, set.count);
  const batchSize = options.batchSize ?? 250;
  const numClasses = Math.max(arch.numClasses, set.classes.length);
  const perBlock = blockFlops(arch);
  const base = stemAndHeadFlops(arch).total;
  const acc = () => new Accumulator(K, numClasses, perBlock, base);

  const firstMask = staticBaselineMask('firstK', arch, k);
  const distMask = staticBaselineMask('distributeK', arch, k);
  const fullMask = new Uint8Array(K).fill(1);
  type Variant = { acc: Accumulator; rows: (count: number) => Uint8Array };
  const repeat = (mask: Uint8Array) => (count: number) => {
    const out = new Uint8Array(count * K);
    for (let i = 0; i < count; i++) out.set(mask, i * K);
    return out;
  };
  const full: Variant | undefined = options.includeFull === false ? undefined : { acc: acc(), rows: repeat(fullMask) };
  const first: Variant = { acc: acc(), rows: repeat(firstMask) };
  const dist: Variant = { acc: acc(), rows: repeat(distMask) };
  const random: Variant[] = seeds.map((seed) => {
    const gen = randomKGenerator(K, k, seed);
    return {
      acc: acc(),
      rows: (count: number) => {
        const out = new Uint8Array(count * K);
        for (let i = 0; i < count; i++) gen(out.subarray(i * K, (i + 1) * K));
        return out;
      },
    };
  });
  const variants = [...(full ? [full] : []), first, dist, ...random];

  const started = performance.now();
  for (let start = 0; start < total; start += batchSize) {
    const count = Math.min(batchSize, total - start);
    const indices = Array.from({ length: count }, (_, i) => start + i);
    const images = normalizeBatch(set, indices, options.normalization);
    const labels = set.labels.subarray(start, start + count);
    const rowImage = Int32Array.from(indices, (_, i) => i);
    for (const v of variants) {
      const keep = v.rows(count);
      const predicted = await oracle.predict(images, count, keep, rowImage);
      v.acc.add(keep, labels, predicted);
    }
    options.onProgress?.(start + count, total);
  }
  const seconds = (performance.now() - started) / 1000;

  const perSeed = random.map((v) => v.acc.result());
  const accStats = meanSampleStd(perSeed.map((r) => r.accuracy));
  const pooled = random.reduce(
    (s, v) => ({ n: s.n + v.acc.images, sum: s.sum + v.acc.flopsSum, sq: s.sq + v.acc.flopsSq }),
    { n: 0, sum: 0, sq: 0 },
  );
  const flopsMean = pooled.n > 0 ? pooled.sum / pooled.n : 0;
  return {
    kind: 'blockdrop-baselines',
    version: 1,
    backbone: options.backbone ?? { preset: arch.name, source: '' },
    split: options.split ?? '',
    images: total,
    k,
    K,
    flops: {
      convention: BASELINE_FLOPS_CONVENTION,
      includesPolicy: false,
      full: base + perBlock.reduce((a, b) => a + b, 0),
      policy: arch.stem === 'cifar' ? policyFlops(arch) : 0,
    },
    engine: options.engineName ?? oracle.name,
    ...(full ? { full: full.acc.result() } : {}),
    firstK: { ...first.acc.result(), mask: [...firstMask].join(''), perStage: perStageCounts(arch, firstMask) },
    distributeK: { ...dist.acc.result(), mask: [...distMask].join(''), perStage: perStageCounts(arch, distMask) },
    randomK: {
      seeds,
      accuracyMean: accStats.mean,
      accuracyStd: accStats.std,
      blocksMean: k,
      flopsMean,
      flopsStd: pooled.n > 0 ? Math.sqrt(Math.max(0, pooled.sq / pooled.n - flopsMean ** 2)) : 0,
      perSeed,
    },
    seconds,
  };
}

function perStageCounts(arch: Pick<ResNetConfig, 'blocksPerStage'>, mask: Uint8Array): number[] {
  let offset = 0;
  return arch.blocksPerStage.map((n) => {
    let c = 0;
    for (let t = offset; t < offset + n; t++) c += mask[t]!;
    offset += n;
    return c;
  });
}

export interface EvaluateBaselinesOptions extends BackboneRunOptions {
  /** Backbone checkpoint path, or an already loaded backbone. */
  readonly backbone: string | LoadedBackbone;
  /** Architecture preset when `backbone` is a path (detected otherwise). */
  readonly arch?: string;
  /** One budget, or several (a sweep for the trade-off plot; the full network is evaluated once, with the first). */
  readonly k: number | readonly number[];
  readonly seeds?: readonly number[];
  readonly onProgress?: (done: number, total: number, k: number) => void;
}

/**
 * FirstK, RandomK (mean ± std over seeds) and DistributeK at budget(s) k, plus the full network, on a CIFAR-10
 * split. Returns one evaluation per k, in the order given.
 */
export async function evaluateBaselines(options: EvaluateBaselinesOptions): Promise<BaselineEvaluation[]> {
  const backbone = typeof options.backbone === 'string' ? await loadBackbone(options.backbone, { arch: options.arch }) : options.backbone;
  const split = options.split ?? 'test';
  const set = options.set ?? loadCifar10({ dataDir: options.dataDir, split });
  const ks = typeof options.k === 'number' ? [options.k] : [...options.k];
  const K = blockCount(backbone.arch);
  for (const k of ks) checkK(K, k);
  const engine = await openBackboneEngine(backbone, { engine: options.engine, threads: options.threads, log: options.log });
  try {
    const out: BaselineEvaluation[] = [];
    for (const [i, k] of ks.entries()) {
      out.push(
        await evaluateBaselinesOn(engine.oracle, set, {
          arch: backbone.arch,
          normalization: backbone.normalization,
          k,
          seeds: options.seeds,
          limit: options.limit,
          includeFull: i === 0,
          batchSize: options.batchSize,
          backbone: { preset: backbone.preset, source: backbone.source },
          split: options.set ? 'given' : split,
          engineName: engine.oracle.name,
          onProgress: options.onProgress ? (d, t) => options.onProgress!(d, t, k) : undefined,
        }),
      );
    }
    return out;
  } finally {
    await engine.close();
  }
}
