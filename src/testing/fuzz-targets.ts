/**
 * What the fuzzers run: each reader of untrusted bytes, its seeds, structure-aware generators of
 * hostile inputs, and the properties built from them. Shared by the bounded tests
 * (src/checkpoint/fuzz.test.ts, src/data/image.fuzz.test.ts) and the long run (bench/fuzz.ts).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import fc from 'fast-check';
import { encode as encodePngData } from 'fast-png';
import jpeg from 'jpeg-js';
import { assertFiniteTensors } from '../checkpoint/validate.js';
import {
  ALLOWED_GLOBALS, isHostTensor, PickleGlobalRef, PickleOpaque, unpickle, type PickleValue,
} from '../checkpoint/pickle.js';
import { readSafetensors, serializeSafetensors } from '../checkpoint/safetensors.js';
import { describeAnyCheckpoint, loadAnyCheckpoint, type AnyCheckpoint } from '../checkpoint/store.js';
import {
  describeCheckpoint, findStateDicts, readTorchCheckpoint, stateDict, type TorchCheckpoint,
} from '../checkpoint/torch.js';
import { ZipArchive } from '../checkpoint/zip.js';
import { decodeCifarSpritePng, readCifarBinaryBatch, readLabelsJson } from '../data/cifar.js';
import { decodeImageBytes, encodePng, type DecodedImage } from '../data/image.js';
import { DEFAULT_MANIFEST_LIMITS, parseManifestBytes } from '../executor/manifest.js';
import { buildExport, decodeOnnxModel, MANIFEST_FILE, type BlockDropManifest } from '../export/onnx.js';
import { blockCount, getPreset, NORMALIZATIONS, policyArchFor } from '../models/config.js';
import { initResNetWeights } from '../models/weights.js';
import { BlockdropError } from '../errors.js';
import { DTYPE_BYTES, numel, type DType, type HostTensor, type TensorMap } from '../tensor.js';
import { printable } from '../util/message.js';
import {
  ByteWriter, concatBytes, ITEM_BYTES, OP, PickleWriter, pngChunk, pngFile, pngIhdr, STORAGE_TYPES,
  torchLegacyFile, torchStateDictPickle, torchZipFile, zipArchive,
  type StorageDtype, type TensorSpec, type ZipRecord,
} from './fuzz-formats.js';
import {
  checkReader, checkReaderAsync, DEFAULT_LIMITS, FuzzViolation, mutatedArb, truncatedArb, type FuzzLimits,
} from './fuzz-harness.js';
import { fixturesDir, weightsDir } from './shared.js';

/** How many inputs each reader has been given (the long run reports it). */
export const tried = new Map<string, number>();
let heartbeat: ((reader: string) => void) | null = null;
/** Called before every input (the long run's watchdog uses it to tell a hang from slow progress). */
export function onFuzzInput(fn: ((reader: string) => void) | null): void {
  heartbeat = fn;
}
function count(reader: string): void {
  tried.set(reader, (tried.get(reader) ?? 0) + 1);
  heartbeat?.(reader);
}

/** 'small' seeds keep the bounded tests fast; 'all' adds the megabyte-sized real checkpoints. */
export type SeedLevel = 'small' | 'all';

function sharedFile(dir: string, name: string): Uint8Array | null {
  const path = join(dir, name);
  return existsSync(path) ? new Uint8Array(readFileSync(path)) : null;
}
function present(files: (Uint8Array | null)[]): Uint8Array[] {
  return files.filter((f): f is Uint8Array => f !== null);
}

// ---------------------------------------------------------------------------------------------
// Result checks (iterative: a hostile value may be nested a million levels deep)

const ALLOWED = new Set(ALLOWED_GLOBALS);
const TENSOR_SLACK = 16 * 2 ** 20;

/** A tensor's data fills its shape with elements of its dtype. */
function checkTensor(name: string, t: HostTensor): void {
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new FuzzViolation(`tensor ${name} has shape [${t.shape.join(', ')}]`);
  if (t.data.length !== numel(t.shape)) throw new FuzzViolation(`tensor ${name}: ${t.data.length} elements for shape [${t.shape.join(', ')}]`);
  if (t.data.BYTES_PER_ELEMENT !== DTYPE_BYTES[t.dtype]) throw new FuzzViolation(`tensor ${name}: data array does not hold ${t.dtype}`);
}

/** Tensors' bytes (each buffer once) stay within 2× the file plus a fixed slack: no amplification. */
function checkTensorBytes(tensors: Iterable<HostTensor>, fileBytes: number): void {
  const buffers = new Set<ArrayBufferLike>();
  let total = 0;
  for (const t of tensors) {
    if (buffers.has(t.data.buffer)) continue;
    buffers.add(t.data.buffer);
    total += t.data.buffer.byteLength;
  }
  if (total > 2 * fileBytes + TENSOR_SLACK) throw new FuzzViolation(`tensors hold ${total} bytes from a ${fileBytes}-byte file`);
}

/** Every global in the value is allowlisted; every tensor is consistent. */
export function checkPickleValue(root: PickleValue, fileBytes: number): void {
  const seen = new Set<object>();
  const tensors: HostTensor[] = [];
  const todo: PickleValue[] = [root];
  while (todo.length) {
    const v = todo.pop()!;
    if (typeof v !== 'object' || v === null || seen.has(v)) continue;
    seen.add(v);
    if (v instanceof PickleGlobalRef) {
      if (!ALLOWED.has(v.qualifiedName)) throw new FuzzViolation(`a global outside the allowlist was resolved: ${v.qualifiedName}`);
    } else if (v instanceof PickleOpaque || v instanceof Uint8Array) {
      // data
    } else if (Array.isArray(v)) {
      for (const x of v) todo.push(x);
    } else if (v instanceof Map) {
      for (const [k, x] of v) todo.push(k, x);
    } else if (isHostTensor(v)) {
      checkTensor('in pickle', v);
      tensors.push(v);
    } else {
      for (const k of Object.keys(v)) todo.push(v[k]!);
    }
  }
  checkTensorBytes(tensors, fileBytes);
}

function checkTensorMap(tensors: TensorMap, fileBytes: number): void {
  for (const [name, t] of tensors) checkTensor(name, t);
  checkTensorBytes(tensors.values(), fileBytes);
}

// ---------------------------------------------------------------------------------------------
// Targets

export interface FuzzGenerator {
  readonly name: string;
  readonly arb: () => fc.Arbitrary<Uint8Array>;
}

export interface FuzzTarget<T = unknown> {
  readonly reader: string;
  /** In-memory parse: throws BlockdropError for bad input. */
  readonly parse: (bytes: Uint8Array) => T;
  readonly validate?: (result: T, bytes: Uint8Array) => void;
  readonly limits?: FuzzLimits;
  readonly seeds: (level: SeedLevel) => Uint8Array[];
  readonly generators: readonly FuzzGenerator[];
}

// ---- pickle --------------------------------------------------------------------------------

const SOURCE = 'fuzz.bin';

/** Stubs for a torch pickle's hooks: storages and tensors become inert placeholders. */
const placeholderTensor: HostTensor = { dtype: 'float32', shape: [0], data: new Float32Array(0) };
function unpickleAll(bytes: Uint8Array): PickleValue {
  return unpickle(bytes, {
    sourceName: SOURCE,
    persistentLoad: () => new PickleOpaque('storage'),
    rebuildTensor: () => placeholderTensor,
  }).value;
}

/** The pickle, then everything `loadAnyCheckpoint` does with an unpickled object (metadata, state dicts). */
function pickleChain(bytes: Uint8Array): PickleValue {
  const value = unpickleAll(bytes);
  const ckpt: TorchCheckpoint = { format: 'zip', source: SOURCE, root: value };
  describeCheckpoint(ckpt);
  findStateDicts(ckpt);
  try {
    stateDict(ckpt);
  } catch (e) {
    if (!(e instanceof BlockdropError)) throw e;
  }
  return value;
}

const names = fc.oneof(
  fc.constantFrom('storage', 'cpu', 'state_dict', 'conv1.weight', 'module.fc.bias', '__proto__', 'toString', 'valueOf',
    'constructor', 'hasOwnProperty', 'little_endian', 'protocol_version', 'line\nbreak', 'a\u2028b'),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
);

