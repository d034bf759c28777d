import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BlockdropError } from '../errors.js';
import type { HostTensor, TensorMap } from '../tensor.js';
import { loadSafetensors, readSafetensors, saveSafetensors, serializeSafetensors } from './safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'blockdrop-st-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function sample(): TensorMap {
  const m: TensorMap = new Map();
  m.set('b.weight', { dtype: 'float32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, -6.5]) });
  m.set('a.half', { dtype: 'float16', shape: [3], data: new Uint16Array([0x3c00, 0xc100, 0x8000]) });
  m.set('c.bf16', { dtype: 'bfloat16', shape: [2], data: new Uint16Array([0x3f80, 0x7f80]) });
  m.set('count', { dtype: 'int64', shape: [], data: new BigInt64Array([2n ** 53n + 1n]) });
  m.set('flags', { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) });
  m.set('u8', { dtype: 'uint8', shape: [1], data: new Uint8Array([255]) });
  m.set('i8', { dtype: 'int8', shape: [2], data: new Int8Array([-128, 127]) });
  m.set('i16', { dtype: 'int16', shape: [1], data: new Int16Array([-2]) });
  m.set('i32', { dtype: 'int32', shape: [1], data: new Int32Array([-3]) });
  m.set('f64', { dtype: 'float64', shape: [1], data: new Float64Array([Math.PI]) });
  m.set('empty', { dtype: 'float32', shape: [0, 3], data: new Float32Array(0) });
  m.set('7', { dtype: 'float32', shape: [1], data: new Float32Array([7]) }); // integer-like name keeps its place
  return m;
}

function headerOf(bytes: Uint8Array): { length: number; json: string } {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { length, json: new TextDecoder().decode(bytes.subarray(8, 8 + length)) };
}

test('round trip keeps names, order, dtypes (f16/bf16/i64/bool/…), shapes, exact bits and metadata', () => {
  const tensors = sample();
  const bytes = serializeSafetensors(tensors, { format: 'blockdrop', note: 'ünï "quoted"' });
  const back = readSafetensors(bytes, 'x.safetensors');
  assert.deepEqual([...back.tensors.keys()], [...tensors.keys()]);
  for (const [name, t] of tensors) {
    const r = back.tensors.get(name)!;
    assert.equal(r.dtype, t.dtype, name);
    assert.deepEqual(r.shape, t.shape, name);
    assert.deepEqual(r.data, t.data, name);
  }
  assert.equal(back.tensors.get('count')!.data[0], 9007199254740993n);
  assert.deepEqual({ ...back.metadata }, { format: 'blockdrop', note: 'ünï "quoted"' });
});

test('layout follows the spec: header padded with spaces to 8 bytes, every tensor aligned, offsets tile the buffer', () => {
  const bytes = serializeSafetensors(sample(), { k: 'v' });
  const { length, json } = headerOf(bytes);
  assert.equal(length % 8, 0);
  assert.ok(json.startsWith('{"__metadata__":{"k":"v"},"b.weight":{"dtype":"F32","shape":[2,3],"data_offsets":['));
  assert.match(json, /\} *$/);
  const header = JSON.parse(json) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const size: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2, I8: 1, U8: 1, BOOL: 1 };
  const ranges = Object.entries(header).filter(([k]) => k !== '__metadata__').map(([, v]) => v);
  for (const r of ranges) assert.equal((8 + length + r.data_offsets[0]) % size[r.dtype]!, 0, `${r.dtype} aligned`);
  const total = ranges.reduce((s, r) => s + r.data_offsets[1] - r.data_offsets[0], 0);
  assert.equal(8 + length + total, bytes.length);
});

test('reads a file written by the reference implementation (Python safetensors 0.8.0)', () => {
  // safetensors.numpy.save({"w": float32 [[1.5,-2],[3,4]], "h": float16 [1,-2.5,65504], "n": int64 [2**53+1,-1],
  //   "m": bool [True,False], "z": float32 zeros((0,2))}, metadata={"format":"pt","who":"safetensors 0.8.0"})
  const reference = Uint8Array.from(Buffer.from(
    '58010000000000007b225f5f6d657461646174615f5f223a7b2277686f223a227361666574656e736f727320302e382e30222c22666f726d6174223a227074227d2c226e223a7b226474797065223a22493634222c227368617065223a5b325d2c22646174615f6f666673657473223a5b302c31365d7d2c2277223a7b226474797065223a22463332222c227368617065223a5b322c325d2c22646174615f6f666673657473223a5b31362c33325d7d2c227a223a7b226474797065223a22463332222c227368617065223a5b302c325d2c22646174615f6f666673657473223a5b33322c33325d7d2c2268223a7b226474797065223a22463136222c227368617065223a5b335d2c22646174615f6f666673657473223a5b33322c33385d7d2c226d223a7b226474797065223a22424f4f4c222c227368617065223a5b325d2c22646174615f6f666673657473223a5b33382c34305d7d7d202020202020200100000000002000ffffffffffffffff0000c03f000000c00000404000008040003c00c1ff7b0100',
    'hex',
  ));
  const { tensors, metadata } = readSafetensors(reference, 'reference.safetensors');
  assert.deepEqual({ ...metadata }, { format: 'pt', who: 'safetensors 0.8.0' });
  assert.deepEqual([...tensors.keys()], ['n', 'w', 'z', 'h', 'm']);
  assert.deepEqual(tensors.get('w'), { dtype: 'float32', shape: [2, 2], data: new Float32Array([1.5, -2, 3, 4]) });
  assert.deepEqual(tensors.get('h')!.data, new Uint16Array([0x3c00, 0xc100, 0x7bff]));
  assert.deepEqual(tensors.get('n')!.data, new BigInt64Array([2n ** 53n + 1n, -1n]));
  assert.deepEqual(tensors.get('m'), { dtype: 'bool', shape: [2], data: new Uint8Array([1, 0]) });
  assert.deepEqual(tensors.get('z')!.shape, [0, 2]);
  // Re-serialising gives the reference implementation's bytes exactly (same layout, padding and key order).
  const again = serializeSafetensors(tensors, { who: 'safetensors 0.8.0', format: 'pt' });
  assert.deepEqual(again, reference);
});

