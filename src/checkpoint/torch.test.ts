import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { BlockdropError } from '../errors.js';
import { bfloat16BitsToNumber, float16BitsToNumber, tensorBytes, toFloat32, type HostTensor, type TensorMap } from '../tensor.js';
import { fixturesDir, repoRoot, weightsDir } from '../testing/shared.js';
import { isHostTensor, type PickleValue } from './pickle.js';
import {
  describeCheckpoint, findStateDicts, loadTorchCheckpoint, readTorchCheckpoint, stateDict, type TorchCheckpoint,
} from './torch.js';
import { ZipArchive } from './zip.js';

const fixture = (name: string): string => join(fixturesDir, name);
const weight = (name: string): string => join(weightsDir, name);
const sha256 = (t: HostTensor): string => createHash('sha256').update(tensorBytes(t)).digest('hex');
const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;

// ---------------------------------------------------------------------------------------------
// Tensor zoo: every dtype, 0-dim, empty, views, shared storage, metadata

interface ZooTensor {
  dtype: string;
  shape: number[];
  stride: number[];
  storage_offset: number;
  sha256_le: string;
  values: (number | string | boolean)[];
}
interface ZooReference {
  tensors: Record<string, ZooTensor>;
  meta_expected: Record<string, unknown>;
}
const zoo = readJson<ZooReference>(fixture('tensor_zoo_reference.json'));

/** The tensor's elements as comparable JS values, decoded per dtype. */
function elements(t: HostTensor): (number | bigint)[] {
  const out: (number | bigint)[] = [];
  for (let i = 0; i < t.data.length; i++) {
    const raw = t.data[i]!;
    if (t.dtype === 'float16') out.push(float16BitsToNumber(raw as number));
    else if (t.dtype === 'bfloat16') out.push(bfloat16BitsToNumber(raw as number));
    else out.push(raw);
  }
  return out;
}

function expectedElements(ref: ZooTensor): (number | bigint)[] {
  return ref.values.map((v) => {
    if (ref.dtype === 'int64') return BigInt(v as string);
    if (ref.dtype === 'float64') return Number(v);
    if (ref.dtype === 'bool') return v ? 1 : 0;
    if (ref.dtype === 'float32') return Math.fround(v as number);
    return v as number;
  });
}

for (const file of ['tensor_zoo_zip.pt', 'tensor_zoo_legacy.pt']) {
  test(`${file}: every tensor's dtype, shape, values and sha256 match PyTorch`, async () => {
    const ckpt = await loadTorchCheckpoint(fixture(file));
    assert.equal(ckpt.format, file.includes('zip') ? 'zip' : 'legacy');
    const tensors = stateDict(ckpt, ['tensors']);
    assert.deepEqual([...tensors.keys()], Object.keys(zoo.tensors));
    for (const [name, ref] of Object.entries(zoo.tensors)) {
      const t = tensors.get(name)!;
      assert.equal(t.dtype, ref.dtype, name);
      assert.deepEqual(t.shape, ref.shape, name);
      assert.equal(t.data.length, ref.values.length, name);
      // Object.is-level equality: -0.0 in float16 and the float16 subnormal must survive.
      assert.deepEqual(elements(t), expectedElements(ref), name);
      assert.equal(sha256(t), ref.sha256_le, name);
    }
  });

  test(`${file}: views are materialised as independent row-major copies; memo-shared tensors stay one object`, async () => {
    const ckpt = await loadTorchCheckpoint(fixture(file));
    const t = stateDict(ckpt, ['tensors']);
    // The references really are non-trivial views.
    assert.deepEqual(zoo.tensors['f32_transposed_view']!.stride, [1, 4]);
    assert.equal(zoo.tensors['f32_offset_view']!.storage_offset, 5);
    assert.deepEqual(zoo.tensors['f32_expanded']!.stride, [0, 1]);
    const matrix = t.get('f32_matrix')!;
    const transposed = t.get('f32_transposed_view')!;
    assert.notEqual(matrix.data.buffer, transposed.data.buffer);
    assert.equal(t.get('f32_shared_a'), t.get('f32_shared_b'));
    assert.equal(t.get('i64')!.data[4], 9007199254740993n);
    assert.equal(t.get('i64')!.data[0], -(2n ** 62n));
    assert.ok(Object.is(float16BitsToNumber(t.get('f16')!.data[6] as number), -0));
    assert.equal(float16BitsToNumber(t.get('f16')!.data[4] as number), 2 ** -24);
    assert.deepEqual(t.get('scalar_f32')!.shape, []);
    assert.deepEqual(t.get('empty_0x3')!.shape, [0, 3]);
    // toFloat32 decodes every dtype (float32 itself is returned as is).
    assert.equal(toFloat32(matrix), matrix.data);
    for (const name of ['f16', 'bf16', 'f64', 'i64', 'i32', 'u8', 'bool', 'scalar_i64']) {
      const ref = zoo.tensors[name]!;
      const expected = ref.values.map((v) => Math.fround(Number(v)));
      assert.deepEqual([...toFloat32(t.get(name)!)], expected, name);
    }
  });

  test(`${file}: non-tensor metadata (int, float, str, None, bools, list, tuple)`, async () => {
    const ckpt = await loadTorchCheckpoint(fixture(file));
    const d = describeCheckpoint(ckpt);
    assert.deepEqual(d.entries, ['tensors', 'meta']);
    assert.deepEqual(d.metadata, { meta: zoo.meta_expected });
    const meta = (ckpt.root as Map<PickleValue, PickleValue>).get('meta') as Map<PickleValue, PickleValue>;
    assert.equal(meta.get('acc'), 0.5); // BINFLOAT, big-endian
    assert.deepEqual(meta.get('pair'), [1, 2]);
  });
}

