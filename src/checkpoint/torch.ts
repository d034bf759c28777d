/**
 * PyTorch checkpoints (`torch.save`) without PyTorch: the legacy format (before torch 1.6: five
 * concatenated pickles, then raw storages) and the zip format (torch ≥ 1.6: `<name>/data.pkl` plus
 * one `<name>/data/<key>` record per storage). Tensors are materialised as contiguous row-major
 * HostTensors whatever their view (offset, transposed or stride-0 strides, shared storages).
 */
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { BlockdropError } from '../errors.js';
import {
  DTYPE_BYTES, numel, shapeString, typedDataFromBuffer,
  type DType, type HostTensor, type TensorMap,
} from '../tensor.js';
import { oneLine, printable } from '../util/message.js';
import { defineField, type JsonObject, type JsonValue } from './json.js';
import {
  describeValue, isHostTensor, isPickleRecord, PickleGlobalRef, PickleOpaque, STORAGE_DTYPES, unpickle,
  type PickleValue, type TensorRebuild,
} from './pickle.js';
import { looksLikeZip, ZipArchive } from './zip.js';

export type TorchFormat = 'legacy' | 'zip';

export interface TorchCheckpoint {
  readonly format: TorchFormat;
  /** File name the checkpoint was read from, for messages. */
  readonly source: string;
  /** The unpickled object: usually a Map (dict / OrderedDict) of names to tensors or nested dicts. */
  readonly root: PickleValue;
}

/** `torch.serialization.MAGIC_NUMBER`, the first pickle of a legacy file. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
/** Largest tensor materialised (stride-0 views of a tiny storage could otherwise ask for anything). */
const MAX_TENSOR_BYTES = 2 ** 31;

/**
 * Bytes that a file's tensors may take in all: twice the file plus 16 MB. Real checkpoints stay
 * under the file's size (each element is stored once); stride-0 views and the same view rebuilt
 * again and again through the pickle memo can ask for far more, from a few hundred bytes.
 */
interface TensorBudget {
  readonly limit: number;
  left: number;
}
function tensorBudget(fileBytes: number): TensorBudget {
  const limit = 2 * fileBytes + 16 * 2 ** 20;
  return { limit, left: limit };
}

/** Legacy checkpoints start with pickle protocol 2 (`80 02`) and the LONG1 magic number. */
export function looksLikeTorchLegacy(bytes: Uint8Array): boolean {
  const head = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
  return bytes.length >= head.length && head.every((b, i) => bytes[i] === b);
}

export function looksLikeTorchZip(bytes: Uint8Array): boolean {
  return looksLikeZip(bytes);
}

/** A storage as the pickle refers to it; `bytes` holds its little-endian elements once known. */
class TorchStorage extends PickleOpaque {
  constructor(
    readonly key: string,
    readonly dtype: DType,
    readonly numel: number,
    readonly bytes: Uint8Array,
    readonly byteSwap: boolean,
  ) {
    super('torch.storage');
  }
}

interface StorageId {
  readonly key: string;
  readonly dtype: DType;
  readonly numel: number;
  readonly location: string;
  /** Legacy storage views (torch < 0.4): a slice of the root storage `key`. */
  readonly view: { readonly key: string; readonly offset: number; readonly numel: number } | null;
}

function corrupt(source: string, detail: string): never {
  throw new BlockdropError(oneLine(`cannot read ${source}: ${detail}; the file is truncated or corrupt`));
}

/** A persistent id `('storage', torch.XStorage, key, location, numel[, view_metadata])`. */
function parseStorageId(pid: PickleValue, source: string): StorageId {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
    return corrupt(source, `unexpected persistent id ${describeShort(pid)}`);
  }
  const [, type, rawKey, location, count, view] = pid;
  if (!(type instanceof PickleGlobalRef) || type.module !== 'torch' || !(type.name in STORAGE_DTYPES)) {
    return corrupt(source, `persistent id names ${describeShort(type ?? null)} instead of a torch storage type`);
  }
  if (typeof rawKey !== 'string' && typeof rawKey !== 'number') return corrupt(source, 'storage key is not a string');
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) {
    return corrupt(source, `storage ${printable(String(rawKey))} has a bad element count`);
  }
  let viewInfo: StorageId['view'] = null;
  if (view !== undefined && view !== null) {
    if (!Array.isArray(view) || view.length !== 3) return corrupt(source, 'bad storage view metadata');
    const [viewKey, offset, size] = view;
    if ((typeof viewKey !== 'string' && typeof viewKey !== 'number') || typeof offset !== 'number' ||
        typeof size !== 'number' || !Number.isSafeInteger(offset) || !Number.isSafeInteger(size) ||
        offset < 0 || size < 0 || offset + size > count) {
      return corrupt(source, 'bad storage view metadata');
    }
    viewInfo = { key: String(viewKey), offset, numel: size };
  }
  return {
    key: String(rawKey),
    dtype: STORAGE_DTYPES[type.name]!,
    numel: count,
    location: typeof location === 'string' ? location : '',
    view: viewInfo,
  };
}

