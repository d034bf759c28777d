import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Adam } from './adam.js';
import { Sgd } from './sgd.js';

await tf.setBackend('cpu');

test('SGD follows PyTorch: momentum buffer starts as the first gradient, L2 decay in the gradient, no dampening', () => {
  const p = tf.variable(tf.tensor1d([1, -2]));
  const sgd = new Sgd([p], { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
  const grads = [[0.5, -1], [0.25, 2], [-0.75, 0.5]];
  // Reference in double precision: torch.optim.SGD's update rule.
  let x = [1, -2];
  let buffer: number[] | undefined;
  for (const raw of grads) {
    sgd.apply([tf.tensor1d(raw)]);
    const d = raw.map((g, i) => g + 0.01 * x[i]!);
    buffer = buffer ? buffer.map((b, i) => 0.9 * b + d[i]!) : d;
    x = x.map((xi, i) => xi - 0.1 * buffer![i]!);
  }
  const got = p.dataSync();
  x.forEach((xi, i) => assert.ok(Math.abs(got[i]! - xi) < 1e-6, `${got[i]} vs ${xi}`));
  assert.equal(sgd.step, 3);
});

test('SGD leaves a parameter without a gradient (a frozen policy) and its momentum untouched', () => {
  const frozen = tf.variable(tf.tensor1d([0.5, 0.5]));
  const trained = tf.variable(tf.tensor1d([1, 1]));
  const sgd = new Sgd([frozen, trained], { lr: 0.1, momentum: 0.9, weightDecay: 0.1 });
  sgd.apply([undefined, tf.tensor1d([1, -1])]);
  sgd.apply([undefined, tf.tensor1d([1, -1])]);
  assert.deepEqual([...frozen.dataSync()], [0.5, 0.5]);
  assert.deepEqual([...sgd.state().momentum[0]!.data], [0, 0]);
});

test('SGD state round-trips through a checkpoint tensor map: a restored optimiser continues identically', () => {
  const make = () => tf.variable(tf.tensor1d([0.3, 0.7, -1]));
  const a = make();
  const b = make();
  const optA = new Sgd([a], { lr: 0.05, momentum: 0.9, lrScale: [2] });
  optA.apply([tf.tensor1d([1, 2, 3])]);
  b.assign(a);
  const optB = new Sgd([b], { lr: 0.05, momentum: 0.9, lrScale: [2] });
  optB.loadTensorMap(optA.toTensorMap(), optA.step);
  optA.apply([tf.tensor1d([-1, 0.5, 2])]);
  optB.apply([tf.tensor1d([-1, 0.5, 2])]);
  assert.deepEqual([...a.dataSync()], [...b.dataSync()]);
  assert.equal(optB.step, 2);
});

test("a checkpoint of one optimiser cannot resume another: a one-line error that names the missing state", () => {
  const p = tf.variable(tf.tensor1d([1, 2]));
  const adam = new Adam([p], { lr: 0.1 });
  adam.apply([tf.tensor1d([1, 1])]);
  const sgd = new Sgd([p], { lr: 0.1 });
  assert.throws(() => sgd.loadTensorMap(adam.toTensorMap(), 1), /lacks optimiser tensor optimizer\.momentum\.000; it was written by another optimiser/);
  assert.throws(() => adam.loadTensorMap(sgd.toTensorMap(), 1), /lacks optimiser tensor optimizer\.m\.000/);
  const wrongShape = new Sgd([tf.variable(tf.tensor1d([1, 2, 3]))], { lr: 0.1 });
  assert.throws(() => wrongShape.loadTensorMap(sgd.toTensorMap(), 1), /shape \[2\], parameter \[3\]; the checkpoint belongs to a different model/);
});