const DANGEROUS_GLOBALS: readonly [string, string][] = [
  ['os', 'system'], ['posix', 'system'], ['nt', 'system'], ['subprocess', 'Popen'], ['subprocess', 'check_output'],
  ['builtins', 'eval'], ['builtins', 'exec'], ['builtins', '__import__'], ['builtins', 'getattr'], ['__builtin__', 'eval'],
  ['torch', 'load'], ['torch.serialization', 'load'], ['numpy.core.multiarray', '_reconstruct'], ['numpy', 'load'],
  ['collections', 'defaultdict'], ['functools', 'partial'], ['pickle', 'loads'], ['runpy', '_run_code'],
  ['torch._utils', '_rebuild_device_tensor_from_numpy'], ['torch._utils', '_rebuild_tensor_v4'], ['torch', 'Tensor'],
  ['Torch', 'float'], ['torch ', 'float'], ['torch', 'float '], ['torch', 'FloatStorage.__init__'], ['torch.FloatStorage', ''],
  ['', 'torch.float'], ['globalThis', 'eval'], ['process', 'exit'], ['Object', 'constructor'], ['__proto__', 'constructor'],
  ['constructor', 'constructor'], ['require', 'child_process'], ['Function', 'apply'],
];
const allowedPairs: [string, string][] = ALLOWED_GLOBALS.map((q) => {
  const dot = q.lastIndexOf('.');
  return [q.slice(0, dot), q.slice(dot + 1)];
});

/** A module/name pair: allowlisted, known-dangerous, or random. */
const globalNameArb: fc.Arbitrary<[string, string]> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...allowedPairs) },
  { weight: 3, arbitrary: fc.constantFrom(...DANGEROUS_GLOBALS) },
  { weight: 2, arbitrary: fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 })) },
  { weight: 1, arbitrary: fc.tuple(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 })) },
);

const bigInterestingInts = fc.constantFrom<number | bigint>(
  -1, 0, 1, 255, 256, 65535, 65536, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2n ** 53n, 2n ** 63n, -(2n ** 63n), 2n ** 64n,
);
const claimLength = fc.constantFrom(0, 1, 0x7f, 0xff, 0x7fffffff, 0xfffffff0, 0xffffffff);
const claimLength64 = fc.constantFrom<bigint>(0n, 1n, 0xffffffffn, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n);

/** One pickle instruction (or a short run of them), as bytes. */
const pickleOpArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(
    OP.MARK, OP.POP, OP.POP_MARK, OP.DUP, OP.NONE, OP.NEWTRUE, OP.NEWFALSE, OP.EMPTY_TUPLE, OP.TUPLE, OP.TUPLE1,
    OP.TUPLE2, OP.TUPLE3, OP.EMPTY_LIST, OP.LIST, OP.APPEND, OP.APPENDS, OP.EMPTY_DICT, OP.DICT, OP.SETITEM,
    OP.SETITEMS, OP.EMPTY_SET, OP.ADDITEMS, OP.FROZENSET, OP.REDUCE, OP.NEWOBJ, OP.NEWOBJ_EX, OP.BUILD,
    OP.BINPERSID, OP.MEMOIZE, OP.STACK_GLOBAL,
  ).map((op) => Uint8Array.of(op)) },
  { weight: 4, arbitrary: fc.oneof(fc.integer({ min: -3, max: 300 }), bigInterestingInts).map((v) => new PickleWriter().int(v).finish()) },
  { weight: 4, arbitrary: names.map((s) => new PickleWriter().str(s).finish()) },
  { weight: 3, arbitrary: globalNameArb.map(([m, n]) => new PickleWriter().global(m.replace(/\n/g, ''), n.replace(/\n/g, '')).finish()) },
  { weight: 1, arbitrary: globalNameArb.map(([m, n]) => new PickleWriter().stackGlobal(m, n).finish()) },
  { weight: 2, arbitrary: fc.nat(6).map((i) => new PickleWriter().op(OP.BINPUT).u8(i).finish()) },
  { weight: 2, arbitrary: fc.oneof(fc.nat(8), fc.nat(255)).map((i) => new PickleWriter().op(OP.BINGET).u8(i).finish()) },
  { weight: 1, arbitrary: fc.oneof(fc.nat(8), fc.constantFrom(0xffffffff, 2 ** 31)).map((i) => new PickleWriter().op(OP.LONG_BINGET).u32(i).finish()) },
  { weight: 1, arbitrary: fc.oneof(fc.nat(8), fc.constantFrom(0xffffffff)).map((i) => new PickleWriter().op(OP.LONG_BINPUT).u32(i).finish()) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => new PickleWriter().op(OP.BINFLOAT).bytes(b).finish()) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }).map((b) => new PickleWriter().op(OP.SHORT_BINBYTES).u8(b.length).bytes(b).finish()) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }).map((b) => new PickleWriter().op(OP.SHORT_BINSTRING).u8(b.length).bytes(b).finish()) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 9 }).map((b) => new PickleWriter().op(OP.LONG1).u8(b.length).bytes(b).finish()) },
  // Length fields that claim more than there is.
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(OP.BINUNICODE, OP.BINBYTES, OP.BINSTRING, OP.LONG4), claimLength, fc.uint8Array({ maxLength: 6 }))
    .map(([op, n, b]) => new PickleWriter().op(op).u32(n).bytes(b).finish()) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(OP.BINUNICODE8, OP.BINBYTES8, OP.BYTEARRAY8, OP.FRAME), claimLength64, fc.uint8Array({ maxLength: 6 }))
    .map(([op, n, b]) => new PickleWriter().op(op).u64(n).bytes(b).finish()) },
  { weight: 1, arbitrary: fc.nat(7).map((v) => new PickleWriter().proto(v).finish()) },
  // Opcodes the reader refuses, and anything else.
  { weight: 1, arbitrary: fc.constantFrom(OP.INST, OP.OBJ, OP.PERSID, OP.EXT1, OP.EXT2, OP.EXT4, OP.NEXT_BUFFER, OP.READONLY_BUFFER).map((op) => Uint8Array.of(op, 0x61, 0x0a, 0x62, 0x0a)) },
  { weight: 1, arbitrary: fc.nat(255).map((b) => Uint8Array.of(b)) },
);

/** Stack and recursion bombs: floods of MARK / DUP, lists nested a hundred thousand deep, memo amplifiers. */
const pickleBombArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.integer({ min: 1000, max: 200_000 }).map((k) => new Uint8Array(k).fill(OP.MARK)),
  fc.integer({ min: 1000, max: 200_000 }).map((k) => concatBytes([Uint8Array.of(OP.NONE), new Uint8Array(k).fill(OP.DUP)])),
  // ((((( ... ))))) nested lists: MARK^k LIST^k
  fc.integer({ min: 1000, max: 100_000 }).map((k) => concatBytes([new Uint8Array(k).fill(OP.MARK), new Uint8Array(k).fill(OP.LIST)])),
  // () then TUPLE1 k times: a tuple nested k deep, used as a dict key and a tensor size
  fc.integer({ min: 1000, max: 200_000 }).map((k) => concatBytes([Uint8Array.of(OP.EMPTY_TUPLE), new Uint8Array(k).fill(OP.TUPLE1)])),
  // A big list in the memo, then copied by allowlisted builders over and over (5 bytes per copy).
  fc.tuple(fc.integer({ min: 1000, max: 50_000 }), fc.integer({ min: 100, max: 20_000 }), fc.constantFrom(
    ['torch', 'Size'], ['builtins', 'set'], ['__builtin__', 'frozenset'], ['collections', 'OrderedDict'],
  )).map(([items, copies, [m, n]]) => {
    const w = new PickleWriter().global(m, n).op(OP.BINPUT).u8(0).op(OP.MARK);
    const pair = m === 'collections';
    for (let i = 0; i < items; i++) {
      if (pair) w.op(OP.BINGET).u8(2); // the same (k, v) pair, stored below after the first one
      else w.op(OP.NONE);
      if (pair && i === 0) w.op(OP.POP).int(1).int(2).op(OP.TUPLE2).op(OP.BINPUT).u8(2);
    }
    w.op(OP.LIST).op(OP.TUPLE1).op(OP.BINPUT).u8(1).op(OP.POP).op(OP.EMPTY_LIST);
    for (let c = 0; c < copies; c++) w.op(OP.BINGET).u8(0).op(OP.BINGET).u8(1).op(OP.REDUCE).op(OP.APPEND);
    return w.finish();
  }),
  // A long string re-encoded again and again through _codecs.encode.
  fc.tuple(fc.integer({ min: 1000, max: 100_000 }), fc.integer({ min: 100, max: 20_000 })).map(([chars, copies]) => {
    const w = new PickleWriter().global('_codecs', 'encode').op(OP.BINPUT).u8(0)
      .op(OP.MARK).str('x'.repeat(chars)).str('latin1').op(OP.TUPLE).op(OP.BINPUT).u8(1).op(OP.POP).op(OP.EMPTY_LIST);
    for (let c = 0; c < copies; c++) w.op(OP.BINGET).u8(0).op(OP.BINGET).u8(1).op(OP.REDUCE).op(OP.APPEND);
    return w.finish();
  }),
  // Huge Python ints: LONG4 of up to 1 MB.
  fc.integer({ min: 1, max: 1 << 20 }).map((n) => new PickleWriter().op(OP.LONG4).i32(n).bytes(new Uint8Array(n).fill(0x5a)).finish()),
);

