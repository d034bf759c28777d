/**
 * A user's image for prediction: PNG or JPEG → RGB8 → 32×32 (area averaging), HWC.
 */
import { readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import { decode as decodePngData, encode as encodePngData, type DecodedPng } from 'fast-png';
import jpeg from 'jpeg-js';
import { BlockdropError } from '../errors.js';
import { oneLine, printable } from '../util/message.js';
import { resizeArea } from './resize.js';

// Pure (no Node imports) so that the browser demo resizes dropped images the same way.
export { resizeArea };

export interface DecodedImage {
  /** 32×32×3 uint8, HWC, RGB. */
  readonly rgb: Uint8Array;
  readonly originalWidth: number;
  readonly originalHeight: number;
}

export interface DecodeImageOptions {
  /** Refuse images with more pixels than this, in megapixels (default 50). */
  readonly maxMegapixels?: number;
  /** JPEG decoder memory bound in MB (default 1024). */
  readonly maxMemoryMB?: number;
  /** Output side (default 32). */
  readonly size?: number;
}

const DEFAULT_MAX_MEGAPIXELS = 50;
const DEFAULT_MAX_MEMORY_MB = 1024;

function isPng(b: Uint8Array): boolean {
  return b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a;
}
function isJpeg(b: Uint8Array): boolean {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}

function notAnImage(file: string, why: string): BlockdropError {
  return new BlockdropError(oneLine(`${file}: not a PNG or JPEG image (${why})`));
}

function tooLarge(file: string, width: number, height: number, limit: number): BlockdropError {
  return new BlockdropError(oneLine(
    `${file}: image is too large (${width}×${height} = ${((width * height) / 1e6).toFixed(1)} megapixels, limit ${limit}); scale it down first`,
  ));
}

/** Reads and decodes a PNG or JPEG file to a 32×32 RGB8 image (see decodeImageBytes). */
export function decodeImageFile(file: string, options: DecodeImageOptions = {}): DecodedImage {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new BlockdropError(`${file}: cannot read the file (${err.code ?? err.message}); check the path`, { cause: e });
  }
  return decodeImageBytes(bytes, file, options);
}

/**
 * Decodes PNG (any colour type and bit depth; palette, grey and 16-bit become RGB8; alpha is dropped, as PIL's
 * convert('RGB') does) or JPEG, then resizes to size×size with area averaging when needed (aspect ratio is not
 * kept, like torchvision Resize((32, 32))). `file` is only used in messages.
 */
export function decodeImageBytes(bytes: Uint8Array, file: string, options: DecodeImageOptions = {}): DecodedImage {
  const size = options.size ?? 32;
  const full = decodeImageRgb(bytes, file, options);
  const rgb =
    full.width === size && full.height === size ? full.rgb : resizeArea(full.rgb, full.width, full.height, size, size);
  return { rgb, originalWidth: full.width, originalHeight: full.height };
}

/**
 * Decodes PNG or JPEG at full resolution to RGB8 HWC (same checks and limits as decodeImageBytes, no
 * resize): for readers that crop and resize themselves (e.g. the ImageNet folder reader).
 */
export function decodeImageRgb(
  bytes: Uint8Array,
  file: string,
  options: Omit<DecodeImageOptions, 'size'> = {},
): { rgb: Uint8Array; width: number; height: number } {
  const maxMegapixels = options.maxMegapixels ?? DEFAULT_MAX_MEGAPIXELS;
  if (bytes.length === 0) throw notAnImage(file, 'empty file');
  if (isPng(bytes)) return decodePngToRgb(bytes, file, maxMegapixels);
  if (isJpeg(bytes)) return decodeJpegToRgb(bytes, file, maxMegapixels, options.maxMemoryMB ?? DEFAULT_MAX_MEMORY_MB);
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw notAnImage(file, `starts with bytes ${head}`);
}