function describeShort(v: PickleValue): string {
  if (v instanceof PickleGlobalRef) return `'${printable(v.qualifiedName)}'`;
  return describeValue(v);
}

function isRowMajor(size: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = size.length - 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== expected) return false;
    expected *= size[d]!;
  }
  return true;
}

/** Copies a strided view into row-major order, element by element (elements moved as whole words). */
function gather(src: Uint8Array, item: number, offset: number, size: readonly number[], stride: readonly number[], n: number): ArrayBuffer {
  const out = new ArrayBuffer(n * item);
  const aligned = src.byteOffset % item === 0 ? src : src.slice();
  const words = item === 8 ? 2 : 1;
  const wordBytes = item === 8 ? 4 : item;
  const make = (buf: ArrayBuffer, off: number, len: number): Uint8Array | Uint16Array | Uint32Array =>
    wordBytes === 1 ? new Uint8Array(buf, off, len) : wordBytes === 2 ? new Uint16Array(buf, off, len) : new Uint32Array(buf, off, len);
  const from = make(aligned.buffer as ArrayBuffer, aligned.byteOffset, aligned.byteLength / wordBytes);
  const to = make(out, 0, (n * item) / wordBytes);
  const ndim = size.length;
  const index = new Array<number>(ndim).fill(0);
  let pos = offset;
  for (let i = 0; i < n; i++) {
    if (words === 1) {
      to[i] = from[pos]!;
    } else {
      to[2 * i] = from[2 * pos]!;
      to[2 * i + 1] = from[2 * pos + 1]!;
    }
    for (let d = ndim - 1; d >= 0; d--) {
      index[d]!++;
      pos += stride[d]!;
      if (index[d]! < size[d]!) break;
      pos -= stride[d]! * size[d]!;
      index[d] = 0;
    }
  }
  return out;
}

function swapBytes(buffer: ArrayBuffer, item: number): void {
  if (item === 1) return;
  const b = new Uint8Array(buffer);
  for (let i = 0; i < b.length; i += item) {
    for (let lo = i, hi = i + item - 1; lo < hi; lo++, hi--) {
      const t = b[lo]!;
      b[lo] = b[hi]!;
      b[hi] = t;
    }
  }
}

/** A tensor from its storage and view, as a fresh contiguous array. */
function materialize(storage: TorchStorage, call: TensorRebuild, source: string, budget: TensorBudget): HostTensor {
  const dtype = storage.dtype;
  if (call.dtype && call.dtype !== dtype) {
    corrupt(source, `tensor of dtype ${call.dtype} stored in ${dtype} storage ${storage.key}`);
  }
  const item = DTYPE_BYTES[dtype];
  const { size, stride, storageOffset } = call;
  const n = numel(size);
  const shape = [...size];
  if (n === 0) return { dtype, shape, data: typedDataFromBuffer(dtype, new ArrayBuffer(0)) };
  if (n * item > MAX_TENSOR_BYTES) {
    throw new BlockdropError(oneLine(`cannot read ${source}: a tensor of shape ${shapeString(size)} is too large to load (${n * item} bytes)`));
  }
  if (n * item > budget.left) {
    throw new BlockdropError(oneLine(
      `cannot read ${source}: its tensors would take more than ${budget.limit} bytes, far more than the file holds ` +
        `(views that repeat their storage, e.g. a tensor of shape ${shapeString(size)} with strides ${shapeString(stride)}); ` +
        'the file is corrupt or hostile',
    ));
  }
  budget.left -= n * item;
  let last = storageOffset;
  for (let d = 0; d < size.length; d++) last += (size[d]! - 1) * stride[d]!;
  if (last >= storage.numel) {
    corrupt(source, `a tensor view ${shapeString(size)} reaches element ${last} of storage ${storage.key}, which has ${storage.numel}`);
  }
  let buffer: ArrayBuffer;
  if (isRowMajor(size, stride)) {
    buffer = storage.bytes.slice(storageOffset * item, (storageOffset + n) * item).buffer as ArrayBuffer;
  } else {
    buffer = gather(storage.bytes, item, storageOffset, size, stride, n);
  }
  if (storage.byteSwap) swapBytes(buffer, item);
  return { dtype, shape, data: typedDataFromBuffer(dtype, buffer) };
}

