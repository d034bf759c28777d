/**
 * blockdrop's own checkpoints and format-independent loading.
 *
 * A model checkpoint is a pair: `<stem>.safetensors` (the weights, with the metadata embedded as
 * well) and `<stem>.json` (the same metadata, readable, plus the weights file's sha256 and tensor
 * list). The old JSON is deleted first, then the safetensors file and the JSON are written, each
 * atomically: a kill at any moment leaves either a matching pair or weights alone (whose embedded
 * metadata is the same), never a JSON beside weights it does not describe.
 */
import { createHash } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BlockdropError } from '../errors.js';
import { numel, shapeString, tensorSection, type DType, type TensorMap } from '../tensor.js';
import { removeFileDurably, writeFileAtomic } from '../util/atomic.js';
import { oneLine, printable } from '../util/message.js';
import { defineField, isJsonObject, type JsonObject, type JsonValue } from './json.js';
import { looksLikeSafetensors, readSafetensors, serializeSafetensors } from './safetensors.js';
import {
  describeCheckpoint, describeStateDict, findStateDicts, looksLikeTorchLegacy, looksLikeTorchZip,
  readTorchCheckpoint, stateDict, type StateDictDescription,
} from './torch.js';
import { assertFiniteTensors } from './validate.js';

export const BLOCKDROP_FORMAT = 'blockdrop';
export const BLOCKDROP_FORMAT_VERSION = '1';
/** `__metadata__` key that carries the meta JSON inside the safetensors file. */
export const META_KEY = 'blockdrop';

export interface ModelCheckpoint {
  readonly tensors: TensorMap;
  readonly meta: JsonObject;
}

export interface SavedModelCheckpoint {
  readonly safetensorsPath: string;
  readonly jsonPath: string;
  readonly sha256: string;
  readonly bytes: number;
}

export interface LoadedModelCheckpoint extends ModelCheckpoint {
  readonly safetensorsPath: string;
  /** null when the JSON file is missing and the meta came from the safetensors metadata. */
  readonly jsonPath: string | null;
  readonly sha256: string;
}

/** Contents of `<stem>.json`. */
export interface ModelCheckpointJson {
  format: typeof BLOCKDROP_FORMAT;
  version: number;
  meta: JsonObject;
  weights: {
    file: string;
    sha256: string;
    bytes: number;
    tensors: { name: string; dtype: DType; shape: number[] }[];
  };
}

/** Deepest nesting accepted in checkpoint metadata (JSON.stringify and every recursive reader would overflow the stack far deeper). */
const MAX_JSON_DEPTH = 64;