/** A pickle program: protocol, a few instructions or bombs, then (usually) STOP. */
const pickleProgramArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.constantFrom(2, 4),
    fc.array(fc.oneof({ weight: 30, arbitrary: pickleOpArb }, { weight: 1, arbitrary: pickleBombArb }), { minLength: 1, maxLength: 40 }),
    fc.boolean(),
    fc.oneof(fc.constant(null), fc.tuple(fc.constantFrom(OP.EMPTY_DICT, OP.EMPTY_LIST), fc.boolean())),
  )
  .map(([proto, ops, stop, wrap]) => {
    const parts = [new PickleWriter().proto(proto).finish()];
    // Sometimes the result ends up as a key and a value of the root dict (where describeCheckpoint looks).
    if (wrap) parts.push(Uint8Array.of(wrap[0]));
    parts.push(...ops);
    if (wrap && wrap[0] === OP.EMPTY_DICT) parts.push(wrap[1] ? Uint8Array.of(OP.DUP, OP.SETITEM) : Uint8Array.of(OP.NONE, OP.SETITEM));
    if (wrap && wrap[0] === OP.EMPTY_LIST) parts.push(Uint8Array.of(OP.APPEND));
    if (stop) parts.push(Uint8Array.of(OP.STOP));
    return concatBytes(parts);
  });

function picklesOfSeeds(level: SeedLevel): Uint8Array[] {
  const out: Uint8Array[] = [];
  const zipSeed = sharedFile(fixturesDir, 'tensor_zoo_zip.pt');
  if (zipSeed) {
    const zip = new ZipArchive(zipSeed, 'seed');
    for (const [name, entry] of zip.entries) if (name.endsWith('.pkl')) out.push(zip.read(entry).slice());
  }
  const legacy = sharedFile(fixturesDir, 'tensor_zoo_legacy.pt');
  if (legacy) out.push(legacy.slice(0, Math.min(legacy.length, 2000)));
  if (level === 'all') {
    const r32 = sharedFile(weightsDir, 'blockdrop_R32_C10_pk_E_164_A_0.923.t7');
    if (r32) out.push(r32.slice(0, 200_000));
  }
  out.push(torchStateDictPickle([
    { name: 'w', dtype: 'float32', key: '0', numel: 6, offset: 0, size: [2, 3], stride: [3, 1] },
    { name: 'b', dtype: 'int64', key: '1', numel: 1, offset: 0, size: [], stride: [] },
  ]));
  return out;
}

export const pickleTarget: FuzzTarget<PickleValue> = {
  reader: 'pickle',
  parse: pickleChain,
  validate: (value, bytes) => checkPickleValue(value, bytes.length),
  seeds: picklesOfSeeds,
  generators: [{ name: 'program', arb: () => pickleProgramArb }],
};

// ---- torch (legacy and zip) ------------------------------------------------------------------

const dimArb = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 6 }) },
  { weight: 1, arbitrary: fc.constantFrom<number | bigint>(2 ** 20, 2 ** 28, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2n ** 53n, 2n ** 63n, -1) },
);
const strideArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 8 }) },
  { weight: 1, arbitrary: fc.constantFrom<number | bigint>(0, 2 ** 31, 2 ** 53 - 1, 2n ** 63n, -1) },
);

/** One tensor entry whose fields are consistent, slightly off, or absurd. */
const tensorSpecArb: fc.Arbitrary<TensorSpec> = fc
  .record({
    name: fc.oneof(fc.constantFrom('conv.weight', 'module.fc.bias', 'bn.running_var', '__proto__'), names),
    dtype: fc.constantFrom(...(Object.keys(STORAGE_TYPES) as StorageDtype[])),
    key: fc.oneof(fc.constantFrom('0', '1', '2'), names),
    size: fc.array(dimArb, { maxLength: 4 }),
    strideMode: fc.constantFrom('row-major', 'random', 'zero', 'transposed'),
    strides: fc.array(strideArb, { minLength: 4, maxLength: 4 }),
    numelMode: fc.constantFrom('exact', 'exact', 'short', 'huge', 'random'),
    randomNumel: fc.oneof(fc.nat(64), bigInterestingInts),
    offset: fc.oneof({ weight: 6, arbitrary: fc.constant<number | bigint>(0) }, { weight: 1, arbitrary: fc.nat(8) }, { weight: 1, arbitrary: bigInterestingInts }),
    repeats: fc.oneof({ weight: 9, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 300 }) }),
  })
  .map((r) => {
    const size = r.size;
    let stride: (number | bigint)[];
    if (r.strideMode === 'row-major' || r.strideMode === 'transposed') {
      stride = new Array<number | bigint>(size.length);
      let acc = 1n;
      for (let d = size.length - 1; d >= 0; d--) {
        stride[d] = acc;
        acc *= BigInt(size[d]!);
      }
      if (r.strideMode === 'transposed') stride.reverse();
    } else if (r.strideMode === 'zero') {
      stride = size.map(() => 0);
    } else {
      stride = r.strides.slice(0, size.length);
    }
    let needed = BigInt(r.offset);
    for (let d = 0; d < size.length; d++) needed += (BigInt(size[d]!) - 1n) * BigInt(stride[d]!);
    const exact = needed + 1n;
    const numel = r.numelMode === 'exact' ? exact : r.numelMode === 'short' ? exact - 1n : r.numelMode === 'huge' ? 2n ** 40n : BigInt(r.randomNumel);
    return { name: r.name, dtype: r.dtype, key: r.key, numel, offset: r.offset, size, stride, repeats: r.repeats };
  });

/** Storage bytes for the specs: the declared size when small, else a short random record. */
function storagesFor(specs: readonly TensorSpec[], fill: number): { key: string; count: bigint; bytes: Uint8Array }[] {
  const byKey = new Map<string, { key: string; count: bigint; bytes: Uint8Array }>();
  for (const s of specs) {
    if (byKey.has(s.key)) continue;
    const n = BigInt(s.numel);
    const item = ITEM_BYTES[s.dtype];
    const len = n >= 0n && n * BigInt(item) <= 1n << 16n ? Number(n) * item : 16;
    const bytes = new Uint8Array(len).fill(fill);
    byKey.set(s.key, { key: s.key, count: n, bytes });
  }
  return [...byKey.values()];
}

const torchSpecsArb = fc.tuple(fc.array(tensorSpecArb, { minLength: 1, maxLength: 5 }), fc.constantFrom(0, 0x3c, 0x7f, 0xff));

const torchZipGenerated = torchSpecsArb.chain(([specs, fill]) =>
  fc.constantFrom<0 | 8>(0, 0, 8).map((method) =>
    torchZipFile(torchStateDictPickle(specs), storagesFor(specs, fill).map((s) => ({ key: s.key, bytes: s.bytes })), { method })));

const torchLegacyGenerated = torchSpecsArb.map(([specs, fill]) => torchLegacyFile(torchStateDictPickle(specs), storagesFor(specs, fill)));

/** A stride-0 or memo-repeated view that asks for far more bytes than the file holds. */
const tensorBombArb = fc
  .tuple(
    fc.constantFrom('stride0', 'repeat'),
    fc.integer({ min: 20, max: 30 }),
    fc.integer({ min: 20, max: 1000 }),
    fc.boolean(),
  )
  .map(([kind, log2, repeats, zipFormat]) => {
    const spec: TensorSpec = kind === 'stride0'
      ? { name: 'w', dtype: 'float32', key: '0', numel: 1, offset: 0, size: [2 ** log2], stride: [0] }
      : { name: 'w', dtype: 'uint8', key: '0', numel: 1 << 16, offset: 0, size: [1 << 16], stride: [1], repeats };
    const storages = storagesFor([spec], 1);
    const pkl = torchStateDictPickle([spec]);
    return zipFormat ? torchZipFile(pkl, storages) : torchLegacyFile(pkl, storages);
  });