// ---------------------------------------------------------------------------------------------
// ResNet-8 files against the manifests

interface ManifestRow {
  key: string;
  dtype: string;
  shape: number[];
  numel: number;
  sha256_le: string;
  sum?: number;
  first?: number[];
  values?: number[];
}

function checkManifest(tensors: TensorMap, manifest: ManifestRow[], label: string): void {
  assert.deepEqual([...tensors.keys()], manifest.map((r) => r.key), `${label}: keys and order`);
  for (const row of manifest) {
    const t = tensors.get(row.key)!;
    const where = `${label} ${row.key}`;
    assert.equal(t.dtype, row.dtype, where);
    assert.deepEqual(t.shape, row.shape, where);
    assert.equal(t.data.length, row.numel, where);
    assert.equal(sha256(t), row.sha256_le, where);
    const values = elements(t).map(Number);
    if (row.values) assert.deepEqual(values, row.values, where);
    if (row.first) {
      // `first` is written as the shortest decimal that round-trips through float32 (float16 values are exact in float32).
      const isFloat = row.dtype === 'float32' || row.dtype === 'float16';
      const actual = values.slice(0, row.first.length);
      assert.deepEqual(isFloat ? actual.map(Math.fround) : actual, isFloat ? row.first.map(Math.fround) : row.first, where);
    }
    if (row.sum !== undefined) {
      let sum = 0;
      let abs = 0;
      for (const v of values) {
        sum += v;
        abs += Math.abs(v);
      }
      assert.ok(Math.abs(sum - row.sum) <= 1e-9 * (1 + abs), `${where}: sum ${sum} vs ${row.sum}`);
    }
  }
}

const resnet8 = readJson<{ tensor_manifests: Record<string, ManifestRow[] | string> }>(fixture('resnet8_reference.json'));
const zipManifest = resnet8.tensor_manifests['resnet8_zip.pt'] as ManifestRow[];

test('resnet8_zip.pt, resnet8_fp16.pt, resnet8_optionA_zip.pt match their manifests', async () => {
  for (const file of ['resnet8_zip.pt', 'resnet8_fp16.pt', 'resnet8_optionA_zip.pt']) {
    const ckpt = await loadTorchCheckpoint(fixture(file));
    assert.equal(ckpt.format, 'zip');
    const tensors = stateDict(ckpt);
    checkManifest(tensors, resnet8.tensor_manifests[file] as ManifestRow[], file);
    assert.equal(describeCheckpoint(ckpt).stateDicts[0]!.parameterCount, 75290);
  }
});

test('resnet8_legacy.pt (storages stored out of order, keyed by number) equals the zip file', async () => {
  assert.match(resnet8.tensor_manifests['resnet8_legacy.pt'] as string, /identical to resnet8_zip\.pt/);
  const ckpt = await loadTorchCheckpoint(fixture('resnet8_legacy.pt'));
  assert.equal(ckpt.format, 'legacy');
  checkManifest(stateDict(ckpt), zipManifest, 'resnet8_legacy.pt');
  assert.equal(stateDict(ckpt).get('bn1.num_batches_tracked')!.data[0], 1173n);
});

