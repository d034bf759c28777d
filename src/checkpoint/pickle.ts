/**
 * A restricted, data-only unpickler for PyTorch checkpoints.
 *
 * Python's pickle is a small stack machine whose GLOBAL / REDUCE opcodes import and call arbitrary
 * functions; that is how a malicious checkpoint runs code. This reader never imports or calls
 * anything: a global is resolved at the GLOBAL / STACK_GLOBAL opcode against the fixed table
 * `ALLOWED_GLOBALS` below, whose entries are pure data builders written here. Any other global is
 * refused right there, before a REDUCE could use it.
 *
 * Every read is bounds-checked, every length field is compared with the bytes that remain before
 * anything is allocated, and each opcode consumes at least one byte, so a truncated or hostile
 * pickle ends in a BlockdropError, never an out-of-range read or a hang.
 */
import { BlockdropError } from '../errors.js';
import { DTYPE_BYTES, numel, type DType, type HostTensor } from '../tensor.js';
import { oneLine, printable } from '../util/message.js';
import { defineField } from './json.js';

/** A Python global that the allowlist knows, kept as data (e.g. `torch.FloatStorage`, `torch.float16`). */
export class PickleGlobalRef {
  constructor(readonly module: string, readonly name: string) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
  toString(): string {
    return this.qualifiedName;
  }
}

/** A value produced by a persistent-load hook (e.g. a torch storage), opaque to the unpickler. */
export class PickleOpaque {
  constructor(readonly tag: string) {}
}

/** A Python object with attributes, e.g. `argparse.Namespace`: its fields as a plain record. */
export interface PickleRecord {
  [field: string]: PickleValue;
}

/** A Python dict or OrderedDict, in insertion order. */
export type PickleDict = Map<PickleValue, PickleValue>;

/**
 * Python data as JavaScript values: None → null, bool → boolean, int → number (bigint beyond
 * ±2^53), float → number, str → string, bytes → Uint8Array, list / tuple / set → array,
 * dict → Map, Namespace → plain record, tensor → HostTensor.
 */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | HostTensor
  | PickleValue[]
  | PickleDict
  | PickleRecord
  | PickleGlobalRef
  | PickleOpaque;

/** The arguments of a `torch._utils._rebuild_tensor*` call, type-checked. */
export interface TensorRebuild {
  readonly storage: PickleValue;
  readonly storageOffset: number;
  readonly size: number[];
  readonly stride: number[];
  /** Only `_rebuild_tensor_v3` names the dtype in the call instead of the storage type. */
  readonly dtype?: DType;
}

export interface UnpickleOptions {
  /** File name for messages. */
  readonly sourceName: string;
  /** What this pickle is within the file, for messages (e.g. `data.pkl`, `pickle 4 of 5`). */
  readonly what?: string;
  /** Byte offset where the pickle starts. */
  readonly start?: number;
  /** What byte offsets in messages count from (default: `what`); e.g. 'the file' when `bytes` is the whole file. */
  readonly offsetsIn?: string;
  /** BINPERSID: turns a persistent id (torch: a storage descriptor tuple) into a value. */
  readonly persistentLoad?: (pid: PickleValue) => PickleValue;
  /** `torch._utils._rebuild_tensor*`: builds a tensor from a storage and its view. */
  readonly rebuildTensor?: (call: TensorRebuild) => HostTensor;
}

export interface UnpickleResult {
  readonly value: PickleValue;
  /** Byte offset just past the STOP opcode. */
  readonly end: number;
}