/** Everything loadAnyCheckpoint does with a torch file, in memory. */
function torchChain(bytes: Uint8Array): TorchCheckpoint {
  const ckpt = readTorchCheckpoint(bytes, SOURCE);
  describeCheckpoint(ckpt);
  for (const dict of findStateDicts(ckpt).values()) assertFiniteTensors(dict, SOURCE);
  try {
    stateDict(ckpt);
  } catch (e) {
    if (!(e instanceof BlockdropError)) throw e;
  }
  return ckpt;
}

export const torchLegacyTarget: FuzzTarget<TorchCheckpoint> = {
  reader: 'torch-legacy',
  parse: torchChain,
  validate: (ckpt, bytes) => checkPickleValue(ckpt.root, bytes.length),
  seeds: (level) => present([
    sharedFile(fixturesDir, 'tensor_zoo_legacy.pt'),
    sharedFile(fixturesDir, 'malicious_global.pt'),
    level === 'all' ? sharedFile(fixturesDir, 'resnet8_legacy.pt') : null,
    level === 'all' ? sharedFile(weightsDir, 'akamaster_resnet20-12fca82f.th') : null,
    level === 'all' ? sharedFile(weightsDir, 'blockdrop_R32_C10_pk_E_164_A_0.923.t7') : null,
  ]),
  generators: [
    { name: 'structured', arb: () => torchLegacyGenerated },
    { name: 'bombs', arb: () => tensorBombArb },
  ],
};

/** Central-directory and local-header fields of a zip, set to hostile values. */
function zipFieldArb(seeds: () => Uint8Array[]): fc.Arbitrary<Uint8Array> {
  let cached: Uint8Array[] | null = null;
  return fc.constant(null).chain(() => {
    const list = (cached ??= seeds());
    return fc.tuple(
      fc.nat(list.length - 1),
      fc.array(fc.tuple(fc.nat(), fc.constantFrom(
        // [offset within the record, width]
        [10, 2], [16, 4], [20, 4], [24, 4], [28, 2], [30, 2], [32, 2], [42, 4], // central directory entry
        [8, 2], [14, 4], [18, 4], [22, 4], [26, 2], // local header (some overlap with the above, differently)
        [-12, 4], [-16, 4], [-10, 2], [-8, 2], [-6, 4], [-2, 2], // end record (from the end)
      ), fc.constantFrom<bigint>(0n, 1n, 0xffffn, 0x7fffffffn, 0xffffffffn, 46n, 30n, 64n)), { minLength: 1, maxLength: 3 }),
    ).map(([i, edits]) => {
      const b = list[i]!.slice();
      const view = new DataView(b.buffer);
      // Record starts: every central / local signature.
      const starts: number[] = [];
      for (let at = 0; at + 4 <= b.length; at++) {
        const sig = view.getUint32(at, true);
        if (sig === 0x02014b50 || sig === 0x04034b50) starts.push(at);
      }
      for (const [pick, [off, width], value] of edits) {
        const at = off < 0 ? b.length + off : starts.length ? starts[pick % starts.length]! + off : off;
        if (at < 0 || at + width > b.length) continue;
        if (width === 2) view.setUint16(at, Number(value & 0xffffn), true);
        else view.setUint32(at, Number(value & 0xffffffffn), true);
      }
      return b;
    });
  });
}

/** Raw archives: overlapping records, deflate bombs, zip64 extras, lying sizes. */
const zipArchiveArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.array(fc.record({
      name: fc.oneof(fc.constantFrom('archive/data.pkl', 'archive/data/0', 'archive/byteorder', 'archive/data/1'), names),
      kind: fc.constantFrom('pickle', 'zeros', 'random', 'big-zeros', 'byteorder'),
      method: fc.constantFrom<0 | 8>(0, 8),
      zip64: fc.boolean(),
      lie: fc.constantFrom('none', 'none', 'size', 'csize', 'offset', 'crc', 'extra'),
      lieValue: fc.constantFrom(0, 1, 0xfff, 0x7fffffff, 0xfffffffe, 0xffffffff),
      bytes: fc.uint8Array({ maxLength: 32 }),
    }), { minLength: 1, maxLength: 5 }),
    fc.oneof(fc.constant(undefined), fc.nat(0xffff)),
  )
  .map(([records, claimCount]) => {
    const pkl = torchStateDictPickle([{ name: 'w', dtype: 'uint8', key: '0', numel: 16, offset: 0, size: [16], stride: [1] }]);
    const out: ZipRecord[] = records.map((r) => {
      const data = r.kind === 'pickle' ? pkl : r.kind === 'zeros' ? new Uint8Array(16)
        : r.kind === 'big-zeros' ? new Uint8Array(1 << 20) : r.kind === 'byteorder' ? new TextEncoder().encode(r.bytes.length % 2 ? 'big' : 'little') : r.bytes;
      return {
        name: r.name, data, method: r.method, zip64: r.zip64,
        ...(r.lie === 'size' ? { claimSize: r.lieValue } : {}),
        ...(r.lie === 'csize' ? { claimCompressedSize: r.lieValue } : {}),
        ...(r.lie === 'offset' ? { claimOffset: r.lieValue } : {}),
        ...(r.lie === 'crc' ? { claimCrc: r.lieValue } : {}),
        ...(r.lie === 'extra' ? { extra: new ByteWriter().u16(1).u16(r.lieValue & 0xffff).u64(r.lieValue).finish() } : {}),
      };
    });
    // Several central-directory entries pointing at the same local record (the overlapping-files trick).
    if (records.length > 1 && records[0]!.lie === 'offset') out.push({ ...out[0]!, name: 'archive/data/2', claimOffset: 0 });
    return zipArchive(out, claimCount === undefined ? {} : { claimCount });
  });

function zipSeeds(level: SeedLevel): Uint8Array[] {
  const specs: TensorSpec[] = [
    { name: 'w', dtype: 'float32', key: '0', numel: 6, offset: 0, size: [2, 3], stride: [3, 1] },
    { name: 'v', dtype: 'float32', key: '0', numel: 6, offset: 1, size: [2, 2], stride: [1, 2] },
    { name: 'h', dtype: 'float16', key: '1', numel: 3, offset: 0, size: [3], stride: [1] },
  ];
  const generated = torchZipFile(torchStateDictPickle(specs), storagesFor(specs, 0x3c));
  const deflated = torchZipFile(torchStateDictPickle(specs), storagesFor(specs, 0x3c), { method: 8 });
  return present([
    sharedFile(fixturesDir, 'tensor_zoo_zip.pt'),
    sharedFile(fixturesDir, 'malicious_global_zip.pt'),
    level === 'all' ? sharedFile(fixturesDir, 'resnet8_zip.pt') : null,
    level === 'all' ? sharedFile(fixturesDir, 'resnet8_fp16.pt') : null,
    generated,
    deflated,
  ]);
}

export const torchZipTarget: FuzzTarget<TorchCheckpoint> = {
  reader: 'torch-zip',
  parse: torchChain,
  validate: (ckpt, bytes) => checkPickleValue(ckpt.root, bytes.length),
  seeds: zipSeeds,
  generators: [
    { name: 'structured', arb: () => torchZipGenerated },
    { name: 'zip-fields', arb: () => zipFieldArb(() => zipSeeds('small')) },
    { name: 'archives', arb: () => zipArchiveArb },
    { name: 'bombs', arb: () => tensorBombArb },
  ],
};

// ---- safetensors ---------------------------------------------------------------------------

const ST_DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'];

const tensorMapArb: fc.Arbitrary<TensorMap> = fc
  .uniqueArray(fc.record({ name: names, dtype: fc.constantFrom(...ST_DTYPES), shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }), fill: fc.nat(255) }),
    { maxLength: 5, selector: (r) => r.name })
  .map((entries) => {
    const m: TensorMap = new Map();
    for (const e of entries) {
      if (e.name === '__metadata__') continue;
      const n = numel(e.shape);
      const buf = new Uint8Array(n * DTYPE_BYTES[e.dtype]).fill(e.fill);
      const data = e.dtype === 'float32' ? new Float32Array(buf.buffer) : e.dtype === 'float64' ? new Float64Array(buf.buffer)
        : e.dtype === 'float16' || e.dtype === 'bfloat16' ? new Uint16Array(buf.buffer) : e.dtype === 'int64' ? new BigInt64Array(buf.buffer)
          : e.dtype === 'int32' ? new Int32Array(buf.buffer) : e.dtype === 'int16' ? new Int16Array(buf.buffer)
            : e.dtype === 'int8' ? new Int8Array(buf.buffer) : new Uint8Array(buf.buffer);
      m.set(e.name, { dtype: e.dtype, shape: e.shape, data });
    }
    return m;
  });

