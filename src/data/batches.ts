/**
 * Mini-batches: uint8 HWC images → normalised float32 NHWC, with the standard CIFAR augmentation, and an epoch
 * sampler whose position can be saved and resumed.
 */
import { BlockdropError } from '../errors.js';
import { normalizationLut, type Normalization } from '../models/config.js';
import { Rng } from '../util/rng.js';
import { CIFAR_IMAGE_BYTES, type ImageSet } from './cifar.js';

/** Zero padding of the random crop, in pixels (torchvision RandomCrop(32, padding=4)). */
export const CROP_PADDING = 4;

export interface AugmentOptions {
  readonly rng: Rng;
  /**
   * Cutout (DeVries & Taylor 2017): after crop and flip, a square of this side, centred on a uniformly random pixel
   * and clipped at the borders, is set to 0 in normalised space (the mean colour). 0 or absent = off.
   */
  readonly cutout?: number;
}

/**
 * NHWC float32 images normalised with `from`, re-expressed in `to`'s normalisation (a per-channel affine map through
 * pixel space), so that a teacher trained with other input statistics sees the same augmented images as the student.
 */
export function renormalizeBatch(images: Float32Array, from: Normalization, to: Normalization): Float32Array {
  if (images.length % 3 !== 0) throw new RangeError(`renormalizeBatch: ${images.length} floats is not a whole number of RGB pixels`);
  const scale = [0, 1, 2].map((c) => from.std[c]! / to.std[c]!);
  const shift = [0, 1, 2].map((c) => (from.mean[c]! - to.mean[c]!) / to.std[c]!);
  const out = new Float32Array(images.length);
  for (let p = 0; p < images.length; p += 3) {
    for (let c = 0; c < 3; c++) out[p + c] = images[p + c]! * scale[c]! + shift[c]!;
  }
  return out;
}

/**
 * Images `indices` of `set` as float32 NHWC [B, 32, 32, 3] of (x/255 − mean)/std.
 * With `augment`, each image gets, in torchvision order, RandomCrop(32, padding=4) — padding is 0 in pixel
 * space, so padded pixels become (0 − mean)/std — then RandomHorizontalFlip(p=0.5), then the optional cutout.
 * Per image the rng draws the crop top (0..8), the crop left (0..8), the flip, then (with cutout) its centre row
 * and column; without cutout the draws are the same as before cutout existed.
 * `out` (length B×3072) is reused when given.
 */
export function normalizeBatch(
  set: ImageSet,
  indices: ArrayLike<number>,
  normalization: Normalization,
  augment?: AugmentOptions,
  out?: Float32Array,
): Float32Array {
  const batch = indices.length;
  const size = CIFAR_IMAGE_BYTES;
  const side = set.width;
  if (set.width !== 32 || set.height !== 32) throw new RangeError('normalizeBatch: images must be 32×32');
  const result = out ?? new Float32Array(batch * size);
  if (result.length !== batch * size) {
    throw new RangeError(`normalizeBatch: output has ${result.length} floats, expected ${batch * size}`);
  }
  const lut = normalizationLut(normalization);
  const images = set.images;
  for (let b = 0; b < batch; b++) {
    const index = indices[b]!;
    if (!(index >= 0 && index < set.count && Number.isInteger(index))) {
      throw new RangeError(`normalizeBatch: index ${index} outside [0, ${set.count})`);
    }
    const src = index * size;
    const dst = b * size;
    if (!augment) {
      for (let p = 0; p < size; p += 3) {
        result[dst + p] = lut[images[src + p]!]!;
        result[dst + p + 1] = lut[256 + images[src + p + 1]!]!;
        result[dst + p + 2] = lut[512 + images[src + p + 2]!]!;
      }
      continue;
    }
    const rng = augment.rng;
    // Offset of the crop window inside the 40×40 padded image, minus the padding: source = output + shift.
    const dy = rng.nextInt(2 * CROP_PADDING + 1) - CROP_PADDING;
    const dx = rng.nextInt(2 * CROP_PADDING + 1) - CROP_PADDING;
    const flip = rng.bernoulli(0.5);
    const pad0 = lut[0]!;
    const pad1 = lut[256]!;
    const pad2 = lut[512]!;
    for (let y = 0; y < side; y++) {
      const sy = y + dy;
      const rowOut = dst + y * side * 3;
      if (sy < 0 || sy >= side) {
        for (let x = 0; x < side; x++) {
          const o = rowOut + x * 3;
          result[o] = pad0;
          result[o + 1] = pad1;
          result[o + 2] = pad2;
        }
        continue;
      }
      const rowIn = src + sy * side * 3;
      for (let x = 0; x < side; x++) {
        // The flip mirrors the already-cropped image: output column x shows crop column 31 − x.
        const sx = (flip ? side - 1 - x : x) + dx;
        const o = rowOut + x * 3;
        if (sx < 0 || sx >= side) {
          result[o] = pad0;
          result[o + 1] = pad1;
          result[o + 2] = pad2;
        } else {
          const i = rowIn + sx * 3;
          result[o] = lut[images[i]!]!;
          result[o + 1] = lut[256 + images[i + 1]!]!;
          result[o + 2] = lut[512 + images[i + 2]!]!;
        }
      }
    }
    const cutout = augment.cutout ?? 0;
    if (cutout > 0) {
      const cy = rng.nextInt(side);
      const cx = rng.nextInt(side);
      const half = Math.floor(cutout / 2);
      const y0 = Math.max(0, cy - half);
      const y1 = Math.min(side, cy - half + cutout);
      const x0 = Math.max(0, cx - half);
      const x1 = Math.min(side, cx - half + cutout);
      for (let y = y0; y < y1; y++) result.fill(0, dst + (y * side + x0) * 3, dst + (y * side + x1) * 3);
    }
  }
  return result;
}

