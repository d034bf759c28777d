import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BlockdropError } from '../errors.js';
import { ALLOWED_GLOBALS, PickleGlobalRef, unpickle, type PickleValue } from './pickle.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const load = (bytes: Uint8Array): PickleValue => unpickle(bytes, { sourceName: 'test.pkl' }).value;

// Written by CPython 3 pickle.dumps(DATA, protocol=N), with
// DATA = {'ints': [0, 1, -1, 255, 256, 65535, 65536, 2**31-1, -2**31, 2**53-1, 2**53+1, -(2**62), 2**70, -(2**70)],
//         'floats': [0.5, -1.25e-300, inf],
//         'misc': [None, True, False, 'ü€', b'\x00\xff', (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), [], {}]}
// Protocol 2 writes bytes as _codecs.encode(text, 'latin1'); protocols 4/5 use FRAME, MEMOIZE, SHORT_BINUNICODE, SHORT_BINBYTES.
const DATA_P2 =
  '80027d7100285804000000696e747371015d7102284b004b014affffffff4bff4d00014dffff4a000001004affffff7f4a000000808a07ffffffffffff1f8a07010000000000208a0800000000000000c08a090000000000000000408a090000000000000000c0655806000000666c6f61747371035d710428473fe00000000000004781aac9a7b3b7302f477ff00000000000006558040000006d69736371055d7106284e88895805000000c3bce282ac7107635f636f646563730a656e636f64650a7108580300000000c3bf710958060000006c6174696e31710a86710b52710c294b0185710d4b014b0286710e4b014b024b0387710f284b014b024b034b047471105d71117d711265752e';
const DATA_P4 =
  '800495c7000000000000007d94288c04696e7473945d94284b004b014affffffff4bff4d00014dffff4a000001004affffff7f4a000000808a07ffffffffffff1f8a07010000000000208a0800000000000000c08a090000000000000000408a090000000000000000c0658c06666c6f617473945d9428473fe00000000000004781aac9a7b3b7302f477ff0000000000000658c046d697363945d94284e88898c05c3bce282ac94430200ff94294b0185944b014b0286944b014b024b038794284b014b024b034b0474945d947d9465752e';
const DATA_P5 = `8005${DATA_P4.slice(4)}`;

const EXPECTED_INTS: (number | bigint)[] = [
  0, 1, -1, 255, 256, 65535, 65536, 2 ** 31 - 1, -(2 ** 31), Number.MAX_SAFE_INTEGER,
  2n ** 53n + 1n, -(2n ** 62n), 2n ** 70n, -(2n ** 70n),
];

function checkData(value: PickleValue): void {
  assert.ok(value instanceof Map);
  assert.deepEqual([...value.keys()], ['ints', 'floats', 'misc']);
  assert.deepEqual(value.get('ints'), EXPECTED_INTS);
  // -2**62 fits a double exactly but not the safe-integer range: it must stay exact as a bigint.
  assert.equal((value.get('ints') as PickleValue[])[11], -(2n ** 62n));
  assert.deepEqual(value.get('floats'), [0.5, -1.25e-300, Infinity]);
  const misc = value.get('misc') as PickleValue[];
  assert.deepEqual(misc.slice(0, 4), [null, true, false, 'ü€']);
  assert.deepEqual(misc[4], Uint8Array.from([0, 255]));
  assert.deepEqual(misc.slice(5, 11), [[], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4], []]);
  assert.ok(misc[11] instanceof Map && misc[11].size === 0);
}

test('reads CPython protocol 2, 4 and 5 pickles: ints (bigint beyond 2^53), floats, strings, bytes, tuples', () => {
  for (const p of [DATA_P2, DATA_P4, DATA_P5]) checkData(load(hex(p)));
});

test('exactly -2^62 and 2^53+1 are bigint, 2^53-1 a number', () => {
  const ints = (load(hex(DATA_P2)) as Map<PickleValue, PickleValue>).get('ints') as PickleValue[];
  assert.equal(typeof ints[9], 'number');
  assert.equal(typeof ints[10], 'bigint');
  assert.equal(ints[11], -4611686018427387904n);
});

test('BINFLOAT is big-endian', () => {
  // PROTO 2, BINFLOAT 3ff8000000000000 (1.5 big-endian), STOP
  assert.equal(load(hex('8002473ff80000000000002e')), 1.5);
});

test('OrderedDict via GLOBAL+REDUCE (protocol 2) and STACK_GLOBAL (protocol 4) keeps order', () => {
  const od2 = load(hex('800263636f6c6c656374696f6e730a4f726465726564446963740a7100295271012858010000006271024b0158010000006171034b02752e'));
  const od4 = load(hex('80049530000000000000008c0b636f6c6c656374696f6e73948c0b4f72646572656444696374949394295294288c0162944b018c0161944b02752e'));
  for (const od of [od2, od4]) {
    assert.ok(od instanceof Map);
    assert.deepEqual([...od], [['b', 1], ['a', 2]]);
  }
});