function deepArray(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

/** A JSON value for one header field: sensible, off by a little, or hostile. */
const jsonFieldArb = (sensible: fc.Arbitrary<string>): fc.Arbitrary<string> => fc.oneof(
  { weight: 6, arbitrary: sensible },
  { weight: 1, arbitrary: fc.constantFrom('null', '-1', '1.5', '"F32"', '[]', '{}', '[-1]', '[1e308]', '[9007199254740993]',
    '[4294967296, 4294967296]', '[1073741824, 1073741824, 1073741824, 8]', '[0, 18446744073709551615]', '["0", "4"]',
    '"\\u0000\\n"', '[[[[1]]]]') },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 100_000 }).map(deepArray) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
);

/** A header written by hand (duplicate keys allowed), a header-length field that may lie, and a buffer. */
const safetensorsHeaderArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.array(fc.record({
      name: names,
      dtype: jsonFieldArb(fc.constantFrom('"F32"', '"F16"', '"BF16"', '"I64"', '"U8"', '"BOOL"', '"F64"', '"I8"', '"X1"')),
      shape: jsonFieldArb(fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }).map((s) => JSON.stringify(s))),
      begin: fc.oneof(fc.nat(64), fc.constantFrom(2 ** 32, 2 ** 53 - 1, 2 ** 53)),
      span: fc.oneof(fc.nat(64), fc.constantFrom(2 ** 31, 2 ** 53)),
      offsets: fc.constantFrom('computed', 'computed', 'computed', 'hostile'),
      hostileOffsets: jsonFieldArb(fc.constant('[0, 4]')),
    }), { maxLength: 5 }),
    fc.oneof(fc.constant(''), fc.constant('"__metadata__":{"format":"pt","k":"v"},'), fc.constant('"__metadata__":{"x":1},'),
      fc.constant('"__metadata__":[],'), fc.constant('"__metadata__":{"__proto__":"x","toString":"y"},')),
    fc.oneof(
      { weight: 5, arbitrary: fc.constant<'exact' | bigint>('exact') },
      { weight: 1, arbitrary: fc.constantFrom<'exact' | bigint>(0n, 1n, 7n, 100_000_000n, 100_000_001n, 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n) },
    ),
    fc.nat(300),
  )
  .map(([entries, meta, lenField, bufferLength]) => {
    const fields = entries.map((e) => {
      const offsets = e.offsets === 'computed' ? `[${e.begin}, ${e.begin + e.span}]` : e.hostileOffsets;
      return `${JSON.stringify(e.name)}:{"dtype":${e.dtype},"shape":${e.shape},"data_offsets":${offsets}}`;
    });
    const json = new TextEncoder().encode(`{${meta}${fields.join(',')}}`.replace(/,}$/, '}'));
    const n = lenField === 'exact' ? BigInt(json.length) : lenField;
    return new ByteWriter().u64(n).bytes(json).bytes(new Uint8Array(bufferLength).fill(0x3f)).finish();
  });

