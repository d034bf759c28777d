import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blendLosses, crossEntropyWithGrad, distillationWithGrad } from './classifier-loss.js';
import { Rng } from '../util/rng.js';

const ROWS = 3;
const CLASSES = 4;

function randomLogits(seed: number, scale = 3): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: ROWS * CLASSES }, () => (rng.next() * 2 - 1) * scale);
}

/** Central differences of `f` at every entry of `x` (double precision on a copy). */
function numericGrad(f: (x: Float32Array) => number, x: Float32Array, h = 1e-2): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const plus = Float32Array.from(x);
    const minus = Float32Array.from(x);
    plus[i] = plus[i]! + h;
    minus[i] = minus[i]! - h;
    out[i] = (f(plus) - f(minus)) / (2 * h);
  }
  return out;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tolerance, `entry ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

const labels = [2, 0, 3];

test('cross-entropy: hand value and gradient against a numeric one', () => {
  // Uniform logits: −log(1/C) per row, gradient (1/C − onehot) / rows.
  const uniform = crossEntropyWithGrad(new Float32Array(ROWS * CLASSES), ROWS, CLASSES, (r) => labels[r]!);
  assert.ok(Math.abs(uniform.loss - Math.log(CLASSES)) < 1e-6);
  assert.ok(Math.abs(uniform.grad[2]! - (1 / CLASSES - 1) / ROWS) < 1e-7);
  const logits = randomLogits(1);
  const { grad } = crossEntropyWithGrad(logits, ROWS, CLASSES, (r) => labels[r]!);
  assertClose(grad, numericGrad((x) => crossEntropyWithGrad(x, ROWS, CLASSES, (r) => labels[r]!).loss, logits), 2e-4);
  // Very confident and wrong: finite, about the logit gap.
  const wrong = new Float32Array(CLASSES);
  wrong[0] = 200;
  assert.ok(Math.abs(crossEntropyWithGrad(wrong, 1, CLASSES, () => 1).loss - 200) < 1e-3);
});

test('distillation: zero when the student equals the teacher, gradient against a numeric one, T² scale', () => {
  const teacher = randomLogits(2);
  const same = distillationWithGrad(teacher, teacher, ROWS, CLASSES, 4, (r) => r);
  assert.ok(Math.abs(same.loss) < 1e-6);
  assert.ok(same.grad.every((g) => Math.abs(g) < 1e-7));
  for (const temperature of [1, 4]) {
    const student = randomLogits(3);
    const f = (x: Float32Array): number => distillationWithGrad(x, teacher, ROWS, CLASSES, temperature, (r) => r).loss;
    const { loss, grad } = distillationWithGrad(student, teacher, ROWS, CLASSES, temperature, (r) => r);
    assert.ok(loss > 0);
    assertClose(grad, numericGrad(f, student), 5e-4);
  }
  // At T = 1 and a one-hot-like teacher, distillation is the cross-entropy up to the teacher's (near-zero) entropy.
  const hard = new Float32Array(ROWS * CLASSES);
  for (let r = 0; r < ROWS; r++) hard[r * CLASSES + labels[r]!] = 60;
  const student = randomLogits(4);
  assert.ok(
    Math.abs(distillationWithGrad(student, hard, ROWS, CLASSES, 1, (r) => r).loss - crossEntropyWithGrad(student, ROWS, CLASSES, (r) => labels[r]!).loss) < 1e-4,
  );
});

test('distillation rows can share a teacher row (several samples of one image)', () => {
  const teacher = randomLogits(5).subarray(0, CLASSES); // one image
  const student = randomLogits(6); // three samples of it
  const shared = distillationWithGrad(student, teacher, ROWS, CLASSES, 2, () => 0);
  const repeated = new Float32Array(ROWS * CLASSES);
  for (let r = 0; r < ROWS; r++) repeated.set(teacher, r * CLASSES);
  const explicit = distillationWithGrad(student, repeated, ROWS, CLASSES, 2, (r) => r);
  assert.ok(Math.abs(shared.loss - explicit.loss) < 1e-9);
  assertClose(shared.grad, explicit.grad, 0);
});

test('blending weights both losses and their gradients', () => {
  const a = { loss: 2, grad: Float32Array.from([1, -1]) };
  const b = { loss: 4, grad: Float32Array.from([3, 5]) };
  const mixed = blendLosses(a, b, 0.25);
  assert.equal(mixed.loss, 2.5);
  assertClose(mixed.grad, [1.5, 0.5], 1e-7);
  assert.deepEqual([...blendLosses(a, b, 0).grad], [...a.grad]);
});
