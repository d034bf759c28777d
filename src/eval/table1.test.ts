/**
 * Table 1: the values in the table are the values of the evaluation JSON they came from (copied, not
 * recomputed), the paper's numbers sit beside them, and what is missing shows as '—'.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BaselineEvaluation, MaskResult } from './baselines.js';
import { buildTable1, PAPER_TABLE1, paperCells, table1Section } from './table1.js';

function mask(accuracy: number, blocks: number, images = 10000): MaskResult {
  return {
    images,
    correct: Math.round(accuracy * images),
    accuracy,
    blocksMean: blocks,
    blocksStd: 0,
    flopsMean: 1e8,
    flopsStd: 0,
    distinctPolicies: 1,
    blockUsage: [],
    perClassAccuracy: [],
  };
}

/** An evaluation JSON as `evaluateBaselines` writes it, round-tripped through JSON like a results file. */
const evaluation: BaselineEvaluation = JSON.parse(
  JSON.stringify({
    kind: 'blockdrop-baselines',
    version: 1,
    backbone: { preset: 'resnet32', source: 'blockdrop_R32_C10_pk_E_164_A_0.923.t7' },
    split: 'test',
    images: 10000,
    k: 10,
    K: 15,
    flops: { convention: 'x', includesPolicy: false, full: 137725184, policy: 24479744 },
    engine: 'synthetic',
    full: mask(0.9231, 15),
    firstK: { ...mask(0.1663, 10), mask: '111111111100000', perStage: [5, 5, 0] },
    distributeK: { ...mask(0.4519, 10), mask: '111101110011100', perStage: [4, 3, 3] },
    randomK: {
      seeds: [0, 1, 2],
      accuracyMean: 0.25876666666666664,
      accuracyStd: 0.012345678901234,
      blocksMean: 10,
      flopsMean: 9.2e7,
      flopsStd: 1.5e6,
      perSeed: [mask(0.25, 10), mask(0.26, 10), mask(0.2663, 10)],
    },
    seconds: 1,
  } satisfies BaselineEvaluation),
) as BaselineEvaluation;

