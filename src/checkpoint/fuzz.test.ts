/**
 * Hostile checkpoints: property-based fuzzing of the pickle, torch (legacy + zip), zip and
 * safetensors readers and of loadAnyCheckpoint, with a fixed seed (reproducible, ~10 s), plus the
 * specific attacks the properties must cover. The contract (src/testing/fuzz-harness.ts): a valid
 * result or a one-line BlockdropError, within a second, without a large allocation, and never a
 * global outside the allowlist. The long run with random seeds is bench/fuzz.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { BlockdropError } from '../errors.js';
import type { HostTensor, TensorMap } from '../tensor.js';
import {
  ByteWriter, crc32, OP, PickleWriter, torchLegacyFile, torchStateDictPickle, torchZipFile, zipArchive, type TensorSpec,
} from '../testing/fuzz-formats.js';
import { checkReader, DEFAULT_LIMITS, type FuzzLimits } from '../testing/fuzz-harness.js';
import { checkpointProperties } from '../testing/fuzz-targets.js';
import { unpickle, type PickleValue } from './pickle.js';
import { serializeSafetensors, readSafetensors } from './safetensors.js';
import { describeAnyCheckpoint, loadAnyCheckpoint } from './store.js';
import { describeCheckpoint, readTorchCheckpoint, stateDict } from './torch.js';
import { assertFiniteTensors, assertFiniteValues, firstNonFinite } from './validate.js';

/** Fixed: the suite is reproducible. bench/fuzz.ts runs the same properties with random seeds. */
const SEED = 0x5eed;

