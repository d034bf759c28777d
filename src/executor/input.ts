/** Turning user images into the exported graphs' input: normalised NCHW float32. */
import { BlockdropError } from '../errors.js';
import { normalizationLut, type Normalization } from '../models/config.js';

export type ImageLayout = 'nhwc' | 'nchw';

export interface ImageInputOptions {
  /**
   * Shape of the batch as the caller has it, [N, H, W, C] (NHWC) or [N, C, H, W] (NCHW); checked
   * against the model. Without it the image count is inferred from the length.
   */
  readonly shape?: readonly number[];
  /** Layout of a Float32Array input (uint8 input is always HWC). Default 'nhwc'. */
  readonly layout?: ImageLayout;
}

/** NaN or ±Infinity in a float batch would come out as NaN logits and an arbitrary class: refuse it, naming where. */
function assertFiniteImages(images: Float32Array, perImage: number): void {
  for (let i = 0; i < images.length; i++) {
    const x = images[i]!;
    if (x - x !== 0) {
      const what = Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity';
      throw new BlockdropError(
        `image ${Math.floor(i / perImage)} holds ${what} (value ${i % perImage} of ${perImage}); pass finite pixel values (check the decoding and normalisation)`,
      );
    }
  }
}

/**
 * Checks a batch of images against the model's input size (type, shape, whole images, finite values) and
 * returns the image count and layout: the validation of `toNchwInput`, for callers that pass the raw batch on
 * (e.g. `BlockDropPool` splits it between workers).
 */
export function checkImageBatch(
  images: Uint8Array | Float32Array,
  side: number,
  options: ImageInputOptions = {},
): { count: number; layout: ImageLayout } {
  const isUint8 = images instanceof Uint8Array;
  if (!isUint8 && !(images instanceof Float32Array)) {
    throw new BlockdropError('images must be a Uint8Array (N×H×W×3 RGB pixels) or a Float32Array (normalised)');
  }
  const layout: ImageLayout = isUint8 ? 'nhwc' : (options.layout ?? 'nhwc');
  const perImage = side * side * 3;
  const expect = layout === 'nhwc' ? `N×${side}×${side}×3 (HWC)` : `N×3×${side}×${side} (CHW)`;
  if (options.shape) {
    const s = options.shape;
    const [h, w, c] = layout === 'nhwc' ? [s[1], s[2], s[3]] : [s[2], s[3], s[1]];
    if (s.length !== 4) throw new BlockdropError(`images must have 4 dimensions ${expect}, got [${s.join(', ')}]`);
    if (c !== 3) throw new BlockdropError(`images must have 3 channels (RGB), got ${c}; convert them to RGB first`);
    if (h !== side || w !== side) {
      throw new BlockdropError(`images must be ${side}×${side}, got ${h}×${w}; resize them first (e.g. decodeImageFile)`);
    }
    if (s[0]! * perImage !== images.length) {
      throw new BlockdropError(`image data holds ${images.length} values but the shape [${s.join(', ')}] needs ${s[0]! * perImage}`);
    }
  }
  if (images.length === 0 || images.length % perImage !== 0) {
    throw new BlockdropError(
      `image data holds ${images.length} values, not a whole number of ${side}×${side}×3 images; expected ${expect} ` +
        `(${perImage} values per image)`,
    );
  }
  if (!isUint8) assertFiniteImages(images as Float32Array, perImage);
  return { count: images.length / perImage, layout };
}

/**
 * Uint8Array: N×H×W×3 RGB pixels (0–255), HWC, normalised here.
 * Float32Array: already normalised, NHWC (default, what `normalizeBatch` returns) or NCHW.
 * Returns the NCHW float32 batch and N.
 */
export function toNchwInput(
  images: Uint8Array | Float32Array,
  side: number,
  normalization: Normalization,
  options: ImageInputOptions = {},
): { data: Float32Array; count: number } {
  const { count, layout } = checkImageBatch(images, side, options);
  const isUint8 = images instanceof Uint8Array;
  const perImage = side * side * 3;
  const hw = side * side;
  if (!isUint8 && layout === 'nchw') return { data: images as Float32Array, count };
  const out = new Float32Array(images.length);
  if (isUint8) {
    const lut = normalizationLut(normalization);
    for (let n = 0; n < count; n++) {
      const src = n * perImage;
      const dst = n * perImage;
      for (let p = 0; p < hw; p++) {
        out[dst + p] = lut[images[src + 3 * p]!]!;
        out[dst + hw + p] = lut[256 + images[src + 3 * p + 1]!]!;
        out[dst + 2 * hw + p] = lut[512 + images[src + 3 * p + 2]!]!;
      }
    }
    return { data: out, count };
  }
  for (let n = 0; n < count; n++) {
    const base = n * perImage;
    for (let p = 0; p < hw; p++) {
      out[base + p] = images[base + 3 * p]!;
      out[base + hw + p] = images[base + 3 * p + 1]!;
      out[base + 2 * hw + p] = images[base + 3 * p + 2]!;
    }
  }
  return { data: out, count };
}