describe('buildTable1', () => {
  it('our cells equal the evaluation JSON; paper cells equal the paper; BlockDrop from its evaluations', () => {
    const bdBefore = { accuracy: 0.8812, blocksMean: 9.61, blocksStd: 1.2 };
    const bdAfter = { accuracy: 0.9101, blocksMean: 7.02 };
    const { json, markdown } = buildTable1(table1Section(evaluation, { before: bdBefore, after: bdAfter }, { source: 'results/baselines-resnet32.json' }));
    assert.equal(json.sections.length, 1);
    const s = json.sections[0]!;
    assert.equal(s.backbone, 'resnet32');
    assert.equal(s.paperBackbone, 'ResNet-32');
    assert.equal(s.measuredOn, 'the test split, 10000 images');
    const row = (m: string) => s.rows.find((r) => r.method === m)!;
    assert.deepEqual(s.rows.map((r) => r.label), ['FirstK', 'RandomK', 'DistributeK', 'BlockDrop', 'Full ResNet']);

    assert.equal(row('firstK').before.ours!.accuracy, evaluation.firstK.accuracy);
    assert.equal(row('firstK').before.ours!.blocks, evaluation.firstK.blocksMean);
    assert.equal(row('distributeK').before.ours!.accuracy, evaluation.distributeK.accuracy);
    assert.equal(row('randomK').before.ours!.accuracy, evaluation.randomK.accuracyMean);
    assert.equal(row('randomK').before.ours!.accuracyStd, evaluation.randomK.accuracyStd);
    assert.equal(row('randomK').before.ours!.blocks, evaluation.randomK.blocksMean);
    assert.equal(row('full').before.ours!.accuracy, evaluation.full!.accuracy);
    assert.equal(row('full').before.ours!.blocks, 15);
    // The full ResNet is not finetuned: its 'after' cells repeat 'before', as in the paper.
    assert.deepEqual(row('full').after.ours, row('full').before.ours);
    assert.equal(row('blockdrop').before.ours!.accuracy, bdBefore.accuracy);
    assert.equal(row('blockdrop').before.ours!.blocksStd, bdBefore.blocksStd);
    assert.equal(row('blockdrop').after.ours!.blocks, bdAfter.blocksMean);
    // baselines were not finetuned
    for (const m of ['firstK', 'randomK', 'distributeK']) assert.equal(row(m).after.ours, null);
    assert.equal(row('firstK').before.ours!.source, 'results/baselines-resnet32.json');

    // paper: 16.6 / 10, 84.3 / 7 (FirstK); BlockDrop 88.6 / 9.4, 91.3 / 6.9; full 92.3 / 15
    assert.equal(row('firstK').before.paper!.accuracy, 0.166);
    assert.equal(row('firstK').after.paper!.blocks, 7);
    assert.equal(row('blockdrop').before.paper!.blocks, 9.4);
    assert.equal(row('blockdrop').after.paper!.accuracy, 0.913);
    assert.equal(row('full').after.paper!.accuracy, 0.923);

    // Markdown shows the same numbers, in percent
    const line = (label: string) => markdown.split('\n').find((l) => l.startsWith(`| ${label} |`))!;
    assert.equal(line('FirstK'), '| FirstK | 16.63 | 16.6 | 10 | 10 | — | 84.3 | — | 7 |');
    assert.equal(line('RandomK'), '| RandomK | 25.88 ± 1.23 | 20.5 | 10 | 10 | — | 88.9 | — | 7 |');
    assert.equal(line('DistributeK'), '| DistributeK | 45.19 | 23.4 | 10 | 10 | — | 90.2 | — | 7 |');
    assert.equal(line('**BlockDrop**'), '| **BlockDrop** | 88.12 | 88.6 | 9.61 ± 1.20 | 9.4 | 91.01 | 91.3 | 7.02 | 6.9 |');
    assert.equal(line('Full ResNet'), '| Full ResNet | 92.31 | 92.3 | 15 | 15 | 92.31 | 92.3 | 15 | 15 |');
    assert.match(markdown, /### ResNet-32 \(resnet32\) on CIFAR-10/);
  });

  it('leaves the paper columns empty for backbones the paper did not use, and our columns empty without numbers', () => {
    const { json, markdown } = buildTable1([
      table1Section({ ...evaluation, backbone: { preset: 'resnet56a', source: 'akamaster' } }),
      { backbone: 'resnet110', ours: {} },
    ]);
    const [aka, r110] = json.sections;
    assert.equal(aka!.paperBackbone, null);
    for (const r of aka!.rows) {
      assert.equal(r.before.paper, null);
      assert.equal(r.after.paper, null);
    }
    assert.equal(aka!.rows.find((r) => r.method === 'blockdrop')!.before.ours, null);
    assert.equal(r110!.paperBackbone, 'ResNet-110');
    assert.equal(r110!.rows.find((r) => r.method === 'blockdrop')!.after.paper!.accuracy, 0.936);
    assert.ok(r110!.rows.every((r) => r.before.ours === null && r.after.ours === null));
    assert.match(markdown, /\| Full ResNet \| — \| 93\.2 \| — \| 54 \|/);
    assert.match(markdown, /### resnet56a on CIFAR-10/);
  });

  it('holds the whole of the paper\'s Table 1 as exact fractions', () => {
    assert.equal(Object.keys(PAPER_TABLE1).length, 2);
    assert.deepEqual(paperCells('ResNet-110', 'cifar100', 'randomK'), {
      before: { accuracy: 0.663, blocks: 50, source: 'paper, Table 1' },
      after: { accuracy: 0.684, blocks: 31, source: 'paper, Table 1' },
    });
    assert.equal(String(paperCells('ResNet-32', 'cifar10', 'distributeK')!.after.accuracy), '0.902');
    assert.equal(paperCells(null, 'cifar10', 'full'), null);
  });
});
