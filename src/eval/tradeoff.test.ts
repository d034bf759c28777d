/**
 * Trade-off points: the weights directory is read into the ResNet family, points carry their provenance (ours
 * vs the paper's) and FLOP convention, and the family evaluation measures the real checkpoints (a few images).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadCifar10 } from '../data/cifar.js';
import { getPreset } from '../models/config.js';
import { resnetFlops } from '../models/flops.js';
import { cifarDir, weightsDir } from '../testing/shared.js';
import type { BaselineEvaluation } from './baselines.js';
import { discoverWeights, evaluateResNetFamily, PAPER_FIG3_CIFAR10, tradeoffPoints, type FamilyEvaluation } from './tradeoff.js';

describe('discoverWeights', () => {
  it('maps akamaster and BlockDrop checkpoint names to presets and ignores other files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'blockdrop-weights-'));
    try {
      for (const f of ['akamaster_resnet56-4bfd9763.th', 'akamaster_resnet20-12fca82f.th', 'blockdrop_R32_C10_pk_E_164_A_0.923.t7', 'notes.txt', 'resnet.th']) {
        writeFileSync(join(dir, f), '');
      }
      assert.deepEqual(
        discoverWeights(dir).map((w) => [w.preset, w.origin]),
        [
          ['resnet20a', 'akamaster'],
          ['resnet56a', 'akamaster'],
          ['resnet32', 'blockdrop'],
        ],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.throws(() => discoverWeights('/nonexistent/weights'), /cannot read the weights directory/);
  });
});

describe('tradeoffPoints', () => {
  const family: FamilyEvaluation = {
    kind: 'blockdrop-resnet-family',
    version: 1,
    split: 'test',
    images: 10000,
    flopsConvention: '',
    models: [
      { preset: 'resnet20a', file: 'a', origin: 'akamaster', blocks: 9, flops: resnetFlops(getPreset('resnet20a').arch), images: 10000, correct: 9159, accuracy: 0.9159, seconds: 1, engine: 'x' },
      { preset: 'resnet32', file: 'b', origin: 'blockdrop', blocks: 15, flops: resnetFlops(getPreset('resnet32').arch), images: 10000, correct: 9231, accuracy: 0.9231, seconds: 1, engine: 'x' },
    ],
  };
  const baseline = {
    k: 10,
    backbone: { preset: 'resnet32', source: '' },
    firstK: { accuracy: 0.16, flopsMean: 9.3e7 },
    distributeK: { accuracy: 0.45, flopsMean: 9.4e7 },
    randomK: { accuracyMean: 0.26, accuracyStd: 0.01, flopsMean: 9.2e7, flopsStd: 1.5e6 },
  } as unknown as BaselineEvaluation;

  it('keeps our values, labels every point with its source and whether FLOPs include a policy', () => {
    const points = tradeoffPoints({ family, baselines: [baseline], blockdrop: [{ label: 'γ=5', accuracy: 0.91, flopsMean: 1.0e8, flopsStd: 2e6 }] });
    const ours = points.filter((p) => p.source === 'ours');
    assert.equal(ours.length, 2 + 3 + 1);
    assert.deepEqual(ours[0], { series: 'ResNet (akamaster)', label: 'resnet20a', source: 'ours', flops: family.models[0]!.flops, accuracy: 0.9159, includesPolicy: false });
    assert.equal(ours[1]!.series, 'ResNet (BlockDrop ckpt)');
    const random = ours.find((p) => p.series === 'RandomK')!;
    assert.equal(random.accuracy, 0.26);
    assert.equal(random.accuracyStd, 0.01);
    assert.equal(random.flopsStd, 1.5e6);
    assert.equal(random.includesPolicy, false);
    const bd = ours.find((p) => p.series === 'BlockDrop')!;
    assert.equal(bd.includesPolicy, true);
    assert.equal(bd.flops, 1.0e8);
    const paper = points.filter((p) => p.source === 'paper');
    assert.equal(paper.length, PAPER_FIG3_CIFAR10.length);
    assert.ok(paper.every((p) => /Fig\. 3/.test(p.note ?? '')));
    assert.deepEqual(
      [...new Set(tradeoffPoints({ paper: 'blockdrop-and-resnet' }).map((p) => p.series))],
      ['BlockDrop', 'ResNet'],
    );
    assert.equal(tradeoffPoints({ paper: 'none' }).length, 0);
  });
});

describe('evaluateResNetFamily on the real checkpoints', () => {
  const file = join(weightsDir, 'akamaster_resnet20-12fca82f.th');
  const skip = existsSync(file) && existsSync(cifarDir) ? false : 'shared weights or CIFAR-10 missing';
  it('measures accuracy and FLOPs of a full network (40 test images)', { skip }, async () => {
    const set = loadCifar10({ dataDir: cifarDir, split: 'test' });
    const result = await evaluateResNetFamily({
      weights: discoverWeights(weightsDir).filter((w) => w.preset === 'resnet20a'),
      set,
      limit: 40,
      threads: 1,
    });
    assert.equal(result.models.length, 1);
    const m = result.models[0]!;
    assert.equal(m.images, 40);
    assert.equal(m.flops, resnetFlops(getPreset('resnet20a').arch));
    assert.ok(m.accuracy >= 0.8, `resnet20a got ${m.accuracy} on 40 test images`);
  });
});