/** Refuses JSON nested deeper than MAX_JSON_DEPTH (checked without recursion). */
function checkJsonDepth(root: unknown, what: string): void {
  const todo: [unknown, number][] = [[root, 0]];
  while (todo.length) {
    const [v, depth] = todo.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= MAX_JSON_DEPTH) throw new BlockdropError(`${what} is nested more than ${MAX_JSON_DEPTH} levels deep; the file is corrupt or hostile`);
    for (const x of Object.values(v)) todo.push([x, depth + 1]);
  }
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** `x`, `x.safetensors` or `x.json` → `x`. */
function stemOf(path: string): string {
  return path.replace(/\.(safetensors|json)$/i, '');
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BlockdropError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message}`);
  }
}

/**
 * Writes `<path>.safetensors` then `<path>.json`, each atomically. `path` is the stem; a trailing
 * `.safetensors` / `.json` is tolerated.
 */
export async function saveModelCheckpoint(pathWithoutExt: string, checkpoint: ModelCheckpoint): Promise<SavedModelCheckpoint> {
  const stem = stemOf(pathWithoutExt);
  const safetensorsPath = `${stem}.safetensors`;
  const jsonPath = `${stem}.json`;
  const metaText = JSON.stringify(checkpoint.meta);
  if (metaText === undefined) throw new BlockdropError('checkpoint metadata is not JSON');
  const bytes = serializeSafetensors(checkpoint.tensors, {
    format: BLOCKDROP_FORMAT,
    version: BLOCKDROP_FORMAT_VERSION,
    [META_KEY]: metaText,
  });
  const sha256 = sha256Hex(bytes);
  const doc: ModelCheckpointJson = {
    format: BLOCKDROP_FORMAT,
    version: Number(BLOCKDROP_FORMAT_VERSION),
    meta: checkpoint.meta,
    weights: {
      file: basename(safetensorsPath),
      sha256,
      bytes: bytes.length,
      tensors: [...checkpoint.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape] })),
    },
  };
  // The old JSON goes first: a kill between the two writes then leaves weights without a JSON (read
  // with their embedded metadata), never new weights beside the old JSON (a pair that fails its hash).
  await removeFileDurably(jsonPath);
  await writeFileAtomic(safetensorsPath, bytes);
  await writeFileAtomic(jsonPath, `${JSON.stringify(doc, null, 2)}\n`);
  return { safetensorsPath, jsonPath, sha256, bytes: bytes.length };
}

function metaFromSafetensors(metadata: Readonly<Record<string, string>> | null, source: string): JsonObject {
  if (!metadata) return {};
  const embedded = metadata[META_KEY];
  if (metadata['format'] === BLOCKDROP_FORMAT && embedded !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(embedded);
    } catch {
      throw new BlockdropError(`cannot read ${source}: its embedded blockdrop metadata is not valid JSON`);
    }
    if (!isJsonObject(parsed)) throw new BlockdropError(`cannot read ${source}: its embedded blockdrop metadata is not an object`);
    checkJsonDepth(parsed, `cannot read ${source}: its embedded blockdrop metadata`);
    return parsed;
  }
  // A foreign safetensors file: its string metadata is all there is.
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(metadata)) defineField(out, k, v);
  return out;
}

async function readSidecar(jsonPath: string): Promise<ModelCheckpointJson> {
  const text = new TextDecoder().decode(await readBytes(jsonPath));
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new BlockdropError(oneLine(`cannot read ${jsonPath}: not valid JSON (${(e as Error).message})`));
  }
  if (!isJsonObject(doc) || doc['format'] !== BLOCKDROP_FORMAT || !isJsonObject(doc['meta'] ?? null)) {
    throw new BlockdropError(`cannot read ${jsonPath}: not a blockdrop checkpoint description (no "format": "blockdrop" and "meta")`);
  }
  checkJsonDepth(doc, `cannot read ${jsonPath}`);
  return doc as unknown as ModelCheckpointJson;
}

/** Verifies the weights against the JSON's recorded hash and returns the checkpoint. */
function combine(
  stBytes: Uint8Array,
  safetensorsPath: string,
  sidecar: ModelCheckpointJson | null,
  jsonPath: string | null,
): LoadedModelCheckpoint & { readonly blockdrop: boolean } {
  const sha256 = sha256Hex(stBytes);
  const recorded = sidecar?.weights?.sha256;
  if (sidecar && typeof recorded === 'string' && recorded !== sha256) {
    throw new BlockdropError(
      `${jsonPath} and ${safetensorsPath} do not belong together: the weights' sha256 is ${sha256.slice(0, 12)}… but the JSON ` +
        `records ${recorded.slice(0, 12)}…; the pair is inconsistent (one file was replaced or is from another run): restore or re-save both`,
    );
  }
  const content = readSafetensors(stBytes, safetensorsPath);
  const meta = sidecar ? sidecar.meta : metaFromSafetensors(content.metadata, safetensorsPath);
  const blockdrop = content.metadata?.['format'] === BLOCKDROP_FORMAT;
  return { tensors: content.tensors, meta, safetensorsPath, jsonPath: sidecar ? jsonPath : null, sha256, blockdrop };
}

/**
 * Loads a blockdrop checkpoint given `<stem>`, `<stem>.safetensors` or `<stem>.json`. The weights
 * must match the sha256 the JSON records; without the JSON the metadata embedded in the
 * safetensors file is used.
 */
export async function loadModelCheckpoint(path: string): Promise<LoadedModelCheckpoint> {
  const stem = stemOf(path);
  const safetensorsPath = `${stem}.safetensors`;
  const jsonPath = `${stem}.json`;
  const haveJson = await exists(jsonPath);
  if (!(await exists(safetensorsPath))) {
    throw new BlockdropError(
      haveJson
        ? `cannot read ${path}: ${safetensorsPath} (the weights described by ${jsonPath}) is missing`
        : `cannot read ${path}: neither ${safetensorsPath} nor ${jsonPath} exists`,
    );
  }
  const sidecar = haveJson ? await readSidecar(jsonPath) : null;
  const { tensors, meta, sha256 } = combine(await readBytes(safetensorsPath), safetensorsPath, sidecar, jsonPath);
  return { tensors, meta, safetensorsPath, jsonPath: sidecar ? jsonPath : null, sha256 };
}

