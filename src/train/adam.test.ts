import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Adam } from './adam.js';

await tf.setBackend('cpu');

test('Adam follows PyTorch: bias-corrected moments, eps after the square root, L2 decay in the gradient', () => {
  const p = tf.variable(tf.tensor1d([1, -2]));
  const adam = new Adam([p], { lr: 0.1, weightDecay: 0.01 });
  const grads = [[0.5, -1], [0.25, 2]];
  // Reference in double precision.
  let x = [1, -2];
  let m = [0, 0];
  let v = [0, 0];
  for (let t = 1; t <= grads.length; t++) {
    adam.apply([tf.tensor1d(grads[t - 1]!)]);
    const g = grads[t - 1]!.map((gi, i) => gi + 0.01 * x[i]!);
    m = m.map((mi, i) => 0.9 * mi + 0.1 * g[i]!);
    v = v.map((vi, i) => 0.999 * vi + 0.001 * g[i]! * g[i]!);
    x = x.map((xi, i) => xi - (0.1 / (1 - 0.9 ** t)) * m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(1 - 0.999 ** t) + 1e-8));
  }
  const got = p.dataSync();
  x.forEach((xi, i) => assert.ok(Math.abs(got[i]! - xi) < 1e-6, `${got[i]} vs ${xi}`));
});

test('Adam state round-trips: a restored optimiser continues identically', () => {
  const make = () => tf.variable(tf.tensor1d([0.3, 0.7, -1]));
  const a = make();
  const b = make();
  const optA = new Adam([a], { lr: 0.05 });
  optA.apply([tf.tensor1d([1, 2, 3])]);
  b.assign(a);
  const optB = new Adam([b], { lr: 0.05 });
  optB.loadState(Adam.stateFromTensorMap(optA.toTensorMap(), optA.step, 1));
  optA.apply([tf.tensor1d([-1, 0.5, 2])]);
  optB.apply([tf.tensor1d([-1, 0.5, 2])]);
  assert.deepEqual([...a.dataSync()], [...b.dataSync()]);
  assert.equal(optB.step, 2);
  assert.throws(() => optB.loadState({ step: 1, m: [], v: [] }), /different model/);
});

test('per-parameter learning-rate scales: a parameter with scale s moves as with lr·s (parameter groups)', () => {
  const grads = [tf.tensor1d([0.5, -1]), tf.tensor1d([0.2, 0.4])];
  const scaled = [tf.variable(tf.tensor1d([1, -2])), tf.variable(tf.tensor1d([0.5, 0.5]))];
  const reference = [tf.variable(tf.tensor1d([1, -2])), tf.variable(tf.tensor1d([0.5, 0.5]))];
  const withScales = new Adam(scaled, { lr: 0.01, lrScale: [10, 1] });
  const fast = new Adam([reference[0]!], { lr: 0.1 });
  const slow = new Adam([reference[1]!], { lr: 0.01 });
  for (let step = 0; step < 3; step++) {
    withScales.apply(grads);
    fast.apply([grads[0]!]);
    slow.apply([grads[1]!]);
  }
  for (let i = 0; i < 2; i++) {
    const got = scaled[i]!.dataSync();
    const want = reference[i]!.dataSync();
    for (let j = 0; j < got.length; j++) assert.ok(Math.abs(got[j]! - want[j]!) < 1e-6, `parameter ${i}[${j}]: ${got[j]} vs ${want[j]}`);
  }
  assert.throws(() => new Adam(scaled, { lr: 0.01, lrScale: [1] }), /2 parameters/);
});
