import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, installKernelOverrides, kernelOverridesInstalled, uninstallKernelOverrides } from './index.js';
import { conv2d } from './ops.js';

type Pad = number | 'same' | 'valid' | tf.backend_util.ExplicitPadding;
interface Case { h: number; w: number; cin: number; cout: number; k: number; stride: number; pad: Pad }

const CASES: Case[] = [
  { h: 8, w: 8, cin: 3, cout: 4, k: 3, stride: 1, pad: 1 },
  { h: 8, w: 8, cin: 3, cout: 4, k: 3, stride: 2, pad: 1 },
  { h: 7, w: 9, cin: 2, cout: 5, k: 3, stride: 2, pad: 1 }, // odd sizes, stride 2
  { h: 7, w: 6, cin: 2, cout: 3, k: 3, stride: 1, pad: 0 },
  { h: 9, w: 8, cin: 2, cout: 3, k: 3, stride: 2, pad: 0 }, // last row/col never read
  { h: 8, w: 8, cin: 4, cout: 6, k: 1, stride: 1, pad: 0 },
  { h: 7, w: 8, cin: 4, cout: 6, k: 1, stride: 2, pad: 0 },
  { h: 8, w: 7, cin: 3, cout: 2, k: 3, stride: 2, pad: 'same' }, // asymmetric same padding
  { h: 7, w: 7, cin: 3, cout: 2, k: 3, stride: 1, pad: 'same' },
  { h: 8, w: 9, cin: 2, cout: 3, k: 3, stride: 2, pad: 'valid' },
  { h: 9, w: 8, cin: 2, cout: 3, k: 3, stride: 2, pad: [[0, 0], [2, 0], [0, 1], [0, 0]] },
  { h: 11, w: 10, cin: 3, cout: 4, k: 7, stride: 2, pad: 3 }, // ImageNet stem shape
];

function randn(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

/** Values and gradients of Σ r ⊙ conv(x, w) — r makes dy non-uniform. */
function valueAndGrads(c: Case, seed: number): { y: Float32Array; dx: Float32Array; dw: Float32Array } {
  return tf.tidy(() => {
    const x = randn([2, c.h, c.w, c.cin], seed) as tf.Tensor4D;
    const w = randn([c.k, c.k, c.cin, c.cout], seed + 1) as tf.Tensor4D;
    const y = tf.conv2d(x, w, c.stride, c.pad);
    const r = randn(y.shape, seed + 2);
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), r));
    const [dx, dw] = tf.grads(f)([x, w]);
    return { y: y.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array, dw: dw.dataSync() as Float32Array };
  });
}

function assertClose(actual: Float32Array, expected: Float32Array, what: string, rel = 1e-4): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  assert.ok(worst <= rel * Math.max(scale, 1e-6), `${what}: max |diff| ${worst} > ${rel} · ${scale}`);
}

const name = (c: Case) => `${c.k}x${c.k} stride ${c.stride} pad ${JSON.stringify(c.pad)} in ${c.h}x${c.w}`;

describe('Conv2D gradient as forward convolutions', () => {
  const reference = new Map<Case, ReturnType<typeof valueAndGrads>>();

  before(async () => {
    await initBackend('cpu');
    uninstallKernelOverrides();
    CASES.forEach((c, i) => reference.set(c, valueAndGrads(c, 100 + 10 * i)));
    installKernelOverrides();
  });
  after(() => installKernelOverrides());

  it('is installed by initBackend', () => assert.ok(kernelOverridesInstalled()));

  for (const [i, c] of CASES.entries()) {
    it(`matches tfjs's own gradient on cpu: ${name(c)}`, () => {
      const ref = reference.get(c)!;
      const got = valueAndGrads(c, 100 + 10 * i);
      assertClose(got.dx, ref.dx, 'dx');
      assertClose(got.dw, ref.dw, 'dw');
    });
  }

  it('gives the same gradients on wasm (which has no Conv2DBackpropFilter)', async () => {
    await initBackend('wasm');
    try {
      for (const [i, c] of CASES.entries()) {
        const ref = reference.get(c)!;
        const got = valueAndGrads(c, 100 + 10 * i);
        assertClose(got.y, ref.y, `y ${name(c)}`);
        assertClose(got.dx, ref.dx, `dx ${name(c)}`);
        assertClose(got.dw, ref.dw, `dw ${name(c)}`);
      }
    } finally {
      await initBackend('cpu');
    }
  });

  it('ops.conv2d: fused path (no tape) equals the taped path, bias and relu included', () => {
    tf.tidy(() => {
      const x = randn([2, 8, 8, 3], 1) as tf.Tensor4D;
      const w = randn([3, 3, 3, 4], 2) as tf.Tensor4D;
      const b = randn([4], 3) as tf.Tensor1D;
      const fused = conv2d(x, w, { stride: 2, pad: 1, bias: b, activation: 'relu' });
      let taped: tf.Tensor | undefined;
      tf.grad((xx: tf.Tensor) => {
        taped = tf.keep(conv2d(xx as tf.Tensor4D, w, { stride: 2, pad: 1, bias: b, activation: 'relu' }));
        return tf.sum(taped);
      })(x);
      assertClose(fused.dataSync() as Float32Array, taped!.dataSync() as Float32Array, 'fused vs taped');
    });
  });
});