function checkHost(): void {
  if (endianness() !== 'LE') {
    throw new BlockdropError('blockdrop reads checkpoints only on little-endian machines (this one is big-endian)');
  }
}

/** Parses a checkpoint held in memory. `sourceName` is used in messages. */
export function readTorchCheckpoint(input: Uint8Array, sourceName: string): TorchCheckpoint {
  checkHost();
  // A Node Buffer's slice() is a view, not a copy: work on a plain Uint8Array so copies are real.
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  if (looksLikeTorchZip(bytes)) return readZipCheckpoint(bytes, sourceName);
  if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1]! <= 5) return readLegacyCheckpoint(bytes, sourceName);
  throw new BlockdropError(`${sourceName} is not a PyTorch checkpoint (it starts with neither a zip header nor a pickle)`);
}

export async function loadTorchCheckpoint(path: string): Promise<TorchCheckpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new BlockdropError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return readTorchCheckpoint(bytes, path);
}

function readLegacyCheckpoint(bytes: Uint8Array, source: string): TorchCheckpoint {
  const magic = unpickle(bytes, { sourceName: source, what: 'the magic-number pickle', offsetsIn: 'the file' });
  if (magic.value !== LEGACY_MAGIC) {
    throw new BlockdropError(`${source} is not a PyTorch checkpoint: it is a pickle, but not one written by torch.save`);
  }
  const protocol = unpickle(bytes, { sourceName: source, what: 'the protocol pickle', offsetsIn: 'the file', start: magic.end });
  if (protocol.value !== LEGACY_PROTOCOL) {
    throw new BlockdropError(`cannot read ${source}: unsupported legacy torch protocol ${describeValue(protocol.value)} (expected 1001)`);
  }
  const sysInfo = unpickle(bytes, { sourceName: source, what: 'the sys_info pickle', offsetsIn: 'the file', start: protocol.end });
  const byteSwap = sysInfo.value instanceof Map && sysInfo.value.get('little_endian') === false;

  // Pass 1 finds where the object pickle ends and which storages it declares; their data follows
  // only after the storage-key list, so tensors are built in pass 2.
  const declared = new Map<string, StorageId>();
  const placeholder: HostTensor = { dtype: 'float32', shape: [0], data: new Float32Array(0) };
  const objectPickle = { sourceName: source, what: 'the checkpoint pickle', offsetsIn: 'the file', start: sysInfo.end };
  const pass1 = unpickle(bytes, {
    ...objectPickle,
    persistentLoad(pid) {
      const id = parseStorageId(pid, source);
      const seen = declared.get(id.key);
      if (seen && (seen.dtype !== id.dtype || seen.numel !== id.numel)) {
        corrupt(source, `storage ${id.key} is declared twice with different types or sizes`);
      }
      declared.set(id.key, id);
      return new PickleOpaque('placeholder');
    },
    rebuildTensor: () => placeholder,
  });
  const keyList = unpickle(bytes, { sourceName: source, what: 'the storage-key list', offsetsIn: 'the file', start: pass1.end });
  if (!Array.isArray(keyList.value) || !keyList.value.every((k) => typeof k === 'string' || typeof k === 'number')) {
    corrupt(source, 'the storage-key list is not a list of keys');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = new Map<string, TorchStorage>();
  let pos = keyList.end;
  for (const rawKey of keyList.value as (string | number)[]) {
    const key = String(rawKey);
    const id = declared.get(key);
    if (!id) corrupt(source, `the storage-key list names storage ${key}, which no tensor uses`);
    if (data.has(key)) corrupt(source, `storage ${key} appears twice in the storage-key list`);
    const item = DTYPE_BYTES[id.dtype];
    if (pos + 8 > bytes.length) {
      corrupt(source, `storage ${key} needs an 8-byte element count, only ${bytes.length - pos} bytes left`);
    }
    const count = view.getBigInt64(pos, true);
    if (count !== BigInt(id.numel)) {
      corrupt(source, `storage ${key} holds ${count} elements in the file but the pickle declares ${id.numel}`);
    }
    const need = id.numel * item;
    const left = bytes.length - pos - 8;
    if (need > left) corrupt(source, `storage ${key} needs ${need} bytes, only ${left} left`);
    data.set(key, new TorchStorage(key, id.dtype, id.numel, bytes.subarray(pos + 8, pos + 8 + need), byteSwap));
    pos += 8 + need;
  }
  for (const key of declared.keys()) {
    if (!data.has(key)) corrupt(source, `storage ${key} is used by a tensor but has no data`);
  }

  const views = new Map<string, TorchStorage>();
  const budget = tensorBudget(bytes.length);
  const pass2 = unpickle(bytes, {
    ...objectPickle,
    persistentLoad(pid) {
      const id = parseStorageId(pid, source);
      const root = data.get(id.key)!;
      if (!id.view) return root;
      // A storage view: elements [offset, offset + numel) of the root storage.
      let storage = views.get(id.view.key);
      if (!storage) {
        const item = DTYPE_BYTES[root.dtype];
        const slice = root.bytes.subarray(id.view.offset * item, (id.view.offset + id.view.numel) * item);
        storage = new TorchStorage(id.view.key, root.dtype, id.view.numel, slice, byteSwap);
        views.set(id.view.key, storage);
      }
      return storage;
    },
    rebuildTensor: (call) => rebuild(call, source, budget),
  });
  return { format: 'legacy', source, root: pass2.value };
}

function rebuild(call: TensorRebuild, source: string, budget: TensorBudget): HostTensor {
  if (!(call.storage instanceof TorchStorage)) corrupt(source, 'a tensor is built from something that is not a storage');
  return materialize(call.storage, call, source, budget);
}

function readZipCheckpoint(bytes: Uint8Array, source: string): TorchCheckpoint {
  const zip = new ZipArchive(bytes, source);
  // torch names the archive's top folder after the file; find it through data.pkl.
  const pickles = [...zip.entries.keys()].filter((name) => /^[^/]*\/data\.pkl$/.test(name) || name === 'data.pkl');
  if (pickles.length !== 1) {
    throw new BlockdropError(oneLine(
      pickles.length === 0
        ? `${source} is a zip archive but not a PyTorch checkpoint (it has no data.pkl)`
        : `cannot read ${source}: the archive holds ${pickles.length} data.pkl records`,
    ));
  }
  const pklName = pickles[0]!;
  const prefix = pklName.slice(0, pklName.length - 'data.pkl'.length);
  const byteOrderEntry = zip.entries.get(`${prefix}byteorder`);
  const byteOrder = byteOrderEntry ? new TextDecoder().decode(zip.read(byteOrderEntry)).trim() : 'little';
  if (byteOrder !== 'little' && byteOrder !== 'big') corrupt(source, `unknown byteorder '${printable(byteOrder, 40)}'`);
  const byteSwap = byteOrder === 'big';
  const storages = new Map<string, TorchStorage>();
  const budget = tensorBudget(bytes.length);
  const pkl = zip.read(zip.entries.get(pklName)!);
  const result = unpickle(pkl, {
    sourceName: source,
    what: pklName,
    persistentLoad(pid) {
      const id = parseStorageId(pid, source);
      const cached = storages.get(id.key);
      if (cached) {
        if (cached.dtype !== id.dtype) corrupt(source, `storage ${id.key} is used with two dtypes`);
        return cached;
      }
      const recordName = `${prefix}data/${id.key}`;
      const entry = zip.entries.get(recordName);
      if (!entry) corrupt(source, `storage record ${recordName} is missing from the archive`);
      const need = id.numel * DTYPE_BYTES[id.dtype];
      if (entry.size < need) corrupt(source, `storage ${id.key} needs ${need} bytes, only ${entry.size} left`);
      const record = zip.read(entry).subarray(0, need);
      const storage = new TorchStorage(id.key, id.dtype, id.numel, record, byteSwap);
      storages.set(id.key, storage);
      return storage;
    },
    rebuildTensor: (call) => rebuild(call, source, budget),
  });
  return { format: 'zip', source, root: result.value };
}

// ---------------------------------------------------------------------------------------------
// State dicts

/** A non-empty dict whose keys are all strings and whose values are all tensors. */
function asTensorDict(v: PickleValue): TensorMap | null {
  if (!(v instanceof Map) || v.size === 0) return null;
  for (const [key, value] of v) {
    if (typeof key !== 'string' || !isHostTensor(value)) return null;
  }
  return v as unknown as TensorMap;
}

const MODULE_PREFIX = 'module.';

/** Drops DataParallel's `module.` prefix from every key that has it. */
function stripModulePrefix(dict: TensorMap, entry: string, source: string): TensorMap {
  if (![...dict.keys()].some((k) => k.startsWith(MODULE_PREFIX))) return new Map(dict);
  const out: TensorMap = new Map();
  for (const [key, tensor] of dict) {
    const name = key.startsWith(MODULE_PREFIX) ? key.slice(MODULE_PREFIX.length) : key;
    if (out.has(name)) {
      throw new BlockdropError(oneLine(
        `cannot read ${source}: state dict '${printable(entry)}' has both '${printable(name)}' and '${MODULE_PREFIX}${printable(name)}'`,
      ));
    }
    out.set(name, tensor);
  }
  return out;
}

/**
 * Every name→tensor dict in the checkpoint, keyed by where it sits: '' for the root, 'state_dict',
 * 'agent', 'model.state_dict' for nested ones. Keys have DataParallel's leading `module.` removed;
 * `num_batches_tracked` entries are kept.
 */
export function findStateDicts(ckpt: TorchCheckpoint): Map<string, TensorMap> {
  const found = new Map<string, TensorMap>();
  const seen = new Set<object>();
  const visit = (value: PickleValue, path: string, depth: number): void => {
    if (typeof value !== 'object' || value === null || seen.has(value)) return;
    seen.add(value);
    const dict = asTensorDict(value);
    if (dict) {
      found.set(path, stripModulePrefix(dict, path, ckpt.source));
      return;
    }
    if (depth >= 4) return;
    if (value instanceof Map) {
      for (const [key, child] of value) {
        if (typeof key === 'string') visit(child, path ? `${path}.${key}` : key, depth + 1);
      }
    } else if (isPickleRecord(value)) {
      for (const key of Object.keys(value)) visit(value[key]!, path ? `${path}.${key}` : key, depth + 1);
    }
  };
  visit(ckpt.root, '', 0);
  return found;
}

export const DEFAULT_STATE_DICT_PREFERENCE: readonly string[] = ['state_dict', 'resnet', 'net', 'model', 'agent', ''];

/**
 * The state dict to use: the first entry of `prefer` that exists. Without an explicit `prefer`, a
 * checkpoint holding exactly one state dict under another name yields that one.
 */
export function stateDict(ckpt: TorchCheckpoint, prefer?: readonly string[]): TensorMap {
  const found = findStateDicts(ckpt);
  const order = prefer ?? DEFAULT_STATE_DICT_PREFERENCE;
  for (const name of order) {
    const dict = found.get(name);
    if (dict) return dict;
  }
  if (!prefer && found.size === 1) return [...found.values()][0]!;
  const wanted = order.map((n) => (n ? `'${n}'` : 'the root')).join(', ');
  if (found.size === 0) {
    throw new BlockdropError(`${ckpt.source} holds no state dict (no dictionary of names to tensors); it is not a model checkpoint`);
  }
  const shown = [...found].slice(0, 8).map(([n, d]) => `${n ? `'${printable(n, 60)}'` : 'the root'} (${d.size} tensors)`);
  if (found.size > shown.length) shown.push(`${found.size - shown.length} more`);
  throw new BlockdropError(oneLine(
    `${ckpt.source} has no state dict under ${wanted}; it has ${shown.join(', ')}: choose one of those`,
    1000,
  ));
}

// ---------------------------------------------------------------------------------------------
// Description (for `blockdrop inspect`) and JSON-safe metadata

export interface TensorDescription {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: number[];
}

export interface StateDictDescription {
  /** Where the dict sits ('' = root). */
  readonly entry: string;
  readonly tensorCount: number;
  /** Elements of all tensors except BatchNorm buffers (running_mean, running_var, num_batches_tracked). */
  readonly parameterCount: number;
  readonly tensors: TensorDescription[];
}

export interface CheckpointDescription {
  readonly format: TorchFormat;
  readonly source: string;
  /** The root dict's keys, except those holding tensors directly (empty for a bare state dict). */
  readonly entries: string[];
  readonly stateDicts: StateDictDescription[];
  /** Everything else in the root dict (epoch, acc, args, …), JSON-safe. */
  readonly metadata: JsonObject;
}

const BUFFER_SUFFIXES = ['running_mean', 'running_var', 'num_batches_tracked'];

export function isBatchNormBuffer(name: string): boolean {
  return BUFFER_SUFFIXES.some((s) => name === s || name.endsWith(`.${s}`));
}

export function describeStateDict(entry: string, dict: TensorMap): StateDictDescription {
  let parameterCount = 0;
  const tensors: TensorDescription[] = [];
  for (const [name, t] of dict) {
    if (!isBatchNormBuffer(name)) parameterCount += numel(t.shape);
    tensors.push({ name, dtype: t.dtype, shape: [...t.shape] });
  }
  return { entry, tensorCount: dict.size, parameterCount, tensors };
}

export function describeCheckpoint(ckpt: TorchCheckpoint): CheckpointDescription {
  const dicts = findStateDicts(ckpt);
  const root = ckpt.root;
  const entries = root instanceof Map ? [...root].filter(([, v]) => !isHostTensor(v)).map(([k]) => keyText(k)) : [];
  const metadata: JsonObject = {};
  if (root instanceof Map) {
    for (const [key, value] of root) {
      const name = keyText(key);
      if (dicts.has(name) || isHostTensor(value)) continue;
      defineField(metadata, name, pickleToJson(value));
    }
  } else if (!dicts.has('')) {
    defineField(metadata, 'root', pickleToJson(root));
  }
  return {
    format: ckpt.format,
    source: ckpt.source,
    entries,
    stateDicts: [...dicts].map(([entry, dict]) => describeStateDict(entry, dict)),
    metadata,
  };
}

/**
 * A dict key as text: strings as they are, other primitives as String() writes them, objects
 * described (String() on a hostile tuple or record can throw or recurse a million levels deep).
 */
function keyText(k: PickleValue): string {
  return typeof k !== 'object' || k === null ? String(k) : describeValue(k);
}

/** A converted non-string key as JSON text (its conversion is already bounded in depth and size). */
function jsonKey(k: JsonValue): string {
  return typeof k === 'object' && k !== null ? JSON.stringify(k) : String(k);
}

/**
 * Pickle data as JSON: dicts and records become objects (keys stringified), tuples/lists arrays,
 * big ints decimal strings, non-finite floats strings, tensors and bytes short descriptions.
 * Shared or cyclic structure is expanded at most `budget` nodes, so hostile nesting stays cheap.
 */
export function pickleToJson(value: PickleValue, budget = { nodes: 100_000 }): JsonValue {
  const convert = (v: PickleValue, depth: number): JsonValue => {
    if (--budget.nodes < 0 || depth > 32) return '<truncated>';
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
    if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
    if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
    if (v instanceof Uint8Array) return `<${v.length} bytes>`;
    if (v instanceof PickleGlobalRef) return v.qualifiedName;
    if (v instanceof PickleOpaque) return `<${v.tag}>`;
    if (Array.isArray(v)) return v.map((x) => convert(x, depth + 1));
    if (isHostTensor(v)) return `<tensor ${v.dtype} ${shapeString(v.shape)}>`;
    if (v instanceof Map) {
      const dict = asTensorDict(v);
      if (dict) return `<state dict, ${dict.size} tensors>`;
      const out: JsonObject = {};
      for (const [k, x] of v) defineField(out, typeof k === 'string' ? k : jsonKey(convert(k, depth + 1)), convert(x, depth + 1));
      return out;
    }
    const out: JsonObject = {};
    for (const k of Object.keys(v)) defineField(out, k, convert(v[k]!, depth + 1));
    return out;
  };
  return convert(value, 0);
}
