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
import { blockDropStep, type StepOptions } from './step.js';
import { SYNTHETIC_BACKBONE, syntheticBackboneWeights, syntheticImages, syntheticK, TinyPolicy } from './synthetic.js';

before(async () => {
  await initBackend('wasm');
});

/**
 * One stage-2 step on the synthetic ResNet with the ResNet's training module wrapped, recording the output of the
 * pass that keeps gradients (its rows and keep mask) and the gradient its backward receives.
 */
async function recordedStep(options: Partial<StepOptions>, teacherLogits?: Float32Array) {
  const k = syntheticK();
  const resnet = ResNet.fromWeights(SYNTHETIC_BACKBONE, syntheticBackboneWeights(1), { trainable: true });
  const policy = new TinyPolicy(k, 7);
  const images = syntheticImages(resnet, 6, 3);
  const indices = [0, 1, 2, 3, 4, 5];
  const batch = { images: normalizeBatch(images, indices, NORMALIZATIONS.none), labels: batchLabels(images, indices), size: 6, side: 32 };
  const teacher: RewardOracle = {
    name: 'fixed teacher',
    predict: async (_x, _n, _p, rows) => new Int32Array(rows.length),
    logits: async () => teacherLogits!,
    dispose() {},
  };
  const inner = tfjsBackboneModule(resnet, k, 32);
  const trained: {
    output?: Float32Array;
    rows?: number;
    keep?: Uint8Array;
    dOutput?: Float32Array;
    policyBackwards: number;
    /** Every ResNet forward pass: whether it kept gradients. */
    resnetPasses: boolean[];
  } = { policyBackwards: 0, resnetPasses: [] };
  const policyModule = tfjsPolicyModule(policy, k, 32);
  const countedPolicy: TrainableModule = {
    engine: policyModule.engine,
    outputs: policyModule.outputs,
    forward: (x, n, forwardOptions) => policyModule.forward(x, n, forwardOptions),
    backward(saved, d) {
      trained.policyBackwards++;
      return policyModule.backward(saved, d);
    },
    dispose: () => policyModule.dispose(),
  };
  const recorded: TrainableModule = {
    engine: inner.engine,
    outputs: inner.outputs,
    async forward(x, n, forwardOptions) {
      const out = await inner.forward(x, n, forwardOptions);
      trained.resnetPasses.push(forwardOptions?.grad !== false);
      if (forwardOptions?.grad !== false) Object.assign(trained, { output: out.output, rows: n, keep: forwardOptions?.keep });
      return out;
    },
    async backward(saved, d) {
      trained.dOutput = d;
      return inner.backward(saved, d);
    },
    dispose: () => inner.dispose(),
  };
  const params = [...policy.variables(), ...resnet.variables()];
  const optimizer = new Adam(params, { lr: 1e-4 });
  const policyBefore = policy.variables().map((v) => Float32Array.from(v.dataSync() as Float32Array));
  try {
    const result = await blockDropStep(
      { policy, resnet, oracle: teacher, optimizer, params, rng: new Rng(3), modules: { policy: countedPolicy, resnet: recorded } },
      batch,
      {
        k,
        learnable: k,
        entropyWeight: 0,
        entropy: 'original',
        penalty: 1,
        alpha: 0.8,
        trainResNet: true,
        samples: 1,
        baseline: 'greedy',
        advantage: 'signed',
        lossLimit: 1e6,
        ...options,
      },
    );
    const policyAfter = policy.variables().map((v) => Float32Array.from(v.dataSync() as Float32Array));
    return { result, trained, policyBefore, policyAfter, labels: batch.labels, classes: SYNTHETIC_BACKBONE.numClasses };
  } finally {
    optimizer.dispose();
    policy.dispose();
    resnet.dispose();
  }
}

function assertGradient(actual: Float32Array | undefined, expected: Float32Array): void {
  assert.equal(actual!.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual![i]! - expected[i]!) < 1e-9, `entry ${i}`);
}

test("stage 2 hands the ResNet's backward the blended cross-entropy and distillation gradient, teacher rows per image", async () => {
  const classes = SYNTHETIC_BACKBONE.numClasses;
  // Teacher logits that differ per image, so a wrong image-to-row mapping shows.
  const teacherLogits = Float32Array.from({ length: 6 * classes }, (_, i) => Math.sin(i) * 3);
  const samples = 2;
  const { result, trained, labels } = await recordedStep({ samples, distillation: { weight: 0.75, temperature: 3 } }, teacherLogits);
  const rows = 6 * samples;
  assert.equal(trained.rows, rows, 'the sampled pass trains');
  const image = (r: number): number => Math.floor(r / samples);
  const expected = blendLosses(
    crossEntropyWithGrad(trained.output!, rows, classes, (r) => labels[image(r)]!),
    distillationWithGrad(trained.output!, teacherLogits, rows, classes, 3, image),
    0.75,
  );
  assert.ok(Math.abs(result.crossEntropy - expected.loss) < 1e-9);
  assertGradient(trained.dOutput, expected.grad);
});

test('with classifierPolicy greedy the cross-entropy trains the greedy pass, one row per image', async () => {
  const { result, trained, labels, classes } = await recordedStep({ samples: 2, classifierPolicy: 'greedy' });
  assert.equal(trained.rows, 6, 'the greedy pass (one row per image) trains');
  const expected = crossEntropyWithGrad(trained.output!, 6, classes, (r) => labels[r]!);
  assert.ok(Math.abs(result.crossEntropy - expected.loss) < 1e-9);
  assertGradient(trained.dOutput, expected.grad);
  // Its blocks are the greedy policy's: the same decisions the step reports as greedy.
  const blocks = Array.from({ length: 6 }, (_, r) => trained.keep!.subarray(r * syntheticK(), (r + 1) * syntheticK()).reduce((a, v) => a + v, 0));
  assert.ok(Math.abs(blocks.reduce((a, v) => a + v, 0) / 6 - result.blocksGreedy) < 1e-9);
});

test('trainPolicy false skips the policy backward and leaves its weights; the ResNet still trains', async () => {
  // The entropy bonus gives the policy a gradient even where every advantage is zero.
  const frozen = await recordedStep({ trainPolicy: false, entropyWeight: 0.1 });
  assert.equal(frozen.trained.policyBackwards, 0);
  assert.deepEqual(frozen.policyAfter, frozen.policyBefore);
  assert.ok(frozen.trained.dOutput!.some((v) => v !== 0), 'the ResNet received a gradient');
  // Nothing learns from the rewards, so only the pass the cross-entropy trains runs (here the sampled one).
  assert.deepEqual(frozen.trained.resnetPasses, [true]);
  assert.ok(Number.isNaN(frozen.result.correctGreedy) && Number.isNaN(frozen.result.rewardGreedy));
  assert.ok(frozen.result.correctSampled >= 0 && frozen.result.correctSampled <= 1);
  const onGreedy = await recordedStep({ trainPolicy: false, classifierPolicy: 'greedy' });
  assert.deepEqual(onGreedy.trained.resnetPasses, [true]);
  assert.ok(Number.isNaN(onGreedy.result.rewardSampled) && !Number.isNaN(onGreedy.result.rewardGreedy));
  const trainedPolicy = await recordedStep({ entropyWeight: 0.1 });
  assert.equal(trainedPolicy.trained.policyBackwards, 1);
  assert.deepEqual(trainedPolicy.trained.resnetPasses, [false, true], 'greedy pass for the baseline, sampled pass trained');
  assert.notDeepEqual(trainedPolicy.policyAfter, trainedPolicy.policyBefore);
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
