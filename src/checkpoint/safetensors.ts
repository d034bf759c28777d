/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of UTF-8 JSON `{"name": {"dtype", "shape", "data_offsets": [begin, end]},
 * "__metadata__": {string: string}}`, then the byte buffer. Offsets are relative to the buffer,
 * must tile it exactly (sorted, contiguous, no gaps or overlaps, ending at the end of the file),
 * and each range holds numel × itemsize little-endian row-major bytes.
 *
 * The writer follows the reference implementation: tensors are laid out by descending element
 * size so each is aligned, and the header is padded with spaces to a multiple of 8 bytes. The
 * header lists tensors in the TensorMap's order, which this reader restores (the format leaves the
 * header's key order free; other readers sort by offset or name).
 */
import { readFile } from 'node:fs/promises';
import { BlockdropError } from '../errors.js';
import {
  DTYPE_BYTES, numel, shapeString, tensorBytes, typedDataFromBuffer,
  type DType, type HostTensor, type TensorMap,
} from '../tensor.js';
import { writeFileAtomic } from '../util/atomic.js';
import { oneLine, printable } from '../util/message.js';

const TO_SAFETENSORS: Readonly<Record<DType, string>> = {
  float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64',
  int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const FROM_SAFETENSORS: ReadonlyMap<string, DType> = new Map(
  Object.entries(TO_SAFETENSORS).map(([dtype, code]) => [code, dtype as DType]),
);
/** Same limit as the reference implementation. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

export interface SafetensorsContent {
  readonly tensors: TensorMap;
  /** The `__metadata__` string map, or null when absent. */
  readonly metadata: Readonly<Record<string, string>> | null;
}

/** Starts with an 8-byte header length that fits the file, followed by `{`. */
export function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 10) return false;
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  return n >= 2n && n <= BigInt(bytes.length - 8) && bytes[8] === 0x7b;
}

function invalid(source: string, detail: string): never {
  throw new BlockdropError(oneLine(`cannot read ${source}: invalid safetensors file: ${detail}`));
}

/** A header value for messages: short and on one line, whatever the file holds (JSON.stringify of a deep array overflows the stack). */
function describeJson(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(printable(v, 40));
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return typeof v === 'object' ? 'an object' : typeof v;
}

/**
 * The names of a JSON object's top-level keys in document order, or the first duplicate. JSON.parse
 * reorders integer-like keys and silently keeps the last of duplicates; the format forbids
 * duplicates and the order carries the tensors' order.
 */
