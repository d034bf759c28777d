/**
 * BlockDropPool (worker threads, one ORT thread each) answers exactly as one BlockDropModel: the same
 * logits, decisions and FLOPs for policy, synthetic (same seed) and explicit decisions, for batches that
 * split unevenly and for single images; errors cross the thread boundary as one-line BlockdropErrors.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadTorchCheckpoint, stateDict } from '../checkpoint/torch.js';
import { BlockdropError } from '../errors.js';
import { exportBlockDrop } from '../export/onnx.js';
import { getPreset, NORMALIZATIONS, policyArchFor } from '../models/config.js';
import { initResNetWeights } from '../models/weights.js';
import { Rng } from '../util/rng.js';
import { fixturesDir } from '../testing/shared.js';
import { BlockDropModel, type Prediction } from './model.js';
import { BlockDropPool, shardRanges } from './pool.js';

const arch = getPreset('resnet8').arch;
const K = 3;
const N = 7; // odd: the two shards differ in size
const pixels = new Uint8Array(N * 32 * 32 * 3);
{
  const rng = new Rng(3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.floor(rng.next() * 256);
}

let root: string;
let dir: string;
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'blockdrop-pool-test-'));
  dir = join(root, 'export');
  const weights = stateDict(await loadTorchCheckpoint(join(fixturesDir, 'resnet8_zip.pt')));
  const policy = initResNetWeights(policyArchFor(arch), 5);
  await exportBlockDrop({ arch, normalization: NORMALIZATIONS.cifar, resnet: weights, policy, outDir: dir });
});
after(() => rmSync(root, { recursive: true, force: true }));

function assertSamePrediction(a: Prediction, b: Prediction): void {
  assert.deepEqual(a.classes, b.classes);
  assert.deepEqual(a.keep, b.keep);
  assert.deepEqual(a.blocksUsed, b.blocksUsed);
  assert.deepEqual(a.flops, b.flops);
  assert.equal(a.logits.length, b.logits.length);
  for (let i = 0; i < a.logits.length; i++) assert.ok(Math.abs(a.logits[i]! - b.logits[i]!) <= 1e-5, `logit ${i}`);
  assert.equal(a.policyProbabilities === null, b.policyProbabilities === null);
}

describe('shardRanges', () => {
  it('covers every image once, in order, in near-equal parts', () => {
    assert.deepEqual(shardRanges(7, 2), [[0, 3], [3, 7]]);
    assert.deepEqual(shardRanges(1, 2), [[0, 1]]);
    assert.deepEqual(shardRanges(128, 2), [[0, 64], [64, 128]]);
  });
});

describe('BlockDropPool', () => {
  it('matches one BlockDropModel: policy decisions, full network, policy probabilities, single images', async () => {
    const single = await BlockDropModel.load(dir, { threads: 1 });
    const pool = await BlockDropPool.load(dir, { workers: 2 });
    try {
      assert.equal(pool.info.workers, 2);
      assert.equal(pool.info.threads, 1);
      assert.equal(pool.info.decisions, 'policy');
      const ref = await single.predict(pixels);
      const got = await pool.predict(pixels, { shape: [N, 32, 32, 3] });
      assertSamePrediction(got, ref);
      assertSamePrediction(await pool.predictFull(pixels), await single.predictFull(pixels));
      const p = await pool.policyProbabilities(pixels);
      const q = await single.policyProbabilities(pixels);
      assert.equal(p.length, N * K);
      for (let i = 0; i < p.length; i++) assert.ok(Math.abs(p[i]! - q[i]!) <= 1e-6);
      // single images, several in flight at once (spread over the workers)
      const one = (i: number) => pixels.subarray(i * 3072, (i + 1) * 3072);
      const each = await Promise.all(Array.from({ length: N }, (_, i) => pool.predict(one(i))));
      each.forEach((r, i) => assert.equal(r.classes[0], ref.classes[i]));
    } finally {
      await pool.release();
      await single.release();
    }
  });

  it('draws the same synthetic decisions as one model with the same seed, and charges the policy', async () => {
    const single = await BlockDropModel.load(dir, { threads: 1, keepRate: 0.5, seed: 9 });
    const pool = await BlockDropPool.load(dir, { workers: 2, keepRate: 0.5, seed: 9 });
    try {
      assert.equal(pool.info.decisions, 'synthetic');
      for (let call = 0; call < 2; call++) {
        const a = await pool.predict(pixels);
        const b = await single.predict(pixels);
        assertSamePrediction(a, b);
        assert.ok(a.policyProbabilities, 'the policy ran for its cost');
      }
      const keep = new Uint8Array(N * K).fill(1);
      keep[0] = 0;
      assertSamePrediction(await pool.predict(pixels, { keep }), await single.predict(pixels, { keep }));
    } finally {
      await pool.release();
      await single.release();
    }
  });

  it('reports bad input as one-line BlockdropErrors, from the main thread and from the workers', async () => {
    const pool = await BlockDropPool.load(dir, { workers: 2 });
    try {
      await assert.rejects(pool.predict(new Uint8Array(100)), (e: Error) => e instanceof BlockdropError && /whole number of 32×32×3 images/.test(e.message));
      await assert.rejects(pool.predict(pixels, { keep: new Uint8Array(5) }), (e: Error) => e instanceof BlockdropError && /keep masks hold 5 values/.test(e.message));
      await assert.rejects(pool.predict(pixels, { shape: [N, 3, 32, 32] }), (e: Error) => e instanceof BlockdropError && /3 channels/.test(e.message));
      // the pool still answers after errors
      assert.equal((await pool.predict(pixels)).classes.length, N);
    } finally {
      await pool.release();
    }
    await assert.rejects(pool.predict(pixels), /released/);
    await assert.rejects(BlockDropPool.load(join(root, 'missing')), (e: Error) => e instanceof BlockdropError && !e.message.includes('\n'));
  });
});