function decodePngToRgb(
  bytes: Uint8Array,
  file: string,
  maxMegapixels: number,
): { rgb: Uint8Array; width: number; height: number } {
  const checked = checkPngStructure(bytes, file, maxMegapixels);
  let png: DecodedPng;
  try {
    png = decodePngData(checked);
  } catch (e) {
    throw notAnImage(file, `corrupt PNG: ${e instanceof Error ? e.message : String(e)}`);
  }
  const { width, height } = png;
  if (width < 1 || height < 1) throw notAnImage(file, `PNG of size ${width}×${height}`);
  try {
    return { rgb: pngToRgb8(png), width, height };
  } catch (e) {
    throw notAnImage(file, `unsupported PNG: ${(e as Error).message}`);
  }
}

const PNG_CHANNELS: Readonly<Record<number, number>> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Chunks passed on to the decoder; ancillary ones (iCCP, zTXt, …) cannot change RGB pixels here. */
const PNG_KEPT_CHUNKS = new Set(['IHDR', 'PLTE', 'tRNS', 'IDAT', 'IEND']);
/** Adam7 passes: x start, y start, x step, y step. */
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] as const;

/**
 * Checks a PNG's chunk structure before the decoder sees it, so that what the decoder allocates is
 * bounded by the megapixel limit: IHDR first and only once, every chunk inside the file, and the
 * image data inflating to exactly the size its header implies (more is a decompression bomb, less
 * a truncated image). Returns the file with only the chunks needed for pixels (a compressed ICC
 * profile, for one, could inflate without bound in the decoder).
 */
function checkPngStructure(bytes: Uint8Array, file: string, maxMegapixels: number): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kept: Uint8Array[] = [bytes.subarray(0, 8)];
  const idat: Uint8Array[] = [];
  let header: { width: number; height: number; depth: number; colorType: number; interlace: number } | null = null;
  let ended = false;
  let at = 8;
  while (at + 12 <= bytes.length) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(bytes[at + 4]!, bytes[at + 5]!, bytes[at + 6]!, bytes[at + 7]!);
    const left = bytes.length - at - 12;
    if (length > left) throw notAnImage(file, `corrupt PNG: chunk '${printable(type)}' at byte ${at} claims ${length} bytes, only ${left} left`);
    if (!header && type !== 'IHDR') throw notAnImage(file, `corrupt PNG: the first chunk is '${printable(type)}', not IHDR`);
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') {
      if (header) throw notAnImage(file, 'corrupt PNG: a second IHDR chunk');
      if (length !== 13) throw notAnImage(file, `corrupt PNG: IHDR of ${length} bytes instead of 13`);
      const d = new DataView(data.buffer, data.byteOffset, 13);
      header = { width: d.getUint32(0), height: d.getUint32(4), depth: data[8]!, colorType: data[9]!, interlace: data[12]! };
      if (header.width * header.height > maxMegapixels * 1e6) throw tooLarge(file, header.width, header.height, maxMegapixels);
    } else if (type === 'IDAT') {
      idat.push(data);
    }
    if (PNG_KEPT_CHUNKS.has(type)) kept.push(bytes.subarray(at, at + 12 + length));
    at += 12 + length;
    if (type === 'IEND') {
      ended = true;
      break;
    }
  }
  if (!header) throw notAnImage(file, 'corrupt PNG: no IHDR chunk');
  if (!ended) throw notAnImage(file, `corrupt PNG: the file ends after ${bytes.length} bytes without an IEND chunk (truncated?)`);
  const { width, height, depth, colorType, interlace } = header;
  const channels = PNG_CHANNELS[colorType];
  if (width < 1 || height < 1) throw notAnImage(file, `PNG of size ${width}×${height}`);
  if (!channels || ![1, 2, 4, 8, 16].includes(depth)) throw notAnImage(file, `unsupported PNG: colour type ${colorType} at bit depth ${depth}`);
  if (interlace > 1) throw notAnImage(file, `unsupported PNG: interlace method ${interlace}`);
  // Filtered scanlines: a filter byte plus the packed samples of each row (of each Adam7 pass).
  const rowBytes = (w: number): number => Math.ceil((w * channels * depth) / 8);
  let expected = 0;
  if (interlace === 0) {
    expected = height * (1 + rowBytes(width));
  } else {
    for (const [x0, y0, dx, dy] of ADAM7) {
      const pw = Math.ceil((width - x0) / dx);
      const ph = Math.ceil((height - y0) / dy);
      if (pw > 0 && ph > 0) expected += ph * (1 + rowBytes(pw));
    }
  }
  let inflated: number;
  try {
    inflated = inflateSync(idat.length === 1 ? idat[0]! : Buffer.concat(idat), { maxOutputLength: expected }).length;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw notAnImage(file, `corrupt PNG: its image data inflates to more than the ${expected} bytes a ${width}×${height} image needs`);
    }
    throw notAnImage(file, `corrupt PNG: image data does not inflate (${(e as Error).message})`);
  }
  if (inflated !== expected) throw notAnImage(file, `corrupt PNG: image data holds ${inflated} bytes, a ${width}×${height} image needs ${expected} (truncated?)`);
  const out = new Uint8Array(kept.reduce((n, k) => n + k.length, 0));
  let o = 0;
  for (const k of kept) {
    out.set(k, o);
    o += k.length;
  }
  return out;
}

