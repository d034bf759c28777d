/**
 * reportFromRun on a tiny run directory (ResNet-8 fixture backbone, a seeded untrained policy, 30 test images):
 * the report's numbers are the evaluation's, FLOPs include the policy, baselines sit at the policy's budget.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { saveModelCheckpoint } from '../checkpoint/store.js';
import { getPreset, policyArchFor } from '../models/config.js';
import { policyFlops, resnetFlops } from '../models/flops.js';
import { initResNetWeights } from '../models/weights.js';
import { cifarDir, fixturesDir } from '../testing/shared.js';
import { evaluationFromDecisions, reportFromRun } from './run.js';

const fixture = join(fixturesDir, 'resnet8_zip.pt');
const skip = existsSync(fixture) && existsSync(cifarDir) ? false : 'ResNet-8 fixture or CIFAR-10 missing in ../shared';

describe('reportFromRun', () => {
  it('evaluates the run\'s policy, the baselines at its budget, and writes the report', { skip }, async () => {
    const root = mkdtempSync(join(tmpdir(), 'blockdrop-run-report-'));
    try {
      const arch = getPreset('resnet8').arch;
      writeFileSync(join(root, 'config.json'), JSON.stringify({ resnet: fixture, arch: 'resnet8', dataDir: cifarDir, penalty: -1 }));
      writeFileSync(
        join(root, 'metrics.jsonl'),
        [0, 100, 200].map((iteration, i) => JSON.stringify({ iteration, valReward: i * 0.1, valAccuracy: 0.1 + i * 0.01, valBlocksMean: 3 - i * 0.5, valDistinctPolicies: i + 1 })).join('\n') + '\n',
      );
      await saveModelCheckpoint(join(root, 'policy'), { tensors: initResNetWeights(policyArchFor(arch), 5), meta: { kind: 'blockdrop-policy' } });
      const out = join(root, 'report.html');
      const r = await reportFromRun({ runDir: root, limit: 30, threads: 1, seeds: [0], out });
      assert.equal(r.evaluation.images, 30);
      assert.equal(r.decisions.keep.length, 30 * 3);
      // FLOPs: per-image backbone FLOPs + the policy network, averaged
      let sum = 0;
      for (let i = 0; i < 30; i++) sum += resnetFlops(arch, r.decisions.keep.subarray(i * 3, i * 3 + 3)) + policyFlops(arch);
      assert.ok(Math.abs(r.evaluation.flopsMean - sum / 30) < 1e-6 * sum);
      assert.deepEqual(evaluationFromDecisions(r.decisions, arch, r.evaluation.seconds), r.evaluation);
      assert.equal(r.baselines!.k, Math.round(r.evaluation.blocksMean));
      assert.equal(r.baselines!.images, 30);
      const bd = r.table.json.sections[0]!.rows.find((row) => row.method === 'blockdrop')!;
      assert.equal(bd.before.ours!.accuracy, r.evaluation.accuracy);
      assert.equal(bd.before.ours!.blocks, r.evaluation.blocksMean);
      assert.ok(r.tradeoff.some((p) => p.series === 'BlockDrop' && p.source === 'ours' && p.flops === r.evaluation.flopsMean));
      const html = readFileSync(out, 'utf8');
      assert.equal((html.match(/<svg/g) ?? []).length >= 4, true);
      assert.ok(html.includes('What the policy does') && html.includes('Training'));
      assert.deepEqual(r.report.missing, []);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('says what to do when the directory is not a run or has no policy', async () => {
    const root = mkdtempSync(join(tmpdir(), 'blockdrop-run-report-'));
    try {
      await assert.rejects(reportFromRun({ runDir: root }), /not a run directory/);
      writeFileSync(join(root, 'config.json'), JSON.stringify({ resnet: fixture }));
      await assert.rejects(reportFromRun({ runDir: root }), /no trained policy yet/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
