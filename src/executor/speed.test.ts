/** measureSpeedup: FLOPs ratio and blocks from the executor's own decisions, both rates measured and positive. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportBlockDrop } from '../export/onnx.js';
import { blockCount, getPreset, NORMALIZATIONS } from '../models/config.js';
import { initResNetWeights } from '../models/weights.js';
import { Rng } from '../util/rng.js';
import { BlockDropModel } from './model.js';
import { measureSpeedup } from './speed.js';

test('measureSpeedup reports the FLOPs ratio of the decisions it timed, and both rates', async () => {
  const root = mkdtempSync(join(tmpdir(), 'blockdrop-speed-test-'));
  const arch = getPreset('resnet8').arch;
  try {
    await exportBlockDrop({ arch, normalization: NORMALIZATIONS.cifar, resnet: initResNetWeights(arch, 1), outDir: root });
    const count = 24;
    const images = new Uint8Array(count * 32 * 32 * 3);
    const rng = new Rng(3);
    for (let i = 0; i < images.length; i++) images[i] = Math.floor(rng.next() * 256);
    // Keep nothing: only the stem, the downsampling shortcuts and the head run.
    const none = await BlockDropModel.load(root, { keepRate: 0, threads: 1 });
    try {
      const s = await measureSpeedup(none, images, count, { batchSize: 8, rounds: 2 });
      assert.equal(s.images, count);
      assert.equal(s.blockdrop.blocksMean, 0);
      assert.ok(s.flopsRatio > 0 && s.flopsRatio < 0.5, `ratio ${s.flopsRatio}`);
      assert.ok(s.full.imagesPerSecond > 0 && s.blockdrop.imagesPerSecond > 0);
      assert.ok(Math.abs(s.speedup - s.blockdrop.imagesPerSecond / s.full.imagesPerSecond) < 1e-9);
      assert.ok(Math.abs(s.idealSpeedup * s.flopsRatio - 1) < 1e-9);
    } finally {
      await none.release();
    }
    const all = await BlockDropModel.load(root, { keepRate: 1, threads: 1 });
    try {
      const s = await measureSpeedup(all, images, count, { batchSize: 8, rounds: 1 });
      assert.equal(s.blockdrop.blocksMean, blockCount(arch));
      assert.ok(Math.abs(s.flopsRatio - 1) < 1e-9, `every block kept, no policy: ratio ${s.flopsRatio}`);
    } finally {
      await all.release();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
