import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { blockCount, getPreset, type ResNetConfig } from './config.js';
import { blockFlops, meanBlockDropFlops, policyFlops, resnetFlops, stemAndHeadFlops } from './flops.js';

const resnet32 = getPreset('resnet32').arch;
const resnet110 = getPreset('resnet110').arch;

const resnet101: ResNetConfig = {
  name: 'resnet101-imagenet', blockType: 'bottleneck', blocksPerStage: [3, 4, 23, 3], widths: [64, 128, 256, 512],
  strides: [1, 2, 2, 2], shortcut: 'projection', numClasses: 1000, inputSize: 224, stem: 'imagenet', stemWidth: 64,
};

describe('FLOPs (paper convention)', () => {
  it('per block: 9,437,184, and 7,077,888 for the stride-2 blocks', () => {
    const perBlock = blockFlops(resnet32);
    assert.equal(perBlock.length, 15);
    perBlock.forEach((f, t) => assert.equal(f, t === 5 || t === 10 ? 7_077_888 : 9_437_184, `block ${t}`));
  });

  it('stem 884,736 and fc 1,280; no shortcut cost for DownsampleB / option A', () => {
    assert.deepEqual(stemAndHeadFlops(resnet32), { stem: 884_736, shortcuts: 0, head: 1_280, total: 886_016 });
    assert.equal(stemAndHeadFlops(getPreset('resnet20a').arch).shortcuts, 0);
  });

  it('full ResNet-32 1.3773E8 and ResNet-110 5.0578E8', () => {
    assert.equal(resnetFlops(resnet32), 137_725_184);
    assert.equal(resnetFlops(resnet32).toExponential(4), '1.3773e+8');
    assert.equal(resnetFlops(resnet110).toExponential(4), '5.0578e+8');
    assert.equal(resnetFlops(resnet110), 886_016 + 52 * 9_437_184 + 2 * 7_077_888);
  });

  it('a policy only pays for the blocks it keeps', () => {
    const keep = new Array(15).fill(1);
    assert.equal(resnetFlops(resnet32, keep), resnetFlops(resnet32));
    keep[5] = 0;
    keep[0] = 0;
    assert.equal(resnetFlops(resnet32, keep), 137_725_184 - 7_077_888 - 9_437_184);
    assert.equal(resnetFlops(resnet32, new Array(15).fill(0)), 886_016);
    assert.throws(() => resnetFlops(resnet32, [1, 1]), /15 entries/);
  });

  it('policy ResNet-8 for K=15: 24,479,744 (K-way head + the unused 64→1 value head)', () => {
    assert.equal(policyFlops(resnet32), 24_479_744);
    assert.equal(policyFlops(resnet32).toExponential(3), '2.448e+7');
    // K = 54: 39 more head outputs × 128.
    assert.equal(policyFlops(resnet110), 24_479_744 + 39 * 128);
  });

  it('mean over policies includes the policy network', () => {
    const all = new Array(15).fill(1);
    assert.equal(meanBlockDropFlops(resnet32, [all, all]), 137_725_184 + 24_479_744);
  });

  it('ImageNet ResNet-101: 1.5603E10 with always-on projections 7.19E8', () => {
    assert.equal(blockCount(resnet101), 33);
    assert.equal(resnetFlops(resnet101).toExponential(4), '1.5603e+10');
    assert.equal(stemAndHeadFlops(resnet101).shortcuts.toExponential(3), '7.193e+8');
    assert.equal(stemAndHeadFlops(resnet101).stem.toExponential(3), '2.360e+8');
  });
});
