/**
 * Real pretrained CIFAR-10 checkpoints through the whole path: PyTorch reader → key mapping →
 * preset detection → tfjs ResNet, scored on the first 500 test images.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/index.js';
import { loadTorchCheckpoint, stateDict } from '../checkpoint/torch.js';
import { normalizeBatch } from '../data/batches.js';
import { loadCifar10, type ImageSet } from '../data/cifar.js';
import { weightsDir } from '../testing/shared.js';
import { getPreset } from './config.js';
import { ResNet } from './resnet.js';
import { detectPreset } from './weights.js';

const IMAGES = 500;

async function accuracy(file: string, expectedPreset: string, test: ImageSet, runAs = expectedPreset): Promise<number> {
  const tensors = stateDict(await loadTorchCheckpoint(join(weightsDir, file)));
  const detected = detectPreset(tensors);
  assert.equal(detected?.preset, expectedPreset, detected?.reason);
  const normalization = getPreset(expectedPreset).normalization;
  const net = ResNet.fromWeights(getPreset(runAs).arch, tensors);
  let correct = 0;
  for (let start = 0; start < IMAGES; start += 125) {
    const indices = Array.from({ length: 125 }, (_, i) => start + i);
    const input = normalizeBatch(test, indices, normalization);
    const predicted = tf.tidy(() => net.forward(tf.tensor4d(input, [125, 32, 32, 3])).argMax(1).dataSync());
    indices.forEach((img, i) => (correct += predicted[i] === test.labels[img] ? 1 : 0));
  }
  net.dispose();
  return correct / IMAGES;
}

describe('pretrained CIFAR-10 ResNets on the first 500 test images (wasm)', () => {
  let test: ImageSet;
  before(async () => {
    await initBackend('wasm');
    test = loadCifar10({ split: 'test' });
  });

  it("BlockDrop's ResNet-32 (DownsampleB, 'cifar' normalisation) scores ≥ 0.9", async (t) => {
    const acc = await accuracy('blockdrop_R32_C10_pk_E_164_A_0.923.t7', 'resnet32', test);
    t.diagnostic(`accuracy ${acc}`);
    assert.equal(getPreset('resnet32').normalization.name, 'cifar');
    assert.ok(acc >= 0.9, `accuracy ${acc}`);
  });

  it("akamaster's ResNet-20 (option A, 'imagenet' normalisation) scores ≥ 0.9", async (t) => {
    const acc = await accuracy('akamaster_resnet20-12fca82f.th', 'resnet20a', test);
    t.diagnostic(`accuracy ${acc}`);
    assert.equal(getPreset('resnet20a').normalization.name, 'imagenet');
    assert.ok(acc >= 0.9, `accuracy ${acc}`);
  });

  it('the shortcut type is decisive: the akamaster net run with DownsampleB (same normalisation) collapses', async (t) => {
    const acc = await accuracy('akamaster_resnet20-12fca82f.th', 'resnet20a', test, 'resnet20');
    t.diagnostic(`accuracy ${acc}`);
    assert.ok(acc < 0.5, `accuracy ${acc}`);
  });
});
