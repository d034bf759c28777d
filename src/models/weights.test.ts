import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isBlockdropError } from '../errors.js';
import type { HostTensor, TensorMap } from '../tensor.js';
import { getPreset, policyArchFor } from './config.js';
import {
  canonicalizeResNetKeys, detectPreset, initResNetWeights, resnetParamSpecs, validateResNetWeights,
} from './weights.js';

const resnet8 = getPreset('resnet8').arch;
const resnet20 = getPreset('resnet20').arch;

const f32 = (shape: number[]): HostTensor => ({
  dtype: 'float32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
});
const nbt: HostTensor = { dtype: 'int64', shape: [], data: new BigInt64Array([1173n]) };

/** A state dict of `arch` under another naming: rename(canonicalKey) → raw key (undefined = leave out). */
function renamed(arch = resnet8, rename: (k: string) => string | undefined, withNbt = false): TensorMap {
  const out: TensorMap = new Map();
  for (const spec of resnetParamSpecs(arch)) {
    const k = rename(spec.key);
    if (k === undefined) continue;
    out.set(k, f32([...spec.shape]));
    if (withNbt && spec.key.endsWith('running_var')) out.set(k.replace('running_var', 'num_batches_tracked'), nbt);
  }
  return out;
}
const toLayer = (k: string) => k.replace(/^blocks\.(\d+)\./, (_, s) => `layer${Number(s) + 1}.`);
const canonicalKeys = resnetParamSpecs(resnet8).map((s) => s.key);

describe('canonical key mapping', () => {
  it('akamaster: module.layerN.i.* and module.linear.*', () => {
    const raw = renamed(resnet8, (k) => `module.${toLayer(k).replace(/^fc\./, 'linear.')}`);
    assert.ok(raw.has('module.layer2.0.bn1.running_var') && raw.has('module.linear.weight'));
    assert.deepEqual([...canonicalizeResNetKeys(raw).keys()], canonicalKeys);
  });

  it('felixgwu / BlockDrop base nets: layerN.i.*, fc.*, num_batches_tracked dropped', () => {
    const raw = renamed(resnet8, toLayer, true);
    assert.ok(raw.has('layer1.0.bn2.num_batches_tracked'));
    assert.deepEqual([...canonicalizeResNetKeys(raw).keys()], canonicalKeys);
  });

  it('projection shortcuts: layerN.0.downsample.j.* → ds.(N-1).j.*', () => {
    const tiny = { ...resnet8, name: 'tiny', shortcut: 'projection' as const };
    const raw = renamed(tiny, (k) => {
      const m = k.match(/^ds\.(\d+)\.(\d+)\.(.*)$/);
      return m ? `layer${Number(m[1]) + 1}.0.downsample.${m[2]}.${m[3]}` : toLayer(k);
    });
    assert.ok(raw.has('layer2.0.downsample.0.weight') && raw.has('layer3.0.downsample.1.running_mean'));
    const canonical = canonicalizeResNetKeys(raw);
    assert.ok(canonical.has('ds.1.0.weight') && canonical.has('ds.2.1.running_mean'));
    validateResNetWeights(tiny, canonical);
  });

  it('BlockDrop policy agent: features.X → X, logit → fc, vnet and legacy features.fc dropped', () => {
    const arch = policyArchFor(getPreset('resnet32').arch);
    const raw = renamed(arch, (k) => (k.startsWith('fc.') ? k.replace('fc.', 'logit.') : `features.${k}`));
    raw.set('vnet.weight', f32([1, 64]));
    raw.set('vnet.bias', f32([1]));
    raw.set('features.fc.weight', f32([10, 64]));
    const canonical = canonicalizeResNetKeys(raw);
    assert.deepEqual([...canonical.keys()], resnetParamSpecs(arch).map((s) => s.key));
    validateResNetWeights(arch, canonical);
  });

  it('leaves canonical names unchanged and upcasts float16 / float64 to float32', () => {
    const raw = renamed(resnet8, (k) => k);
    raw.set('fc.bias', { dtype: 'float16', shape: [10], data: new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7bff, 0, 0, 0, 0, 0, 0x8000]) });
    raw.set('bn1.bias', { dtype: 'float64', shape: [16], data: new Float64Array(16).fill(0.1) });
    const canonical = canonicalizeResNetKeys(raw);
    assert.deepEqual([...canonical.keys()], canonicalKeys);
    const bias = canonical.get('fc.bias')!;
    assert.equal(bias.dtype, 'float32');
    assert.deepEqual([...bias.data].slice(0, 4), [1, -2, 2 ** -24, 65504]);
    assert.ok(Object.is(bias.data[9], -0));
    assert.equal(canonical.get('bn1.bias')!.data[0], Math.fround(0.1));
    const bf = canonicalizeResNetKeys(new Map([['fc.bias', { dtype: 'bfloat16', shape: [2], data: new Uint16Array([0x3f80, 0xc040]) }]]));
    assert.deepEqual([...bf.get('fc.bias')!.data], [1, -3]);
  });

  it('refuses two tensors that map to one name', () => {
    const raw = renamed(resnet8, (k) => k);
    raw.set('linear.weight', f32([10, 64]));
    assert.throws(() => canonicalizeResNetKeys(raw), (e: unknown) => isBlockdropError(e) && /'fc\.weight' and 'linear\.weight' both map to 'fc\.weight'/.test((e as Error).message));
  });
});