export const safetensorsTarget: FuzzTarget<ReturnType<typeof readSafetensors>> = {
  reader: 'safetensors',
  parse: (bytes) => {
    const content = readSafetensors(bytes, SOURCE);
    assertFiniteTensors(content.tensors, SOURCE);
    return content;
  },
  validate: (content, bytes) => checkTensorMap(content.tensors, bytes.length),
  seeds: () => [
    fc.sample(tensorMapArb.map((m) => serializeSafetensors(m, { format: 'pt' })), { numRuns: 6, seed: 1 }),
    [serializeSafetensors(new Map([['w', { dtype: 'float32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }]]))],
  ].flat(),
  generators: [
    { name: 'roundtrip', arb: () => tensorMapArb.map((m) => serializeSafetensors(m)) },
    { name: 'headers', arb: () => safetensorsHeaderArb },
  ],
};

// ---- images ----------------------------------------------------------------------------------

/** The fuzzers decode with a 1-megapixel limit so that a mutated size field costs milliseconds. */
export const FUZZ_IMAGE_OPTIONS = { maxMegapixels: 1, maxMemoryMB: 128 } as const;

function checkImage(img: DecodedImage): void {
  if (img.rgb.length !== 32 * 32 * 3) throw new FuzzViolation(`decoded image has ${img.rgb.length} bytes`);
  if (!(img.originalWidth >= 1 && img.originalHeight >= 1)) throw new FuzzViolation(`decoded image is ${img.originalWidth}×${img.originalHeight}`);
}

function pattern(w: number, h: number, channels: number, seed: number): Uint8Array {
  const out = new Uint8Array(w * h * channels);
  let x = seed * 2654435761;
  for (let i = 0; i < out.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = (i % 7 < 3 ? x >>> 24 : (i * 3) & 0xff);
  }
  return out;
}

function pngSeeds(): Uint8Array[] {
  const out: Uint8Array[] = [encodePng(pattern(32, 32, 3, 1), 32, 32), encodePng(pattern(7, 5, 3, 2), 7, 5)];
  for (const [channels, depth] of [[1, 8], [2, 8], [4, 8], [3, 16], [1, 16], [4, 16]] as const) {
    const w = 9;
    const h = 6;
    const data = depth === 16 ? new Uint16Array(pattern(w, h, channels * 2, channels).buffer) : pattern(w, h, channels, depth);
    out.push(encodePngData({ width: w, height: h, data, depth, channels }));
  }
  // Palette 4-bit and grey 1-bit, written by hand (fast-png's encoder does not pack sub-byte depths).
  const rows4 = concatBytes(Array.from({ length: 4 }, (_, y) => Uint8Array.of(0, (y << 4) | 1, 0x23, 0x45)));
  out.push(pngFile([pngChunk('IHDR', pngIhdr(6, 4, 4, 3)), pngChunk('PLTE', pattern(6, 1, 3, 9)), pngChunk('tRNS', Uint8Array.of(255, 0)),
    pngChunk('IDAT', new Uint8Array(deflateSync(rows4))), pngChunk('IEND', new Uint8Array(0))]));
  const rows1 = concatBytes(Array.from({ length: 3 }, () => Uint8Array.of(0, 0b10110010)));
  out.push(pngFile([pngChunk('IHDR', pngIhdr(8, 3, 1, 0)), pngChunk('IDAT', new Uint8Array(deflateSync(rows1))), pngChunk('IEND', new Uint8Array(0))]));
  // Adam7-interlaced 8×8 grey: 15 scanlines of passes 1–7 (each with its filter byte).
  const passes = [[1, 1], [1, 1], [2, 1], [2, 2], [4, 2], [4, 4], [8, 4]] as const; // [width, height] of each pass
  const inter = concatBytes(passes.flatMap(([pw, ph]) => Array.from({ length: ph }, (_, y) => concatBytes([Uint8Array.of(0), pattern(pw, 1, 1, y)]))));
  out.push(pngFile([pngChunk('IHDR', pngIhdr(8, 8, 8, 0, 1)), pngChunk('IDAT', new Uint8Array(deflateSync(inter))), pngChunk('IEND', new Uint8Array(0))]));
  return out;
}

const zeroBombs = new Map<number, Uint8Array>();
/** zlib data that inflates to `mb` megabytes of zeros (about 1000:1). */
function zlibZeros(mb: number): Uint8Array {
  let b = zeroBombs.get(mb);
  if (!b) {
    b = new Uint8Array(deflateSync(new Uint8Array(mb * 2 ** 20), { level: 9 }));
    zeroBombs.set(mb, b);
  }
  return b;
}

/** PNGs assembled chunk by chunk: odd sizes and depths, chunks out of order, lying lengths, inflate bombs. */
const pngChunksArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.record({
      width: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constantFrom(0, 1024, 100_000, 2 ** 31 - 1, 2 ** 32 - 1)),
      height: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constantFrom(0, 1024, 100_000, 2 ** 31 - 1, 2 ** 32 - 1)),
      depth: fc.oneof(fc.constantFrom(1, 2, 4, 8, 16), fc.nat(255)),
      colorType: fc.oneof(fc.constantFrom(0, 2, 3, 4, 6), fc.nat(255)),
      interlace: fc.oneof(fc.constantFrom(0, 0, 1), fc.nat(255)),
    }),
    fc.array(fc.oneof(
      fc.constant('IDAT'), fc.constant('IDAT'), fc.constant('IDAT-random'), fc.constant('IDAT-bomb'), fc.constant('PLTE'),
      fc.constant('tRNS'), fc.constant('iCCP-bomb'), fc.constant('tEXt'), fc.constant('IHDR-again'), fc.constant('IEND'),
      fc.constant('unknown'), fc.constant('lying-length'),
    ), { minLength: 1, maxLength: 6 }),
    fc.boolean(),
    fc.nat(1000),
    fc.constantFrom(1, 4, 16),
  )
  .map(([h, order, ihdrFirst, seed, bombMB]) => {
    const ihdr = pngChunk('IHDR', pngIhdr(h.width, h.height, h.depth, h.colorType, h.interlace));
    const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[h.colorType] ?? 3;
    const rowBytes = Math.ceil((Math.min(h.width, 64) * channels * Math.max(1, Math.min(h.depth, 16))) / 8);
    const raw = pattern(rowBytes + 1, Math.min(h.height, 64), 1, seed);
    for (let r = 0; r < Math.min(h.height, 64); r++) raw[r * (rowBytes + 1)] = r % 5; // filter bytes 0..4
    const chunks: Uint8Array[] = [];
    if (ihdrFirst) chunks.push(ihdr);
    for (const c of order) {
      if (c === 'IDAT') chunks.push(pngChunk('IDAT', new Uint8Array(deflateSync(raw))));
      else if (c === 'IDAT-random') chunks.push(pngChunk('IDAT', pattern(20, 1, 1, seed)));
      else if (c === 'IDAT-bomb') chunks.push(pngChunk('IDAT', zlibZeros(bombMB)));
      else if (c === 'PLTE') chunks.push(pngChunk('PLTE', pattern(1 + (seed % 20), 3, 1, seed)));
      else if (c === 'tRNS') chunks.push(pngChunk('tRNS', pattern(seed % 9, 1, 1, seed)));
      else if (c === 'iCCP-bomb') chunks.push(pngChunk('iCCP', concatBytes([new TextEncoder().encode('icc'), Uint8Array.of(0, 0), zlibZeros(bombMB)])));
      else if (c === 'tEXt') chunks.push(pngChunk('tEXt', new TextEncoder().encode('Comment\0line\nbreak')));
      else if (c === 'IHDR-again') chunks.push(pngChunk('IHDR', pngIhdr(60_000, 60_000, 16, 6)));
      else if (c === 'IEND') chunks.push(pngChunk('IEND', new Uint8Array(0)));
      else if (c === 'unknown') chunks.push(pngChunk('zzZz', pattern(5, 1, 1, seed)));
      else chunks.push(pngChunk('IDAT', new Uint8Array(8), { claimLength: 0x7fffffff }));
    }
    if (!ihdrFirst) chunks.push(ihdr);
    chunks.push(pngChunk('IEND', new Uint8Array(0)));
    return pngFile(chunks);
  });

export const pngTarget: FuzzTarget<DecodedImage> = {
  reader: 'png',
  parse: (bytes) => decodeImageBytes(bytes, SOURCE, FUZZ_IMAGE_OPTIONS),
  validate: checkImage,
  seeds: pngSeeds,
  generators: [{ name: 'chunks', arb: () => pngChunksArb }],
};

let jpegSeedCache: Uint8Array[] | null = null;
function jpegSeeds(): Uint8Array[] {
  if (jpegSeedCache) return jpegSeedCache;
  const out: Uint8Array[] = [];
  for (const [w, h, q] of [[16, 16, 90], [33, 17, 50], [8, 40, 10], [48, 48, 100]] as const) {
    out.push(new Uint8Array(jpeg.encode({ width: w, height: h, data: pattern(w, h, 4, w + h) }, q).data));
  }
  jpegSeedCache = out;
  return out;
}

/** A JPEG whose frame header (SOF0) claims another size. */
const jpegSizeArb: fc.Arbitrary<Uint8Array> = fc
  // Sizes stay small (decoding a full megapixel takes ~100 ms); 1001×1001 and 65535 cross the 1 MP limit.
  .tuple(fc.nat(3), fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(0, 1, 1001, 65535)), fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(0, 1, 1001, 65535)),
    fc.constantFrom(0, 1, 3, 4, 255))
  .map(([i, width, height, components]) => {
    const b = jpegSeeds()[i]!.slice();
    for (let at = 2; at + 9 < b.length; at++) {
      if (b[at] === 0xff && b[at + 1] === 0xc0) {
        const v = new DataView(b.buffer);
        v.setUint16(at + 5, height);
        v.setUint16(at + 7, width);
        if (components !== 3) b[at + 9] = components;
        break;
      }
    }
    return b;
  });

export const jpegTarget: FuzzTarget<DecodedImage> = {
  reader: 'jpeg',
  parse: (bytes) => decodeImageBytes(bytes, SOURCE, FUZZ_IMAGE_OPTIONS),
  validate: checkImage,
  seeds: jpegSeeds,
  generators: [{ name: 'frame-size', arb: () => jpegSizeArb }],
};

// ---- CIFAR readers -----------------------------------------------------------------------------

const SPRITE_ROWS = 2;

function spriteSeed(): Uint8Array {
  return encodePng(pattern(1024 * SPRITE_ROWS, 1, 3, 5), 1024, SPRITE_ROWS);
}

/** A sprite-shaped IHDR with truncated, empty, random or bomb image data. */
const spriteChunksArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.constantFrom('ok', 'bomb', 'short-ihdr', 'short-ihdr-last', 'random', 'no-iend', 'two-idat'),
    fc.constantFrom(1, 4, 16),
    fc.nat(12),
  )
  .map(([kind, mb, cut]) => {
    const raw = new Uint8Array(SPRITE_ROWS * (1024 * 3 + 1));
    const ihdr = pngChunk('IHDR', pngIhdr(1024, SPRITE_ROWS, 8, 2));
    const end = pngChunk('IEND', new Uint8Array(0));
    switch (kind) {
      case 'bomb': return pngFile([ihdr, pngChunk('IDAT', zlibZeros(mb)), end]);
      case 'short-ihdr': return pngFile([pngChunk('IHDR', pngIhdr(1024, SPRITE_ROWS, 8, 2).subarray(0, cut)), end]);
      // The same as the file's last bytes: reading the 13 header bytes would run past the end.
      case 'short-ihdr-last': return pngFile([pngChunk('IHDR', pngIhdr(1024, SPRITE_ROWS, 8, 2).subarray(0, cut))]);
      case 'random': return pngFile([ihdr, pngChunk('IDAT', pattern(64, 1, 1, cut)), end]);
      case 'no-iend': return pngFile([ihdr, pngChunk('IDAT', new Uint8Array(deflateSync(raw)))]);
      case 'two-idat': {
        const z = new Uint8Array(deflateSync(raw));
        return pngFile([ihdr, pngChunk('IDAT', z.subarray(0, cut)), pngChunk('IDAT', z.subarray(cut)), end]);
      }
      default: return pngFile([ihdr, pngChunk('IDAT', new Uint8Array(deflateSync(raw))), end]);
    }
  });

export const cifarSpriteTarget: FuzzTarget<Uint8Array> = {
  reader: 'cifar-sprite',
  parse: (bytes) => decodeCifarSpritePng(bytes, SOURCE, SPRITE_ROWS),
  validate: (out) => {
    if (out.length !== SPRITE_ROWS * 3072) throw new FuzzViolation(`sprite decoded to ${out.length} bytes`);
  },
  seeds: () => [spriteSeed()],
  generators: [{ name: 'chunks', arb: () => spriteChunksArb }],
};

// ---- ONNX manifest --------------------------------------------------------------------------------

let exportSeedCache: { manifests: string[]; graphs: Uint8Array[] } | null = null;
/** manifest.json of a ResNet-8 export with and without a policy, and its small graphs (built in memory, not written). */
function exportSeeds(): { manifests: string[]; graphs: Uint8Array[] } {
  if (exportSeedCache) return exportSeedCache;
  const arch = getPreset('resnet8').arch;
  const resnet = initResNetWeights(arch, 1);
  const manifests: string[] = [];
  const graphs: Uint8Array[] = [];
  for (const policy of [undefined, initResNetWeights(policyArchFor(arch), 2)]) {
    const { files } = buildExport({ arch, normalization: NORMALIZATIONS.cifar, resnet, ...(policy ? { policy } : {}) });
    manifests.push(files[MANIFEST_FILE] as string);
    if (!policy) graphs.push(...['head.onnx', 'shortcut_1.onnx', 'block_0.onnx'].map((f) => files[f] as Uint8Array));
  }
  exportSeedCache = { manifests, graphs };
  return exportSeedCache;
}
const manifestSeedTexts = (): string[] => exportSeeds().manifests;

