/**
 * Reading an exported model directory (see src/export/onnx.ts) as untrusted input.
 *
 * `manifest.json` is checked field by field against the format the exporter writes (hand-written type
 * guards: no schema library, and every message names the field). A manifest that passes is returned
 * as a fresh object holding only the checked fields. File names in it must be plain relative paths
 * inside the model directory: absolute paths, `..`, empty segments, control characters, and symlinks
 * that resolve outside the directory are refused. Every file's size is checked against the manifest
 * and against fixed limits before it is read; its sha256 is checked before anything parses it.
 */
import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, readdir, realpath, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { BlockdropError } from '../errors.js';
import {
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  type BlockDropManifest,
  type ManifestFile,
} from '../export/onnx.js';
import { blockCount, type Normalization, type ResNetConfig } from '../models/config.js';
import { printable } from '../util/message.js';

/** Size limits: far above any real export (ResNet-110 with its policy is ~30 MB in all), far below harm. */
export interface ManifestLimits {
  readonly maxManifestBytes: number;
  /** One ONNX file (protobuf itself cannot go beyond 2 GB). */
  readonly maxFileBytes: number;
  /** All files of the export together. */
  readonly maxTotalBytes: number;
  readonly maxFiles: number;
}

export const DEFAULT_MANIFEST_LIMITS: ManifestLimits = {
  maxManifestBytes: 4 * 2 ** 20,
  maxFileBytes: 2 ** 30,
  maxTotalBytes: 4 * 2 ** 30,
  maxFiles: 4096,
};

const AGAIN = "export the model again with 'blockdrop export'";
const MAX_BLOCKS = 1000;
const MAX_STAGES = 16;
const MAX_WIDTH = 1 << 14;
const MAX_CLASSES = 100_000;
const MAX_INPUT_SIZE = 4096;
const MAX_STRING = 1000;
const MAX_NAME = 255;

type Json = unknown;
type Obj = Record<string, Json>;

/** Field-by-field checks of one manifest; every failure is one line: source, field, problem, remedy. */
class Checker {
  constructor(private readonly source: string) {}

  fail(path: string, problem: string, remedy = AGAIN): never {
    throw new BlockdropError(`${printable(this.source, 300)}: ${path ? `${path} ` : ''}${problem}; ${remedy}`);
  }

  /** A short description of a value that is wrong (never its whole text). */
  private what(v: Json): string {
    if (v === null) return 'null';
    if (Array.isArray(v)) return `an array of ${v.length}`;
    if (typeof v === 'string') return `"${printable(v, 60)}"`;
    if (typeof v === 'object') return 'an object';
    return String(v);
  }