/** torch storage classes and the dtype of their elements. */
export const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** torch dtype objects (`torch.float32`, …) as they may appear in a pickle. */
export const TORCH_DTYPE_NAMES: Readonly<Record<string, DType>> = {
  float32: 'float32', float: 'float32',
  float64: 'float64', double: 'float64',
  float16: 'float16', half: 'float16',
  bfloat16: 'bfloat16',
  int64: 'int64', long: 'int64',
  int32: 'int32', int: 'int32',
  int16: 'int16', short: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

type Allowed =
  /** Data only: pushing it is fine, calling it is an error (storage types, dtypes). */
  | { readonly kind: 'data' }
  /** A pure function of its arguments (REDUCE). */
  | { readonly kind: 'function'; call(args: PickleValue[], vm: Unpickler): PickleValue }
  /** A class: REDUCE / NEWOBJ create an instance, BUILD sets its state. */
  | { readonly kind: 'class'; create(args: PickleValue[], vm: Unpickler): PickleValue };

const DATA: Allowed = { kind: 'data' };

function buildAllowlist(): Map<string, Allowed> {
  const table = new Map<string, Allowed>();
  const orderedDict: Allowed = {
    kind: 'class',
    create(args, vm) {
      const dict: PickleDict = new Map();
      // OrderedDict(), or OrderedDict([(k, v), ...]) as some pickles write it.
      if (args.length === 1 && Array.isArray(args[0])) {
        vm.charge((args[0] as PickleValue[]).length);
        for (const pair of args[0]) {
          if (!Array.isArray(pair) || pair.length !== 2) return vm.corrupt('OrderedDict argument is not a list of pairs');
          dict.set(pair[0]!, pair[1]!);
        }
      } else if (args.length !== 0) {
        vm.corrupt(`OrderedDict called with ${args.length} arguments`);
      }
      return dict;
    },
  };
  table.set('collections.OrderedDict', orderedDict);
  table.set('torch._utils._rebuild_tensor', {
    kind: 'function',
    call: (args, vm) => vm.rebuildTensor('_rebuild_tensor', args, 4),
  });
  table.set('torch._utils._rebuild_tensor_v2', {
    kind: 'function',
    // (storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
    call: (args, vm) => vm.rebuildTensor('_rebuild_tensor_v2', args, 6),
  });
  table.set('torch._utils._rebuild_tensor_v3', {
    kind: 'function',
    // (storage, offset, size, stride, requires_grad, backward_hooks, dtype[, metadata])
    call: (args, vm) => vm.rebuildTensor('_rebuild_tensor_v3', args, 7),
  });
  const parameter: Allowed = {
    kind: 'function',
    // nn.Parameter(data, requires_grad, backward_hooks[, state]): the data tensor is what matters.
    call(args, vm) {
      const data = args[0];
      if (args.length < 3 || !isHostTensor(data)) vm.corrupt('_rebuild_parameter without a tensor');
      return data as HostTensor;
    },
  };
  table.set('torch._utils._rebuild_parameter', parameter);
  table.set('torch._utils._rebuild_parameter_with_state', parameter);
  for (const name of Object.keys(STORAGE_DTYPES)) table.set(`torch.${name}`, DATA);
  for (const name of Object.keys(TORCH_DTYPE_NAMES)) table.set(`torch.${name}`, DATA);
  table.set('torch.Size', {
    kind: 'class',
    create(args, vm) {
      if (args.length === 0) return [];
      if (args.length !== 1 || !Array.isArray(args[0])) vm.corrupt('torch.Size expects one sequence');
      vm.charge((args[0] as PickleValue[]).length);
      return [...(args[0] as PickleValue[])];
    },
  });
  const namespace: Allowed = {
    kind: 'class',
    create(args, vm) {
      if (args.length !== 0) vm.corrupt('argparse.Namespace created with positional arguments');
      const record: PickleRecord = {};
      RECORDS.add(record);
      return record;
    },
  };
  table.set('argparse.Namespace', namespace);
  // Python 3 writes bytes at protocol 2 as _codecs.encode(latin-1 text, 'latin1').
  table.set('_codecs.encode', {
    kind: 'function',
    call(args, vm) {
      const [text, encoding] = args;
      if (typeof text !== 'string') return vm.corrupt('_codecs.encode without a string');
      vm.charge(text.length);
      const enc = typeof encoding === 'string' ? encoding.toLowerCase().replace('_', '-') : 'utf-8';
      if (enc === 'latin1' || enc === 'latin-1' || enc === 'iso-8859-1') {
        const out = new Uint8Array(text.length);
        for (let i = 0; i < text.length; i++) {
          const c = text.charCodeAt(i);
          if (c > 255) vm.corrupt('_codecs.encode: character outside latin-1');
          out[i] = c;
        }
        return out;
      }
      if (enc === 'utf-8' || enc === 'utf8') return new TextEncoder().encode(text);
      return vm.corrupt(`_codecs.encode with unsupported encoding ${describeValue(encoding ?? null)}`);
    },
  });
  // Python sets become arrays.
  const set: Allowed = {
    kind: 'class',
    create(args, vm) {
      if (args.length === 0) return [];
      if (args.length !== 1 || !Array.isArray(args[0])) vm.corrupt('set expects one list');
      vm.charge((args[0] as PickleValue[]).length);
      return [...(args[0] as PickleValue[])];
    },
  };
  for (const mod of ['builtins', '__builtin__']) {
    table.set(`${mod}.set`, set);
    table.set(`${mod}.frozenset`, set);
  }
  return table;
}

/** The only globals a checkpoint may name, as `module.name`. Everything else is refused. */
const ALLOWLIST: ReadonlyMap<string, Allowed> = buildAllowlist();
export const ALLOWED_GLOBALS: readonly string[] = [...ALLOWLIST.keys()];

/**
 * Objects the unpickler made for Python objects with attributes (Namespace). A pickle can give one
 * the fields `dtype`, `shape` and `data`; it must still never pass for a tensor.
 */
const RECORDS = new WeakSet<object>();

/**
 * True for the tensors this reader produces (and any consistent HostTensor-shaped object: a known
 * dtype, a data array of that dtype that fills the shape), never for a record built by a pickle.
 */
export function isHostTensor(v: unknown): v is HostTensor {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Map || RECORDS.has(v)) return false;
  const t = v as Partial<HostTensor>;
  if (typeof t.dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, t.dtype) || !Array.isArray(t.shape) || !ArrayBuffer.isView(t.data)) return false;
  const data = t.data as HostTensor['data'];
  return data.BYTES_PER_ELEMENT === DTYPE_BYTES[t.dtype] && data.length === numel(t.shape);
}

