/**
 * The tfjs ResNet against PyTorch itself: resnet8 fixtures (eval logits with and without BlockDrop
 * masks, train-mode loss / gradients / BN running stats) on both the cpu and wasm backends.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendName } from '../backend/index.js';
import { loadTorchCheckpoint, stateDict } from '../checkpoint/torch.js';
import type { TensorMap } from '../tensor.js';
import { fixturesDir } from '../testing/shared.js';
import { getPreset, type ResNetConfig } from './config.js';
import { ResNet } from './resnet.js';

interface JsonArray { shape: number[]; dtype: string; data: number[] }
interface Variant { logits_full: JsonArray; logits_masked: { mask: string; logits: JsonArray }[] }
interface GradCase {
  mask: string | null;
  loss: number;
  logits_train_mode: JsonArray;
  grads: Record<string, JsonArray>;
  bn1_after_one_train_forward?: { running_mean: JsonArray; running_var: JsonArray };
}
interface Reference {
  inputs: JsonArray;
  labels: JsonArray;
  masks: { name: string; keep: JsonArray }[];
  nets: Record<'downsampleB' | 'optionA' | 'fp16_upcast', Variant>;
  gradients: { cases: Record<'full' | 'masked_random', GradCase> };
}

const ref = JSON.parse(readFileSync(join(fixturesDir, 'resnet8_reference.json'), 'utf8')) as Reference;
const resnet8 = getPreset('resnet8').arch;
const resnet8a = getPreset('resnet8a').arch;

const VARIANTS: { variant: keyof Reference['nets']; file: string; arch: ResNetConfig }[] = [
  { variant: 'downsampleB', file: 'resnet8_zip.pt', arch: resnet8 },
  { variant: 'downsampleB', file: 'resnet8_legacy.pt', arch: resnet8 },
  { variant: 'downsampleB', file: 'resnet8_wrapped.pt', arch: resnet8 },
  { variant: 'optionA', file: 'resnet8_optionA_zip.pt', arch: resnet8a },
  { variant: 'fp16_upcast', file: 'resnet8_fp16.pt', arch: resnet8 },
];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function assertRelClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  const diff = maxAbsDiff(actual, expected);
  assert.ok(diff <= 1e-4 * scale, `${what}: max |diff| ${diff.toExponential(2)} > 1e-4 · ${scale.toExponential(2)}`);
}

/** NCHW fixture images → NHWC. */
const inputs = (): tf.Tensor4D =>
  tf.tidy(() => tf.transpose(tf.tensor4d(ref.inputs.data, ref.inputs.shape as [number, number, number, number]), [0, 2, 3, 1]));
const mask = (name: string): tf.Tensor2D => {
  const m = ref.masks.find((k) => k.name === name)!;
  return tf.tensor2d(m.keep.data, m.keep.shape as [number, number], 'float32');
};

const weights = new Map<string, TensorMap>();

for (const backend of ['cpu', 'wasm'] as BackendName[]) {
  describe(`ResNet-8 vs PyTorch on ${backend}`, () => {
    before(async () => {
      await initBackend(backend);
      for (const { file } of VARIANTS) {
        if (!weights.has(file)) weights.set(file, stateDict(await loadTorchCheckpoint(join(fixturesDir, file))));
      }
    });

    for (const { variant, file, arch } of VARIANTS) {
      it(`${file} (${variant}): logits, full and with the three keep masks, within 1e-4`, () => {
        const net = ResNet.fromWeights(arch, weights.get(file)!);
        const x = inputs();
        const expected = ref.nets[variant];
        const full = tf.tidy(() => net.forward(x).dataSync());
        assert.ok(maxAbsDiff(full, expected.logits_full.data) < 1e-4, `full: ${maxAbsDiff(full, expected.logits_full.data)}`);
        for (const { mask: name, logits } of expected.logits_masked) {
          const keep = mask(name);
          const got = tf.tidy(() => net.forward(x, { keep }).dataSync());
          assert.ok(maxAbsDiff(got, logits.data) < 1e-4, `${name}: ${maxAbsDiff(got, logits.data)}`);
          keep.dispose();
        }
        x.dispose();
        net.dispose();
      });
    }

    for (const [caseName, c] of Object.entries(ref.gradients.cases)) {
      it(`train-mode BN gradients, case ${caseName}: loss, logits, grads, bn1 running stats`, () => {
        const net = ResNet.fromWeights(resnet8, weights.get('resnet8_zip.pt')!, { trainable: true });
        const x = inputs();
        const keep = c.mask ? mask(c.mask) : undefined;
        const labels = tf.tensor1d(ref.labels.data, 'int32');
        let logits: Float32Array | undefined;
        const { value, grads } = tf.variableGrads(() => {
          const y = net.forward(x, { keep, training: true });
          logits = Float32Array.from(y.dataSync());
          // Mean cross-entropy, as F.cross_entropy.
          const logp = tf.logSoftmax(y);
          return tf.neg(tf.mean(tf.sum(tf.mul(logp, tf.oneHot(labels, 10)), 1))) as tf.Scalar;
        }, net.variables());
        assert.ok(Math.abs(value.dataSync()[0]! - c.loss) < 1e-5, `loss ${value.dataSync()[0]} vs ${c.loss}`);
        assert.ok(maxAbsDiff(logits!, c.logits_train_mode.data) < 1e-4, 'train-mode logits');
        const vars = net.namedVariables();
        for (const [key, expected] of Object.entries(c.grads)) {
          const g = grads[vars.get(key)!.name]!;
          // tfjs layouts back to PyTorch's: HWIO → OIHW, [in,out] → [out,in].
          const torchLayout = tf.tidy(() => (g.rank === 4 ? tf.transpose(g, [3, 2, 0, 1]) : g.rank === 2 ? tf.transpose(g) : g).dataSync());
          assert.deepEqual([...(g.rank === 4 ? [g.shape[3], g.shape[2], g.shape[0], g.shape[1]] : g.rank === 2 ? [g.shape[1], g.shape[0]] : g.shape)], expected.shape);
          assertRelClose(torchLayout, expected.data, `grad ${key}`);
        }
        if (c.bn1_after_one_train_forward) {
          const state = net.toTensorMap();
          assert.ok(maxAbsDiff(state.get('bn1.running_mean')!.data as Float32Array, c.bn1_after_one_train_forward.running_mean.data) < 1e-6);
          assert.ok(maxAbsDiff(state.get('bn1.running_var')!.data as Float32Array, c.bn1_after_one_train_forward.running_var.data) < 1e-5);
        }
        tf.dispose([value, x, labels, ...Object.values(grads)]);
        keep?.dispose();
        net.dispose();
      });
    }
  });
}
