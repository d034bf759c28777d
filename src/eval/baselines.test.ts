/**
 * Baselines: the masks themselves (FirstK keeps exactly the first k, DistributeK spreads k over the stages,
 * RandomK keeps exactly k per image and is seeded), then the evaluation on a synthetic model whose answer is
 * known (right iff a chosen block runs), then the real engines (ONNX Runtime and tfjs) agreeing on a tiny ResNet-8.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadTorchCheckpoint, stateDict } from '../checkpoint/torch.js';
import type { ImageSet } from '../data/cifar.js';
import { BlockdropError } from '../errors.js';
import { blockCount, CIFAR10_CLASSES, getPreset, NORMALIZATIONS, type ResNetConfig } from '../models/config.js';
import { policyFlops, resnetFlops } from '../models/flops.js';
import type { LoadedBackbone } from '../models/load.js';
import { fixturesDir } from '../testing/shared.js';
import type { RewardOracle } from '../train/models.js';
import {
  baselineMasks,
  distributeKPerStage,
  evaluateBaselines,
  evaluateBaselinesOn,
  meanSampleStd,
  staticBaselineMask,
} from './baselines.js';

const r32 = getPreset('resnet32').arch;
const r110 = getPreset('resnet110').arch;

const rows = (m: Uint8Array, K: number) => Array.from({ length: m.length / K }, (_, i) => [...m.subarray(i * K, (i + 1) * K)]);

describe('baseline masks', () => {
  it('FirstK keeps exactly the first k blocks, for every image', () => {
    for (const k of [0, 1, 7, 10, 15]) {
      const m = baselineMasks('firstK', r32, k, { images: 3 });
      for (const row of rows(m, 15)) assert.deepEqual(row, Array.from({ length: 15 }, (_, t) => (t < k ? 1 : 0)));
    }
  });

  it('DistributeK spreads k evenly over the stages, first blocks of each stage', () => {
    assert.deepEqual(distributeKPerStage([5, 5, 5], 10), [4, 3, 3]);
    assert.deepEqual(distributeKPerStage([5, 5, 5], 9), [3, 3, 3]);
    assert.deepEqual(distributeKPerStage([5, 5, 5], 7), [3, 2, 2]);
    assert.deepEqual(distributeKPerStage([18, 18, 18], 21), [7, 7, 7]);
    assert.deepEqual(distributeKPerStage([18, 18, 18], 17), [6, 6, 5]);
    assert.deepEqual(distributeKPerStage([3, 4, 23, 3], 11), [1, 1, 8, 1]); // proportional to stage sizes
    assert.deepEqual(distributeKPerStage([5, 5, 5], 15), [5, 5, 5]);
    assert.equal([...staticBaselineMask('distributeK', r32, 10)].join(''), '111101110011100');
    const m = staticBaselineMask('distributeK', r110, 21);
    assert.equal(m.reduce((a, b) => a + b, 0), 21);
    for (let s = 0; s < 3; s++) {
      const stage = [...m.subarray(s * 18, (s + 1) * 18)];
      assert.deepEqual(stage, Array.from({ length: 18 }, (_, i) => (i < 7 ? 1 : 0)));
    }
  });

  it('RandomK keeps exactly k blocks per image, is seeded, varies across images and covers blocks uniformly', () => {
    const n = 3000;
    const a = baselineMasks('randomK', r32, 10, { seed: 7, images: n });
    const b = baselineMasks('randomK', r32, 10, { seed: 7, images: n });
    const c = baselineMasks('randomK', r32, 10, { seed: 8, images: n });
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    const all = rows(a, 15);
    for (const row of all) assert.equal(row.reduce((x, y) => x + y, 0), 10);
    assert.ok(new Set(all.map((r) => r.join(''))).size > 500, 'masks differ between images');
    for (let t = 0; t < 15; t++) {
      const rate = all.reduce((s, r) => s + r[t]!, 0) / n;
      assert.ok(Math.abs(rate - 10 / 15) < 0.04, `block ${t} kept at rate ${rate}`);
    }
    // The first images get the same masks whatever the number of images (so --limit agrees with a full run).
    assert.deepEqual(baselineMasks('randomK', r32, 10, { seed: 7, images: 5 }), a.subarray(0, 5 * 15));
  });

  it('rejects budgets outside 0..K with a clear error', () => {
    assert.throws(() => baselineMasks('firstK', r32, 16), BlockdropError);
    assert.throws(() => baselineMasks('randomK', r32, -1), /k = -1 is invalid/);
    assert.throws(() => baselineMasks('distributeK', r32, 2.5), BlockdropError);
  });
});

/** n images of noise, labels 0..9 in turn. */
function noiseSet(n: number, seed = 1): ImageSet {
  let s = seed;
  const images = Uint8Array.from({ length: n * 3072 }, () => (s = (s * 1103515245 + 12345) >>> 0) >>> 24);
  return { images, labels: Uint8Array.from({ length: n }, (_, i) => i % 10), count: n, height: 32, width: 32, classes: CIFAR10_CLASSES };
}

/** A model that is right exactly when block `critical` runs (one batch holding the whole set: row r = image r). */
function criticalBlockOracle(set: ImageSet, K: number, critical: number): RewardOracle & { calls: number } {
  const o = {
    name: 'synthetic',
    calls: 0,
    async predict(_images: Float32Array, _count: number, policy: Uint8Array, rowImage: Int32Array): Promise<Int32Array> {
      o.calls++;
      const out = new Int32Array(rowImage.length);
      for (let r = 0; r < rowImage.length; r++) {
        const label = set.labels[rowImage[r]!]!;
        out[r] = policy[r * K + critical] ? label : (label + 1) % 10;
      }
      return out;
    },
    dispose() {},
  };
  return o;
}