/** A short, one-line description of any pickle value for messages (never throws, whatever the value). */
export function describeValue(v: PickleValue): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number' || typeof v === 'bigint') return printable(String(v), 40);
  if (typeof v === 'string') return `'${printable(v, 60)}'`;
  if (v instanceof Uint8Array) return `bytes of length ${v.length}`;
  if (Array.isArray(v)) return `a tuple of ${v.length}`;
  if (v instanceof Map) return `a dict of ${v.size}`;
  if (v instanceof PickleGlobalRef) return printable(v.qualifiedName, 80);
  if (v instanceof PickleOpaque) return `a ${printable(v.tag, 40)}`;
  if (isHostTensor(v)) return 'a tensor';
  return 'an object';
}

/** True for a plain record (a Namespace or similar object), not a tensor, dict, list or global. */
export function isPickleRecord(v: unknown): v is PickleRecord {
  return (
    typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && !(v instanceof Uint8Array) &&
    !(v instanceof PickleGlobalRef) && !(v instanceof PickleOpaque) && !isHostTensor(v)
  );
}

// Opcodes (pickle protocols 0-5; only the binary ones torch emits are accepted).
const OP = {
  MARK: 0x28, STOP: 0x2e, POP: 0x30, POP_MARK: 0x31, DUP: 0x32,
  BINFLOAT: 0x47, BININT: 0x4a, BININT1: 0x4b, BININT2: 0x4d, NONE: 0x4e,
  BINPERSID: 0x51, REDUCE: 0x52, BINSTRING: 0x54, SHORT_BINSTRING: 0x55, BINUNICODE: 0x58,
  BINBYTES: 0x42, SHORT_BINBYTES: 0x43,
  EMPTY_LIST: 0x5d, APPEND: 0x61, BUILD: 0x62, GLOBAL: 0x63, DICT: 0x64, APPENDS: 0x65,
  BINGET: 0x68, LONG_BINGET: 0x6a, LIST: 0x6c, BINPUT: 0x71, LONG_BINPUT: 0x72,
  SETITEM: 0x73, TUPLE: 0x74, SETITEMS: 0x75, EMPTY_DICT: 0x7d, EMPTY_TUPLE: 0x29,
  PROTO: 0x80, NEWOBJ: 0x81, TUPLE1: 0x85, TUPLE2: 0x86, TUPLE3: 0x87,
  NEWTRUE: 0x88, NEWFALSE: 0x89, LONG1: 0x8a, LONG4: 0x8b,
  SHORT_BINUNICODE: 0x8c, BINUNICODE8: 0x8d, BINBYTES8: 0x8e, EMPTY_SET: 0x8f, ADDITEMS: 0x90,
  FROZENSET: 0x91, NEWOBJ_EX: 0x92, STACK_GLOBAL: 0x93, MEMOIZE: 0x94, FRAME: 0x95, BYTEARRAY8: 0x96,
} as const;