// ---------------------------------------------------------------------------------------------
// Any checkpoint

export type CheckpointKind = 'safetensors' | 'torch-legacy' | 'torch-zip';

export interface AnyCheckpoint {
  readonly kind: CheckpointKind;
  /** The file actually read. */
  readonly source: string;
  /** The chosen state dict (torch: `module.` stripped) or all tensors of a safetensors file. */
  readonly tensors: TensorMap;
  /** JSON-safe metadata: blockdrop meta, safetensors `__metadata__`, or a torch file's non-tensor entries. */
  readonly meta: JsonObject;
}

export interface LoadAnyOptions {
  /** For torch files: which nested state dict to take (see `stateDict`). */
  readonly prefer?: readonly string[];
}

/** Which format the bytes are in, from their first bytes. */
export function sniffCheckpointFormat(bytes: Uint8Array): CheckpointKind | null {
  if (looksLikeTorchZip(bytes)) return 'torch-zip';
  if (looksLikeTorchLegacy(bytes)) return 'torch-legacy';
  if (looksLikeSafetensors(bytes)) return 'safetensors';
  return null;
}

function firstBytes(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 8);
  const hex = [...head].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const ascii = [...head].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
  return `${hex} "${ascii}"`;
}

/** `x.json` → its weights; a stem without a file → `<stem>.safetensors`. */
async function resolveCheckpointPath(path: string): Promise<string> {
  if (/\.json$/i.test(path)) return `${stemOf(path)}.safetensors`;
  if (!(await exists(path)) && (await exists(`${path}.safetensors`))) return `${path}.safetensors`;
  return path;
}

interface Loaded {
  kind: CheckpointKind;
  source: string;
  bytes: Uint8Array;
}

async function readAny(path: string): Promise<Loaded> {
  const source = await resolveCheckpointPath(path);
  const bytes = await readBytes(source);
  if (bytes.length === 0) throw new BlockdropError(`${source} is empty; it is not a checkpoint`);
  const kind = sniffCheckpointFormat(bytes);
  if (!kind) {
    throw new BlockdropError(`${source} is not a PyTorch checkpoint or safetensors file (first bytes: ${firstBytes(bytes)})`);
  }
  return { kind, source, bytes };
}

/** A safetensors file, verified against its blockdrop JSON when one sits beside it. */
async function loadSafetensorsWithSidecar(source: string, bytes: Uint8Array): Promise<ReturnType<typeof combine>> {
  const jsonPath = join(dirname(source), `${basename(stemOf(source))}.json`);
  let sidecar: ModelCheckpointJson | null = null;
  if (/\.safetensors$/i.test(source) && (await exists(jsonPath))) {
    try {
      sidecar = await readSidecar(jsonPath);
    } catch {
      sidecar = null; // an unrelated JSON next to a foreign safetensors file
    }
  }
  return combine(bytes, source, sidecar, jsonPath);
}

/**
 * The safetensors counterpart of a torch file's nested state dicts: a training-state checkpoint holds `resnet.*`,
 * `policy.*` and `optimizer.*` side by side, so the first name in `prefer` that prefixes some tensors selects those
 * (prefix stripped); '' (or no match) keeps the whole file.
 */
function preferredSection(tensors: TensorMap, prefer: readonly string[]): TensorMap {
  for (const name of prefer) {
    if (name === '') return tensors;
    const section = tensorSection(tensors, `${name}.`);
    if (section.size > 0) return section;
  }
  return tensors;
}

/**
 * Loads the tensors of any supported checkpoint: blockdrop / plain safetensors, or a PyTorch file
 * (legacy or zip; the state dict is chosen with `options.prefer`). The format is sniffed from the
 * first bytes, not the file name. A NaN or infinity in a float tensor is an error naming it.
 */