function topLevelKeys(json: string, source: string): string[] {
  const keys: string[] = [];
  const seen = new Set<string>();
  let i = json.indexOf('{') + 1;
  let depth = 1;
  let expectKey = true;
  while (i < json.length && depth > 0) {
    const c = json[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < json.length && json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(json.slice(i, j + 1)) as string;
        if (seen.has(key)) invalid(source, `duplicate key '${printable(key)}' in the header`);
        seen.add(key);
        keys.push(key);
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectKey = true;
    i++;
  }
  return keys;
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export function readSafetensors(input: Uint8Array, sourceName: string): SafetensorsContent {
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  if (bytes.length < 8) invalid(sourceName, `file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) invalid(sourceName, `header length ${n64} exceeds the 100 MB limit`);
  const n = Number(n64);
  if (n < 2) invalid(sourceName, `header length ${n} is too small`);
  if (8 + n > bytes.length) {
    invalid(sourceName, `header needs ${n} bytes, only ${bytes.length - 8} left (file is truncated)`);
  }
  let text: string;
  try {
    text = utf8Strict.decode(bytes.subarray(8, 8 + n));
  } catch {
    return invalid(sourceName, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) invalid(sourceName, 'header does not start with {');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return invalid(sourceName, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) invalid(sourceName, 'header is not a JSON object');
  const fields = header as Record<string, unknown>;
  const order = topLevelKeys(text, sourceName);

  let metadata: Record<string, string> | null = null;
  if (Object.hasOwn(fields, METADATA_KEY)) {
    const raw = fields[METADATA_KEY];
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) invalid(sourceName, '__metadata__ is not an object');
    metadata = Object.create(null) as Record<string, string>;
    for (const [k, v] of Object.entries(raw)) {
      if (typeof v !== 'string') invalid(sourceName, `__metadata__ value '${printable(k)}' is not a string`);
      metadata[k] = v;
    }
  }

  const bufferStart = 8 + n;
  const bufferLength = bytes.length - bufferStart;
  interface Entry { name: string; dtype: DType; shape: number[]; begin: number; end: number }
  const entries: Entry[] = [];
  for (const name of order) {
    if (name === METADATA_KEY) continue;
    const info = fields[name];
    if (typeof info !== 'object' || info === null || Array.isArray(info)) invalid(sourceName, `entry '${printable(name)}' is not an object`);
    const { dtype: code, shape, data_offsets: offsets } = info as Record<string, unknown>;
    const dtype = typeof code === 'string' ? FROM_SAFETENSORS.get(code) : undefined;
    if (!dtype) invalid(sourceName, `tensor '${printable(name)}' has unsupported dtype ${describeJson(code)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      invalid(sourceName, `tensor '${printable(name)}' has an invalid shape`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      invalid(sourceName, `tensor '${printable(name)}' has invalid data_offsets`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) invalid(sourceName, `tensor '${printable(name)}' has data_offsets that end before they begin`);
    if (end > bufferLength) {
      invalid(sourceName, `tensor '${printable(name)}' needs bytes up to ${end}, only ${bufferLength} in the data buffer (file is truncated)`);
    }
    const expected = numel(shape as number[]) * DTYPE_BYTES[dtype];
    if (!Number.isSafeInteger(expected) || end - begin !== expected) {
      invalid(sourceName, `tensor '${printable(name)}' is ${dtype} ${shapeString(shape as number[])} = ${expected} bytes, but data_offsets span ${end - begin}`);
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  // The ranges must tile the buffer: sorted by start, each begins where the previous ended.
  const byOffset = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of byOffset) {
    if (e.begin !== cursor) {
      invalid(sourceName, e.begin < cursor
        ? `tensor '${printable(e.name)}' overlaps the previous tensor's data`
        : `gap in the data buffer before tensor '${printable(e.name)}'`);
    }
    cursor = e.end;
  }
  if (cursor !== bufferLength) {
    invalid(sourceName, `the tensors cover ${cursor} bytes but the data buffer has ${bufferLength}`);
  }

  const tensors: TensorMap = new Map();
  for (const e of entries) {
    const copy = bytes.slice(bufferStart + e.begin, bufferStart + e.end);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: typedDataFromBuffer(e.dtype, copy.buffer as ArrayBuffer) });
  }
  return { tensors, metadata };
}

export async function loadSafetensors(path: string): Promise<SafetensorsContent> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new BlockdropError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return readSafetensors(bytes, path);
}

function checkTensor(name: string, t: HostTensor): void {
  if (!TO_SAFETENSORS[t.dtype]) throw new BlockdropError(`cannot save tensor '${name}': unsupported dtype ${String(t.dtype)}`);
  const expected = numel(t.shape);
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || t.data.length !== expected) {
    throw new BlockdropError(`cannot save tensor '${name}': ${t.data.length} values do not fill shape ${shapeString(t.shape)}`);
  }
  if (t.data.BYTES_PER_ELEMENT !== DTYPE_BYTES[t.dtype]) {
    throw new BlockdropError(`cannot save tensor '${name}': its data array does not hold ${t.dtype} elements`);
  }
}

/** The file's bytes for `tensors` (and optional string metadata). */
export function serializeSafetensors(tensors: TensorMap, metadata?: Readonly<Record<string, string>> | null): Uint8Array {
  const names = [...tensors.keys()];
  for (const name of names) {
    if (name === METADATA_KEY) throw new BlockdropError(`cannot save a tensor named ${METADATA_KEY}`);
    checkTensor(name, tensors.get(name)!);
  }
  // Larger elements first keeps every tensor aligned to its element size (stable for equal sizes).
  const layout = names
    .map((name, index) => ({ name, index, item: DTYPE_BYTES[tensors.get(name)!.dtype] }))
    .sort((a, b) => b.item - a.item || a.index - b.index);
  const offsets = new Map<string, [number, number]>();
  let cursor = 0;
  for (const { name } of layout) {
    const size = tensors.get(name)!.data.byteLength;
    offsets.set(name, [cursor, cursor + size]);
    cursor += size;
  }
  // Written by hand so the header lists tensors in the TensorMap's order (JSON.stringify would move
  // integer-like names first); the reader restores that order, other readers sort by offset.
  const parts: string[] = [];
  if (metadata) {
    const meta: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new BlockdropError(`safetensors metadata '${k}' must be a string`);
      meta.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${meta.join(',')}}`);
  }
  for (const name of names) {
    const t = tensors.get(name)!;
    const info = { dtype: TO_SAFETENSORS[t.dtype], shape: [...t.shape], data_offsets: offsets.get(name)! };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + cursor);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  const base = 8 + padded;
  for (const [name, [begin]] of offsets) out.set(tensorBytes(tensors.get(name)!), base + begin);
  return out;
}

/** Writes a safetensors file atomically. */
export async function saveSafetensors(
  path: string,
  tensors: TensorMap,
  metadata?: Readonly<Record<string, string>> | null,
): Promise<Uint8Array> {
  const bytes = serializeSafetensors(tensors, metadata);
  await writeFileAtomic(path, bytes);
  return bytes;
}
