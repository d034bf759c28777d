import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/index.js';
import { isBatchNormBuffer } from '../checkpoint/torch.js';
import { NORMALIZATIONS } from '../models/config.js';
import type { TensorMap } from '../tensor.js';
import type { Stage1Config } from './config.js';
import { RunDirectory, type EvalRecord } from './run-dir.js';
import { TrainingDivergedError } from './step.js';
import type { RewardOracle } from './models.js';
import { SYNTHETIC_BACKBONE, SYNTHETIC_ESSENTIAL, syntheticK, syntheticTrainingSetup, TinyPolicy } from './synthetic.js';
import { beatsBest, runTraining, type TrainingSetup } from './trainer.js';

before(async () => {
  await initBackend('wasm');
});

const K = syntheticK();

function tempRun(): string {
  return join(mkdtempSync(join(tmpdir(), 'blockdrop-train-')), 'run');
}

function setup(
  config: Partial<Stage1Config>,
  options: { stage?: 1 | 2; policy?: TinyPolicy; policySeed?: number } = {},
): TrainingSetup & { dispose(): void } {
  return syntheticTrainingSetup({ runDir: tempRun(), ...config }, options);
}

/** Metrics without the wall-clock fields, which differ between any two runs. */
function deterministic(records: EvalRecord[]): object[] {
  return records.map(({ imagesPerSecond, evalImagesPerSecond, elapsedSeconds, ...rest }) => {
    void imagesPerSecond;
    void evalImagesPerSecond;
    void elapsedSeconds;
    return rest;
  });
}

function tensorsEqual(a: TensorMap, b: TensorMap): boolean {
  if (a.size !== b.size) return false;
  for (const [name, t] of a) {
    const u = b.get(name);
    const x = t.data as Float32Array;
    const y = u?.data as Float32Array | undefined;
    if (!y || y.length !== x.length) return false;
    for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return false;
  }
  return true;
}

test('stage 1 on a synthetic ResNet finds the known best policy (drop exactly the zero blocks)', async () => {
  const s = setup({ iterations: 40, evalEvery: 20, lr: 0.03, samples: 4, curriculumEvery: 4, curriculumUnit: 'iteration', curriculumStart: 1 });
  try {
    const result = await runTraining(s);
    const last = result.last!;
    assert.equal(last.learnable, K, 'curriculum finished');
    assert.ok(last.valAccuracy >= 0.98, `validation accuracy ${last.valAccuracy}`);
    assert.ok(Math.abs(last.valBlocksMean - SYNTHETIC_ESSENTIAL.length) < 0.1, `blocks ${last.valBlocksMean}`);
    const usage = last.valBlockUsage;
    usage.forEach((u, t) => {
      if (SYNTHETIC_ESSENTIAL.includes(t)) assert.ok(u >= 0.98, `essential block ${t} used by ${u}`);
      else assert.ok(u <= 0.02, `zero block ${t} used by ${u}`);
    });
    const records = new RunDirectory(s.config.runDir).readMetrics();
    assert.deepEqual(records.map((r) => r.iteration), [0, 20, 40]);
    assert.ok(records[0]!.valReward < records[2]!.valReward);
    assert.ok(result.policyPath && readdirSync(s.config.runDir).includes('policy.safetensors'));
  } finally {
    s.dispose();
  }
});

