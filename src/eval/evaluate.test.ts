import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../data/cifar.js';
import { NORMALIZATIONS } from '../models/config.js';
import type { PolicyModel, RewardOracle } from '../train/models.js';
import { evaluatePolicy } from './evaluate.js';

await tf.setBackend('cpu');

const K = 3;
/** Four images of classes 0, 1, 0, 1; the "policy" reads each image's first pixel to pick its probabilities. */
const set: ImageSet = {
  images: new Uint8Array(4 * 3072).map((_, i) => (i % 3072 === 0 ? Math.floor(i / 3072) : 0)),
  labels: Uint8Array.from([0, 1, 0, 1]),
  count: 4,
  height: 32,
  width: 32,
  classes: ['a', 'b'],
};
const probsOf = [
  [0.9, 0.9, 0.9], // all three blocks
  [0.1, 0.2, 0.7], // block 2 only
  [0.5, 0.49, 0.1], // block 0 only (0.5 counts as executed)
  [0.6, 0.4, 0.8], // blocks 0 and 2
];
const policy: PolicyModel = {
  probabilities(x) {
    return tf.tidy(() => {
      const first = x.slice([0, 0, 0, 0], [-1, 1, 1, 1]).reshape([-1]).dataSync();
      return tf.tensor2d(Array.from(first, (v) => probsOf[Math.round(v * 255)]!));
    });
  },
};
/** Predicts the label unless the image runs fewer than two blocks, then predicts class 1. */
const oracle: RewardOracle = {
  name: 'fake',
  async predict(images, _count, keep, rowImage) {
    return Int32Array.from(rowImage, (img, r) => {
      const used = keep[r * K]! + keep[r * K + 1]! + keep[r * K + 2]!;
      const global = Math.round(images[img * 3072]! * 255); // rowImage indexes the batch; the first pixel names the image
      return used >= 2 ? set.labels[global]! : 1;
    });
  },
  dispose() {},
};

test('policy evaluation: accuracy, blocks, rewards, distinct policies, per class, FLOPs', async () => {
  const e = await evaluatePolicy(policy, oracle, set, {
    k: K,
    normalization: NORMALIZATIONS.none,
    batchSize: 3,
    penalty: 2,
    flops: (keep) => 100 + 10 * (keep[0]! + keep[1]! + keep[2]!),
  });
  // blocks 3, 1, 1, 2; correct: yes, yes (class 1 predicted for label 1), no, yes.
  assert.equal(e.images, 4);
  assert.equal(e.correct, 3);
  assert.equal(e.accuracy, 0.75);
  assert.equal(e.blocksMean, 7 / 4);
  assert.ok(Math.abs(e.blocksStd - Math.sqrt((9 + 1 + 1 + 4) / 4 - (7 / 4) ** 2)) < 1e-12);
  const expectedReward = (1 - 1 + (1 - 1 / 9) - 2 + (1 - 4 / 9)) / 4;
  assert.ok(Math.abs(e.reward - expectedReward) < 1e-6);
  assert.equal(e.distinctPolicies, 4);
  assert.deepEqual(e.blockUsage, [0.75, 0.25, 0.75]);
  assert.deepEqual(e.perClassAccuracy, [0.5, 1]);
  assert.deepEqual(e.perClassBlocks, [2, 1.5]);
  assert.equal(e.flopsMean, 100 + 10 * 7 / 4);
  assert.equal(e.topPolicies.length, 4);
});

test('curriculum forcing turns the leading blocks on before evaluation', async () => {
  const e = await evaluatePolicy(policy, oracle, set, { k: K, normalization: NORMALIZATIONS.none, learnable: 1 });
  // First two blocks forced on: every image runs ≥ 2 blocks and is right.
  assert.equal(e.accuracy, 1);
  assert.deepEqual(e.blockUsage, [1, 1, 0.75]);
  const limited = await evaluatePolicy(policy, oracle, set, { k: K, normalization: NORMALIZATIONS.none, limit: 2 });
  assert.equal(limited.images, 2);
});
