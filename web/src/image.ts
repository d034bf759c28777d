/**
 * A dropped or picked file → 32×32 RGB8 (HWC), the way `blockdrop predict` does it: RGB, alpha
 * dropped, area-averaging resize of the whole image (aspect ratio not kept). Files are checked before
 * they are decoded (type from the first bytes, size from the header) so that a text file or a
 * 100-megapixel image gives a message instead of a frozen tab.
 */
import { resizeArea } from '../../src/data/resize.js';

/** Same limit as `blockdrop predict` (src/data/image.ts). */
export const MAX_MEGAPIXELS = 50;
export const MAX_FILE_BYTES = 100 * 1024 * 1024;
/** Above this the browser pre-scales while decoding (keeps the page responsive); below, decoding is exact. */
const PRESCALE_MEGAPIXELS = 16;

export class ImageInputError extends Error {}

export interface DecodedUpload {
  readonly rgb: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly format: string;
}

interface Sniffed {
  readonly format: 'PNG' | 'JPEG' | 'GIF' | 'WebP' | 'BMP';
  /** From the header, when it could be read. */
  readonly width?: number;
  readonly height?: number;
}

function u16be(b: Uint8Array, i: number): number {
  return (b[i]! << 8) | b[i + 1]!;
}
function u32be(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) >>> 0) + (b[i + 1]! << 16) + (b[i + 2]! << 8) + b[i + 3]!;
}
function u16le(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8);
}
function i32le(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
}

/** The JPEG frame size from the first SOFn marker. */
function jpegSize(b: Uint8Array): { width: number; height: number } | undefined {
  let i = 2;
  while (i + 9 < b.length) {
    if (b[i] !== 0xff) return undefined;
    const marker = b[i + 1]!;
    if (marker === 0xff) {
      i++;
      continue;
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      i += 2;
      continue;
    }
    const length = u16be(b, i + 2);
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) return { height: u16be(b, i + 5), width: u16be(b, i + 7) };
    if (marker === 0xda) return undefined; // scan data before a frame header
    i += 2 + length;
  }
  return undefined;
}

function webpSize(b: Uint8Array): { width: number; height: number } | undefined {
  const chunk = String.fromCharCode(b[12]!, b[13]!, b[14]!, b[15]!);
  if (chunk === 'VP8X' && b.length >= 30) {
    return { width: 1 + (b[24]! | (b[25]! << 8) | (b[26]! << 16)), height: 1 + (b[27]! | (b[28]! << 8) | (b[29]! << 16)) };
  }
  if (chunk === 'VP8L' && b.length >= 25) {
    const bits = b[21]! | (b[22]! << 8) | (b[23]! << 16) | (b[24]! << 24);
    return { width: (bits & 0x3fff) + 1, height: ((bits >> 14) & 0x3fff) + 1 };
  }
  if (chunk === 'VP8 ' && b.length >= 30) return { width: u16le(b, 26) & 0x3fff, height: u16le(b, 28) & 0x3fff };
  return undefined;
}

/** Image type and (when the header tells) size from the first bytes; undefined = not an image we read. */
export function sniffImage(b: Uint8Array): Sniffed | undefined {
  if (b.length >= 24 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) {
    return { format: 'PNG', width: u32be(b, 16), height: u32be(b, 20) };
  }
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return { format: 'JPEG', ...jpegSize(b) };
  if (b.length >= 10 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x38) {
    return { format: 'GIF', width: u16le(b, 6), height: u16le(b, 8) };
  }
  if (b.length >= 16 && String.fromCharCode(...b.subarray(0, 4)) === 'RIFF' && String.fromCharCode(...b.subarray(8, 12)) === 'WEBP') {
    return { format: 'WebP', ...webpSize(b) };
  }
  if (b.length >= 26 && b[0] === 0x42 && b[1] === 0x4d) return { format: 'BMP', width: Math.abs(i32le(b, 18)), height: Math.abs(i32le(b, 22)) };
  return undefined;
}

function checkSize(name: string, width: number, height: number): void {
  if (!(width >= 1 && height >= 1)) throw new ImageInputError(`${name}: the image has no pixels (${width}×${height}).`);
  const mp = (width * height) / 1e6;
  if (mp > MAX_MEGAPIXELS) {
    throw new ImageInputError(
      `${name} is too large: ${width}×${height} = ${mp.toFixed(1)} megapixels (limit ${MAX_MEGAPIXELS}). Scale it down and try again.`,
    );
  }
}

/** Decodes and resizes a user's file; throws ImageInputError with a message meant for the page. */
export async function decodeUpload(file: Blob & { readonly name?: string }, side: number): Promise<DecodedUpload> {
  const name = file.name ? `"${file.name}"` : 'the file';
  if (file.size === 0) throw new ImageInputError(`${name} is empty.`);
  if (file.size > MAX_FILE_BYTES) {
    throw new ImageInputError(`${name} is too large (${(file.size / 1048576).toFixed(0)} MB; limit ${MAX_FILE_BYTES / 1048576} MB).`);
  }
  const head = new Uint8Array(await file.slice(0, 262144).arrayBuffer());
  const sniffed = sniffImage(head);
  if (!sniffed) throw new ImageInputError(`${name} is not an image this page reads (PNG, JPEG, GIF, WebP or BMP).`);
  if (sniffed.width !== undefined && sniffed.height !== undefined) checkSize(name, sniffed.width, sniffed.height);

  const options: ImageBitmapOptions = { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' };
  const big = sniffed.width !== undefined && sniffed.height !== undefined && sniffed.width * sniffed.height > PRESCALE_MEGAPIXELS * 1e6;
  if (big) {
    const scale = Math.sqrt((4e6) / (sniffed.width! * sniffed.height!));
    options.resizeWidth = Math.max(side, Math.round(sniffed.width! * scale));
    options.resizeHeight = Math.max(side, Math.round(sniffed.height! * scale));
    options.resizeQuality = 'high';
  }
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file, options);
  } catch {
    throw new ImageInputError(`${name} looks like a ${sniffed.format} file but cannot be decoded (damaged or unsupported).`);
  }
  try {
    const width = bitmap.width;
    const height = bitmap.height;
    if (!big) checkSize(name, width, height);
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    if (!ctx) throw new ImageInputError('this browser cannot read image pixels (no 2D canvas).');
    ctx.drawImage(bitmap, 0, 0);
    const rgba = ctx.getImageData(0, 0, width, height).data;
    const rgb = new Uint8Array(width * height * 3);
    for (let p = 0, q = 0; p < rgba.length; p += 4, q += 3) {
      rgb[q] = rgba[p]!;
      rgb[q + 1] = rgba[p + 1]!;
      rgb[q + 2] = rgba[p + 2]!;
    }
    const resized = width === side && height === side ? rgb : resizeArea(rgb, width, height, side, side);
    return { rgb: resized, width: sniffed.width ?? width, height: sniffed.height ?? height, format: sniffed.format };
  } finally {
    bitmap.close();
  }
}
