/**
 * Writers for the fuzzers' structured inputs: pickle opcodes, torch checkpoints (legacy and zip),
 * zip archives (stored / deflated, zip64 extras) and PNG chunks. They write what they are told,
 * including lies (lengths and sizes that do not match the data), which is the point.
 */
import { deflateRawSync } from 'node:zlib';

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 as zip and PNG use it (zlib.crc32 exists only from Node 20.15). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Bytes

export class ByteWriter {
  private readonly parts: Uint8Array[] = [];
  private size = 0;
  bytes(b: ArrayLike<number>): this {
    const u = Uint8Array.from(b);
    this.parts.push(u);
    this.size += u.length;
    return this;
  }
  u8(v: number): this {
    return this.bytes([v & 0xff]);
  }
  u16(v: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v, true);
    return this.bytes(b);
  }
  u32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    return this.bytes(b);
  }
  i32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v | 0, true);
    return this.bytes(b);
  }
  u64(v: number | bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
    return this.bytes(b);
  }
  text(s: string): this {
    return this.bytes(new TextEncoder().encode(s));
  }
  get length(): number {
    return this.size;
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const w = new ByteWriter();
  for (const p of parts) w.bytes(p);
  return w.finish();
}

// ---------------------------------------------------------------------------------------------
// Pickle

export const OP = {
  MARK: 0x28, STOP: 0x2e, POP: 0x30, POP_MARK: 0x31, DUP: 0x32, BINFLOAT: 0x47, BININT: 0x4a,
  BININT1: 0x4b, BININT2: 0x4d, NONE: 0x4e, BINPERSID: 0x51, REDUCE: 0x52, BINSTRING: 0x54,
  SHORT_BINSTRING: 0x55, BINUNICODE: 0x58, EMPTY_LIST: 0x5d, APPEND: 0x61, BUILD: 0x62, GLOBAL: 0x63,
  DICT: 0x64, APPENDS: 0x65, BINGET: 0x68, LONG_BINGET: 0x6a, LIST: 0x6c, BINPUT: 0x71,
  LONG_BINPUT: 0x72, SETITEM: 0x73, TUPLE: 0x74, SETITEMS: 0x75, EMPTY_DICT: 0x7d, EMPTY_TUPLE: 0x29,
  PROTO: 0x80, NEWOBJ: 0x81, TUPLE1: 0x85, TUPLE2: 0x86, TUPLE3: 0x87, NEWTRUE: 0x88, NEWFALSE: 0x89,
  LONG1: 0x8a, LONG4: 0x8b, SHORT_BINUNICODE: 0x8c, BINUNICODE8: 0x8d, BINBYTES8: 0x8e, EMPTY_SET: 0x8f,
  ADDITEMS: 0x90, FROZENSET: 0x91, NEWOBJ_EX: 0x92, STACK_GLOBAL: 0x93, MEMOIZE: 0x94, FRAME: 0x95,
  BYTEARRAY8: 0x96, SHORT_BINBYTES: 0x43, BINBYTES: 0x42,
  // Refused by the reader:
  INST: 0x69, OBJ: 0x6f, PERSID: 0x50, EXT1: 0x82, EXT2: 0x83, EXT4: 0x84, NEXT_BUFFER: 0x97, READONLY_BUFFER: 0x98,
} as const;

/** Pickle opcodes with their arguments, appended in order. */
export class PickleWriter extends ByteWriter {
  op(code: number): this {
    return this.u8(code);
  }
  proto(v = 2): this {
    return this.op(OP.PROTO).u8(v);
  }
  /** The shortest opcode for an integer (LONG1 beyond int32). */
  int(v: number | bigint): this {
    const n = BigInt(v);
    if (n >= 0n && n < 256n) return this.op(OP.BININT1).u8(Number(n));
    if (n >= 0n && n < 65536n) return this.op(OP.BININT2).u16(Number(n));
    if (n >= -(2n ** 31n) && n < 2n ** 31n) return this.op(OP.BININT).i32(Number(n));
    const bytes: number[] = [];
    let x = n;
    // Little-endian two's complement, with a sign byte when needed.
    for (;;) {
      bytes.push(Number(BigInt.asUintN(8, x)));
      x >>= 8n;
      if ((x === 0n && (bytes[bytes.length - 1]! & 0x80) === 0) || (x === -1n && (bytes[bytes.length - 1]! & 0x80) !== 0)) break;
    }
    return this.op(OP.LONG1).u8(bytes.length).bytes(bytes);
  }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    return b.length < 256 ? this.op(OP.SHORT_BINUNICODE).u8(b.length).bytes(b) : this.op(OP.BINUNICODE).u32(b.length).bytes(b);
  }
  /** GLOBAL 'module\nname\n' (the protocol-2 form torch uses). */
  global(module: string, name: string): this {
    return this.op(OP.GLOBAL).bytes(latin1(`${module}\n${name}\n`));
  }
  /** STACK_GLOBAL with the two strings pushed first (protocol 4). */
  stackGlobal(module: string, name: string): this {
    return this.str(module).str(name).op(OP.STACK_GLOBAL);
  }
  tupleOf(items: readonly (number | bigint)[]): this {
    this.op(OP.MARK);
    for (const v of items) this.int(v);
    return this.op(OP.TUPLE);
  }
  stop(): this {
    return this.op(OP.STOP);
  }
}

