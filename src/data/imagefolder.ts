/**
 * ImageNet-style data: a folder of class subfolders of JPEG / PNG files (torchvision's `ImageFolder`
 * layout, e.g. `imagenet/val/n01440764/ILSVRC2012_val_00000293.JPEG`), read as a stream of batches.
 *
 * - Scanning lists file names only; images are read and decoded batch by batch, with a bounded number
 *   of file reads in flight, so memory stays at about one batch plus `prefetch` compressed files
 *   whatever the size of the folder.
 * - Evaluation transform: shorter side resized to 256, centre crop 224 (torchvision
 *   `Resize(256)` + `CenterCrop(224)`, what BlockDrop's `utils.py` does for ImageNet testing).
 * - Training transforms: `random-resized` (torchvision `RandomResizedCrop(224)`, scale 0.08–1, aspect
 *   ratio 3/4–4/3) or `resize-random-crop` (BlockDrop's original: `Scale(256)` + `RandomCrop(224)`),
 *   then a horizontal flip with probability 1/2. Seeded.
 * - Batches are uint8 RGB HWC (what the ONNX executor takes); `normalizeImages` gives float32 NHWC with
 *   the ImageNet mean / std for the tfjs models.
 *
 * Resizing uses area averaging (`resizeArea`): for downscaling it is an antialiased filter, like PIL's
 * resize behind torchvision; pixel values can differ from PIL's bilinear by a few levels.
 */
import { readdirSync, statSync, type Dirent } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import { BlockdropError } from '../errors.js';
import { NORMALIZATIONS, normalizationLut, type Normalization } from '../models/config.js';
import { Rng } from '../util/rng.js';
import { decodeImageRgb } from './image.js';
import { resizeArea } from './resize.js';

/** Extensions read (case-insensitive); other files are skipped and counted. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png'];

/** Evaluation: resize the shorter side to this, then centre-crop `CROP_SIZE`. */
export const RESIZE_SIZE = 256;
export const CROP_SIZE = 224;

export interface ImageFolderSample {
  /** Path relative to the root. */
  readonly file: string;
  readonly label: number;
}

export interface ImageFolderIndex {
  readonly root: string;
  /** Class folder names, sorted (label = position), as torchvision's ImageFolder. */
  readonly classes: readonly string[];
  /** Every image, class by class, file names sorted within a class. */
  readonly samples: readonly ImageFolderSample[];
  readonly classCounts: readonly number[];
  /** Files skipped for their extension (e.g. a stray .txt). */
  readonly skipped: number;
}

export interface ScanOptions {
  /** Accept class folders without images (default false: an empty class is usually a broken copy). */
  readonly allowEmptyClasses?: boolean;
  /** Subfolder depth searched inside a class folder (default 8; torchvision walks without limit). */
  readonly maxDepth?: number;
}

function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

function listDir(dir: string, what: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new BlockdropError(`${dir}: cannot read the ${what} (${code}); check the path and its permissions`, { cause: e });
  }
}

