/**
 * writeBaselineResults with a policy, a "finetuned" pair and a second backbone, on 40 test images: Table 1 copies
 * the evaluation JSON it writes, and every other backbone gets a section at the same fraction of its blocks.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { saveModelCheckpoint } from '../checkpoint/store.js';
import { getPreset, policyArchFor } from '../models/config.js';
import { initResNetWeights } from '../models/weights.js';
import { cifarDir, weightsDir } from '../testing/shared.js';
import { writeBaselineResults } from './results.js';

const names = existsSync(weightsDir) ? readdirSync(weightsDir) : [];
const r32 = names.find((n) => /^blockdrop_R32_C10_.*\.t7$/.test(n));
const r20 = names.find((n) => /^akamaster_resnet20-.*\.th$/.test(n));
const skip = r32 && r20 && existsSync(cifarDir) ? false : 'checkpoints or CIFAR-10 missing in ../shared';

test('Table 1 holds the BlockDrop rows from the eval JSON and one section per backbone', { skip }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'blockdrop-results-'));
  try {
    const weights = join(root, 'weights');
    mkdirSync(weights);
    symlinkSync(join(weightsDir, r32!), join(weights, r32!));
    symlinkSync(join(weightsDir, r20!), join(weights, r20!));
    const policy = join(root, 'policy');
    await saveModelCheckpoint(policy, { tensors: initResNetWeights(policyArchFor(getPreset('resnet32').arch), 3), meta: { kind: 'blockdrop-policy' } });
    const out = join(root, 'results');
    const r = await writeBaselineResults({
      weightsDir: weights,
      outDir: out,
      dataDir: cifarDir,
      k: 10,
      seeds: [0],
      limit: 40,
      policy: `${policy}.safetensors`,
      finetuned: { resnet: join(weights, r32!), policy: `${policy}.safetensors` },
      thresholds: [0.3, 0.7],
    });
    const table = JSON.parse(readFileSync(join(out, 'table1.json'), 'utf8'));
    assert.equal(table.sections.length, 2);
    const bd = table.sections[0].rows.find((row: { method: string }) => row.method === 'blockdrop');
    const before = JSON.parse(readFileSync(join(out, 'eval-policy-resnet32.json'), 'utf8'));
    const after = JSON.parse(readFileSync(join(out, 'eval-finetuned-resnet32.json'), 'utf8'));
    assert.equal(before.images, 40);
    assert.equal(bd.before.ours.accuracy, before.accuracy);
    assert.equal(bd.before.ours.blocks, before.blocksMean);
    assert.equal(bd.after.ours.accuracy, after.accuracy);
    // the same networks twice: the same numbers
    assert.equal(after.accuracy, before.accuracy);
    assert.equal(r.otherBaselines.length, 1);
    assert.equal(r.otherBaselines[0]!.k, 6); // 10/15 of ResNet-20's 9 blocks
    assert.equal(table.sections[1].backbone, 'resnet20a');
    assert.ok(r.tradeoff.some((p) => p.series === 'BlockDrop' && p.source === 'ours' && p.flops === before.flopsMean));
    // other thresholds: one more point per policy and threshold; a lower threshold keeps at least as many blocks
    const low = JSON.parse(readFileSync(join(out, 'eval-policy-resnet32-t0.3.json'), 'utf8'));
    const high = JSON.parse(readFileSync(join(out, 'eval-policy-resnet32-t0.7.json'), 'utf8'));
    assert.equal(low.provenance.options.threshold, 0.3);
    assert.ok(low.blocksMean >= before.blocksMean && before.blocksMean >= high.blocksMean, `${low.blocksMean} ≥ ${before.blocksMean} ≥ ${high.blocksMean}`);
    for (const label of ['stage 1, threshold 0.3', 'stage 1, threshold 0.7', 'stage 2, threshold 0.3', 'stage 2, threshold 0.7']) {
      assert.ok(r.tradeoff.some((p) => p.series === 'BlockDrop' && p.label === label), `no point '${label}'`);
    }
    assert.ok(r.tradeoff.some((p) => p.label === 'stage 1, threshold 0.7' && p.flops === high.flopsMean));
    // a second call reuses every file
    const logs: string[] = [];
    await writeBaselineResults({ weightsDir: weights, outDir: out, dataDir: cifarDir, k: 10, seeds: [0], limit: 40, policy: `${policy}.safetensors`, log: (m) => logs.push(m) });
    assert.ok(logs.some((m) => m.includes('reusing eval-policy-resnet32.json')), logs.join('\n'));
    assert.ok(logs.some((m) => m.includes('reusing baselines-akamaster-resnet20a.json')), logs.join('\n'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