test('resnet8_wrapped.pt: nested state_dict with module. stripped, epoch and acc as metadata', async () => {
  const ckpt = await loadTorchCheckpoint(fixture('resnet8_wrapped.pt'));
  const raw = (ckpt.root as Map<PickleValue, PickleValue>).get('state_dict') as Map<string, PickleValue>;
  assert.ok([...raw.keys()].every((k) => k.startsWith('module.')));
  assert.deepEqual([...findStateDicts(ckpt).keys()], ['state_dict']);
  checkManifest(stateDict(ckpt), zipManifest, 'resnet8_wrapped.pt');
  assert.deepEqual(describeCheckpoint(ckpt).metadata, { epoch: 3, acc: 0.5 });
});

for (const [name, keys] of [['resnet18', 122], ['resnet101', 626]] as const) {
  test(`${name}_tiny_torchvision.pt matches its manifest (${keys} keys)`, async () => {
    const ref = readJson<{ tensor_manifest: ManifestRow[]; key_count: number; param_count_excluding_bn_buffers: number }>(
      fixture(`${name}_tiny_reference.json`),
    );
    const ckpt = await loadTorchCheckpoint(fixture(`${name}_tiny_torchvision.pt`));
    const tensors = stateDict(ckpt);
    assert.equal(tensors.size, keys);
    assert.equal(ref.key_count, keys);
    checkManifest(tensors, ref.tensor_manifest, name);
    assert.equal(describeCheckpoint(ckpt).stateDicts[0]!.parameterCount, ref.param_count_excluding_bn_buffers);
  });
}

// ---------------------------------------------------------------------------------------------
// The real 2018 checkpoints (Python 2 / legacy, cuda:0 storages)

/** The akamaster / felixgwu CIFAR ResNet key list, in state_dict order. */
function cifarResNetKeys(n: number, head: 'linear' | 'fc'): string[] {
  const bn = (p: string): string[] => ['weight', 'bias', 'running_mean', 'running_var'].map((s) => `${p}.${s}`);
  const keys = ['conv1.weight', ...bn('bn1')];
  for (let layer = 1; layer <= 3; layer++) {
    for (let b = 0; b < n; b++) {
      const p = `layer${layer}.${b}`;
      keys.push(`${p}.conv1.weight`, ...bn(`${p}.bn1`), `${p}.conv2.weight`, ...bn(`${p}.bn2`));
    }
  }
  keys.push(`${head}.weight`, `${head}.bias`);
  return keys;
}

function checkCifarResNet(tensors: TensorMap, n: number, head: 'linear' | 'fc', label: string): void {
  assert.deepEqual([...tensors.keys()], cifarResNetKeys(n, head), label);
  assert.deepEqual(tensors.get('conv1.weight')!.shape, [16, 3, 3, 3]);
  assert.deepEqual(tensors.get('layer2.0.conv1.weight')!.shape, [32, 16, 3, 3]);
  assert.deepEqual(tensors.get(`layer3.${n - 1}.conv2.weight`)!.shape, [64, 64, 3, 3]);
  assert.deepEqual(tensors.get(`${head}.weight`)!.shape, [10, 64]);
  for (const [key, t] of tensors) {
    assert.equal(t.dtype, 'float32', key);
    for (const v of t.data as Float32Array) assert.ok(Number.isFinite(v), `${label} ${key} holds a non-finite value`);
    if (key.endsWith('running_var')) assert.ok((t.data as Float32Array).every((v) => v > 0), `${key} must be positive`);
  }
}

const AKAMASTER = [
  ['akamaster_resnet20-12fca82f.th', 3, 97, 269722, 91.78],
  ['akamaster_resnet32-d509ac18.th', 5, 157, 464154, 92.78],
  ['akamaster_resnet44-014dd654.th', 7, 217, 658586, 93.14],
  ['akamaster_resnet56-4bfd9763.th', 9, 277, 853018, 93.62],
] as const;

for (const [file, n, keys, params, bestPrec1] of AKAMASTER) {
  test(`${file}: ${keys} keys, option-A ResNet layout, best_prec1`, async () => {
    const ckpt = await loadTorchCheckpoint(weight(file));
    assert.equal(ckpt.format, 'legacy');
    const tensors = stateDict(ckpt);
    assert.equal(tensors.size, keys);
    checkCifarResNet(tensors, n, 'linear', file);
    const d = describeCheckpoint(ckpt);
    assert.equal(d.stateDicts[0]!.parameterCount, params);
    assert.ok(Math.abs((d.metadata['best_prec1'] as number) - bestPrec1) < 1e-4);
  });
}