test('memo: one object reached twice is the same JS object; a self-containing list terminates', () => {
  const shared = load(hex('80025d7100285d71014b01616801652e')) as PickleValue[][];
  assert.equal(shared[0], shared[1]);
  const cycle = load(hex('80025d71006800612e')) as PickleValue[];
  assert.equal(cycle[0], cycle);
});

test('argparse.Namespace via NEWOBJ + BUILD becomes a plain record', () => {
  const ns = load(hex('80026361726770617273650a4e616d6573706163650a7100298171017d71022858020000006c727103473fb999999999999a5805000000646570746871044b2058040000006461746171055808000000636966617231302b710675622e'));
  assert.deepEqual(ns, { lr: 0.1, depth: 32, data: 'cifar10+' });
});

test('a "__proto__" attribute is an own field and does not change any prototype', () => {
  const ns = load(hex('80026361726770617273650a4e616d6573706163650a7100298171017d71022858090000005f5f70726f746f5f5f71037d71045808000000706f6c6c757465647105887358020000006f6b71064b0175622e')) as Record<string, PickleValue>;
  assert.equal(Object.getPrototypeOf(ns), Object.prototype);
  assert.ok(Object.hasOwn(ns, '__proto__'));
  assert.equal(ns['ok'], 1);
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('sets (__builtin__.set) become arrays', () => {
  const v = load(hex('80027d71005801000000737101635f5f6275696c74696e5f5f0a7365740a71025d71034b0361857104527105732e'));
  assert.deepEqual((v as Map<PickleValue, PickleValue>).get('s'), [3]);
});

test('Python 2 SHORT_BINSTRING / BINSTRING decode as text', () => {
  // PROTO 2, SHORT_BINSTRING 'abc', BINSTRING 'é' (utf-8), TUPLE2, STOP
  assert.deepEqual(load(hex('800255036162635402000000c3a9862e')), ['abc', 'é']);
});

test('the allowlist is exactly the data builders blockdrop needs', () => {
  assert.deepEqual([...ALLOWED_GLOBALS].sort(), [
    '__builtin__.frozenset', '__builtin__.set', '_codecs.encode', 'argparse.Namespace', 'builtins.frozenset',
    'builtins.set', 'collections.OrderedDict', 'torch.BFloat16Storage', 'torch.BoolStorage', 'torch.ByteStorage',
    'torch.CharStorage', 'torch.DoubleStorage', 'torch.FloatStorage', 'torch.HalfStorage', 'torch.IntStorage',
    'torch.LongStorage', 'torch.ShortStorage', 'torch.Size', 'torch._utils._rebuild_parameter',
    'torch._utils._rebuild_parameter_with_state', 'torch._utils._rebuild_tensor', 'torch._utils._rebuild_tensor_v2',
    'torch._utils._rebuild_tensor_v3', 'torch.bfloat16', 'torch.bool', 'torch.double', 'torch.float',
    'torch.float16', 'torch.float32', 'torch.float64', 'torch.half', 'torch.int', 'torch.int16', 'torch.int32',
    'torch.int64', 'torch.int8', 'torch.long', 'torch.short', 'torch.uint8',
  ]);
});

function refusal(bytes: Uint8Array): BlockdropError {
  try {
    load(bytes);
  } catch (e) {
    assert.ok(e instanceof BlockdropError, `expected BlockdropError, got ${String(e)}`);
    return e;
  }
  assert.fail('pickle was accepted');
}

test('a non-allowlisted GLOBAL is refused at the opcode itself, before anything after it is read', () => {
  // PROTO 2, GLOBAL 'os system' then 0xff (not an opcode). Refusing at GLOBAL means the bad byte is never reached.
  const err = refusal(Uint8Array.from([0x80, 0x02, ...Buffer.from('cos\nsystem\n'), 0xff]));
  assert.match(err.message, /refusing to load test\.pkl: pickle asks for global 'os\.system', which is not a tensor type; blockdrop never executes code from checkpoints/);
  assert.match(err.message, /GLOBAL opcode at byte 2 /);
  // STACK_GLOBAL: the same check for names built on the stack.
  const sg = refusal(Uint8Array.from([0x80, 0x04, 0x8c, 8, ...Buffer.from('builtins'), 0x8c, 4, ...Buffer.from('eval'), 0x93, 0xff]));
  assert.match(sg.message, /global 'builtins\.eval'.*STACK_GLOBAL opcode at byte 18 /);
  for (const name of ['posix\nsystem', 'subprocess\nPopen', 'torch\nload', 'collections\ndefaultdict', 'numpy\nload', 'torch._utils\n_rebuild_device_tensor_from_numpy']) {
    const e = refusal(Uint8Array.from([0x80, 0x02, 0x63, ...Buffer.from(`${name}\n`), 0x2e]));
    assert.match(e.message, new RegExp(`global '${name.replace('\n', '\\.')}'`));
  }
});

test('allowlisted data globals and non-globals cannot be called', () => {
  // GLOBAL torch FloatStorage, EMPTY_TUPLE, REDUCE
  assert.match(refusal(Uint8Array.from([0x80, 0x02, 0x63, ...Buffer.from('torch\nFloatStorage\n'), 0x29, 0x52, 0x2e])).message, /data, not a constructor/);
  // SHORT_BINUNICODE 'os.system', EMPTY_TUPLE, REDUCE: a string is not callable
  assert.match(refusal(Uint8Array.from([0x80, 0x02, 0x8c, 9, ...Buffer.from('os.system'), 0x29, 0x52, 0x2e])).message, /REDUCE on something that is not a global/);
  // tensor rebuild without a torch checkpoint context
  // (MARK None 0 () () TUPLE REDUCE)
  const rebuild = Uint8Array.from([0x80, 0x02, 0x63, ...Buffer.from('torch._utils\n_rebuild_tensor\n'), 0x28, 0x4e, 0x4b, 0, 0x29, 0x29, 0x74, 0x52, 0x2e]);
  assert.match(refusal(rebuild).message, /tensor outside a torch checkpoint/);
  // an allowed global stays inert data when not called
  const ref = load(Uint8Array.from([0x80, 0x02, 0x63, ...Buffer.from('torch\nfloat16\n'), 0x2e]));
  assert.ok(ref instanceof PickleGlobalRef && ref.qualifiedName === 'torch.float16');
});

test('every truncation of a valid pickle fails with a BlockdropError', () => {
  for (const p of [DATA_P2, DATA_P4]) {
    const full = hex(p);
    for (let n = 0; n < full.length; n++) {
      assert.throws(() => load(full.subarray(0, n)), (e: unknown) => e instanceof BlockdropError && /truncated or corrupt/.test(e.message));
    }
  }
});

test('length fields beyond the data are refused before allocating', () => {
  // BINUNICODE with length 0xfffffff0
  assert.match(refusal(hex('800258f0ffffff61')).message, /BINUNICODE.*needs 4294967280 bytes, only 1 left|needs 4294967280 bytes, only 1 left/);
  // BINUNICODE8 / BINBYTES8 with 2^63
  assert.match(refusal(hex('80048d00000000000000806162')).message, /needs \d+ bytes, only 2 left/);
  assert.match(refusal(hex('80048e00000000000000806162')).message, /needs \d+ bytes, only 2 left/);
  // FRAME longer than the file
  assert.match(refusal(hex('800495ff000000000000004e2e')).message, /needs 255 bytes, only 2 left/);
  // LONG4 with a huge length; BINSTRING with a negative one
  assert.match(refusal(hex('80028bffffff7f00')).message, /too large/);
  assert.match(refusal(hex('800254ffffffff')).message, /negative length/);
});

test('structural damage: unknown opcodes, missing marks, bad memo, stack underflow', () => {
  assert.match(refusal(hex('8002ff')).message, /unknown pickle opcode 0xff/);
  assert.match(refusal(hex('800274')).message, /no MARK/); // TUPLE without MARK
  assert.match(refusal(hex('800268052e')).message, /memo entry 5 was never stored/);
  assert.match(refusal(hex('8002852e')).message, /stack underflow/); // TUPLE1 on an empty stack
  assert.match(refusal(hex('80024e4e4e732e')).message, /SETITEM target is not a dict/);
  assert.match(refusal(hex('8006')).message, /unsupported pickle protocol 6/);
  assert.match(refusal(hex('8002695f5f6275696c74696e5f5f0a6576616c0a2e')).message, /INST/);
});

test('fuzz: random and mutated pickles either parse or throw BlockdropError, never anything else', () => {
  const seeds = [hex(DATA_P2), hex(DATA_P4)];
  const check = (bytes: Uint8Array): void => {
    try {
      load(bytes);
    } catch (e) {
      if (!(e instanceof BlockdropError)) throw e;
    }
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => check(Uint8Array.from([0x80, 0x02, ...bytes]))),
    { numRuns: 500, seed: 42 },
  );
  fc.assert(
    fc.property(fc.nat(1), fc.array(fc.tuple(fc.nat(400), fc.nat(255)), { minLength: 1, maxLength: 4 }), (which, edits) => {
      const bytes = seeds[which]!.slice();
      for (const [at, value] of edits) bytes[at % bytes.length] = value;
      check(bytes);
    }),
    { numRuns: 1000, seed: 7 },
  );
});