  obj(v: Json, path: string): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, `must be an object, not ${this.what(v)}`);
    return v as Obj;
  }

  field(o: Obj, key: string, path: string): Json {
    if (!Object.prototype.hasOwnProperty.call(o, key)) this.fail(`${path}${path ? '.' : ''}${key}`, 'is missing');
    return o[key];
  }

  str(v: Json, path: string, max = MAX_STRING): string {
    if (typeof v !== 'string') this.fail(path, `must be a string, not ${this.what(v)}`);
    if (v.length > max) this.fail(path, `is ${v.length} characters long (at most ${max})`);
    return v;
  }

  oneOf<T extends string>(v: Json, path: string, allowed: readonly T[]): T {
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      this.fail(path, `is ${this.what(v)}, expected one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
    }
    return v as T;
  }

  int(v: Json, path: string, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(path, `must be an integer, not ${this.what(v)}`);
    if (v < min || v > max) this.fail(path, `is ${v}, outside ${min}…${max}`);
    return v;
  }

  num(v: Json, path: string, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(path, `must be a finite number, not ${this.what(v)}`);
    if (v < min || v > max) this.fail(path, `is ${v}, outside ${min}…${max}`);
    return v;
  }

  arr(v: Json, path: string, minLength: number, maxLength: number): Json[] {
    if (!Array.isArray(v)) this.fail(path, `must be an array, not ${this.what(v)}`);
    if (v.length < minLength || v.length > maxLength) {
      this.fail(path, `has ${v.length} entries, expected ${minLength === maxLength ? minLength : `${minLength}…${maxLength}`}`);
    }
    return v;
  }

  /** A file name that stays inside the model directory. */
  fileName(v: Json, path: string): string {
    const name = this.str(v, path, MAX_NAME);
    const remedy = 'a manifest may only name files inside its own directory: do not load this model';
    if (name.length === 0) this.fail(path, 'is an empty file name', remedy);
    if (/[\u0000-\u001f\u007f-\u009f\\:]/.test(name)) this.fail(path, `"${printable(name)}" holds a control character, '\\' or ':'`, remedy);
    if (name.startsWith('/')) this.fail(path, `"${printable(name)}" is an absolute path`, remedy);
    for (const part of name.split('/')) {
      if (part === '' || part === '.' || part === '..') this.fail(path, `"${printable(name)}" is not a plain relative path (it has '${part || '//'}')`, remedy);
    }
    return name;
  }

  architecture(v: Json, path: string): ResNetConfig {
    const o = this.obj(v, path);
    const f = (key: string): Json => this.field(o, key, path);
    const stages = this.arr(f('blocksPerStage'), `${path}.blocksPerStage`, 1, MAX_STAGES);
    const blocksPerStage = stages.map((x, i) => this.int(x, `${path}.blocksPerStage[${i}]`, 1, MAX_BLOCKS));
    const total = blocksPerStage.reduce((a, b) => a + b, 0);
    if (total > MAX_BLOCKS) this.fail(`${path}.blocksPerStage`, `adds up to ${total} blocks (at most ${MAX_BLOCKS})`);
    const n = blocksPerStage.length;
    const widths = this.arr(f('widths'), `${path}.widths`, n, n).map((x, i) => this.int(x, `${path}.widths[${i}]`, 1, MAX_WIDTH));
    const strides = this.arr(f('strides'), `${path}.strides`, n, n).map((x, i) => this.int(x, `${path}.strides[${i}]`, 1, 8));
    return {
      name: this.str(f('name'), `${path}.name`, 100),
      blockType: this.oneOf(f('blockType'), `${path}.blockType`, ['basic', 'bottleneck'] as const),
      blocksPerStage,
      widths,
      strides,
      shortcut: this.oneOf(f('shortcut'), `${path}.shortcut`, ['downsampleB', 'optionA', 'projection'] as const),
      numClasses: this.int(f('numClasses'), `${path}.numClasses`, 1, MAX_CLASSES),
      inputSize: this.int(f('inputSize'), `${path}.inputSize`, 1, MAX_INPUT_SIZE),
      stem: this.oneOf(f('stem'), `${path}.stem`, ['cifar', 'imagenet'] as const),
      stemWidth: this.int(f('stemWidth'), `${path}.stemWidth`, 1, MAX_WIDTH),
    };
  }

  normalization(v: Json, path: string): Normalization {
    const o = this.obj(v, path);
    const three = (key: string, min: number): [number, number, number] => {
      const a = this.arr(this.field(o, key, path), `${path}.${key}`, 3, 3).map((x, i) => this.num(x, `${path}.${key}[${i}]`, -1e6, 1e6));
      a.forEach((x, i) => {
        if (x < min) this.fail(`${path}.${key}[${i}]`, `is ${x}, must be positive`);
      });
      return [a[0]!, a[1]!, a[2]!];
    };
    const mean = three('mean', -1e6);
    const std = three('std', Number.MIN_VALUE);
    return { name: this.oneOf(this.field(o, 'name', path), `${path}.name`, ['cifar', 'imagenet', 'none'] as const), mean, std };
  }

  /** `[batch, …dims]`: a symbolic or numeric batch, then the given dims exactly. */
  shape(v: Json, path: string, dims: readonly number[]): (string | number)[] {
    const a = this.arr(v, path, dims.length + 1, dims.length + 1);
    const batch = typeof a[0] === 'string' ? this.str(a[0], `${path}[0]`, 100) : this.int(a[0], `${path}[0]`, 1, 2 ** 31 - 1);
    dims.forEach((d, i) => {
      if (a[i + 1] !== d) this.fail(`${path}[${i + 1}]`, `is ${this.what(a[i + 1])}, expected ${d}`);
    });
    return [batch, ...dims];
  }
}