function latin1(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
}

// ---------------------------------------------------------------------------------------------
// Torch checkpoints

export const STORAGE_TYPES = {
  float32: 'FloatStorage', float64: 'DoubleStorage', float16: 'HalfStorage', bfloat16: 'BFloat16Storage',
  int64: 'LongStorage', int32: 'IntStorage', int16: 'ShortStorage', int8: 'CharStorage', uint8: 'ByteStorage', bool: 'BoolStorage',
} as const;
export type StorageDtype = keyof typeof STORAGE_TYPES;
export const ITEM_BYTES: Readonly<Record<StorageDtype, number>> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

/** One tensor entry of a state dict, as the pickle describes it (all fields may lie). */
export interface TensorSpec {
  readonly name: string;
  readonly dtype: StorageDtype;
  readonly key: string;
  /** Element count the persistent id declares. */
  readonly numel: number | bigint;
  readonly offset: number | bigint;
  readonly size: readonly (number | bigint)[];
  readonly stride: readonly (number | bigint)[];
  /** How many times the same rebuild call is repeated through the memo (1 = once). */
  readonly repeats?: number;
}

/** A state-dict pickle (protocol 2) with `_rebuild_tensor_v2` calls, as torch.save writes it. */
export function torchStateDictPickle(specs: readonly TensorSpec[]): Uint8Array {
  const w = new PickleWriter().proto(2);
  w.global('collections', 'OrderedDict').op(OP.EMPTY_TUPLE).op(OP.REDUCE);
  let memo = 0;
  for (const s of specs) {
    w.str(s.name);
    w.global('torch._utils', '_rebuild_tensor_v2');
    const fn = memo++;
    w.op(OP.BINPUT).u8(fn & 0xff);
    w.op(OP.MARK);
    w.op(OP.MARK).str('storage').global('torch', STORAGE_TYPES[s.dtype]).str(s.key).str('cpu').int(s.numel).op(OP.TUPLE);
    w.op(OP.BINPERSID);
    w.int(s.offset).tupleOf(s.size).tupleOf(s.stride).op(OP.NEWFALSE);
    w.global('collections', 'OrderedDict').op(OP.EMPTY_TUPLE).op(OP.REDUCE);
    w.op(OP.TUPLE);
    const args = memo++;
    w.op(OP.BINPUT).u8(args & 0xff);
    w.op(OP.REDUCE);
    w.op(OP.SETITEM);
    // Repeats: the same call again under new names, through the memo (3 opcodes each).
    for (let r = 1; r < (s.repeats ?? 1); r++) {
      w.str(`${s.name}#${r}`).op(OP.BINGET).u8(fn & 0xff).op(OP.BINGET).u8(args & 0xff).op(OP.REDUCE).op(OP.SETITEM);
    }
  }
  return w.stop().finish();
}

/** A storage's bytes as the file holds them (zip record / legacy data). */
export interface StorageData {
  readonly key: string;
  readonly bytes: Uint8Array;
}

/** Legacy torch.save: magic, protocol, sys_info, the object pickle, the key list, then raw storages. */
export function torchLegacyFile(objectPickle: Uint8Array, storages: readonly { key: string; count: number | bigint; bytes: Uint8Array }[]): Uint8Array {
  const magic = new PickleWriter().proto(2).int(0x1950a86a20f9469cfc6cn).stop().finish();
  const protocol = new PickleWriter().proto(2).int(1001).stop().finish();
  const sys = new PickleWriter().proto(2).op(OP.EMPTY_DICT)
    .str('protocol_version').int(1001).op(OP.SETITEM)
    .str('little_endian').op(OP.NEWTRUE).op(OP.SETITEM)
    .stop().finish();
  const keys = new PickleWriter().proto(2).op(OP.MARK);
  for (const s of storages) keys.str(s.key);
  keys.op(OP.LIST).stop();
  const parts = [magic, protocol, sys, objectPickle, keys.finish()];
  for (const s of storages) parts.push(new ByteWriter().u64(s.count).bytes(s.bytes).finish());
  return concatBytes(parts);
}