test('the ONNX Runtime training engine follows the TensorFlow.js one: same validation curve on the same seed', async () => {
  // Same seed, same batches, same samples: one-process ONNX and tfjs differ only in float rounding (~1e-6 per
  // pass), so the curves agree closely while the policy learns (a rounding flip can change a sample, hence the
  // tolerance). The data-parallel engine normalises each half batch with its own statistics, a different
  // (DataParallel) computation: its curve must stay within a block of the reference and reach the same end point.
  const config = { iterations: 40, evalEvery: 10, lr: 0.03, samples: 4, curriculumEvery: 4, curriculumUnit: 'iteration' as const, curriculumStart: 1 };
  const curves: EvalRecord[][] = [];
  for (const [trainEngine, trainWorkers] of [['onnx', 1], ['tfjs', 1], ['onnx', 2]] as const) {
    const s = setup({ ...config, trainEngine, trainWorkers });
    try {
      await runTraining(s);
      curves.push(new RunDirectory(s.config.runDir).readMetrics());
    } finally {
      s.dispose();
    }
  }
  const [onnx, tfjs, parallel] = curves as [EvalRecord[], EvalRecord[], EvalRecord[]];
  for (const curve of curves) assert.deepEqual(curve.map((r) => r.iteration), [0, 10, 20, 30, 40]);
  assert.ok(onnx[onnx.length - 1]!.valReward > onnx[0]!.valReward + 0.1, 'the ONNX run did not learn');
  onnx.forEach((r, i) => {
    const t = tfjs[i]!;
    assert.ok(Math.abs(r.valAccuracy - t.valAccuracy) <= 0.05, `iteration ${r.iteration}: accuracy ${r.valAccuracy} vs ${t.valAccuracy}`);
    assert.ok(Math.abs(r.valBlocksMean - t.valBlocksMean) <= 0.5, `iteration ${r.iteration}: blocks ${r.valBlocksMean} vs ${t.valBlocksMean}`);
  });
  parallel.forEach((r, i) => {
    const t = tfjs[i]!;
    assert.ok(Math.abs(r.valAccuracy - t.valAccuracy) <= 0.05, `data-parallel, iteration ${r.iteration}: accuracy ${r.valAccuracy} vs ${t.valAccuracy}`);
    assert.ok(Math.abs(r.valBlocksMean - t.valBlocksMean) <= 1, `data-parallel, iteration ${r.iteration}: blocks ${r.valBlocksMean} vs ${t.valBlocksMean}`);
  });
  const [p, t] = [parallel[parallel.length - 1]!, tfjs[tfjs.length - 1]!];
  assert.ok(p.valReward > parallel[0]!.valReward + 0.1, 'the data-parallel run did not learn');
  assert.ok(Math.abs(p.valAccuracy - t.valAccuracy) <= 0.05, `data-parallel end: accuracy ${p.valAccuracy} vs ${t.valAccuracy}`);
  assert.ok(Math.abs(p.valBlocksMean - t.valBlocksMean) <= 0.5, `data-parallel end: blocks ${p.valBlocksMean} vs ${t.valBlocksMean}`);
});

for (const optimizer of ['adam', 'sgd'] as const) {
  test(`a killed run resumed from its last checkpoint ends exactly like an uninterrupted one (${optimizer})`, async () => {
    const config = { iterations: 6, evalEvery: 2, samples: 2, curriculumEvery: 2, curriculumUnit: 'iteration' as const, optimizer, weightDecay: 1e-4 };
    const a = setup(config);
    await runTraining(a);
    const weightsA = a.policy.toTensorMap();
    const metricsA = new RunDirectory(a.config.runDir).readMetrics();
    a.dispose();

    const b = setup(config);
    await assert.rejects(
      runTraining(b, {
        onProgress: (p) => {
          if (p.phase === 'train' && p.iteration === 5) throw new Error('killed');
        },
      }),
      /killed/,
    );
    b.dispose();
    // A new process: fresh models (the policy re-initialised), everything else from the run directory.
    const c = setup({ ...config, runDir: b.config.runDir, resume: true });
    await runTraining(c);
    const weightsC = c.policy.toTensorMap();
    const metricsC = new RunDirectory(c.config.runDir).readMetrics();
    c.dispose();
    assert.deepEqual(metricsC.map((r) => r.iteration), [0, 2, 4, 6]);
    assert.deepEqual(deterministic(metricsC), deterministic(metricsA));
    assert.ok(tensorsEqual(weightsA, weightsC), 'final policy weights differ');
  });
}

test('the same seed gives the same metrics; another seed does not', async () => {
  const config = { iterations: 2, evalEvery: 2 };
  const runs = [];
  for (const seed of [5, 5, 6]) {
    const s = setup({ ...config, seed }, { policySeed: seed });
    await runTraining(s);
    runs.push(deterministic(new RunDirectory(s.config.runDir).readMetrics()));
    s.dispose();
  }
  assert.deepEqual(runs[0], runs[1]);
  assert.notDeepEqual(runs[0], runs[2]);
});

/** A policy that starts returning NaN after `after` calls in training mode. */
class PoisonedPolicy extends TinyPolicy {
  calls = 0;
  constructor(private readonly after: number) {
    super(K, 7);
  }
  override probabilities(x: tf.Tensor4D, options: { training?: boolean } = {}): tf.Tensor2D {
    const p = super.probabilities(x, options);
    if (!options.training || ++this.calls <= this.after) return p;
    return tf.tidy(() => p.mul(NaN));
  }
}