/** Deepest nesting a manifest needs is 4; JSON.parse of a megabyte of '[' would build a million arrays. */
const MAX_JSON_DEPTH = 16;

/** Nesting depth of JSON text (strings skipped), stopping once it passes `limit`. */
function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x5b || ch === 0x7b) {
      if (++depth > limit) return true;
    } else if (ch === 0x5d || ch === 0x7d) depth--;
  }
  return false;
}

/**
 * Checks a manifest's text and returns it as a fresh, fully typed object. `source` names the file in
 * messages. Throws a one-line BlockdropError naming the first field that is wrong.
 */
export function parseManifest(text: string, source: string, limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS): BlockDropManifest {
  const c = new Checker(source);
  let raw: Json;
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) c.fail('', `is nested more than ${MAX_JSON_DEPTH} levels deep: it is damaged or hostile`);
  try {
    raw = JSON.parse(text);
  } catch (e) {
    c.fail('', `is not valid JSON (${printable((e as Error).message, 100)})`);
  }
  const root = c.obj(raw, '(top level)');
  const f = (key: string): Json => c.field(root, key, '');
  if (root['format'] !== MANIFEST_FORMAT) c.fail('format', `is ${root['format'] === undefined ? 'missing' : c.str(root['format'], 'format')}, not "${MANIFEST_FORMAT}": this is not a blockdrop ONNX manifest`);
  const formatVersion = c.int(f('formatVersion'), 'formatVersion', 1, Number.MAX_SAFE_INTEGER);
  if (formatVersion > MANIFEST_VERSION) {
    c.fail('formatVersion', `is ${formatVersion}; this blockdrop reads up to ${MANIFEST_VERSION}`, 'upgrade blockdrop');
  }
  const architecture = c.architecture(f('architecture'), 'architecture');
  const K = c.int(f('K'), 'K', 1, MAX_BLOCKS);
  const blocks = blockCount(architecture);
  if (K !== blocks) c.fail('K', `is ${K} but the architecture ${printable(architecture.name)} has ${blocks} residual blocks`);
  const normalization = c.normalization(f('normalization'), 'normalization');
  const classNames = c.arr(f('classNames'), 'classNames', architecture.numClasses, architecture.numClasses)
    .map((x, i) => c.str(x, `classNames[${i}]`, 200));

  const input = c.obj(f('input'), 'input');
  const inputOut = {
    name: c.oneOf(c.field(input, 'name', 'input'), 'input.name', ['input'] as const),
    dtype: c.oneOf(c.field(input, 'dtype', 'input'), 'input.dtype', ['float32'] as const),
    layout: c.oneOf(c.field(input, 'layout', 'input'), 'input.layout', ['NCHW'] as const),
    shape: c.shape(c.field(input, 'shape', 'input'), 'input.shape', [3, architecture.inputSize, architecture.inputSize]),
    channels: c.oneOf(c.field(input, 'channels', 'input'), 'input.channels', ['RGB'] as const),
    normalization: c.str(c.field(input, 'normalization', 'input'), 'input.normalization'),
  };
  const keep = c.obj(f('keep'), 'keep');
  const keepOut = {
    name: c.oneOf(c.field(keep, 'name', 'keep'), 'keep.name', ['keep'] as const),
    dtype: c.oneOf(c.field(keep, 'dtype', 'keep'), 'keep.dtype', ['bool'] as const),
    shape: c.shape(c.field(keep, 'shape', 'keep'), 'keep.shape', [K]),
    order: c.str(c.field(keep, 'order', 'keep'), 'keep.order'),
    threshold: c.num(c.field(keep, 'threshold', 'keep'), 'keep.threshold', 0, 1),
  };

  const flops = c.obj(f('flops'), 'flops');
  const flopsOut = {
    perBlock: c.arr(c.field(flops, 'perBlock', 'flops'), 'flops.perBlock', K, K).map((x, i) => c.num(x, `flops.perBlock[${i}]`, 0, 1e18)),
    stemAndHead: c.num(c.field(flops, 'stemAndHead', 'flops'), 'flops.stemAndHead', 0, 1e18),
    policy: flops['policy'] === null ? null : c.num(c.field(flops, 'policy', 'flops'), 'flops.policy', 0, 1e18),
    full: c.num(c.field(flops, 'full', 'flops'), 'flops.full', 0, 1e18),
  };

  const policyRaw = f('policy');
  let policy: BlockDropManifest['policy'] = null;
  if (policyRaw !== null) {
    const p = c.obj(policyRaw, 'policy');
    const policyArch = c.architecture(c.field(p, 'architecture', 'policy'), 'policy.architecture');
    if (policyArch.numClasses !== K) {
      c.fail('policy.architecture.numClasses', `is ${policyArch.numClasses}: the policy has ${policyArch.numClasses} outputs but the backbone has K = ${K} blocks`,
        'export it with a policy trained for this backbone');
    }
    // The ImageNet policy sees the backbone's image average-pooled by 2 (224 → 112); CIFAR's the same image.
    if (policyArch.inputSize !== architecture.inputSize && policyArch.inputSize * 2 !== architecture.inputSize) {
      c.fail('policy.architecture.inputSize', `is ${policyArch.inputSize} but the backbone takes ${architecture.inputSize}×${architecture.inputSize} images (the policy's side must be the same or half)`);
    }
    policy = { architecture: policyArch };
  }

  // Files first: the graphs must name files that are listed (and so checksummed).
  const filesRaw = c.obj(f('files'), 'files');
  const fileNames = Object.keys(filesRaw);
  if (fileNames.length > limits.maxFiles) c.fail('files', `lists ${fileNames.length} files (at most ${limits.maxFiles})`);
  const files: Record<string, ManifestFile> = {};
  let totalBytes = 0;
  for (const name of fileNames) {
    c.fileName(name, 'files: the name');
    const path = `files["${printable(name, 60)}"]`;
    const e = c.obj(filesRaw[name], path);
    const sha256 = c.str(c.field(e, 'sha256', path), `${path}.sha256`, 64);
    if (!/^[0-9a-f]{64}$/.test(sha256)) c.fail(`${path}.sha256`, 'is not 64 lowercase hex digits');
    const bytes = c.int(c.field(e, 'bytes', path), `${path}.bytes`, 0, Number.MAX_SAFE_INTEGER);
    if (bytes > limits.maxFileBytes) {
      c.fail(`${path}.bytes`, `is ${bytes}, more than the ${limits.maxFileBytes}-byte limit for one graph`, 'the manifest is damaged or hostile: do not load this model');
    }
    totalBytes += bytes;
    const io = (key: string) => c.arr(c.field(e, key, path), `${path}.${key}`, 0, 64).map((x, i) => c.str(x, `${path}.${key}[${i}]`, 200));
    Object.defineProperty(files, name, {
      value: { sha256, bytes, role: c.str(c.field(e, 'role', path), `${path}.role`), inputs: io('inputs'), outputs: io('outputs') },
      enumerable: true,
      writable: false,
    });
  }
  if (totalBytes > limits.maxTotalBytes) {
    c.fail('files', `add up to ${totalBytes} bytes, more than the ${limits.maxTotalBytes}-byte limit`, 'the manifest is damaged or hostile: do not load this model');
  }
  const listed = (v: Json, path: string): string => {
    const name = c.fileName(v, path);
    if (!Object.prototype.hasOwnProperty.call(files, name)) c.fail(path, `names "${printable(name)}", which "files" does not list (so it has no checksum)`);
    return name;
  };

  const graphs = c.obj(f('graphs'), 'graphs');
  const g = (key: string): Json => c.field(graphs, key, 'graphs');
  const policyGraph = graphs['policy'] === null ? null : listed(g('policy'), 'graphs.policy');
  if ((policyGraph === null) !== (policy === null)) {
    c.fail('graphs.policy', policy ? 'is null but "policy" describes a policy network' : 'names a graph but "policy" is null');
  }
  const shortcutsRaw = c.obj(g('shortcuts'), 'graphs.shortcuts');
  const shortcuts: Record<string, string> = {};
  for (const key of Object.keys(shortcutsRaw)) {
    if (!/^(0|[1-9]\d{0,3})$/.test(key) || Number(key) >= K) {
      c.fail('graphs.shortcuts', `has the key "${printable(key, 40)}", which is not a block index 0…${K - 1}`);
    }
    Object.defineProperty(shortcuts, key, { value: listed(shortcutsRaw[key], `graphs.shortcuts["${key}"]`), enumerable: true });
  }
  const graphsOut = {
    full: listed(g('full'), 'graphs.full'),
    policy: policyGraph,
    stem: listed(g('stem'), 'graphs.stem'),
    blocks: c.arr(g('blocks'), 'graphs.blocks', K, K).map((x, i) => listed(x, `graphs.blocks[${i}]`)),
    shortcuts,
    head: listed(g('head'), 'graphs.head'),
    blockdrop: listed(g('blockdrop'), 'graphs.blockdrop'),
  };

  return {
    format: MANIFEST_FORMAT,
    formatVersion,
    producer: c.str(f('producer'), 'producer', 200),
    opset: c.int(f('opset'), 'opset', 1, 1000),
    architecture,
    K,
    normalization,
    classNames,
    input: inputOut,
    keep: keepOut,
    flops: flopsOut,
    batchNorm: c.str(f('batchNorm'), 'batchNorm'),
    policy,
    graphs: graphsOut,
    files,
  };
}