test('the empty file of the reference tests: {} padded with spaces', () => {
  assert.deepEqual(serializeSafetensors(new Map()), Uint8Array.from([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]));
  assert.equal(readSafetensors(Uint8Array.from([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]), 'e').tensors.size, 0);
});

/** A file with `header` as its JSON and `data` as its buffer. */
function craft(header: string | Uint8Array, data: Uint8Array = new Uint8Array(0), declared?: bigint): Uint8Array {
  const json = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

test('corrupted headers and layouts are rejected with clear errors', () => {
  const f32 = (begin: number, end: number, shape = '[2]'): string => `{"dtype":"F32","shape":${shape},"data_offsets":[${begin},${end}]}`;
  const cases: [string, Uint8Array, RegExp][] = [
    ['shorter than 8 bytes', Uint8Array.from([1, 2, 3]), /shorter than the 8-byte header length/],
    ['header length beyond the file', craft('{}', new Uint8Array(0), 1000n), /header needs 1000 bytes, only 2 left/],
    ['absurd header length', craft('{}', new Uint8Array(0), 2n ** 63n), /exceeds the 100 MB limit/],
    ['not JSON', craft('{"a":'), /not valid JSON/],
    ['not an object', craft('[1, 2]'), /does not start with \{/],
    ['bad UTF-8', craft(Uint8Array.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), /not valid UTF-8/],
    ['duplicate names', craft(`{"a":${f32(0, 8)},"a":${f32(0, 8)}}`, new Uint8Array(8)), /duplicate key 'a'/],
    ['unknown dtype', craft('{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}', new Uint8Array(1)), /unsupported dtype "Q7"/],
    ['negative dim', craft(`{"a":${f32(0, 8, '[-2]')}}`, new Uint8Array(8)), /invalid shape/],
    ['size mismatch', craft(`{"a":${f32(0, 12)}}`, new Uint8Array(12)), /float32 \[2\] = 8 bytes, but data_offsets span 12/],
    ['offsets past the end', craft(`{"a":${f32(0, 8)}}`, new Uint8Array(4)), /needs bytes up to 8, only 4/],
    ['overlap', craft(`{"a":${f32(0, 8)},"b":${f32(4, 12)}}`, new Uint8Array(12)), /'b' overlaps/],
    ['gap', craft(`{"a":${f32(0, 8)},"b":${f32(12, 20)}}`, new Uint8Array(20)), /gap in the data buffer before tensor 'b'/],
    ['trailing bytes', craft(`{"a":${f32(0, 8)}}`, new Uint8Array(16)), /cover 8 bytes but the data buffer has 16/],
    ['end before begin', craft(`{"a":${f32(8, 0)}}`, new Uint8Array(8)), /end before they begin/],
    ['metadata not strings', craft('{"__metadata__":{"epoch":3}}'), /__metadata__ value 'epoch' is not a string/],
  ];
  for (const [label, bytes, pattern] of cases) {
    assert.throws(() => readSafetensors(bytes, 'bad.safetensors'), (e: unknown) => {
      assert.ok(e instanceof BlockdropError, label);
      assert.match(e.message, /^cannot read bad\.safetensors: invalid safetensors file: /, label);
      assert.match(e.message, pattern, label);
      return true;
    });
  }
});

test('every truncation of a valid file is rejected', () => {
  const bytes = serializeSafetensors(sample());
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(() => readSafetensors(bytes.subarray(0, n), 'cut'), BlockdropError, `cut at ${n}`);
  }
});

test('writer refuses tensors whose data does not fill their shape', () => {
  const bad: HostTensor = { dtype: 'float32', shape: [2, 2], data: new Float32Array(3) };
  assert.throws(() => serializeSafetensors(new Map([['w', bad]])), /3 values do not fill shape \[2, 2\]/);
  const wrongArray: HostTensor = { dtype: 'float64', shape: [2], data: new Float32Array(2) };
  assert.throws(() => serializeSafetensors(new Map([['w', wrongArray]])), /does not hold float64 elements/);
});

test('saveSafetensors writes atomically; loadSafetensors reads it back', async () => {
  const path = join(dir, 'w.safetensors');
  await saveSafetensors(path, sample(), { a: 'b' });
  assert.deepEqual(readdirSync(dir), ['w.safetensors']);
  const loaded = await loadSafetensors(path);
  assert.equal(loaded.tensors.size, sample().size);
  assert.deepEqual(new Uint8Array(readFileSync(path)), serializeSafetensors(sample(), { a: 'b' }));
  await assert.rejects(loadSafetensors(join(dir, 'missing.safetensors')), /no such file/);
});