test('a NaN loss stops the run with a clear message and leaves the last good checkpoint intact', async () => {
  const policy = new PoisonedPolicy(2 * 3); // two calls per step: NaN from step 4 on
  // The poison sits in the tfjs forward: run the training passes there.
  const s = setup({ iterations: 10, evalEvery: 2, trainEngine: 'tfjs' }, { policy });
  try {
    await assert.rejects(runTraining(s), (e: unknown) => {
      assert.ok(e instanceof TrainingDivergedError);
      assert.match((e as Error).message, /diverged.*last checkpoint is intact/);
      return true;
    });
    const run = new RunDirectory(s.config.runDir);
    const last = await run.loadLast();
    assert.equal(last!.meta.iteration, 2);
    for (const t of last!.tensors.values()) assert.ok((t.data as Float32Array).every(Number.isFinite));
    assert.deepEqual(run.readMetrics().map((r) => r.iteration), [0, 2]);
  } finally {
    s.dispose();
  }
});

test('stage 2 trains the ResNet jointly: cross-entropy logged, ResNet weights change, checkpoint holds both', async () => {
  const s = setup({ iterations: 2, evalEvery: 2, lr: 1e-3, entropyWeight: 0, penalty: 5 }, { stage: 2 });
  try {
    const before = s.resnet.toTensorMap();
    const result = await runTraining(s);
    assert.ok(result.last!.trainCrossEntropy !== null && result.last!.trainCrossEntropy >= 0);
    const saved = await new RunDirectory(s.config.runDir).loadLast();
    assert.ok(!tensorsEqual(before, RunDirectory.withoutPrefix(saved!.tensors, 'resnet.')), 'ResNet unchanged');
    assert.ok([...saved!.tensors.keys()].some((n) => n.startsWith('resnet.')));
    assert.ok([...saved!.tensors.keys()].some((n) => n.startsWith('policy.')));
  } finally {
    s.dispose();
  }
});

test('stage 2 with --freeze-policy trains the ResNet only: the policy keeps its weights (its batch-norm statistics move)', async () => {
  const s = setup({ iterations: 2, evalEvery: 2, lr: 1e-3, entropyWeight: 0, penalty: 1 }, { stage: 2 });
  try {
    const weightsOnly = (m: TensorMap): TensorMap => new Map([...m].filter(([name]) => !isBatchNormBuffer(name)));
    const policyBefore = s.policy.toTensorMap();
    const resnetBefore = s.resnet.toTensorMap();
    const result = await runTraining({ ...s, config: { ...s.config, freezePolicy: true } });
    // Only the pass the cross-entropy trains (the sampled one) ran: the greedy pass's training figures are absent.
    assert.equal(result.last!.trainAccuracy, null);
    assert.equal(result.last!.trainRewardGreedy, null);
    assert.ok(result.last!.trainAccuracySampled !== null && result.last!.trainReward !== null);
    const saved = (await new RunDirectory(s.config.runDir).loadLast())!.tensors;
    const policyAfter = RunDirectory.withoutPrefix(saved, 'policy.');
    assert.ok(tensorsEqual(weightsOnly(policyBefore), weightsOnly(policyAfter)), 'policy weights changed');
    assert.ok(!tensorsEqual(policyBefore, policyAfter), 'policy running statistics did not follow the batches');
    assert.ok(!tensorsEqual(resnetBefore, RunDirectory.withoutPrefix(saved, 'resnet.')), 'ResNet unchanged');
  } finally {
    s.dispose();
  }
});

test('stage 2 with gathered blocks trains the ResNet on the ONNX engine, each block on the images that keep it', async () => {
  const s = setup({ iterations: 2, evalEvery: 2, lr: 1e-3, entropyWeight: 0, penalty: 1 }, { stage: 2 });
  try {
    const resnetBefore = s.resnet.toTensorMap();
    const logs: string[] = [];
    const result = await runTraining({ ...s, config: { ...s.config, blockExecution: 'gathered' } }, { log: (m) => logs.push(m) });
    assert.ok(logs.some((m) => /training passes: ONNX Runtime .*gathered blocks/.test(m)), logs.join('\n'));
    assert.ok(result.last!.trainCrossEntropy !== null && result.last!.trainCrossEntropy > 0);
    const saved = (await new RunDirectory(s.config.runDir).loadLast())!.tensors;
    assert.ok(!tensorsEqual(resnetBefore, RunDirectory.withoutPrefix(saved, 'resnet.')), 'ResNet unchanged');
  } finally {
    s.dispose();
  }
});