export async function loadAnyCheckpoint(path: string, options: LoadAnyOptions = {}): Promise<AnyCheckpoint> {
  const { kind, source, bytes } = await readAny(path);
  if (kind === 'safetensors') {
    const loaded = await loadSafetensorsWithSidecar(source, bytes);
    const tensors = options.prefer ? preferredSection(loaded.tensors, options.prefer) : loaded.tensors;
    assertFiniteTensors(tensors, source);
    return { kind, source, tensors, meta: loaded.meta };
  }
  const ckpt = readTorchCheckpoint(bytes, source);
  const tensors = stateDict(ckpt, options.prefer);
  assertFiniteTensors(tensors, source);
  return { kind, source, tensors, meta: describeCheckpoint(ckpt).metadata };
}

export interface AnyCheckpointDescription {
  /** JSON-safe summary: file, kind, state dicts with tensor lists, metadata. */
  readonly summary: JsonObject;
  /** Every state dict found ('' = root / the whole safetensors file). */
  readonly stateDicts: { readonly name: string; readonly tensors: TensorMap }[];
  /** The summary for people, ending in a newline. */
  readonly text: string;
}

const KIND_LABEL: Readonly<Record<CheckpointKind, string>> = {
  'safetensors': 'safetensors',
  'torch-legacy': 'PyTorch, legacy format (torch < 1.6)',
  'torch-zip': 'PyTorch, zip format (torch >= 1.6)',
};

/** For `blockdrop inspect`: what a checkpoint holds, as JSON and as text. */
export async function describeAnyCheckpoint(path: string): Promise<AnyCheckpointDescription> {
  const { kind, source, bytes } = await readAny(path);
  let stateDicts: { name: string; tensors: TensorMap }[];
  let meta: JsonObject;
  let entries: string[] = [];
  let blockdrop = false;
  if (kind === 'safetensors') {
    const loaded = await loadSafetensorsWithSidecar(source, bytes);
    stateDicts = [{ name: '', tensors: loaded.tensors }];
    meta = loaded.meta;
    blockdrop = loaded.blockdrop;
  } else {
    const ckpt = readTorchCheckpoint(bytes, source);
    const description = describeCheckpoint(ckpt);
    stateDicts = [...findStateDicts(ckpt)].map(([name, tensors]) => ({ name, tensors }));
    meta = description.metadata;
    entries = description.entries;
  }
  const dicts: StateDictDescription[] = stateDicts.map((d) => describeStateDict(d.name, d.tensors));
  const summary: JsonObject = {
    file: source,
    bytes: bytes.length,
    kind,
    blockdrop,
    entries,
    stateDicts: dicts.map((d) => ({
      entry: d.entry,
      tensorCount: d.tensorCount,
      parameterCount: d.parameterCount,
      tensors: d.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
    })),
    meta,
  };
  const lines: string[] = [];
  lines.push(`file: ${source} (${bytes.length.toLocaleString('en-US')} bytes)`);
  lines.push(`format: ${blockdrop ? 'blockdrop checkpoint (safetensors)' : KIND_LABEL[kind]}`);
  if (dicts.length === 0) lines.push('no state dict (no dictionary of names to tensors)');
  for (const d of dicts) {
    lines.push(
      `state dict ${d.entry ? `'${printable(d.entry)}'` : '(root)'}: ${d.tensorCount} tensors, ` +
        `${d.parameterCount.toLocaleString('en-US')} parameters (excluding BatchNorm running statistics)`,
    );
    // Names are printed escaped: a hostile one could hold terminal control sequences.
    const names = d.tensors.map((t) => printable(t.name, 200));
    const width = Math.min(60, names.reduce((w, n) => Math.max(w, n.length), 0));
    d.tensors.forEach((t, i) => {
      lines.push(`  ${names[i]!.padEnd(width)}  ${t.dtype.padEnd(8)}  ${shapeString(t.shape)}  (${numel(t.shape)})`);
    });
  }
  const metaKeys = Object.keys(meta);
  if (metaKeys.length) {
    lines.push('metadata:');
    for (const k of metaKeys) lines.push(`  ${printable(k, 200)}: ${formatMeta(meta[k]!)}`);
  }
  return { summary, stateDicts, text: `${lines.join('\n')}\n` };
}

function formatMeta(v: JsonValue): string {
  const text = printable(JSON.stringify(v), 100_000);
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}