describe('validateResNetWeights', () => {
  const one = (e: unknown) => isBlockdropError(e) && !(e as Error).message.includes('\n');

  it('accepts the exact set', () => validateResNetWeights(resnet20, initResNetWeights(resnet20, 0)));

  it('shape mismatch names the key and both shapes', () => {
    const w = initResNetWeights(resnet20, 0);
    w.set('blocks.1.0.conv1.weight', f32([32, 32, 3, 3]));
    assert.throws(() => validateResNetWeights(resnet20, w), (e: unknown) => {
      assert.ok(one(e));
      assert.match((e as Error).message, /'blocks\.1\.0\.conv1\.weight' has shape \[32, 32, 3, 3\] but resnet20 expects \[32, 16, 3, 3\]/);
      return true;
    });
  });

  it('missing and unexpected keys are named', () => {
    const w = initResNetWeights(resnet20, 0);
    w.delete('blocks.2.1.bn2.running_var');
    assert.throws(() => validateResNetWeights(resnet20, w), (e: unknown) => one(e) && /missing weight 'blocks\.2\.1\.bn2\.running_var' \[64\]/.test((e as Error).message));
    const x = initResNetWeights(resnet20, 0);
    x.set('blocks.3.0.conv1.weight', f32([64, 64, 3, 3]));
    assert.throws(() => validateResNetWeights(resnet20, x), (e: unknown) => one(e) && /unexpected weight 'blocks\.3\.0\.conv1\.weight'/.test((e as Error).message));
    // A ResNet-20 checkpoint offered as ResNet-32: 10 blocks missing.
    assert.throws(() => validateResNetWeights(getPreset('resnet32').arch, initResNetWeights(resnet20, 0)), /missing weight 'blocks\.0\.3\.conv1\.weight'.*\(and 59 more\)/);
  });
});

describe('detectPreset', () => {
  it('akamaster names (linear.*) → option A; fc.* → DownsampleB; depth from the block count', () => {
    const aka = renamed(resnet20, (k) => `module.${toLayer(k).replace(/^fc\./, 'linear.')}`);
    const d1 = detectPreset(aka)!;
    assert.equal(d1.preset, 'resnet20a');
    assert.match(d1.reason, /depth 20.*linear.*option-A/);
    const felix = renamed(getPreset('resnet32').arch, (k) => `module.${toLayer(k)}`);
    const d2 = detectPreset(felix)!;
    assert.equal(d2.preset, 'resnet32');
    assert.match(d2.reason, /fc.*DownsampleB/);
    assert.equal(d2.arch.shortcut, 'downsampleB');
  });

  it('reports a different class count in arch; rejects non-CIFAR layouts', () => {
    const c100 = renamed({ ...getPreset('resnet110').arch, numClasses: 100 }, toLayer);
    const d = detectPreset(c100)!;
    assert.equal(d.preset, 'resnet110');
    assert.equal(d.arch.numClasses, 100);
    const agent = renamed(policyArchFor(getPreset('resnet32').arch), (k) => (k.startsWith('fc.') ? k.replace('fc.', 'logit.') : `features.${k}`));
    assert.equal(detectPreset(agent)!.arch.numClasses, 15);
    const tiny = renamed({ ...resnet8, shortcut: 'projection' }, toLayer);
    assert.equal(detectPreset(tiny), undefined);
    assert.equal(detectPreset(new Map([['foo', f32([1])]])), undefined);
  });
});

describe('initResNetWeights', () => {
  it('He-normal convs, identity BN, PyTorch-default fc; deterministic per seed', () => {
    const a = initResNetWeights(getPreset('resnet32').arch, 7);
    const b = initResNetWeights(getPreset('resnet32').arch, 7);
    const c = initResNetWeights(getPreset('resnet32').arch, 8);
    assert.deepEqual(a.get('blocks.2.4.conv2.weight')!.data, b.get('blocks.2.4.conv2.weight')!.data);
    assert.notDeepEqual(a.get('conv1.weight')!.data, c.get('conv1.weight')!.data);
    const w = a.get('blocks.2.4.conv2.weight')!.data as Float32Array; // 64·64·9 values, std √(2/(9·64))
    const mean = w.reduce((s, v) => s + v, 0) / w.length;
    const std = Math.sqrt(w.reduce((s, v) => s + (v - mean) ** 2, 0) / w.length);
    assert.ok(Math.abs(std / Math.sqrt(2 / (9 * 64)) - 1) < 0.03, `std ${std}`);
    assert.ok(Math.abs(mean) < 0.003);
    assert.ok([...a.get('bn1.weight')!.data].every((v) => v === 1));
    assert.ok([...a.get('blocks.0.0.bn2.running_var')!.data].every((v) => v === 1));
    assert.ok([...a.get('blocks.0.0.bn2.running_mean')!.data].every((v) => v === 0));
    const fc = [...(a.get('fc.weight')!.data as Float32Array)];
    assert.ok(fc.every((v) => Math.abs(v) <= 1 / 8) && Math.max(...fc.map(Math.abs)) > 0.1);
  });
});