test('stage 2 asks the teacher for logits once per step when distilling, never otherwise', async () => {
  const classes = SYNTHETIC_BACKBONE.numClasses;
  let calls = 0;
  const teacher: RewardOracle = {
    name: 'uniform teacher',
    predict: async (_images, _count, _policy, rowImage) => new Int32Array(rowImage.length),
    async logits(_images, _count, policy, rowImage) {
      calls++;
      assert.ok(policy.every((v) => v === 1), 'the teacher runs every block');
      return new Float32Array(rowImage.length * classes);
    },
    dispose() {},
  };
  for (const distillWeight of [0, 0.5]) {
    const s = setup({ iterations: 3, evalEvery: 3, lr: 1e-3, entropyWeight: 0, penalty: 1 }, { stage: 2 });
    try {
      calls = 0;
      const result = await runTraining({ ...s, config: { ...s.config, distillWeight, distillTemperature: 2 }, oracle: teacher });
      assert.equal(calls, distillWeight > 0 ? 3 : 0);
      assert.ok(result.last!.trainCrossEntropy! > 0);
    } finally {
      s.dispose();
    }
  }
});

test('a run directory is never overwritten; resume needs a checkpoint', async () => {
  const s = setup({ iterations: 1, evalEvery: 1 });
  try {
    await runTraining(s);
    await assert.rejects(runTraining({ ...s, config: { ...s.config } }), /already holds a run/);
    const empty = tempRun();
    await assert.rejects(runTraining({ ...s, config: { ...s.config, runDir: empty, resume: true } }), /nothing to resume/);
    rmSync(s.config.runDir, { recursive: true, force: true });
  } finally {
    s.dispose();
  }
});

test('classifier pretraining replaces the policy features and keeps its head', async () => {
  const { pretrainPolicyFeatures } = await import('./pretrain.js');
  const { Rng } = await import('../util/rng.js');
  const s = setup({});
  try {
    const policy = s.policy as TinyPolicy;
    const before = policy.toTensorMap();
    await pretrainPolicyFeatures(policy, s.train, {
      policyArch: policy.net.arch,
      classes: 5,
      epochs: 0.5,
      lr: 1e-2,
      batchSize: 32,
      normalization: NORMALIZATIONS.none,
      rng: new Rng(1),
      seed: 3,
    });
    const after = policy.toTensorMap();
    for (const [name, t] of before) {
      const same = tensorsEqual(new Map([[name, t]]), new Map([[name, after.get(name)!]]));
      if (name.startsWith('fc.')) assert.ok(same, `${name} changed`);
      else if (name.endsWith('conv1.weight')) assert.ok(!same, `${name} unchanged`);
    }
  } finally {
    s.dispose();
  }
});

test('checkpoint selection: the best score wins, and with a block budget any checkpoint within it beats one outside', () => {
  const evaluation = (reward: number, blocksMean: number) => ({ reward, accuracy: 0.9, blocksMean });
  const record = (reward: number, blocksMean: number) => ({ selectionScore: reward, valBlocksMean: blocksMean });
  const free = { selectBy: 'reward' as const };
  assert.equal(beatsBest(free, evaluation(0.3, 9), undefined), true);
  assert.equal(beatsBest(free, evaluation(0.4, 9), record(0.3, 7)), true);
  assert.equal(beatsBest(free, evaluation(0.3, 7), record(0.3, 9)), false, 'a tie keeps the earlier checkpoint');
  const budget = { selectBy: 'reward' as const, selectMaxBlocks: 8 };
  assert.equal(beatsBest(budget, evaluation(0.5, 8.5), record(0.2, 7.5)), false, 'outside the budget never beats inside');
  assert.equal(beatsBest(budget, evaluation(0.2, 7.5), record(0.5, 8.5)), true, 'inside beats outside whatever the score');
  assert.equal(beatsBest(budget, evaluation(0.6, 9), record(0.5, 8.5)), true, 'while none is within it, the score decides');
  assert.equal(beatsBest(budget, evaluation(0.3, 8), record(0.25, 6)), true, 'a budget is inclusive');
  assert.equal(beatsBest({ selectBy: 'reward', selectMaxBlocks: 0 }, evaluation(0.5, 14), record(0.4, 2)), true, '0 = no budget');
  const last = { selectBy: 'last' as const, selectMaxBlocks: 8 };
  assert.equal(beatsBest(last, evaluation(0.1, 9), record(0.9, 7)), true, "'last' takes the latest evaluation, whatever its score or blocks");
});