export interface ZipRecord {
  readonly name: string;
  readonly data: Uint8Array;
  /** 0 stored (torch), 8 deflated. */
  readonly method?: 0 | 8;
  /** Overrides of what the central directory claims. */
  readonly claimSize?: number;
  readonly claimCompressedSize?: number;
  readonly claimOffset?: number;
  readonly claimCrc?: number;
  /** Write 0xffffffff in the 32-bit fields and the values in a zip64 extra field. */
  readonly zip64?: boolean;
  /** Raw extra field bytes appended in the central directory. */
  readonly extra?: Uint8Array;
}

/** A zip archive as torch writes it (local headers, central directory, end record). */
export function zipArchive(records: readonly ZipRecord[], options: { claimCount?: number; comment?: Uint8Array } = {}): Uint8Array {
  const w = new ByteWriter();
  const central = new ByteWriter();
  for (const r of records) {
    const name = new TextEncoder().encode(r.name);
    const payload = r.method === 8 ? new Uint8Array(deflateRawSync(r.data)) : r.data;
    const offset = w.length;
    const crc = r.claimCrc ?? crc32(r.data) >>> 0;
    w.u32(0x04034b50).u16(20).u16(0).u16(r.method ?? 0).u16(0).u16(0).u32(crc)
      .u32(payload.length).u32(r.data.length).u16(name.length).u16(0).bytes(name).bytes(payload);
    const size = r.claimSize ?? r.data.length;
    const csize = r.claimCompressedSize ?? payload.length;
    const off = r.claimOffset ?? offset;
    const extra = new ByteWriter();
    if (r.zip64) extra.u16(1).u16(24).u64(size).u64(csize).u64(off);
    if (r.extra) extra.bytes(r.extra);
    const ex = extra.finish();
    central.u32(0x02014b50).u16(20).u16(20).u16(0).u16(r.method ?? 0).u16(0).u16(0).u32(crc)
      .u32(r.zip64 ? 0xffffffff : csize).u32(r.zip64 ? 0xffffffff : size)
      .u16(name.length).u16(ex.length).u16(0).u16(0).u16(0).u32(0)
      .u32(r.zip64 ? 0xffffffff : off).bytes(name).bytes(ex);
  }
  const cdOffset = w.length;
  const cd = central.finish();
  w.bytes(cd);
  const comment = options.comment ?? new Uint8Array(0);
  const count = options.claimCount ?? records.length;
  w.u32(0x06054b50).u16(0).u16(0).u16(count & 0xffff).u16(count & 0xffff).u32(cd.length).u32(cdOffset)
    .u16(comment.length).bytes(comment);
  return w.finish();
}

/** A torch zip checkpoint: `<prefix>/data.pkl`, `byteorder`, `data/<key>`, `version`. */
export function torchZipFile(pickle: Uint8Array, storages: readonly StorageData[], options: { prefix?: string; method?: 0 | 8 } = {}): Uint8Array {
  const prefix = options.prefix ?? 'archive';
  const records: ZipRecord[] = [
    { name: `${prefix}/data.pkl`, data: pickle, method: options.method ?? 0 },
    { name: `${prefix}/byteorder`, data: new TextEncoder().encode('little') },
    ...storages.map((s) => ({ name: `${prefix}/data/${s.key}`, data: s.bytes, method: options.method ?? 0 })),
    { name: `${prefix}/version`, data: new TextEncoder().encode('3\n') },
  ];
  return zipArchive(records);
}

// ---------------------------------------------------------------------------------------------
// PNG

export function pngChunk(type: string, data: Uint8Array, options: { claimLength?: number; badCrc?: boolean } = {}): Uint8Array {
  const typeBytes = latin1(type.padEnd(4, ' ').slice(0, 4));
  const body = concatBytes([typeBytes, data]);
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, options.claimLength ?? data.length);
  out.set(body, 4);
  view.setUint32(8 + data.length, options.badCrc ? 0 : crc32(body) >>> 0);
  return out;
}

export const PNG_SIGNATURE = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function pngIhdr(width: number, height: number, depth: number, colorType: number, interlace = 0): Uint8Array {
  const b = new Uint8Array(13);
  const v = new DataView(b.buffer);
  v.setUint32(0, width >>> 0);
  v.setUint32(4, height >>> 0);
  b[8] = depth;
  b[9] = colorType;
  b[12] = interlace;
  return b;
}

export function pngFile(chunks: readonly Uint8Array[]): Uint8Array {
  return concatBytes([PNG_SIGNATURE, ...chunks]);
}