/** The same from the file's bytes: size limit, UTF-8, then `parseManifest` (what the fuzzers feed). */
export function parseManifestBytes(bytes: Uint8Array, source: string, limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS): BlockDropManifest {
  if (bytes.length > limits.maxManifestBytes) {
    throw new BlockdropError(`${printable(source, 300)} is ${bytes.length} bytes, more than the ${limits.maxManifestBytes}-byte limit for a manifest; ${AGAIN}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new BlockdropError(`${printable(source, 300)} is not UTF-8 text; ${AGAIN}`);
  }
  return parseManifest(text, source, limits);
}

// ---------------------------------------------------------------------------------------------
// the directory

function isInside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** What went wrong opening the model directory, and whether an interrupted export left its old copy aside. */
async function missingDirMessage(dir: string, code: string | undefined): Promise<string> {
  if (code === 'ENOTDIR') return `${dir} is not a directory; point at a directory written by 'blockdrop export'`;
  if (code !== 'ENOENT') return `cannot open ${dir} (${code ?? 'unknown error'}); point at a directory written by 'blockdrop export'`;
  const parent = dirname(resolve(dir));
  const stem = basename(resolve(dir));
  try {
    const aside = (await readdir(parent)).filter((n) => n.startsWith(`${stem}.old-`) || n.startsWith(`${stem}.tmp-`));
    if (aside.length > 0) {
      return `${dir} does not exist: an export to it was interrupted (${aside.map((n) => printable(n, 80)).join(', ')} left beside it); export the model again`;
    }
  } catch {
    // the parent is unreadable too: fall through
  }
  return `${dir} does not exist; point at a directory written by 'blockdrop export'`;
}

/** Opens `name` inside the real directory `root`, refusing anything that resolves outside it or is not a regular file. */
async function openInside(root: string, dir: string, name: string): Promise<{ handle: FileHandle; size: number }> {
  const path = join(root, name);
  let real: string;
  try {
    real = await realpath(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BlockdropError(
      code === 'ENOENT'
        ? `${printable(name)} listed in ${join(dir, MANIFEST_FILE)} is missing; ${AGAIN}`
        : `cannot open ${printable(join(dir, name), 300)} (${code ?? 'error'}); ${AGAIN}`,
    );
  }
  if (!isInside(root, real)) {
    throw new BlockdropError(
      `${printable(join(dir, name), 300)} is a link to ${printable(real, 200)}, outside the model directory; do not load this model`,
    );
  }
  let handle: FileHandle;
  try {
    handle = await open(real, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0));
  } catch (e) {
    throw new BlockdropError(`cannot open ${printable(join(dir, name), 300)} (${(e as NodeJS.ErrnoException).code ?? 'error'}); ${AGAIN}`);
  }
  const info = await handle.stat();
  if (!info.isFile()) {
    await handle.close();
    throw new BlockdropError(`${printable(join(dir, name), 300)} is not a regular file; ${AGAIN}`);
  }
  return { handle, size: info.size };
}

/** Reads exactly `size` bytes from the start of the file (a file that grows meanwhile is not read further). */
async function readExactly(handle: FileHandle, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let at = 0;
  while (at < size) {
    const { bytesRead } = await handle.read(out, at, size - at, at);
    if (bytesRead === 0) break;
    at += bytesRead;
  }
  return at === size ? out : out.subarray(0, at);
}

/** Reads and checks `<dir>/manifest.json`. */
export async function readManifest(dir: string, limits: ManifestLimits = DEFAULT_MANIFEST_LIMITS): Promise<BlockDropManifest> {
  let root: string;
  try {
    root = await realpath(dir);
  } catch (e) {
    throw new BlockdropError(await missingDirMessage(dir, (e as NodeJS.ErrnoException).code));
  }
  const manifestPath = join(dir, MANIFEST_FILE);
  let opened: { handle: FileHandle; size: number };
  try {
    opened = await openInside(root, dir, MANIFEST_FILE);
  } catch (e) {
    if (e instanceof BlockdropError && / is missing; /.test(e.message)) {
      throw new BlockdropError(`${dir} has no ${MANIFEST_FILE}; point at a directory written by 'blockdrop export'`);
    }
    throw e;
  }
  const { handle, size } = opened;
  try {
    if (size > limits.maxManifestBytes) {
      throw new BlockdropError(`${manifestPath} is ${size} bytes, more than the ${limits.maxManifestBytes}-byte limit for a manifest; ${AGAIN}`);
    }
    return parseManifestBytes(await readExactly(handle, size), manifestPath, limits);
  } finally {
    await handle.close();
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Reads every file the manifest lists, confined to `dir`, and checks its size (before reading) and
 * sha256 (before anything parses it).
 */
export async function readVerifiedFiles(dir: string, manifest: BlockDropManifest): Promise<Map<string, Uint8Array>> {
  const root = await realpath(dir).catch(async (e: NodeJS.ErrnoException) => {
    throw new BlockdropError(await missingDirMessage(dir, e.code));
  });
  const out = new Map<string, Uint8Array>();
  for (const [file, entry] of Object.entries(manifest.files)) {
    const { handle, size } = await openInside(root, dir, file);
    try {
      if (size !== entry.bytes) {
        throw new BlockdropError(
          `${printable(join(dir, file), 300)} is ${size} bytes but ${MANIFEST_FILE} records ${entry.bytes} (file truncated, corrupt or replaced); ${AGAIN}`,
        );
      }
      const bytes = await readExactly(handle, size);
      if (bytes.length !== entry.bytes || sha256(bytes) !== entry.sha256) {
        throw new BlockdropError(
          `${printable(join(dir, file), 300)} does not match the checksum in ${MANIFEST_FILE} (file corrupt or modified); ${AGAIN}`,
        );
      }
      out.set(file, bytes);
    } finally {
      await handle.close();
    }
  }
  return out;
}