test('BlockDrop R32 (Python 2 pickle, Namespace via NEWOBJ/BUILD): 157 keys with module. stripped, args', async () => {
  const ckpt = await loadTorchCheckpoint(weight('blockdrop_R32_C10_pk_E_164_A_0.923.t7'));
  const raw = (ckpt.root as Map<PickleValue, PickleValue>).get('state_dict') as Map<string, PickleValue>;
  assert.equal(raw.size, 157);
  assert.ok([...raw.keys()].every((k) => k.startsWith('module.')));
  const tensors = stateDict(ckpt);
  assert.equal(tensors.size, 157);
  checkCifarResNet(tensors, 5, 'fc', 'blockdrop R32');
  const d = describeCheckpoint(ckpt);
  assert.deepEqual(d.entries, ['args', 'state_dict', 'epoch', 'best_epoch', 'arch', 'best_err1']);
  assert.equal(d.stateDicts[0]!.parameterCount, 464154);
  const meta = d.metadata as Record<string, unknown> & { args: Record<string, unknown> };
  assert.equal(meta['epoch'], 132);
  assert.equal(meta['best_epoch'], 132);
  assert.equal(meta['arch'], 'resnet');
  assert.equal(meta['best_err1'], 6.28);
  assert.equal(meta.args['depth'], 32);
  assert.equal(meta.args['data'], 'cifar10+');
  assert.equal(meta.args['epochs'], 164);
  assert.deepEqual(meta.args['config_of_data'], { augmentation: true, num_classes: 10 });
  assert.deepEqual(JSON.parse(JSON.stringify(d)), d, 'the description is plain JSON');
});

test('timing: the 1.9 MB BlockDrop R32 file loads well under a second', async () => {
  const path = weight('blockdrop_R32_C10_pk_E_164_A_0.923.t7');
  await loadTorchCheckpoint(path); // warm-up (module compilation)
  const t0 = performance.now();
  stateDict(await loadTorchCheckpoint(path));
  const ms = performance.now() - t0;
  assert.ok(ms < 500, `took ${ms.toFixed(1)} ms`);
});

// ---------------------------------------------------------------------------------------------
// Damaged and hostile files

test('truncated files fail with a clear BlockdropError, never a partial state dict', async () => {
  await assert.rejects(loadTorchCheckpoint(fixture('resnet8_zip_truncated.pt')), (e: unknown) =>
    e instanceof BlockdropError && /zip end-of-central-directory not found: file is truncated or not a zip/.test(e.message));
  // Cut inside storage record 11 (layer3.0.conv2.weight, 36864 floats = 147456 bytes).
  await assert.rejects(loadTorchCheckpoint(fixture('resnet8_legacy_truncated.pt')), (e: unknown) =>
    e instanceof BlockdropError && /storage \d+ needs 147456 bytes, only \d+ left; the file is truncated or corrupt/.test(e.message));
});

test('every prefix of the tensor-zoo files fails with a BlockdropError', () => {
  for (const file of ['tensor_zoo_legacy.pt', 'tensor_zoo_zip.pt']) {
    const bytes = new Uint8Array(readFileSync(fixture(file)));
    for (let n = 0; n < bytes.length; n++) {
      assert.throws(() => readTorchCheckpoint(bytes.subarray(0, n), file), BlockdropError, `${file} cut at ${n}`);
    }
    assert.ok(readTorchCheckpoint(bytes, file).root instanceof Map);
  }
});

test('fuzz: byte changes in a checkpoint give either a checkpoint or a BlockdropError', () => {
  for (const file of ['tensor_zoo_legacy.pt', 'tensor_zoo_zip.pt']) {
    const original = new Uint8Array(readFileSync(fixture(file)));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(original.length - 1), fc.nat(255)), { minLength: 1, maxLength: 3 }), (edits) => {
        const bytes = original.slice();
        for (const [at, v] of edits) bytes[at] = v;
        try {
          readTorchCheckpoint(bytes, file);
        } catch (e) {
          if (!(e instanceof BlockdropError)) throw e;
        }
      }),
      { numRuns: 400, seed: 3 },
    );
  }
});

test('a changed byte inside a zip storage record fails its CRC check', () => {
  const bytes = new Uint8Array(readFileSync(fixture('resnet8_zip.pt')));
  const entry = new ZipArchive(bytes, 'x').entries.get('resnet8_zip/data/0')!;
  bytes[entry.localHeaderOffset + 200] ^= 0x01; // the data starts within 128 bytes of the header
  assert.throws(() => readTorchCheckpoint(bytes, 'resnet8_zip.pt'), /resnet8_zip\/data\/0 fails its CRC check/);
});