/** Sample k of each row, for bit depths 1, 2, 4 (packed, rows padded to a byte), 8 and 16. */
function sampleReader(png: DecodedPng, samplesPerPixel: number): (row: number, k: number) => number {
  const { data, depth, width } = png;
  if (depth >= 8) {
    const perRow = width * samplesPerPixel;
    return (row, k) => data[row * perRow + k]!;
  }
  const bytesPerRow = Math.ceil((width * samplesPerPixel * depth) / 8);
  const mask = (1 << depth) - 1;
  return (row, k) => {
    const bit = k * depth;
    const byte = data[row * bytesPerRow + (bit >> 3)]!;
    return (byte >> (8 - depth - (bit & 7))) & mask;
  };
}

function pngToRgb8(png: DecodedPng): Uint8Array {
  const { width, height, depth, channels } = png;
  const out = new Uint8Array(width * height * 3);
  const read = sampleReader(png, channels);
  if (png.palette) {
    const palette = png.palette;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const entry = palette[read(y, x)];
        if (!entry) throw new Error('palette index out of range');
        const o = (y * width + x) * 3;
        out[o] = entry[0]!;
        out[o + 1] = entry[1]!;
        out[o + 2] = entry[2]!;
      }
    }
    return out;
  }
  const maxValue = (1 << depth) - 1;
  const to8 =
    depth === 8 ? (v: number) => v : depth === 16 ? (v: number) => Math.round(v / 257) : (v: number) => Math.round((v * 255) / maxValue);
  const grey = channels === 1 || channels === 2;
  if (!grey && channels !== 3 && channels !== 4) throw new Error(`${channels} channels`);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      const k = x * channels;
      if (grey) {
        const v = to8(read(y, k));
        out[o] = v;
        out[o + 1] = v;
        out[o + 2] = v;
      } else {
        out[o] = to8(read(y, k));
        out[o + 1] = to8(read(y, k + 1));
        out[o + 2] = to8(read(y, k + 2));
      }
    }
  }
  return out;
}

function decodeJpegToRgb(
  bytes: Uint8Array,
  file: string,
  maxMegapixels: number,
  maxMemoryMB: number,
): { rgb: Uint8Array; width: number; height: number } {
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      maxResolutionInMP: maxMegapixels,
      maxMemoryUsageInMB: maxMemoryMB,
    });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (/maxResolutionInMP|maxMemoryUsageInMB|allocate enough memory/.test(message)) {
      throw new BlockdropError(oneLine(`${file}: image is too large to decode (${message}); scale it down first`));
    }
    throw notAnImage(file, `corrupt JPEG: ${message}`);
  }
  if (img.width < 1 || img.height < 1) throw notAnImage(file, `JPEG of size ${img.width}×${img.height}`);
  return { rgb: img.data, width: img.width, height: img.height };
}

/** Encodes RGB8 HWC as a PNG file's bytes. */
export function encodePng(rgb: Uint8Array, width: number, height: number): Uint8Array {
  if (rgb.length !== width * height * 3) throw new RangeError(`encodePng: ${rgb.length} bytes for ${width}×${height}×3`);
  return encodePngData({ width, height, data: rgb, depth: 8, channels: 3 });
}
