/**
 * NaN and ±Infinity in weights are refused where a backbone or a policy is loaded (whatever the file
 * format), naming the tensor and the index, before any model is built from them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { saveModelCheckpoint } from '../checkpoint/store.js';
import { serializeSafetensors } from '../checkpoint/safetensors.js';
import { BlockdropError } from '../errors.js';
import type { TensorMap } from '../tensor.js';
import { loadPolicyWeights } from '../train/models.js';
import { torchLegacyFile, torchStateDictPickle } from '../testing/fuzz-formats.js';
import { getPreset, policyArchFor } from './config.js';
import { loadBackbone } from './load.js';
import { initResNetWeights } from './weights.js';

const dir = mkdtempSync(join(tmpdir(), 'blockdrop-nonfinite-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const arch = getPreset('resnet8').arch;

/** A copy of `tensors` with `value` at `index` of `name`. */
function poisoned(tensors: TensorMap, name: string, index: number, value: number): TensorMap {
  const out = new Map(tensors);
  const t = out.get(name)!;
  const data = Float32Array.from(t.data as Float32Array);
  data[index] = value;
  out.set(name, { ...t, data });
  return out;
}

function refused(pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => e instanceof BlockdropError && !/\n/.test(e.message) && pattern.test(e.message);
}

test('loadBackbone refuses NaN / Infinity in a safetensors file and in a blockdrop checkpoint', async () => {
  const weights = initResNetWeights(arch, 1);
  const file = join(dir, 'nan.safetensors');
  writeFileSync(file, serializeSafetensors(poisoned(weights, 'blocks.1.0.conv2.weight', 7, NaN)));
  await assert.rejects(loadBackbone(file, { arch: 'resnet8' }), refused(/tensor 'blocks\.1\.0\.conv2\.weight' holds NaN at index 7 \(\[0, 0, 2, 1\]\); the weights are damaged or come from a diverged run: use another checkpoint$/));
  const stem = join(dir, 'inf');
  await saveModelCheckpoint(stem, { tensors: poisoned(weights, 'fc.bias', 2, -Infinity), meta: { preset: 'resnet8' } });
  await assert.rejects(loadBackbone(`${stem}.safetensors`), refused(/tensor 'fc\.bias' holds -Infinity at index 2/));
});

test('loadBackbone refuses Infinity in a PyTorch checkpoint', async () => {
  const values = new Float32Array([1, 2, Infinity, 4]);
  const file = join(dir, 'inf.pt');
  writeFileSync(file, torchLegacyFile(
    torchStateDictPickle([{ name: 'fc.bias', dtype: 'float32', key: '0', numel: 4, offset: 0, size: [4], stride: [1] }]),
    [{ key: '0', count: 4, bytes: new Uint8Array(values.buffer) }],
  ));
  await assert.rejects(loadBackbone(file, { arch: 'resnet8' }), refused(/tensor 'fc\.bias' holds Infinity at index 2/));
});

test('loadPolicyWeights refuses a policy holding NaN (prefixed blockdrop names and bare names)', async () => {
  const policy = initResNetWeights(policyArchFor(arch), 2);
  const prefixed: TensorMap = new Map([...poisoned(policy, 'fc.weight', 0, NaN)].map(([k, t]) => [`policy.${k}`, t]));
  await saveModelCheckpoint(join(dir, 'state'), { tensors: prefixed, meta: {} });
  await assert.rejects(loadPolicyWeights(join(dir, 'state.safetensors')), refused(/tensor 'policy\.fc\.weight' holds NaN at index 0/));
  const bare = join(dir, 'policy.safetensors');
  writeFileSync(bare, serializeSafetensors(poisoned(policy, 'conv1.weight', 5, Infinity)));
  await assert.rejects(loadPolicyWeights(bare), refused(/tensor 'conv1\.weight' holds Infinity at index 5/));
});