/** Labels of images `indices`, as int32 (what tf.oneHot and losses take). */
export function batchLabels(set: ImageSet, indices: ArrayLike<number>, out?: Int32Array): Int32Array {
  const result = out ?? new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) result[i] = set.labels[indices[i]!]!;
  return result;
}

// ---------------------------------------------------------------------------------------------------------

export interface SamplerOptions {
  /** Shuffle every epoch (default true). */
  readonly shuffle?: boolean;
  /** Skip the last, smaller batch of an epoch (default false). */
  readonly dropLast?: boolean;
}

/** Everything needed to resume an EpochSampler exactly (JSON-safe). */
export interface SamplerState {
  readonly count: number;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  /** Epochs completed so far (0-based number of the epoch being drawn). */
  readonly epoch: number;
  /** Index into the current epoch's order of the next image to hand out. */
  readonly position: number;
  /** uint32 seed; epoch e's order is a function of (seed, e) only. */
  readonly seed: number;
}

/**
 * Hands out index batches epoch after epoch. Each epoch's order is derived from (seed, epoch) alone, so the state
 * is a few integers and a resumed sampler continues with exactly the batches the original would have produced.
 */
export class EpochSampler {
  readonly count: number;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  private seed: number;
  private epochNumber = 0;
  private position = 0;
  private order: Uint32Array;

  /** The rng is used once, here, to draw the sampler's seed. */
  constructor(count: number, batchSize: number, rng: Rng, options: SamplerOptions = {}) {
    if (!Number.isInteger(count) || count < 1) throw new BlockdropError(`cannot sample batches from ${count} images`);
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new BlockdropError(`batch size ${batchSize} is invalid; use a positive integer`);
    }
    const dropLast = options.dropLast ?? false;
    if (dropLast && batchSize > count) {
      throw new BlockdropError(
        `batch size ${batchSize} is larger than the ${count} images and the last partial batch is dropped: no batch would ever be made`,
      );
    }
    this.count = count;
    this.batchSize = batchSize;
    this.shuffle = options.shuffle ?? true;
    this.dropLast = dropLast;
    this.seed = rng.nextUint32();
    this.order = this.orderFor(0);
  }

  static fromState(state: SamplerState): EpochSampler {
    const ok =
      state !== null &&
      typeof state === 'object' &&
      [state.count, state.batchSize, state.epoch, state.position, state.seed].every(
        (v) => Number.isInteger(v) && v >= 0,
      ) &&
      state.seed < 2 ** 32 &&
      state.position <= state.count &&
      typeof state.shuffle === 'boolean' &&
      typeof state.dropLast === 'boolean';
    if (!ok) throw new BlockdropError(`invalid batch sampler state ${JSON.stringify(state)}; is the checkpoint corrupt?`);
    // The seed-drawing rng is irrelevant: the seed is overwritten below.
    const sampler = new EpochSampler(state.count, state.batchSize, new Rng(0), {
      shuffle: state.shuffle,
      dropLast: state.dropLast,
    });
    sampler.seed = state.seed;
    sampler.epochNumber = state.epoch;
    sampler.position = state.position;
    sampler.order = sampler.orderFor(state.epoch);
    return sampler;
  }

  state(): SamplerState {
    return {
      count: this.count,
      batchSize: this.batchSize,
      shuffle: this.shuffle,
      dropLast: this.dropLast,
      epoch: this.epochNumber,
      position: this.position,
      seed: this.seed,
    };
  }

  /** 0-based number of the epoch the next batch belongs to. */
  get epoch(): number {
    return this.epochNumber;
  }

  /** Batches per full epoch. */
  get batchesPerEpoch(): number {
    return this.dropLast ? Math.floor(this.count / this.batchSize) : Math.ceil(this.count / this.batchSize);
  }

  /** Batches still to come in the current epoch. */
  get remainingInEpoch(): number {
    const left = this.count - this.position;
    return this.dropLast ? Math.floor(left / this.batchSize) : Math.ceil(left / this.batchSize);
  }

  /** The next batch of indices; rolls over into the next epoch when the current one is used up. */
  nextBatch(): Uint32Array {
    if (this.remainingInEpoch === 0) this.startEpoch(this.epochNumber + 1);
    const end = Math.min(this.position + this.batchSize, this.count);
    const batch = this.order.slice(this.position, end);
    this.position = end;
    if (this.remainingInEpoch === 0) this.startEpoch(this.epochNumber + 1);
    return batch;
  }

  /** The remaining batches of the current epoch; afterwards the sampler stands at the start of the next. */
  *epochBatches(): Generator<Uint32Array, void, undefined> {
    const epoch = this.epochNumber;
    while (this.epochNumber === epoch && this.remainingInEpoch > 0) yield this.nextBatch();
  }

  private startEpoch(epoch: number): void {
    this.epochNumber = epoch;
    this.position = 0;
    this.order = this.orderFor(epoch);
  }

  private orderFor(epoch: number): Uint32Array {
    const order = new Uint32Array(this.count);
    for (let i = 0; i < this.count; i++) order[i] = i;
    if (this.shuffle) new Rng(this.seed * 1_000_003 + epoch).shuffle(order);
    return order;
  }
}