/** Every path (as keys) to a value inside a JSON document, breadth first. */
function jsonPaths(root: unknown): (string | number)[][] {
  const out: (string | number)[][] = [];
  const todo: [unknown, (string | number)[]][] = [[root, []]];
  while (todo.length) {
    const [v, path] = todo.shift()!;
    out.push(path);
    if (Array.isArray(v)) v.forEach((x, i) => todo.push([x, [...path, i]]));
    else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) todo.push([x, [...path, k]]);
  }
  return out;
}

/** Values that break type guards, paths and size arithmetic. */
const hostileJsonArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom<unknown>(
    null, true, 0, -1, 1.5, 3, 4, 9, 15, 1e308, -1e308, 2 ** 31, 2 ** 53, 2 ** 53 + 2, '', 'x', [], {}, [[[[]]]], [0], [3], ['batch', 4, 32, 32],
    '../full.onnx', '../../etc/passwd', '/etc/passwd', 'a/../../b.onnx', './full.onnx', 'sub//x.onnx', 'x\u0000y.onnx', 'C:\\x.onnx',
    '..\\x.onnx', 'full.onnx', 'block_0.onnx', 'missing.onnx', 'a\nb', '__proto__', 'constructor',
    'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', JSON.parse('{"__proto__": {"polluted": 1}}') as unknown, { toString: 1 },
    { sha256: '0'.repeat(64), bytes: 2 ** 40, role: 'r', inputs: [], outputs: [] },
  ) },
  // Arrays nested up to a million deep, spliced in as text after serialisation (see manifestFieldArb).
  { weight: 1, arbitrary: fc.constantFrom(1000, 100_000, 1_000_000).map((n) => `\u0000deep:${n}\u0000`) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 200_000 }).map((n) => 'x'.repeat(n)) },
  { weight: 1, arbitrary: fc.array(fc.nat(100), { maxLength: 2000 }) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

/** A seed manifest with 1–4 fields replaced by hostile values, deleted, or given an extra key (then serialised). */
const manifestFieldArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.nat(1), fc.array(fc.tuple(fc.nat(), fc.constantFrom('replace', 'replace', 'replace', 'delete', 'add-key'), hostileJsonArb, names), { minLength: 1, maxLength: 4 }))
  .map(([i, edits]) => {
    const doc = JSON.parse(manifestSeedTexts()[i % 2]!) as Record<string, unknown>;
    for (const [pick, op, value, key] of edits) {
      const paths = jsonPaths(doc).filter((p) => p.length > 0);
      const path = paths[pick % paths.length]!;
      let parent: Record<string | number, unknown> = doc;
      for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
      const last = path[path.length - 1]!;
      if (op === 'replace') Object.defineProperty(parent, last, { value, enumerable: true, writable: true, configurable: true });
      else if (op === 'delete') delete parent[last];
      else if (typeof parent === 'object' && !Array.isArray(parent)) Object.defineProperty(parent, key, { value, enumerable: true, writable: true, configurable: true });
    }
    const text = JSON.stringify(doc).replace(/"\\u0000deep:(\d+)\\u0000"/g, (_, n: string) => deepArray(Number(n)));
    return new TextEncoder().encode(text);
  });

/** What an accepted manifest promises the executor. */
function checkManifest(m: BlockDropManifest): void {
  const safe = (name: string): void => {
    if (name.startsWith('/') || /[\\\u0000-\u001f:]/.test(name) || name.split('/').some((p) => p === '' || p === '.' || p === '..')) {
      throw new FuzzViolation(`manifest accepted with the file name ${JSON.stringify(name)}`);
    }
  };
  const files = new Set(Object.keys(m.files));
  files.forEach(safe);
  const g = m.graphs;
  for (const name of [g.full, g.stem, g.head, g.blockdrop, ...g.blocks, ...Object.values(g.shortcuts), ...(g.policy ? [g.policy] : [])]) {
    safe(name);
    if (!files.has(name)) throw new FuzzViolation(`manifest accepted with graph ${JSON.stringify(name)} not among its files`);
  }
  const K = blockCount(m.architecture);
  if (m.K !== K || g.blocks.length !== K || m.flops.perBlock.length !== K) throw new FuzzViolation(`manifest accepted with inconsistent K ${m.K}`);
  if (m.classNames.length !== m.architecture.numClasses) throw new FuzzViolation('manifest accepted with the wrong number of class names');
  if ((m.policy === null) !== (g.policy === null) || (m.policy && m.policy.architecture.numClasses !== K)) throw new FuzzViolation('manifest accepted with an inconsistent policy');
  if (Object.values(m.files).reduce((a, f) => a + f.bytes, 0) > DEFAULT_MANIFEST_LIMITS.maxTotalBytes) throw new FuzzViolation('manifest accepted with absurd sizes');
  if (Object.getPrototypeOf(m.files) !== Object.prototype || ({} as Record<string, unknown>)['polluted'] !== undefined) throw new FuzzViolation('a manifest changed a prototype');
}

export const manifestTarget: FuzzTarget<BlockDropManifest> = {
  reader: 'onnx-manifest',
  parse: (bytes) => parseManifestBytes(bytes, SOURCE),
  validate: checkManifest,
  seeds: () => manifestSeedTexts().map((t) => new TextEncoder().encode(t)),
  generators: [{ name: 'fields', arb: () => manifestFieldArb }],
};

/** Exported graphs: protobuf parsing plus the finite-weights check that BlockDropModel.load runs on every file. */
export const onnxGraphTarget: FuzzTarget<unknown> = {
  reader: 'onnx-graph',
  parse: (bytes) => decodeOnnxModel(bytes, SOURCE),
  seeds: () => exportSeeds().graphs,
  generators: [],
};

// ---------------------------------------------------------------------------------------------
// Properties

export interface FuzzProperty {
  /** e.g. 'torch-zip/mutated'. */
  readonly name: string;
  readonly reader: string;
  /** Runs in the bounded test (the long run uses many more). */
  readonly testRuns: number;
  readonly build: (level: SeedLevel) => fc.IRawProperty<unknown, boolean>;
}

function syncProperty<T>(target: FuzzTarget<T>, arb: fc.Arbitrary<Uint8Array>): fc.IRawProperty<unknown, boolean> {
  return fc.property(arb, (bytes) => {
    count(target.reader);
    checkReader(bytes, target.parse, target.validate, target.limits ?? DEFAULT_LIMITS);
  }) as fc.IRawProperty<unknown, boolean>;
}

/** mutated / truncated seeds plus each structured generator, for one target. */
export function targetProperties<T>(target: FuzzTarget<T>, runs: { mutated: number; truncated: number; generated: number }): FuzzProperty[] {
  const seedsOf = (level: SeedLevel): Uint8Array[] => {
    const s = target.seeds(level);
    if (s.length === 0) throw new Error(`no seeds for ${target.reader}`);
    return s;
  };
  return [
    { name: `${target.reader}/mutated`, reader: target.reader, testRuns: runs.mutated, build: (level) => syncProperty(target, mutatedArb(seedsOf(level))) },
    { name: `${target.reader}/truncated`, reader: target.reader, testRuns: runs.truncated, build: (level) => syncProperty(target, truncatedArb(seedsOf(level))) },
    ...target.generators.map((g): FuzzProperty => ({
      name: `${target.reader}/${g.name}`,
      reader: target.reader,
      testRuns: runs.generated,
      build: () => syncProperty(target, g.arb()),
    })),
  ];
}

/** Safe prefixes for the GLOBAL property: pushes that cannot fail. */
const pushOpArb = fc.oneof(
  fc.integer({ min: -5, max: 1000 }).map((v) => new PickleWriter().int(v).finish()),
  names.map((s) => new PickleWriter().str(s).finish()),
  fc.constantFrom(OP.NONE, OP.MARK, OP.EMPTY_LIST, OP.EMPTY_DICT, OP.EMPTY_TUPLE, OP.NEWTRUE).map((op) => Uint8Array.of(op)),
);
const latin1String = (max: number) => fc.string({ unit: fc.integer({ min: 0, max: 255 }).filter((c) => c !== 10).map((c) => String.fromCharCode(c)), maxLength: max });