/** Entry is a directory (symlinks followed, as torchvision does). */
function isDir(dir: string, entry: Dirent): boolean {
  if (entry.isDirectory()) return true;
  if (!entry.isSymbolicLink()) return false;
  try {
    return statSync(join(dir, entry.name)).isDirectory();
  } catch {
    return false;
  }
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Lists an ImageFolder tree: `root/<class>/**\/<image>.{jpg,jpeg,png}`. Hidden entries (dot files) are
 * ignored. Throws a one-line BlockdropError for a missing root, a root without class folders, and (unless
 * `allowEmptyClasses`) class folders without images.
 */
export function scanImageFolder(root: string, options: ScanOptions = {}): ImageFolderIndex {
  const layout = `expected ${join(root, '<class>', '<image>.JPEG')} (torchvision ImageFolder layout, e.g. imagenet/val)`;
  let stat;
  try {
    stat = statSync(root);
  } catch {
    throw new BlockdropError(`${root}: no such directory; ${layout}`);
  }
  if (!stat.isDirectory()) throw new BlockdropError(`${root} is a file, not a directory; ${layout}`);
  const top = listDir(root, 'image folder').filter((e) => !e.name.startsWith('.'));
  const classes = top.filter((e) => isDir(root, e)).map((e) => e.name).sort(byCodePoint);
  if (classes.length === 0) {
    const images = top.filter((e) => isImageFile(e.name)).length;
    const hint = images > 0 ? ` (it holds ${images} images directly: put them in one subfolder per class)` : '';
    throw new BlockdropError(`${root} has no class subfolders${hint}; ${layout}`);
  }
  const maxDepth = options.maxDepth ?? 8;
  const samples: ImageFolderSample[] = [];
  const classCounts: number[] = [];
  let skipped = 0;
  const empty: string[] = [];
  classes.forEach((name, label) => {
    const files: string[] = [];
    const walk = (dir: string, depth: number) => {
      const entries = listDir(dir, 'class folder').filter((e) => !e.name.startsWith('.'));
      for (const e of entries) {
        if (isDir(dir, e)) {
          if (depth < maxDepth) walk(join(dir, e.name), depth + 1);
        } else if (isImageFile(e.name)) files.push(relative(root, join(dir, e.name)));
        else skipped++;
      }
    };
    walk(join(root, name), 0);
    files.sort(byCodePoint);
    if (files.length === 0) empty.push(name);
    classCounts.push(files.length);
    for (const file of files) samples.push({ file, label });
  });
  if (empty.length > 0 && !options.allowEmptyClasses) {
    const more = empty.length > 3 ? ` and ${empty.length - 3} more` : '';
    throw new BlockdropError(
      `${root}: class folder${empty.length > 1 ? 's' : ''} ${empty.slice(0, 3).map((c) => `'${c}'`).join(', ')}${more} ` +
        `hold${empty.length > 1 ? '' : 's'} no ${IMAGE_EXTENSIONS.join('/')} images; remove ${empty.length > 1 ? 'them' : 'it'} or complete the copy`,
    );
  }
  return { root, classes, samples, classCounts, skipped };
}

// ---------------------------------------------------------------------------------------------------
// transforms (RGB8 HWC in, side×side RGB8 HWC out)

export type TrainCrop = 'random-resized' | 'resize-random-crop';

export type ImageTransform =
  | { readonly kind: 'eval'; readonly resize?: number; readonly crop?: number }
  | {
      readonly kind: 'train';
      readonly crop?: number;
      /** Default 'random-resized'. */
      readonly mode?: TrainCrop;
      /** RandomResizedCrop area range (default [0.08, 1]). */
      readonly scale?: readonly [number, number];
      /** RandomResizedCrop aspect-ratio range (default [3/4, 4/3]). */
      readonly ratio?: readonly [number, number];
      /** resize-random-crop: shorter side before the crop (default 256). */
      readonly resize?: number;
      /** Horizontal flip with probability 1/2 (default true). */
      readonly flip?: boolean;
    };

export interface RgbImage {
  readonly rgb: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/** Output side of a transform. */
export function transformSize(t: ImageTransform): number {
  return t.crop ?? CROP_SIZE;
}

/** The rectangle [left, top, width, height] of an image. */
function cropRgb(img: RgbImage, left: number, top: number, width: number, height: number): RgbImage {
  if (left === 0 && top === 0 && width === img.width && height === img.height) return img;
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const src = ((top + y) * img.width + left) * 3;
    out.set(img.rgb.subarray(src, src + width * 3), y * width * 3);
  }
  return { rgb: out, width, height };
}

/** torchvision Resize(size): the shorter side becomes `size`, the longer one int(size · long / short). */
export function resizeShorterSide(img: RgbImage, size: number): RgbImage {
  const { width, height } = img;
  const [w, h] = width <= height ? [size, Math.floor((size * height) / width)] : [Math.floor((size * width) / height), size];
  if (w === width && h === height) return img;
  return { rgb: resizeArea(img.rgb, width, height, w, h), width: w, height: h };
}

/** torchvision CenterCrop(size) (offsets round((W − size) / 2)); smaller images are zero-padded first, as torchvision does. */
export function centerCrop(img: RgbImage, size: number): RgbImage {
  let src = img;
  if (img.width < size || img.height < size) {
    const w = Math.max(size, img.width);
    const h = Math.max(size, img.height);
    const padded = new Uint8Array(w * h * 3);
    const left = Math.floor((w - img.width) / 2);
    const top = Math.floor((h - img.height) / 2);
    for (let y = 0; y < img.height; y++) padded.set(img.rgb.subarray(y * img.width * 3, (y + 1) * img.width * 3), ((top + y) * w + left) * 3);
    src = { rgb: padded, width: w, height: h };
  }
  const left = Math.round((src.width - size) / 2);
  const top = Math.round((src.height - size) / 2);
  return cropRgb(src, left, top, size, size);
}

/** Evaluation transform: shorter side → `resize`, centre crop `crop` (default 256 / 224). */
export function evalTransform(img: RgbImage, resize = RESIZE_SIZE, crop = CROP_SIZE): Uint8Array {
  return centerCrop(resizeShorterSide(img, resize), crop).rgb;
}

/** torchvision RandomResizedCrop.get_params: a crop of random area and aspect ratio (10 tries, then a centre crop). */
export function randomResizedCropBox(
  width: number,
  height: number,
  rng: Rng,
  scale: readonly [number, number] = [0.08, 1],
  ratio: readonly [number, number] = [3 / 4, 4 / 3],
): { left: number; top: number; width: number; height: number } {
  const area = width * height;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])] as const;
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (scale[0] + rng.next() * (scale[1] - scale[0]));
    const aspect = Math.exp(logRatio[0] + rng.next() * (logRatio[1] - logRatio[0]));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      return { left: rng.nextInt(width - w + 1), top: rng.nextInt(height - h + 1), width: w, height: h };
    }
  }
  // Fallback: the whole image, cropped to the nearest allowed aspect ratio, centred.
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.round(w / ratio[0]);
  else if (inRatio > ratio[1]) w = Math.round(h * ratio[1]);
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

