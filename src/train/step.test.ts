import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend } from '../backend/index.js';
import { normalizeBatch, batchLabels } from '../data/batches.js';
import { NORMALIZATIONS } from '../models/config.js';
import { ResNet } from '../models/resnet.js';
import { Rng } from '../util/rng.js';
import { Adam } from './adam.js';
import { blendLosses, crossEntropyWithGrad, distillationWithGrad } from './classifier-loss.js';
import { tfjsBackboneModule, tfjsPolicyModule, type TrainableModule } from './engine.js';
import type { RewardOracle } from './models.js';
import { blockDropStep } from './step.js';
import { SYNTHETIC_BACKBONE, syntheticBackboneWeights, syntheticImages, syntheticK, TinyPolicy } from './synthetic.js';

before(async () => {
  await initBackend('wasm');
});

test("stage 2 hands the ResNet's backward the blended cross-entropy and distillation gradient, teacher rows per image", async () => {
  const k = syntheticK();
  const classes = SYNTHETIC_BACKBONE.numClasses;
  const resnet = ResNet.fromWeights(SYNTHETIC_BACKBONE, syntheticBackboneWeights(1), { trainable: true });
  const policy = new TinyPolicy(k, 7);
  const images = syntheticImages(resnet, 6, 3);
  const indices = [0, 1, 2, 3, 4, 5];
  const batch = { images: normalizeBatch(images, indices, NORMALIZATIONS.none), labels: batchLabels(images, indices), size: 6, side: 32 };
  // Teacher logits that differ per image, so a wrong image-to-row mapping shows.
  const teacherLogits = Float32Array.from({ length: 6 * classes }, (_, i) => Math.sin(i) * 3);
  const teacher: RewardOracle = {
    name: 'fixed teacher',
    predict: async (_x, _n, _p, rows) => new Int32Array(rows.length),
    logits: async () => teacherLogits,
    dispose() {},
  };
  // Record what the sampled pass produced and what its backward received.
  const inner = tfjsBackboneModule(resnet, k, 32);
  let sampledOutput: Float32Array | undefined;
  let dOutput: Float32Array | undefined;
  const recorded: TrainableModule = {
    engine: inner.engine,
    outputs: inner.outputs,
    async forward(x, n, options) {
      const out = await inner.forward(x, n, options);
      if (options?.grad !== false) sampledOutput = out.output;
      return out;
    },
    async backward(saved, d) {
      dOutput = d;
      return inner.backward(saved, d);
    },
    dispose: () => inner.dispose(),
  };
  const params = [...policy.variables(), ...resnet.variables()];
  const optimizer = new Adam(params, { lr: 1e-4 });
  const samples = 2;
  try {
    const result = await blockDropStep(
      { policy, resnet, oracle: teacher, optimizer, params, rng: new Rng(3), modules: { policy: tfjsPolicyModule(policy, k, 32), resnet: recorded } },
      batch,
      {
        k,
        learnable: k,
        entropyWeight: 0,
        entropy: 'original',
        penalty: 1,
        alpha: 0.8,
        trainResNet: true,
        samples,
        baseline: 'greedy',
        advantage: 'signed',
        lossLimit: 1e6,
        distillation: { weight: 0.75, temperature: 3 },
      },
    );
    const rows = 6 * samples;
    const image = (r: number): number => Math.floor(r / samples);
    const expected = blendLosses(
      crossEntropyWithGrad(sampledOutput!, rows, classes, (r) => batch.labels[image(r)]!),
      distillationWithGrad(sampledOutput!, teacherLogits, rows, classes, 3, image),
      0.75,
    );
    assert.ok(Math.abs(result.crossEntropy - expected.loss) < 1e-9);
    assert.equal(dOutput!.length, expected.grad.length);
    for (let i = 0; i < expected.grad.length; i++) assert.ok(Math.abs(dOutput![i]! - expected.grad[i]!) < 1e-9, `entry ${i}`);
  } finally {
    optimizer.dispose();
    policy.dispose();
    resnet.dispose();
  }
});

test('distillation needs an oracle that gives logits: a clear error otherwise', async () => {
  const k = syntheticK();
  const resnet = ResNet.fromWeights(SYNTHETIC_BACKBONE, syntheticBackboneWeights(1), { trainable: true });
  const policy = new TinyPolicy(k, 7);
  const images = syntheticImages(resnet, 2, 3);
  const params = [...policy.variables(), ...resnet.variables()];
  const optimizer = new Adam(params, { lr: 1e-4 });
  const classesOnly: RewardOracle = { name: 'classes only', predict: async (_x, _n, _p, rows) => new Int32Array(rows.length), dispose() {} };
  try {
    await assert.rejects(
      blockDropStep(
        { policy, resnet, oracle: classesOnly, optimizer, params, rng: new Rng(1) },
        { images: normalizeBatch(images, [0, 1], NORMALIZATIONS.none), labels: batchLabels(images, [0, 1]), size: 2, side: 32 },
        {
          k, learnable: k, entropyWeight: 0, entropy: 'original', penalty: 1, alpha: 0.8, trainResNet: true, samples: 1,
          baseline: 'greedy', advantage: 'signed', lossLimit: 1e6, distillation: { weight: 0.5, temperature: 4 },
        },
      ),
      /distillation needs teacher logits, which classes only does not give/,
    );
  } finally {
    optimizer.dispose();
    policy.dispose();
    resnet.dispose();
  }
});
