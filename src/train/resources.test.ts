/**
 * Resource bounds of long runs: the number of live TensorFlow.js tensors does not grow from step to
 * step (stage 1 and stage 2, evaluations and checkpoints in between), and an output directory that
 * cannot be written is reported as one clear error before any training time is spent, or when a save
 * fails mid-run, with the previous checkpoint intact.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/index.js';
import { saveModelCheckpoint } from '../checkpoint/store.js';
import { BlockdropError } from '../errors.js';
import { exportBlockDrop } from '../export/onnx.js';
import { getPreset, NORMALIZATIONS } from '../models/config.js';
import { initResNetWeights } from '../models/weights.js';
import type { Stage1Config } from './config.js';
import { RunDirectory } from './run-dir.js';
import { syntheticTrainingSetup } from './synthetic.js';
import { runTraining, type TrainingSetup } from './trainer.js';

const root = mkdtempSync(join(tmpdir(), 'blockdrop-resources-'));
after(() => rmSync(root, { recursive: true, force: true }));
before(async () => {
  await initBackend('wasm');
});
const isRoot = process.getuid?.() === 0;

let runs = 0;
function setup(config: Partial<Stage1Config>, stage: 1 | 2 = 1): TrainingSetup & { dispose(): void } {
  return syntheticTrainingSetup(
    { runDir: join(root, `run${runs++}`), batchSize: 16, iterations: 12, evalEvery: 4, samples: 2, ...config },
    { stage, trainImages: 96, valImages: 32 },
  );
}

for (const stage of [1, 2] as const) {
  test(`stage ${stage}: live tensors stay flat over training steps, evaluations and checkpoints`, async (t) => {
    const iterations = stage === 1 ? 8 : 5;
    const s = setup({ iterations, evalEvery: stage === 1 ? 3 : 2, ...(stage === 2 ? { penalty: 5, batchSize: 8 } : {}) }, stage);
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    try {
      await runTraining(s, { onProgress: (p) => p.phase === 'train' && counts.push(tf.memory().numTensors) });
      assert.equal(counts.length, iterations);
      // The first step creates Adam's moment estimates; from then on every step ends with the same tensors.
      const steady = counts.slice(1);
      assert.ok(steady.every((c) => c === steady[0]), `tensors per step: ${counts.join(', ')}`);
      t.diagnostic(`live tensors: ${before} before the run, ${counts.join(', ')} after each step`);
    } finally {
      s.dispose();
    }
    // Everything the run made is released with it (the optimizer disposes its state at the end).
    const left = tf.memory().numTensors;
    assert.ok(left <= before, `${left - before} tensors outlive the run`);
  });
}

test('an unwritable run directory fails at the start, before any training step', async (t) => {
  const file = join(root, 'a-file');
  writeFileSync(file, 'x');
  let steps = 0;
  const s = setup({ runDir: join(file, 'run') });
  try {
    await assert.rejects(runTraining(s, { onProgress: () => steps++ }), (e: unknown) =>
      e instanceof BlockdropError && /^cannot write .*a-file\/run\/checkpoints: a part of the path .* is not a directory; choose a writable --run-dir directory$/.test(e.message));
    assert.equal(steps, 0);
    if (isRoot) {
      t.diagnostic('read-only directory case skipped: running as root, which writes into read-only directories anyway');
      return;
    }
    const ro = join(root, 'read-only');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    try {
      await assert.rejects(runTraining({ ...s, config: { ...s.config, runDir: join(ro, 'run') } }), (e: unknown) =>
        e instanceof BlockdropError && /permission denied/.test(e.message));
    } finally {
      chmodSync(ro, 0o755);
    }
  } finally {
    s.dispose();
  }
});

test('a save that fails mid-run stops the run with a clear error and leaves the previous checkpoint intact', async () => {
  const s = setup({ iterations: 8, evalEvery: 4 });
  const checkpoints = join(s.config.runDir, 'checkpoints');
  try {
    await assert.rejects(
      runTraining(s, {
        onProgress: (p) => {
          // Before the second evaluation: its checkpoint files cannot be written (directories in the way).
          if (p.phase === 'train' && p.iteration === 3) {
            for (const kind of ['state', 'best']) mkdirSync(join(checkpoints, `${kind}-00000004.safetensors`));
          }
        },
      }),
      (e: unknown) => e instanceof BlockdropError && /^cannot write .*checkpoints\/(state|best)-00000004\.safetensors: .* is a directory; choose a writable --out directory$/.test(e.message),
    );
    const last = await new RunDirectory(s.config.runDir).loadLast();
    assert.equal(last?.meta.iteration, 0);
  } finally {
    s.dispose();
  }
});

test('checkpoints and exports into an unwritable place give one clear error and leave nothing behind', async (t) => {
  const file = join(root, 'plain-file');
  writeFileSync(file, 'x');
  const tensors = new Map([['w', { dtype: 'float32' as const, shape: [2], data: Float32Array.of(1, 2) }]]);
  await assert.rejects(saveModelCheckpoint(join(file, 'model'), { tensors, meta: {} }), (e: unknown) =>
    e instanceof BlockdropError && /^cannot write .*plain-file\/model\.json: a part of the path .* is not a directory; choose a writable --out directory$/.test(e.message));
  const arch = getPreset('resnet8').arch;
  const resnet = initResNetWeights(arch, 1);
  await assert.rejects(exportBlockDrop({ arch, normalization: NORMALIZATIONS.none, resnet, outDir: join(file, 'export') }), (e: unknown) =>
    e instanceof BlockdropError && /^cannot write .*plain-file\/export: a part of the path .* is not a directory; choose a writable --out directory$/.test(e.message));
  if (isRoot) {
    t.diagnostic('read-only directory case skipped: running as root, which writes into read-only directories anyway');
    return;
  }
  const ro = join(root, 'ro-out');
  mkdirSync(ro);
  chmodSync(ro, 0o555);
  try {
    await assert.rejects(saveModelCheckpoint(join(ro, 'model'), { tensors, meta: {} }), /permission denied/);
    await assert.rejects(exportBlockDrop({ arch, normalization: NORMALIZATIONS.none, resnet, outDir: join(ro, 'export') }), /permission denied/);
  } finally {
    chmodSync(ro, 0o755);
  }
});