function flipHorizontal(rgb: Uint8Array, side: number): void {
  for (let y = 0; y < side; y++) {
    const row = y * side * 3;
    for (let x = 0; x < side >> 1; x++) {
      const a = row + x * 3;
      const b = row + (side - 1 - x) * 3;
      for (let c = 0; c < 3; c++) {
        const t = rgb[a + c]!;
        rgb[a + c] = rgb[b + c]!;
        rgb[b + c] = t;
      }
    }
  }
}

/** Training transform (random crop + flip), seeded by `rng`. Draw order: crop, then flip. */
export function trainTransform(img: RgbImage, rng: Rng, t: Extract<ImageTransform, { kind: 'train' }> = { kind: 'train' }): Uint8Array {
  const side = t.crop ?? CROP_SIZE;
  let out: Uint8Array;
  if ((t.mode ?? 'random-resized') === 'random-resized') {
    const box = randomResizedCropBox(img.width, img.height, rng, t.scale, t.ratio);
    const crop = cropRgb(img, box.left, box.top, box.width, box.height);
    out = crop.width === side && crop.height === side ? Uint8Array.from(crop.rgb) : resizeArea(crop.rgb, crop.width, crop.height, side, side);
  } else {
    let resized = resizeShorterSide(img, t.resize ?? RESIZE_SIZE);
    if (resized.width < side || resized.height < side) resized = centerCrop(resized, Math.max(side, resized.width, resized.height));
    const left = rng.nextInt(resized.width - side + 1);
    const top = rng.nextInt(resized.height - side + 1);
    out = Uint8Array.from(cropRgb(resized, left, top, side, side).rgb);
  }
  if ((t.flip ?? true) && rng.bernoulli(0.5)) flipHorizontal(out, side);
  return out;
}

/** Applies `t` to one decoded image. */
export function applyTransform(img: RgbImage, t: ImageTransform, rng?: Rng): Uint8Array {
  if (t.kind === 'eval') return evalTransform(img, t.resize ?? RESIZE_SIZE, t.crop ?? CROP_SIZE);
  if (!rng) throw new Error('applyTransform: a training transform needs an rng');
  return trainTransform(img, rng, t);
}