describe('evaluateBaselinesOn with a synthetic model whose answer is known', () => {
  const arch: ResNetConfig = r32;
  const K = blockCount(arch);
  const n = 400;
  const set = noiseSet(n);
  const critical = 12; // stage 3, index 2

  it('FirstK, DistributeK, RandomK and the full network get exactly the accuracy their masks imply', async () => {
    const k = 10;
    const oracle = criticalBlockOracle(set, K, critical);
    const result = await evaluateBaselinesOn(oracle, set, {
      arch,
      normalization: NORMALIZATIONS.cifar,
      k,
      seeds: [0, 1, 2],
      batchSize: n,
    });
    assert.equal(result.images, n);
    assert.equal(result.full!.accuracy, 1);
    assert.equal(result.firstK.accuracy, 0); // block 12 is not among the first 10
    assert.equal(result.distributeK.accuracy, 1); // stage 3 keeps its first 3 blocks: 10, 11, 12
    assert.equal(result.distributeK.mask, '111101110011100');
    assert.deepEqual(result.distributeK.perStage, [4, 3, 3]);
    const expected = [0, 1, 2].map((seed) => {
      const m = baselineMasks('randomK', arch, k, { seed, images: n });
      let hit = 0;
      for (let i = 0; i < n; i++) hit += m[i * K + critical]!;
      return hit / n;
    });
    assert.deepEqual(result.randomK.perSeed.map((r) => r.accuracy), expected);
    const stats = meanSampleStd(expected);
    assert.equal(result.randomK.accuracyMean, stats.mean);
    assert.equal(result.randomK.accuracyStd, stats.std);
    assert.ok(Math.abs(stats.mean - k / K) < 0.06);
    // blocks and FLOPs (backbone only, policy stated separately)
    assert.equal(result.firstK.blocksMean, k);
    assert.equal(result.firstK.blocksStd, 0);
    assert.equal(result.randomK.blocksMean, k);
    for (const r of result.randomK.perSeed) {
      assert.equal(r.blocksMean, k);
      assert.equal(r.blocksStd, 0);
    }
    assert.equal(result.firstK.flopsMean, resnetFlops(arch, staticBaselineMask('firstK', arch, k)));
    assert.equal(result.distributeK.flopsMean, resnetFlops(arch, staticBaselineMask('distributeK', arch, k)));
    assert.equal(result.full!.flopsMean, resnetFlops(arch));
    assert.equal(result.flops.full, resnetFlops(arch));
    assert.equal(result.flops.includesPolicy, false);
    assert.equal(result.flops.policy, policyFlops(arch));
    assert.ok(result.randomK.flopsStd > 0); // stride-2 blocks are cheaper, so random masks differ in cost
    assert.equal(result.firstK.distinctPolicies, 1);
    assert.deepEqual(result.firstK.blockUsage, Array.from({ length: K }, (_, t) => (t < k ? 1 : 0)));
    assert.deepEqual(result.full!.perClassAccuracy, new Array(10).fill(1));
  });

  it('honours limit and batch size (same numbers for the first images), and can leave out the full network', async () => {
    const oracle = criticalBlockOracle(set, K, critical);
    const a = await evaluateBaselinesOn(oracle, set, { arch, normalization: NORMALIZATIONS.cifar, k: 13, seeds: [4], limit: 100, batchSize: 100, includeFull: false });
    // three variants (FirstK, DistributeK, one RandomK seed), one batch
    assert.equal(oracle.calls, 3);
    assert.equal(a.full, undefined);
    assert.equal(a.images, 100);
    assert.equal(a.firstK.accuracy, 1); // k = 13 includes block 12
    const m = baselineMasks('randomK', arch, 13, { seed: 4, images: 100 });
    let hit = 0;
    for (let i = 0; i < 100; i++) hit += m[i * K + critical]!;
    assert.equal(a.randomK.accuracyMean, hit / 100);
    assert.equal(a.randomK.accuracyStd, 0);
  });
});

describe('evaluateBaselines on the real engines (tiny ResNet-8 fixture)', () => {
  const fixture = join(fixturesDir, 'resnet8_zip.pt');
  const skip = existsSync(fixture) ? false : `fixture ${fixture} missing`;
  it('the ONNX Runtime executor and the tfjs masked forward give the same accuracies', { skip }, async () => {
    const arch = getPreset('resnet8').arch;
    const backbone: LoadedBackbone = {
      preset: 'resnet8',
      arch,
      normalization: NORMALIZATIONS.none,
      tensors: stateDict(await loadTorchCheckpoint(fixture)),
      reason: 'test',
      source: fixture,
    };
    const set = noiseSet(24, 3);
    const [onnx] = await evaluateBaselines({ backbone, k: 2, seeds: [0, 1], set, engine: 'onnx', threads: 1 });
    const [tfjs] = await evaluateBaselines({ backbone, k: 2, seeds: [0, 1], set, engine: 'tfjs' });
    assert.match(onnx!.engine, /ONNX/);
    assert.match(tfjs!.engine, /tfjs/);
    for (const key of ['full', 'firstK', 'distributeK'] as const) assert.equal(onnx![key]!.correct, tfjs![key]!.correct, key);
    assert.deepEqual(onnx!.randomK.perSeed.map((r) => r.correct), tfjs!.randomK.perSeed.map((r) => r.correct));
    assert.equal(onnx!.firstK.mask, '110');
    assert.equal(onnx!.split, 'given');
    // The reference fixture sanity: the JSON is serialisable as-is.
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(onnx)));
  });
});