const OP_NAMES = new Map<number, string>(Object.entries(OP).map(([k, v]) => [v, k]));
/** Opcodes that exist in Python's pickle but are refused here, with the reason. */
const REFUSED_OPS = new Map<number, string>([
  [0x69, 'INST (protocol-0 class instantiation)'],
  [0x6f, 'OBJ (protocol-1 class instantiation)'],
  [0x50, 'PERSID (text persistent id)'],
  [0x82, 'EXT1 (extension registry)'],
  [0x83, 'EXT2 (extension registry)'],
  [0x84, 'EXT4 (extension registry)'],
  [0x97, 'NEXT_BUFFER (out-of-band buffer)'],
  [0x98, 'READONLY_BUFFER (out-of-band buffer)'],
]);

/** Longest Python int accepted (bytes): far beyond anything in a checkpoint, and keeps BigInt parsing cheap. */
const MAX_LONG_BYTES = 4096;
/** Longest GLOBAL line (module or name). */
const MAX_GLOBAL_LINE = 1024;

const HEX_BYTES: readonly string[] = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));
const utf8 = new TextDecoder('utf-8', { fatal: false });
const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

/** Runs one pickle from `options.start`; returns its value and where it ended. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): UnpickleResult {
  return new Unpickler(bytes, options).run();
}

/** One run of the pickle machine. Exported only as a type for the allowlist's builders. */
export class Unpickler {
  private pos: number;
  private opPos = 0;
  private opName = '';
  private readonly view: DataView;
  private readonly stack: PickleValue[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, PickleValue>();
  private readonly what: string;
  private readonly offsetsIn: string;
  /** Elements copied by the allowlisted builders so far, and the most the input may cause. */
  private copied = 0;
  private readonly copyLimit: number;

  constructor(private readonly bytes: Uint8Array, private readonly options: UnpickleOptions) {
    this.pos = options.start ?? 0;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.what = options.what ?? 'pickle';
    this.offsetsIn = options.offsetsIn ?? this.what;
    // A memo reference costs 2 bytes and can hand the same big list to a builder again and again;
    // this bounds what the copies may add up to (far beyond anything a real checkpoint needs).
    this.copyLimit = 4 * (bytes.length - this.pos) + (1 << 20);
  }

  /** Counts `n` elements copied by a builder; refuses pickles that copy far more than they hold. */
  charge(n: number): void {
    this.copied += n;
    if (this.copied > this.copyLimit) {
      this.corrupt(`it copies more than ${this.copyLimit} values out of ${this.bytes.length} bytes (the same data built again and again)`);
    }
  }

  /** Throws the error for a malformed pickle, naming the opcode and its byte offset. */
  corrupt(detail: string): never {
    const at = this.opName ? ` (${this.opName} at byte ${this.opPos} of ${this.offsetsIn})` : '';
    throw new BlockdropError(
      oneLine(`cannot read ${this.options.sourceName}: ${this.what} is truncated or corrupt: ${detail}${at}`),
    );
  }

  run(): UnpickleResult {
    const { bytes } = this;
    if (this.pos >= bytes.length) {
      this.opName = '';
      this.corrupt(`expected a pickle at byte ${this.pos}, but the file ends there`);
    }
    for (;;) {
      if (this.pos >= bytes.length) this.corrupt('the data ends before the STOP opcode');
      this.opPos = this.pos;
      const op = bytes[this.pos++]!;
      this.opName = OP_NAMES.get(op) ?? `opcode 0x${op.toString(16).padStart(2, '0')}`;
      if (op === OP.STOP) {
        const value = this.pop();
        return { value, end: this.pos };
      }
      this.step(op);
    }
  }

  // ---- bounded reads ----

  private need(n: number): void {
    const left = this.bytes.length - this.pos;
    if (n > left) this.corrupt(`needs ${n} bytes, only ${left} left`);
  }
  private u8(): number {
    this.need(1);
    return this.bytes[this.pos++]!;
  }
  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  /** A u64 length field; anything beyond the remaining bytes is refused by `take`. */
  private u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  }
  /** `n` bytes as a subarray, after checking they exist (so nothing is allocated for a bogus length). */
  private take(n: number): Uint8Array {
    if (n < 0) this.corrupt(`negative length ${n}`);
    this.need(n);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  private line(): string {
    const end = Math.min(this.bytes.length, this.pos + MAX_GLOBAL_LINE + 1);
    const nl = this.bytes.indexOf(0x0a, this.pos);
    if (nl < 0 || nl >= end) this.corrupt('missing end of line in GLOBAL');
    const text = latin1.decode(this.bytes.subarray(this.pos, nl));
    this.pos = nl + 1;
    return text;
  }

  // ---- stack ----

  private push(v: PickleValue): void {
    this.stack.push(v);
  }
  private pop(): PickleValue {
    const floor = this.marks.length ? this.marks[this.marks.length - 1]! : 0;
    if (this.stack.length <= floor) this.corrupt('stack underflow');
    return this.stack.pop()!;
  }
  private top(): PickleValue {
    const floor = this.marks.length ? this.marks[this.marks.length - 1]! : 0;
    if (this.stack.length <= floor) this.corrupt('stack underflow');
    return this.stack[this.stack.length - 1]!;
  }
  /** Items above the last MARK, removing them and the mark. */
  private popMark(): PickleValue[] {
    const mark = this.marks.pop();
    if (mark === undefined) this.corrupt('no MARK on the stack');
    return this.stack.splice(mark);
  }
  private memoPut(index: number): void {
    this.memo.set(index, this.top());
  }
  private memoGet(index: number): void {
    if (!this.memo.has(index)) this.corrupt(`memo entry ${index} was never stored`);
    this.push(this.memo.get(index)!);
  }

  private step(op: number): void {
    switch (op) {
      case OP.PROTO: {
        const version = this.u8();
        if (version > 5) this.corrupt(`unsupported pickle protocol ${version}`);
        return;
      }
      case OP.FRAME: {
        // Framing is only a buffering hint; the frame's bytes must exist.
        const len = this.u64();
        this.need(len);
        return;
      }
      case OP.GLOBAL: {
        const module = this.line();
        const name = this.line();
        this.push(this.resolveGlobal(module, name));
        return;
      }
      case OP.STACK_GLOBAL: {
        const name = this.pop();
        const module = this.pop();
        if (typeof module !== 'string' || typeof name !== 'string') this.corrupt('STACK_GLOBAL needs two strings');
        this.push(this.resolveGlobal(module, name));
        return;
      }
      case OP.BINPUT: return this.memoPut(this.u8());
      case OP.LONG_BINPUT: return this.memoPut(this.u32());
      case OP.MEMOIZE: return this.memoPut(this.memo.size);
      case OP.BINGET: return this.memoGet(this.u8());
      case OP.LONG_BINGET: return this.memoGet(this.u32());
      case OP.MARK:
        this.marks.push(this.stack.length);
        return;
      case OP.POP_MARK:
        this.popMark();
        return;
      case OP.POP:
        this.pop();
        return;
      case OP.DUP:
        this.push(this.top());
        return;
      case OP.TUPLE: return this.push(this.popMark());
      case OP.EMPTY_TUPLE: return this.push([]);
      case OP.TUPLE1: {
        const a = this.pop();
        return this.push([a]);
      }
      case OP.TUPLE2: {
        const b = this.pop();
        const a = this.pop();
        return this.push([a, b]);
      }
      case OP.TUPLE3: {
        const c = this.pop();
        const b = this.pop();
        const a = this.pop();
        return this.push([a, b, c]);
      }
      case OP.EMPTY_LIST: return this.push([]);
      case OP.LIST: return this.push(this.popMark());
      case OP.APPEND: {
        const item = this.pop();
        this.listTarget().push(item);
        return;
      }
      case OP.APPENDS: {
        const items = this.popMark();
        const list = this.listTarget();
        for (const item of items) list.push(item);
        return;
      }
      case OP.EMPTY_SET: return this.push([]);
      case OP.ADDITEMS: {
        const items = this.popMark();
        const set = this.listTarget();
        for (const item of items) set.push(item);
        return;
      }
      case OP.FROZENSET: return this.push(this.popMark());
      case OP.EMPTY_DICT: return this.push(new Map());
      case OP.DICT: {
        const items = this.popMark();
        return this.push(this.fillDict(new Map(), items));
      }
      case OP.SETITEM: {
        const value = this.pop();
        const key = this.pop();
        this.dictTarget().set(key, value);
        return;
      }
      case OP.SETITEMS: {
        const items = this.popMark();
        this.fillDict(this.dictTarget(), items);
        return;
      }
      case OP.BINUNICODE: return this.push(this.text(this.u32()));
      case OP.SHORT_BINUNICODE: return this.push(this.text(this.u8()));
      case OP.BINUNICODE8: return this.push(this.text(this.u64()));
      // Python 2 `str` (bytes). torch.load decodes them as text; fall back to latin-1 like encoding='latin1'.
      case OP.SHORT_BINSTRING: return this.push(this.py2String(this.u8()));
      case OP.BINSTRING: return this.push(this.py2String(this.i32()));
      case OP.SHORT_BINBYTES: return this.push(this.take(this.u8()).slice());
      case OP.BINBYTES: return this.push(this.take(this.u32()).slice());
      case OP.BINBYTES8: return this.push(this.take(this.u64()).slice());
      case OP.BYTEARRAY8: return this.push(this.take(this.u64()).slice());
      case OP.BININT: return this.push(this.i32());
      case OP.BININT1: return this.push(this.u8());
      case OP.BININT2: return this.push(this.u16());
      case OP.LONG1: return this.push(this.long(this.u8()));
      case OP.LONG4: return this.push(this.long(this.i32()));
      case OP.BINFLOAT: {
        this.need(8);
        const v = this.view.getFloat64(this.pos, false); // big-endian, unlike everything else
        this.pos += 8;
        return this.push(v);
      }
      case OP.NONE: return this.push(null);
      case OP.NEWTRUE: return this.push(true);
      case OP.NEWFALSE: return this.push(false);
      case OP.REDUCE: {
        const args = this.pop();
        const callable = this.pop();
        if (!Array.isArray(args)) this.corrupt('REDUCE arguments are not a tuple');
        return this.push(this.call(callable, args as PickleValue[], 'REDUCE'));
      }
      case OP.NEWOBJ: {
        const args = this.pop();
        const cls = this.pop();
        if (!Array.isArray(args)) this.corrupt('NEWOBJ arguments are not a tuple');
        return this.push(this.call(cls, args as PickleValue[], 'NEWOBJ'));
      }
      case OP.NEWOBJ_EX: {
        const kwargs = this.pop();
        const args = this.pop();
        const cls = this.pop();
        if (!Array.isArray(args)) this.corrupt('NEWOBJ_EX arguments are not a tuple');
        if (!(kwargs instanceof Map) || kwargs.size !== 0) this.corrupt('NEWOBJ_EX with keyword arguments');
        return this.push(this.call(cls, args as PickleValue[], 'NEWOBJ_EX'));
      }
      case OP.BUILD: {
        const state = this.pop();
        this.build(this.top(), state);
        return;
      }
      case OP.BINPERSID: {
        const pid = this.pop();
        if (!this.options.persistentLoad) this.corrupt('persistent id outside a torch checkpoint');
        return this.push(this.options.persistentLoad(pid));
      }
      default: {
        const refused = REFUSED_OPS.get(op);
        if (refused) this.corrupt(`pickle opcode ${refused} is not supported in checkpoints`);
        this.corrupt(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    }
  }

  private text(n: number): string {
    return utf8.decode(this.take(n));
  }

  private py2String(n: number): string {
    const raw = this.take(n);
    try {
      return utf8Strict.decode(raw);
    } catch {
      return latin1.decode(raw);
    }
  }

  /** A little-endian two's-complement integer of `n` bytes (LONG1 / LONG4). */
  private long(n: number): number | bigint {
    if (n < 0) this.corrupt(`negative length ${n}`);
    if (n > MAX_LONG_BYTES) this.corrupt(`integer of ${n} bytes is too large`);
    const raw = this.take(n);
    if (n === 0) return 0;
    // Through a hex string: linear in n (shifting a growing BigInt byte by byte is quadratic).
    let hex = '';
    for (let i = n - 1; i >= 0; i--) hex += HEX_BYTES[raw[i]!]!;
    let v = BigInt(`0x${hex}`);
    if (raw[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  private listTarget(): PickleValue[] {
    const target = this.top();
    if (!Array.isArray(target)) this.corrupt('APPEND target is not a list');
    return target as PickleValue[];
  }

  private dictTarget(): PickleDict {
    const target = this.top();
    if (!(target instanceof Map)) this.corrupt('SETITEM target is not a dict');
    return target;
  }

  private fillDict(dict: PickleDict, items: PickleValue[]): PickleDict {
    if (items.length % 2 !== 0) this.corrupt('odd number of items for a dict');
    for (let i = 0; i < items.length; i += 2) dict.set(items[i]!, items[i + 1]!);
    return dict;
  }

  /** GLOBAL / STACK_GLOBAL: the allowlist check. Nothing is imported; unknown names stop the load here. */
  private resolveGlobal(module: string, name: string): PickleGlobalRef {
    const qualified = `${module}.${name}`;
    if (!ALLOWLIST.has(qualified)) {
      throw new BlockdropError(
        oneLine(
          `refusing to load ${this.options.sourceName}: pickle asks for global '${printable(qualified)}', which is not a tensor type; ` +
            `blockdrop never executes code from checkpoints (${this.opName} opcode at byte ${this.opPos} of ${this.offsetsIn})`,
          1000,
        ),
      );
    }
    return new PickleGlobalRef(module, name);
  }

  /** REDUCE / NEWOBJ: only the allowlisted builders above, which are pure data constructors. */
  private call(target: PickleValue, args: PickleValue[], how: string): PickleValue {
    if (!(target instanceof PickleGlobalRef)) this.corrupt(`${how} on something that is not a global (${describeValue(target)})`);
    const entry = ALLOWLIST.get(target.qualifiedName);
    if (!entry) this.corrupt(`${how} on unknown global ${target.qualifiedName}`); // unreachable: refused at GLOBAL
    if (entry.kind === 'data') this.corrupt(`${how} on ${target.qualifiedName}, which is data, not a constructor`);
    if (how !== 'REDUCE' && entry.kind !== 'class') this.corrupt(`${how} on ${target.qualifiedName}, which is not a class`);
    return entry.kind === 'class' ? entry.create(args, this) : entry.call(args, this);
  }

  /** BUILD: object state. A Namespace gets its fields; an OrderedDict's `_metadata` attribute is dropped. */
  private build(target: PickleValue, state: PickleValue): void {
    if (target instanceof Map) return; // e.g. state_dict._metadata: per-module versions, not needed
    if (isPickleRecord(target)) {
      // A state may be `dict` or `(dict, slots_dict)`.
      const parts = Array.isArray(state) ? state : [state];
      for (const part of parts) {
        if (part === null) continue;
        if (!(part instanceof Map)) this.corrupt('BUILD state is not a dict');
        this.charge(part.size);
        for (const [key, value] of part) {
          if (typeof key !== 'string') this.corrupt('BUILD state has a non-string attribute name');
          defineField(target, key, value);
        }
      }
      return;
    }
    if (isHostTensor(target)) return; // a Parameter's attributes (requires_grad etc.): not needed
    this.corrupt('BUILD on a value that has no state');
  }

  /** Checks the arguments of `_rebuild_tensor*` and hands them to the caller's tensor builder. */
  rebuildTensor(fn: string, args: PickleValue[], minArgs: number): HostTensor {
    if (args.length < minArgs) this.corrupt(`${fn} called with ${args.length} arguments, expected ${minArgs}`);
    const [storage, offset, size, stride] = args;
    const ints = (v: PickleValue | undefined, what: string): number[] => {
      if (!Array.isArray(v)) return this.corrupt(`${fn}: ${what} is not a tuple`);
      this.charge(v.length);
      return v.map((d) => {
        if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) this.corrupt(`${fn}: bad ${what} entry ${describeValue(d)}`);
        return d as number;
      });
    };
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
      this.corrupt(`${fn}: bad storage offset ${describeValue(offset ?? null)}`);
    }
    const call: { -readonly [K in keyof TensorRebuild]: TensorRebuild[K] } = {
      storage: storage!,
      storageOffset: offset as number,
      size: ints(size, 'size'),
      stride: ints(stride, 'stride'),
    };
    if (call.size.length !== call.stride.length) this.corrupt(`${fn}: size and stride have different lengths`);
    if (fn === '_rebuild_tensor_v3') {
      const dtype = args[6];
      const mapped = dtype instanceof PickleGlobalRef && dtype.module === 'torch' ? TORCH_DTYPE_NAMES[dtype.name] : undefined;
      if (!mapped) this.corrupt(`${fn}: unsupported dtype ${describeValue(dtype ?? null)}`);
      call.dtype = mapped;
    }
    if (!this.options.rebuildTensor) this.corrupt('tensor outside a torch checkpoint');
    return this.options.rebuildTensor(call);
  }
}
