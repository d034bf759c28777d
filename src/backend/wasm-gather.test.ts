import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, KERNEL_OVERRIDES } from './index.js';

describe('wasm GatherV2 as row copies', () => {
  before(() => initBackend('wasm'));

  it('is registered', () => assert.ok(KERNEL_OVERRIDES.some((o) => o.id === 'wasm-gather-rows')));

  const cases: { name: string; make: () => tf.Tensor; indices: number[]; axis?: number }[] = [
    { name: 'float32 NHWC rows, repeats, any order', make: () => tf.randomNormal([6, 4, 3, 5], 0, 1, 'float32', 1), indices: [5, 0, 0, 3, 2] },
    { name: 'int32 matrix', make: () => tf.range(0, 24, 1, 'int32').reshape([8, 3]), indices: [7, 1] },
    { name: 'bool vector', make: () => tf.tensor1d([true, false, true, true], 'bool'), indices: [1, 2, 1] },
    { name: 'no indices', make: () => tf.ones([3, 2]), indices: [] },
    { name: 'axis 1 (original kernel)', make: () => tf.randomNormal([3, 5, 2], 0, 1, 'float32', 2), indices: [4, 0], axis: 1 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const onWasm = tf.tidy(() => tf.gather(c.make(), tf.tensor1d(c.indices, 'int32'), c.axis ?? 0));
      const got = { shape: onWasm.shape, data: [...onWasm.dataSync()] };
      onWasm.dispose();
      await initBackend('cpu');
      const ref = tf.tidy(() => tf.gather(c.make(), tf.tensor1d(c.indices, 'int32'), c.axis ?? 0));
      const expected = { shape: ref.shape, data: [...ref.dataSync()] };
      ref.dispose();
      await initBackend('wasm');
      assert.deepEqual(got, expected);
    });
  }

  it('rejects an index out of range', () => {
    assert.throws(() => tf.tidy(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([3], 'int32'))), /not in \[0, 2\]/);
  });
});