test('malicious pickles are refused at the GLOBAL opcode that names os.system', async () => {
  const legacyBytes = readFileSync(fixture('malicious_global.pt'));
  const at = legacyBytes.indexOf('cos\nsystem\n');
  assert.ok(at > 0);
  await assert.rejects(loadTorchCheckpoint(fixture('malicious_global.pt')), (e: unknown) => {
    assert.ok(e instanceof BlockdropError);
    assert.match(e.message, /^refusing to load .*malicious_global\.pt: pickle asks for global 'os\.system', which is not a tensor type; blockdrop never executes code from checkpoints/);
    assert.ok(e.message.includes(`(GLOBAL opcode at byte ${at} of the file)`), e.message);
    return true;
  });
  const zipBytes = new Uint8Array(readFileSync(fixture('malicious_global_zip.pt')));
  const zip = new ZipArchive(zipBytes, 'x');
  const pkl = zip.read(zip.entries.get('malicious_global_zip/data.pkl')!);
  const zipAt = Buffer.from(pkl).indexOf('cos\nsystem\n');
  await assert.rejects(loadTorchCheckpoint(fixture('malicious_global_zip.pt')), (e: unknown) => {
    assert.ok(e instanceof BlockdropError);
    assert.match(e.message, /global 'os\.system'/);
    assert.ok(e.message.includes(`(GLOBAL opcode at byte ${zipAt} of malicious_global_zip/data.pkl)`), e.message);
    return true;
  });
});

test('the unpickler contains no way to run code: no eval, Function, dynamic import or require', () => {
  for (const file of ['pickle.ts', 'torch.ts']) {
    const source = readFileSync(join(repoRoot, 'src', 'checkpoint', file), 'utf8');
    for (const pattern of [/\beval\s*\(/, /\bnew\s+Function\b/, /\bimport\s*\(/, /\brequire\s*\(/, /child_process/, /node:vm/]) {
      assert.doesNotMatch(source, pattern, `${file} must not use ${pattern}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// State dict selection

function fakeCheckpoint(root: PickleValue): TorchCheckpoint {
  return { format: 'zip', source: 'fake.pt', root };
}
const tensor = (v: number): HostTensor => ({ dtype: 'float32', shape: [1], data: new Float32Array([v]) });

test('stateDict: preference order, nested entries, clear error listing what exists', async () => {
  const zooCkpt = await loadTorchCheckpoint(fixture('tensor_zoo_zip.pt'));
  // Default preference finds nothing by name, but the only state dict is used.
  assert.equal(stateDict(zooCkpt).size, 19);
  assert.throws(() => stateDict(zooCkpt, ['state_dict', 'net']), (e: unknown) =>
    e instanceof BlockdropError && /has no state dict under 'state_dict', 'net'; it has 'tensors' \(19 tensors\)/.test(e.message));

  const agent = new Map<PickleValue, PickleValue>([['features.conv1.weight', tensor(1)]]);
  const resnet = new Map<PickleValue, PickleValue>([['module.conv1.weight', tensor(2)]]);
  const two = fakeCheckpoint(new Map<PickleValue, PickleValue>([['agent', agent], ['resnet', resnet], ['epoch', 4]]));
  assert.deepEqual([...findStateDicts(two).keys()], ['agent', 'resnet']);
  assert.deepEqual([...stateDict(two).keys()], ['conv1.weight']); // 'resnet' precedes 'agent'
  assert.deepEqual([...stateDict(two, ['agent']).keys()], ['features.conv1.weight']);
  assert.throws(() => stateDict(two, ['model']), /it has 'agent' \(1 tensors\), 'resnet' \(1 tensors\)/);

  const nested = fakeCheckpoint(new Map<PickleValue, PickleValue>([['model', new Map<PickleValue, PickleValue>([['state_dict', resnet]])]]));
  assert.deepEqual([...findStateDicts(nested).keys()], ['model.state_dict']);

  const clash = fakeCheckpoint(new Map<PickleValue, PickleValue>([['module.a', tensor(1)], ['a', tensor(2)]]));
  assert.throws(() => stateDict(clash), /has both 'a' and 'module\.a'/);
  assert.throws(() => stateDict(fakeCheckpoint(new Map([['x', 1]]))), /holds no state dict/);
  assert.ok(isHostTensor(stateDict(fakeCheckpoint(new Map([['w', tensor(3)]])), ['']).get('w')));
});
