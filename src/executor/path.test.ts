/** The engine-independent executor pieces shared with the browser demo. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getPreset } from '../models/config.js';
import { blocksByStage, keepFromProbabilities, pathCosts, pathSteps, runPath, softmaxRows } from './path.js';

const manifest = {
  K: 3,
  keep: { threshold: 0.5 },
  flops: { perBlock: [10, 20, 30], stemAndHead: 5, policy: 7, full: 65 },
  graphs: { stem: 'stem.onnx', blocks: ['block_0.onnx', 'block_1.onnx', 'block_2.onnx'], shortcuts: { '1': 'shortcut_1.onnx' }, head: 'head.onnx' },
};

describe('executor path helpers', () => {
  it('keeps a block when p ≥ threshold', () => {
    assert.deepEqual([...keepFromProbabilities([0.5, 0.49999, 0.9, 0])], [1, 0, 1, 0]);
  });

  it('runs kept blocks, the shortcut graph of a dropped downsampling block, nothing for a dropped identity block', async () => {
    assert.deepEqual(
      pathSteps(manifest, [0, 0, 1]).map((s) => s.graph),
      [null, 'shortcut_1.onnx', 'block_2.onnx'],
    );
    const ran: string[] = [];
    const out = await runPath(manifest, [1, 0, 0], 0, async (g, x) => {
      ran.push(g);
      return x + 1;
    });
    assert.deepEqual(ran, ['stem.onnx', 'block_0.onnx', 'shortcut_1.onnx', 'head.onnx']);
    assert.equal(out, 4);
    assert.throws(() => pathSteps(manifest, [1, 1]), /keep row of 2/);
  });

  it('counts blocks and FLOPs per image, the policy when it ran', () => {
    const { blocksUsed, flops } = pathCosts(manifest, [1, 0, 1, 0, 0, 0], 2, true);
    assert.deepEqual([...blocksUsed], [2, 0]);
    assert.deepEqual([...flops], [5 + 7 + 10 + 30, 5 + 7]);
    assert.deepEqual([...pathCosts(manifest, [1, 1, 1], 1, false).flops], [65]);
  });

  it('softmax and arg-max per row; blocks grouped by stage', () => {
    const { probabilities, classes } = softmaxRows([0, Math.log(3), 5, 5], 2, 2);
    assert.deepEqual([...classes], [1, 0]);
    assert.ok(Math.abs(probabilities[1]! - 0.75) < 1e-6 && Math.abs(probabilities[2]! - 0.5) < 1e-6);
    assert.deepEqual(blocksByStage(getPreset('resnet20').arch), [[0, 1, 2], [3, 4, 5], [6, 7, 8]]);
  });
});