const dir = mkdtempSync(join(tmpdir(), 'blockdrop-fuzz-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

for (const p of checkpointProperties()) {
  test(`fuzz ${p.name}: ${p.testRuns} inputs give a result or a one-line BlockdropError, fast and small`, async () => {
    await fc.assert(p.build('small'), { seed: SEED, numRuns: p.testRuns });
  });
}

// ---------------------------------------------------------------------------------------------
// Specific attacks: each must fail fast with a BlockdropError, allocating little.

/** Tight limits: a hostile input must be refused in well under the fuzzers' second. */
const FAST: FuzzLimits = { ...DEFAULT_LIMITS, maxMs: 3000, rssFixedMB: 48 };

function refusedFast(bytes: Uint8Array, parse: (b: Uint8Array) => unknown, pattern: RegExp): void {
  const outcome = checkReader(bytes, parse, undefined, FAST);
  assert.equal(outcome.ok, false, `accepted; expected ${pattern}`);
  assert.match(outcome.message!, pattern);
}

const SOURCE = 'hostile.bin';
const readPickle = (b: Uint8Array): PickleValue => unpickle(b, { sourceName: SOURCE }).value;
const readTorch = (b: Uint8Array): TensorMap => {
  const ckpt = readTorchCheckpoint(b, SOURCE);
  describeCheckpoint(ckpt);
  return stateDict(ckpt);
};
const pickle = (build: (w: PickleWriter) => PickleWriter): Uint8Array => build(new PickleWriter().proto(4)).finish();

test('pickle length fields that claim more than the file holds are refused before allocating', () => {
  const cases: [string, Uint8Array][] = [
    ['BINUNICODE 0xffffffff', pickle((w) => w.op(OP.BINUNICODE).u32(0xffffffff).text('abc'))],
    ['BINBYTES 0xfffffff0', pickle((w) => w.op(OP.BINBYTES).u32(0xfffffff0).text('abc'))],
    ['BINUNICODE8 2^63', pickle((w) => w.op(OP.BINUNICODE8).u64(2n ** 63n).text('abc'))],
    ['BINBYTES8 2^64-1', pickle((w) => w.op(OP.BINBYTES8).u64(2n ** 64n - 1n).text('abc'))],
    ['BYTEARRAY8 2^53', pickle((w) => w.op(OP.BYTEARRAY8).u64(2n ** 53n).text('abc'))],
    ['FRAME 2^62', pickle((w) => w.op(OP.FRAME).u64(2n ** 62n).op(OP.NONE).stop())],
    ['LONG4 2^31-1', pickle((w) => w.op(OP.LONG4).i32(0x7fffffff).text('abc'))],
    ['BINSTRING -1', pickle((w) => w.op(OP.BINSTRING).i32(-1).text('abc'))],
  ];
  for (const [what, bytes] of cases) {
    refusedFast(bytes, readPickle, /^cannot read hostile\.bin: pickle is truncated or corrupt: (needs \d+ bytes, only 3 left|integer of \d+ bytes is too large|negative length -1|needs \d+ bytes, only \d+ left)/);
    assert.ok(true, what);
  }
});

test('memo references to entries never stored are refused', () => {
  refusedFast(pickle((w) => w.op(OP.BINGET).u8(5).stop()), readPickle, /memo entry 5 was never stored \(BINGET at byte 2 of pickle\)$/);
  refusedFast(pickle((w) => w.op(OP.LONG_BINGET).u32(0xffffffff).stop()), readPickle, /memo entry 4294967295 was never stored/);
  refusedFast(pickle((w) => w.op(OP.NONE).op(OP.BINPUT).u8(0).op(OP.BINGET).u8(1).stop()), readPickle, /memo entry 1 was never stored/);
});

test('stack and recursion bombs end in a BlockdropError or a value, never a RangeError', () => {
  // A million MARKs: the mark stack grows with the file, then the data ends.
  refusedFast(concatOps(new Uint8Array(1_000_000).fill(OP.MARK), [OP.STOP]), readPickle, /STOP.*stack underflow|stack underflow/);
  // Tuples nested a million deep, as a key of the root dict and as a tensor size: describing the
  // checkpoint must not recurse into them (String() on such an array overflows the stack).
  const deep = concatOps([OP.PROTO, 2, OP.EMPTY_DICT, OP.EMPTY_TUPLE], new Uint8Array(1_000_000).fill(OP.TUPLE1), [OP.NONE, OP.SETITEM, OP.STOP]);
  const outcome = checkReader(deep, (b) => describeCheckpoint({ format: 'zip', source: SOURCE, root: readPickle(b) }), undefined, FAST);
  assert.equal(outcome.ok, true);
  // Lists nested 100,000 deep as the size of a tensor rebuild.
  const w = new PickleWriter().proto(2).global('torch._utils', '_rebuild_tensor_v2').op(OP.MARK).op(OP.NONE).int(0);
  w.bytes(new Uint8Array(100_000).fill(OP.MARK)).bytes(new Uint8Array(100_000).fill(OP.LIST));
  w.op(OP.EMPTY_TUPLE).op(OP.NEWFALSE).op(OP.NONE).op(OP.TUPLE).op(OP.REDUCE).stop();
  refusedFast(w.finish(), (b) => unpickle(b, { sourceName: SOURCE, rebuildTensor: () => { throw new Error('unreachable'); } }),
    /_rebuild_tensor_v2: bad size entry a tuple of 1/);
});

function concatOps(...parts: ArrayLike<number>[]): Uint8Array {
  const w = new ByteWriter();
  for (const p of parts) w.bytes(p);
  return w.finish();
}

test('memo amplification: a big list copied again and again by allowlisted builders is refused', () => {
  for (const [module, name] of [['torch', 'Size'], ['builtins', 'set'], ['collections', 'OrderedDict']] as const) {
    const w = new PickleWriter().proto(2).global(module, name).op(OP.BINPUT).u8(0).op(OP.MARK);
    for (let i = 0; i < 50_000; i++) w.op(OP.EMPTY_TUPLE);
    if (module === 'collections') w.op(OP.POP).op(OP.MARK).op(OP.NONE).op(OP.NONE).op(OP.TUPLE).op(OP.BINPUT).u8(2).op(OP.POP);
    w.op(OP.LIST).op(OP.TUPLE1).op(OP.BINPUT).u8(1).op(OP.POP).op(OP.EMPTY_LIST);
    for (let c = 0; c < 20_000; c++) w.op(OP.BINGET).u8(0).op(OP.BINGET).u8(1).op(OP.REDUCE).op(OP.APPEND);
    refusedFast(w.stop().finish(), readPickle, /it copies more than \d+ values out of \d+ bytes|OrderedDict argument is not a list of pairs/);
  }
  const enc = new PickleWriter().proto(2).global('_codecs', 'encode').op(OP.BINPUT).u8(0)
    .op(OP.MARK).str('x'.repeat(100_000)).str('latin1').op(OP.TUPLE).op(OP.BINPUT).u8(1).op(OP.POP).op(OP.EMPTY_LIST);
  for (let c = 0; c < 20_000; c++) enc.op(OP.BINGET).u8(0).op(OP.BINGET).u8(1).op(OP.REDUCE).op(OP.APPEND);
  refusedFast(enc.stop().finish(), readPickle, /it copies more than \d+ values/);
});

test('a Namespace with dtype/shape/data fields never passes for a tensor; one with a toString field is harmless', () => {
  // argparse.Namespace() then BUILD {'dtype': 'float32', 'shape': [3], 'data': b'...' x 8192}, as the only value of the root dict.
  const forged = new PickleWriter().proto(2).op(OP.EMPTY_DICT).str('w')
    .global('argparse', 'Namespace').op(OP.EMPTY_TUPLE).op(OP.NEWOBJ)
    .op(OP.EMPTY_DICT).str('dtype').str('float32').op(OP.SETITEM).str('shape').op(OP.MARK).int(3).op(OP.LIST).op(OP.SETITEM)
    .str('data').op(OP.BINBYTES).u32(8192).bytes(new Uint8Array(8192)).op(OP.SETITEM).op(OP.BUILD)
    .op(OP.SETITEM).stop().finish();
  const root = readPickle(forged);
  assert.throws(() => stateDict({ format: 'zip', source: SOURCE, root }), /hostile\.bin holds no state dict/);
  // A record with toString / valueOf fields, as a dict key: String() on it would throw a TypeError.
  const keyed = new PickleWriter().proto(2).op(OP.EMPTY_DICT)
    .global('argparse', 'Namespace').op(OP.EMPTY_TUPLE).op(OP.NEWOBJ)
    .op(OP.EMPTY_DICT).str('toString').str('x').op(OP.SETITEM).str('valueOf').str('y').op(OP.SETITEM).op(OP.BUILD)
    .op(OP.DUP).op(OP.SETITEM).stop().finish();
  const described = describeCheckpoint({ format: 'zip', source: SOURCE, root: readPickle(keyed) });
  assert.deepEqual(described.entries, ['an object']);
});

const f32 = (name: string, key: string, size: number[], stride: number[], numel: number, offset = 0): TensorSpec => ({ name, dtype: 'float32', key, numel, offset, size, stride });

test('tensor views that ask for far more bytes than the file holds are refused before allocating', () => {
  // Stride 0 over one element: 2^28 floats (1 GB) from a 300-byte file.
  const stride0 = [f32('w', '0', [2 ** 28], [0], 1)];
  const one = [{ key: '0', count: 1, bytes: new Uint8Array(4) }];
  for (const file of [torchZipFile(torchStateDictPickle(stride0), one), torchLegacyFile(torchStateDictPickle(stride0), one)]) {
    refusedFast(file, readTorch, /its tensors would take more than \d+ bytes, far more than the file holds .*shape \[268435456\] with strides \[0\]/);
  }
  // The same 1 MB view rebuilt 200 times through the memo (5 bytes per copy).
  const repeated: TensorSpec[] = [{ ...f32('w', '0', [1 << 18], [1], 1 << 18), repeats: 200 }];
  const mb = [{ key: '0', count: 1 << 18, bytes: new Uint8Array(1 << 20) }];
  refusedFast(torchZipFile(torchStateDictPickle(repeated), mb), readTorch, /its tensors would take more than/);
  // Sizes whose element count overflows, and a storage that declares 2^40 elements.
  refusedFast(torchZipFile(torchStateDictPickle([f32('w', '0', [2 ** 31, 2 ** 31, 2 ** 31], [0, 0, 0], 1)]), one), readTorch, /too large to load/);
  refusedFast(torchZipFile(torchStateDictPickle([f32('w', '0', [4], [1], 2 ** 40)]), one), readTorch, /storage 0 needs 4398046511104 bytes, only 4 left/);
  refusedFast(torchLegacyFile(torchStateDictPickle([f32('w', '0', [4], [1], 2 ** 40)]), [{ key: '0', count: 2n ** 40n, bytes: new Uint8Array(4) }]), readTorch,
    /storage 0 needs 4398046511104 bytes, only 4 left/);
  refusedFast(torchLegacyFile(torchStateDictPickle([f32('w', '0', [4], [1], 4)]), [{ key: '0', count: 2n ** 62n, bytes: new Uint8Array(16) }]), readTorch,
    /storage 0 holds 4611686018427387904 elements in the file but the pickle declares 4/);
});

test('zip sizes and offsets that lie, overlapping records and deflate bombs are refused', () => {
  const pkl = torchStateDictPickle([f32('w', '0', [4], [1], 4)]);
  const data = new Uint8Array(16);
  const base = (extra: object) => [{ name: 'a/data.pkl', data: pkl }, { name: 'a/data/0', data, ...extra }];
  refusedFast(zipArchive(base({ claimSize: 0xfffffffe, claimCompressedSize: 0xfffffffe })), readTorch, /zip record a\/data\/0 needs 4294967294 bytes, only \d+ left/);
  refusedFast(zipArchive(base({ zip64: true, claimSize: 2 ** 53 - 1, claimCompressedSize: 2 ** 53 - 1 })), readTorch, /needs 9007199254740991 bytes/);
  refusedFast(zipArchive(base({ claimOffset: 0xfffffff0 })), readTorch, /zip record a\/data\/0 is missing or damaged/);
  refusedFast(zipArchive(base({ method: 8, claimSize: 0x7fffffff })), readTorch, /decompress to more than \d+ bytes from a \d+-byte file/);
  // 40 MB of zeros deflated into a 40 KB record.
  const bomb = new Uint8Array(40 * 2 ** 20);
  const bombPkl = torchStateDictPickle([{ name: 'w', dtype: 'uint8', key: '0', numel: bomb.length, offset: 0, size: [bomb.length], stride: [1] }]);
  refusedFast(torchZipFile(bombPkl, [{ key: '0', bytes: bomb }], { method: 8 }), readTorch, /zip records decompress to more than/);
  // 300 central-directory entries naming one 1 MB stored record (each read would CRC it again).
  const big = new Uint8Array(1 << 20);
  const specs = Array.from({ length: 300 }, (_, i) => ({ name: `w${i}`, dtype: 'uint8' as const, key: String(i), numel: 1, offset: 0, size: [1], stride: [1] }));
  const manyPkl = torchStateDictPickle(specs);
  const first = 30 + 'a/data.pkl'.length + manyPkl.length; // local header of a/data/0, right after data.pkl's
  const overlapping = zipArchive([
    { name: 'a/data.pkl', data: manyPkl },
    { name: 'a/data/0', data: big },
    ...specs.slice(1).map((s) => ({
      name: `a/data/${s.key}`, data: new Uint8Array(0), claimOffset: first, claimSize: big.length, claimCompressedSize: big.length, claimCrc: crc32(big),
    })),
  ]);
  refusedFast(overlapping, readTorch, /zip records overlap to more than \d+ bytes from a \d+-byte file/);
  // A zip64 extra field whose length claims 24 bytes at the very end of the central directory:
  // its values would be read from past the end of the file.
  const name = new TextEncoder().encode('a/data.pkl');
  const cd = new ByteWriter().u32(0x02014b50).u16(45).u16(45).u16(0).u16(0).u16(0).u16(0).u32(0)
    .u32(0xffffffff).u32(0xffffffff).u16(name.length).u16(4).u16(0).u16(0).u16(0).u32(0).u32(0xffffffff)
    .bytes(name).u16(1).u16(24).finish();
  const eocd = new ByteWriter().u32(0x06054b50).u16(0).u16(0).u16(1).u16(1).u32(cd.length).u32(4).u16(0).finish();
  const truncatedExtra = new ByteWriter().u32(0x04034b50).bytes(cd).bytes(eocd).finish();
  refusedFast(truncatedExtra, readTorch, /zip64 field of a\/data\.pkl is damaged: file is corrupt/);
});

test('a deflated zip storage gives tensors of exactly their shape, not a window on zlib\'s buffer', () => {
  const values = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const file = torchZipFile(torchStateDictPickle([f32('w', '0', [2, 3], [3, 1], 6), { name: 'h', dtype: 'float16', key: '1', numel: 3, offset: 0, size: [3], stride: [1] }]),
    [{ key: '0', bytes: new Uint8Array(values.buffer) }, { key: '1', bytes: new Uint8Array(6).fill(0x3c) }], { method: 8 });
  const sd = readTorch(file);
  const w = sd.get('w')!;
  assert.deepEqual([...(w.data as Float32Array)], [...values]);
  assert.equal(w.data.buffer.byteLength, 24);
  assert.equal(sd.get('h')!.data.length, 3);
});

test('safetensors header length, data_offsets and shapes that overflow are refused before allocating', () => {
  const header = (json: string, length?: bigint, buffer = 0): Uint8Array => {
    const text = new TextEncoder().encode(json);
    return new ByteWriter().u64(length ?? BigInt(text.length)).bytes(text).bytes(new Uint8Array(buffer)).finish();
  };
  const read = (b: Uint8Array) => readSafetensors(b, SOURCE);
  refusedFast(header('{}', 2n ** 63n), read, /header length 9223372036854775808 exceeds the 100 MB limit/);
  refusedFast(header('{}', 100_000_000n), read, /header needs 100000000 bytes, only \d+ left \(file is truncated\)/);
  refusedFast(header('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,9007199254740991]}}', undefined, 16), read, /needs bytes up to 9007199254740991, only 16/);
  refusedFast(header('{"w":{"dtype":"F32","shape":[1073741824,1073741824,1073741824],"data_offsets":[0,16]}}', undefined, 16), read, /= [\d.e+]+ bytes, but data_offsets span 16/);
  refusedFast(header('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', undefined, 4), read, /invalid shape/);
  // A dtype nested 100,000 arrays deep: described, not serialised (JSON.stringify would overflow the stack).
  refusedFast(header(`{"w":{"dtype":${'['.repeat(100_000)}${']'.repeat(100_000)},"shape":[],"data_offsets":[0,0]}}`), read, /unsupported dtype an array of 1$/);
  // Names with line breaks stay on one line.
  refusedFast(header('{"a\\nb":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}', undefined, 8), read, /tensor 'a\\nb' is float32/);
});

test('non-allowlisted globals are refused naming them, on one line, even with line breaks or megabytes of name', () => {
  const stack = (module: string, name: string): Uint8Array => pickle((w) => w.stackGlobal(module, name).op(OP.STOP));
  refusedFast(stack('os\nsystem', 'x'), readPickle, /^refusing to load hostile\.bin: pickle asks for global 'os\\nsystem\.x', which is not a tensor type/);
  const long = stack('m'.repeat(1 << 20), 'x');
  refusedFast(long, readPickle, /^refusing to load hostile\.bin: pickle asks for global 'm{120}…', which is not a tensor type; blockdrop never executes code from checkpoints \(STACK_GLOBAL opcode at byte \d+ of pickle\)$/);
});

test('inspect text escapes control characters in names; metadata nested 100,000 deep is refused', async () => {
  const one = (v: number): HostTensor => ({ dtype: 'float32', shape: [1], data: new Float32Array([v]) });
  const named = join(dir, 'escapes.safetensors');
  writeFileSync(named, serializeSafetensors(new Map([['\u001b[2Jwiped\nline', one(1)]]), { '\u009b31m': 'x\u0007' }));
  const { text } = await describeAnyCheckpoint(named);
  assert.ok(text.includes('\\u001b[2Jwiped\\nline'), text);
  assert.doesNotMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  const deep = join(dir, 'deep.safetensors');
  writeFileSync(deep, serializeSafetensors(new Map([['w', one(1)]]), { format: 'blockdrop', blockdrop: `{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}` }));
  await assert.rejects(loadAnyCheckpoint(deep), /embedded blockdrop metadata is nested more than 64 levels deep/);
  await assert.rejects(describeAnyCheckpoint(deep), /nested more than 64 levels deep/);
});

// ---------------------------------------------------------------------------------------------
// NaN / Inf in weights

function tensor(dtype: HostTensor['dtype'], shape: number[], data: HostTensor['data']): HostTensor {
  return { dtype, shape, data };
}

test('assertFiniteTensors names the first tensor and index holding NaN or Infinity', () => {
  const ok: TensorMap = new Map([
    ['a', tensor('float32', [2], new Float32Array([1, -2]))],
    ['count', tensor('int64', [], new BigInt64Array([5n]))],
    ['mask', tensor('uint8', [2], new Uint8Array([0, 255]))],
  ]);
  assertFiniteTensors(ok, 'ok.pt');
  const cases: [HostTensor, RegExp][] = [
    [tensor('float32', [2, 3], new Float32Array([0, 0, 0, 0, 0, NaN])), /tensor 'bad' holds NaN at index 5 \(\[1, 2\]\)/],
    [tensor('float64', [3], new Float64Array([0, -Infinity, NaN])), /tensor 'bad' holds -Infinity at index 1;/],
    [tensor('float16', [2], new Uint16Array([0x3c00, 0x7c00])), /tensor 'bad' holds Infinity at index 1;/],
    [tensor('float16', [1], new Uint16Array([0x7e00])), /holds NaN at index 0;/],
    [tensor('bfloat16', [2, 1], new Uint16Array([0xff80, 0])), /holds -Infinity at index 0 \(\[0, 0\]\)/],
  ];
  for (const [bad, pattern] of cases) {
    const map: TensorMap = new Map([...ok, ['bad', bad], ['later', tensor('float32', [1], new Float32Array([NaN]))]]);
    assert.throws(() => assertFiniteTensors(map, 'model.pt'), (e: unknown) => {
      assert.ok(e instanceof BlockdropError);
      assert.match(e.message, /^cannot use model\.pt: /);
      assert.match(e.message, pattern);
      assert.match(e.message, /the weights are damaged or come from a diverged run: use another checkpoint$/);
      return true;
    });
  }
  // Plain float arrays (e.g. a caller's normalised images).
  assertFiniteValues(new Float32Array([0, -1e30, 3]), 'images');
  assert.throws(() => assertFiniteValues(new Float32Array([0, 1, Infinity]), 'images'), /: images holds Infinity at index 2; pass finite numbers$/);
  // Largest finite values are fine.
  assert.equal(firstNonFinite(tensor('float32', [2], new Float32Array([3.4028234663852886e38, -3.4028234663852886e38]))), -1);
  assert.equal(firstNonFinite(tensor('float16', [1], new Uint16Array([0x7bff]))), -1);
});

test('assertFiniteTensors checks a 2 MB checkpoint in under 5 ms', () => {
  const map: TensorMap = new Map();
  for (let i = 0; i < 16; i++) map.set(`layer${i}.weight`, tensor('float32', [128, 256], new Float32Array(128 * 256).fill(0.5)));
  assertFiniteTensors(map, 'warm-up');
  const times: number[] = [];
  for (let r = 0; r < 15; r++) {
    const t0 = performance.now();
    assertFiniteTensors(map, 'big.pt');
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  assert.ok(times[7]! < 5, `median ${times[7]!.toFixed(2)} ms for 2 MB`);
});

test('loadAnyCheckpoint refuses weights holding NaN or Infinity (safetensors and torch)', async () => {
  const st = join(dir, 'nan.safetensors');
  writeFileSync(st, serializeSafetensors(new Map([
    ['conv.weight', tensor('float32', [2, 2], new Float32Array([1, 2, NaN, 4]))],
  ])));
  await assert.rejects(loadAnyCheckpoint(st), (e: unknown) =>
    e instanceof BlockdropError && /^cannot use .*nan\.safetensors: tensor 'conv\.weight' holds NaN at index 2 \(\[1, 0\]\);/.test(e.message));
  const inf = new Float32Array([1, Infinity]);
  const pt = join(dir, 'inf.pt');
  writeFileSync(pt, torchZipFile(torchStateDictPickle([f32('fc.bias', '0', [2], [1], 2)]), [{ key: '0', bytes: new Uint8Array(inf.buffer) }]));
  await assert.rejects(loadAnyCheckpoint(pt), /tensor 'fc\.bias' holds Infinity at index 1;/);
  // The same file with finite values loads.
  writeFileSync(pt, torchZipFile(torchStateDictPickle([f32('fc.bias', '0', [2], [1], 2)]), [{ key: '0', bytes: new Uint8Array(Float32Array.from([1, 2]).buffer) }]));
  assert.deepEqual([...((await loadAnyCheckpoint(pt)).tensors.get('fc.bias')!.data as Float32Array)], [1, 2]);
});