/** uint8 RGB HWC images → float32 NHWC of (x/255 − mean) / std (ImageNet's by default). */
export function normalizeImages(rgb: Uint8Array, normalization: Normalization = NORMALIZATIONS.imagenet, out?: Float32Array): Float32Array {
  const result = out ?? new Float32Array(rgb.length);
  if (result.length !== rgb.length) throw new RangeError(`normalizeImages: output has ${result.length} floats, expected ${rgb.length}`);
  const lut = normalizationLut(normalization);
  for (let i = 0; i < rgb.length; i += 3) {
    result[i] = lut[rgb[i]!]!;
    result[i + 1] = lut[256 + rgb[i + 1]!]!;
    result[i + 2] = lut[512 + rgb[i + 2]!]!;
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------
// streaming batches

export interface ImageFolderBatch {
  /** N×side×side×3 uint8 RGB HWC. */
  readonly images: Uint8Array;
  readonly labels: Int32Array;
  /** Positions in `index.samples`. */
  readonly indices: Int32Array;
  readonly count: number;
  readonly side: number;
}

export interface BatchOptions {
  readonly batchSize: number;
  readonly transform: ImageTransform;
  /** Shuffle the order (seeded); default false. */
  readonly shuffle?: boolean;
  /** Seed of the shuffle and of the training transform's randomness (default 0). */
  readonly seed?: number;
  /** Only the first `limit` images (after shuffling). */
  readonly limit?: number;
  /** File reads in flight ahead of the decoder (default 8): the memory bound beyond one batch. */
  readonly prefetch?: number;
  /** Called after every image with (done, total): drive a progress bar. */
  readonly onProgress?: (done: number, total: number) => void;
  /** Skip files that fail to decode (reported through `onSkip`) instead of throwing. */
  readonly skipUnreadable?: boolean;
  readonly onSkip?: (file: string, reason: string) => void;
  /** Per-image decode limit in megapixels (default 50). */
  readonly maxMegapixels?: number;
  /** File reader (default fs.readFile); a hook for other storage and for tests. */
  readonly readFile?: (path: string) => Promise<Uint8Array>;
}

/**
 * Streams `index` as batches of transformed uint8 images with labels. Reads files ahead with at most
 * `prefetch` in flight and decodes one at a time; a batch is yielded as soon as it is full (the last one
 * may be smaller). Stopping the iteration early stops reading.
 */
export async function* imageFolderBatches(index: ImageFolderIndex, options: BatchOptions): AsyncGenerator<ImageFolderBatch> {
  const { batchSize } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new BlockdropError(`batch size must be a positive integer, got ${batchSize}`);
  const prefetch = Math.max(1, options.prefetch ?? 8);
  const seed = options.seed ?? 0;
  const order = Int32Array.from({ length: index.samples.length }, (_, i) => i);
  if (options.shuffle) new Rng(seed).shuffle(order);
  const total = Math.min(order.length, options.limit ?? order.length);
  const transformRng = new Rng(seed + 0x9e3779b9);
  const side = transformSize(options.transform);
  const per = side * side * 3;
  const read = options.readFile ?? ((path: string) => readFile(path));

  // A sliding window of reads: slot i holds the bytes (or the read error) of image order[i].
  const pending = new Map<number, Promise<Uint8Array | Error>>();
  let nextRead = 0;
  const fill = (upTo: number) => {
    while (nextRead < total && nextRead < upTo) {
      const file = join(index.root, index.samples[order[nextRead]!]!.file);
      pending.set(
        nextRead,
        read(file).then(
          (b) => b,
          (e: unknown) => new Error(`cannot read the file (${(e as NodeJS.ErrnoException).code ?? String(e)})`),
        ),
      );
      nextRead++;
    }
  };

  let images = new Uint8Array(batchSize * per);
  let labels = new Int32Array(batchSize);
  let indices = new Int32Array(batchSize);
  let n = 0;
  for (let i = 0; i < total; i++) {
    fill(i + prefetch);
    const bytes = await pending.get(i)!;
    pending.delete(i);
    const sample = index.samples[order[i]!]!;
    const path = join(index.root, sample.file);
    let out: Uint8Array | null = null;
    try {
      if (bytes instanceof Error) throw new BlockdropError(`${path}: ${bytes.message}`);
      const img = decodeImageRgb(bytes, path, { maxMegapixels: options.maxMegapixels });
      out = applyTransform(img, options.transform, transformRng);
    } catch (e) {
      if (!options.skipUnreadable) throw e;
      options.onSkip?.(path, e instanceof Error ? e.message : String(e));
    }
    if (out) {
      images.set(out, n * per);
      labels[n] = sample.label;
      indices[n] = order[i]!;
      n++;
    }
    options.onProgress?.(i + 1, total);
    if (n === batchSize) {
      yield { images, labels, indices, count: n, side };
      // Fresh buffers: the consumer may keep the previous batch.
      images = new Uint8Array(batchSize * per);
      labels = new Int32Array(batchSize);
      indices = new Int32Array(batchSize);
      n = 0;
    }
  }
  if (n > 0) yield { images: images.subarray(0, n * per), labels: labels.subarray(0, n), indices: indices.subarray(0, n), count: n, side };
}