/**
 * GLOBAL / STACK_GLOBAL with random module and name after a valid prefix: a name outside the
 * allowlist must be refused at that opcode, naming it; nothing outside the allowlist ever comes back.
 */
export const globalsProperty: FuzzProperty = {
  name: 'pickle/globals',
  reader: 'pickle',
  testRuns: 1000,
  build: () => fc.property(
    fc.array(pushOpArb, { maxLength: 6 }),
    fc.oneof(globalNameArb, fc.tuple(latin1String(60), latin1String(60))),
    fc.boolean(),
    fc.array(pickleOpArb, { maxLength: 6 }),
    (prefix, [module, name], stack, suffix) => {
      count('pickle');
      const head = concatBytes([new PickleWriter().proto(stack ? 4 : 2).finish(), ...prefix]);
      // GLOBAL lines are latin-1 text without line breaks.
      const asLine = (t: string): string => Array.from(t, (c) => String.fromCharCode(c.charCodeAt(0) & 0xff)).join('').replace(/\n/g, '');
      const gModule = stack ? module : asLine(module);
      const gName = stack ? name : asLine(name);
      const global = stack ? new PickleWriter().stackGlobal(gModule, gName).finish() : new PickleWriter().global(gModule, gName).finish();
      const opAt = stack ? head.length + global.length - 1 : head.length;
      const bytes = concatBytes([head, global, ...suffix, Uint8Array.of(OP.STOP)]);
      // What the reader sees: GLOBAL lines are latin-1, STACK_GLOBAL strings UTF-8 (lone surrogates become U+FFFD).
      const decode = (s: string): string => (stack ? new TextDecoder().decode(new TextEncoder().encode(s)) : s);
      const qualified = `${decode(gModule)}.${decode(gName)}`;
      const outcome = checkReader(bytes, pickleChain, (v, b) => checkPickleValue(v, b.length));
      if (!ALLOWED.has(qualified)) {
        if (outcome.ok) throw new FuzzViolation(`global '${qualified}' was accepted`);
        const m = outcome.message!;
        if (!m.startsWith(`refusing to load ${SOURCE}: pickle asks for global '${printable(qualified)}'`) || !m.includes(`opcode at byte ${opAt} `)) {
          throw new FuzzViolation(`global '${qualified}' (at byte ${opAt}) refused with the wrong message: ${m}`);
        }
      } else if (!outcome.ok && /refusing to load/.test(outcome.message!)) {
        // A later GLOBAL from the suffix may be refused; the allowlisted one itself never is.
        if (outcome.message!.includes(`'${printable(qualified)}'`) && outcome.message!.includes(`byte ${opAt} `)) {
          throw new FuzzViolation(`allowlisted global '${qualified}' was refused: ${outcome.message}`);
        }
      }
    },
  ) as fc.IRawProperty<unknown, boolean>,
};

/** The whole file path: format sniffing, sidecar lookup, state-dict choice and the NaN check. */
export function anyCheckpointProperty(): FuzzProperty {
  return {
    name: 'checkpoint-file/mutated',
    reader: 'checkpoint-file',
    testRuns: 60,
    build: (level) => {
      const w = (v: number): HostTensor => ({ dtype: 'float32', shape: [1], data: new Float32Array([v]) });
      const seeds = [
        ...zipSeeds(level), ...torchLegacyTarget.seeds(level), ...safetensorsTarget.seeds(level),
        // Embedded blockdrop metadata nested 100,000 deep, and names with terminal escapes and line breaks.
        serializeSafetensors(new Map([['w', w(1)]]), { format: 'blockdrop', blockdrop: deepArray(100_000).replace(/^\[/, '{"a":[').replace(/\]$/, ']}') }),
        serializeSafetensors(new Map([['\u001b[31mred\u001b[0m\nline', w(2)], ['\u009b2J', w(3)]]), { '\u001b]0;title\u0007': 'x' }),
      ];
      const dir = mkdtempSync(join(tmpdir(), 'blockdrop-fuzz-'));
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
      let n = 0;
      return fc.asyncProperty(mutatedArb(seeds, 3), fc.constantFrom('x.pt', 'x.safetensors', 'x'), async (bytes, name) => {
        count('checkpoint-file');
        const path = join(dir, `${n++}-${name}`);
        writeFileSync(path, bytes);
        try {
          const loadAndDescribe = async (): Promise<AnyCheckpoint> => {
            // `blockdrop inspect` prints this text: nothing in it may reach the terminal as a control sequence.
            const described = await describeAnyCheckpoint(path).catch((e: unknown) => {
              if (e instanceof BlockdropError) return null;
              throw e;
            });
            if (described && /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(described.text)) {
              throw new FuzzViolation(`inspect text holds a control character: ${JSON.stringify(described.text.slice(0, 200))}`);
            }
            return loadAnyCheckpoint(path);
          };
          await checkReaderAsync(bytes, loadAndDescribe, (r: AnyCheckpoint, b) => {
            checkTensorMap(r.tensors, b.length);
            for (const [k, t] of r.tensors) {
              if (t.dtype === 'float32' && (t.data as Float32Array).some((x) => !Number.isFinite(x))) throw new FuzzViolation(`tensor ${k} holds a non-finite value`);
            }
          });
        } finally {
          rmSync(path, { force: true });
        }
      }) as unknown as fc.IRawProperty<unknown, boolean>;
    },
  };
}

/** CIFAR binary batches and label files are read from disk. */
export function cifarFileProperties(): FuzzProperty[] {
  const record = (label: number, fill: number): Uint8Array => concatBytes([Uint8Array.of(label), new Uint8Array(3072).fill(fill)]);
  const batch = concatBytes([record(3, 1), record(9, 2)]);
  const labels = new TextEncoder().encode('[0, 9, 3, 1]');
  const make = (name: string, seed: Uint8Array, read: (path: string) => unknown): FuzzProperty => ({
    name: `cifar-${name}/mutated`,
    reader: `cifar-${name}`,
    testRuns: 40,
    build: () => {
      const dir = mkdtempSync(join(tmpdir(), 'blockdrop-fuzz-'));
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
      const extra = name === 'labels'
        ? fc.oneof(fc.constant('[0, 1, 2, ' + deepArray(50_000) + ']'), fc.constant('[\n0,\n1,\nx]'), fc.constant('[0, 1, 2, {"a": "b\\nc"}]'), fc.jsonValue().map((v) => JSON.stringify(v)))
          .map((t) => new TextEncoder().encode(t))
        : fc.constant(seed);
      return fc.asyncProperty(fc.oneof(mutatedArb([seed]), extra), async (bytes) => {
        count(`cifar-${name}`);
        const path = join(dir, `input-${name}`);
        writeFileSync(path, bytes);
        await checkReaderAsync(bytes, async () => read(path));
      }) as unknown as fc.IRawProperty<unknown, boolean>;
    },
  });
  return [
    make('binary', batch, (path) => readCifarBinaryBatch(path, { expectedCount: null })),
    make('labels', labels, (path) => readLabelsJson(path, 4)),
  ];
}

/** Every checkpoint-reader property, with the bounded test's run counts. */
export function checkpointProperties(): FuzzProperty[] {
  return [
    ...targetProperties(pickleTarget, { mutated: 1000, truncated: 300, generated: 500 }),
    globalsProperty,
    ...targetProperties(torchLegacyTarget, { mutated: 800, truncated: 300, generated: 200 }),
    ...targetProperties(torchZipTarget, { mutated: 800, truncated: 300, generated: 200 }),
    ...targetProperties(safetensorsTarget, { mutated: 1000, truncated: 300, generated: 400 }),
    anyCheckpointProperty(),
  ];
}

/** The ONNX manifest reader and graph parser, with the bounded test's run counts. */
export function manifestProperties(): FuzzProperty[] {
  return [
    ...targetProperties(manifestTarget, { mutated: 400, truncated: 150, generated: 600 }),
    ...targetProperties(onnxGraphTarget, { mutated: 300, truncated: 100, generated: 0 }),
  ];
}

/** Every image-reader property (user images and CIFAR files), with the bounded test's run counts. */
export function imageProperties(): FuzzProperty[] {
  return [
    ...targetProperties(pngTarget, { mutated: 800, truncated: 200, generated: 300 }),
    ...targetProperties(jpegTarget, { mutated: 300, truncated: 100, generated: 100 }),
    ...targetProperties(cifarSpriteTarget, { mutated: 300, truncated: 100, generated: 100 }),
    ...cifarFileProperties(),
  ];
}
