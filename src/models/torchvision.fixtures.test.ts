/**
 * Projection shortcuts, Bottleneck blocks and the ImageNet stem against torchvision itself (tiny
 * ResNet-18 / ResNet-101 layouts, widths /8), including BlockDrop masks where a dropped stage-first
 * block still pays its projection.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendName } from '../backend/index.js';
import { loadTorchCheckpoint, stateDict } from '../checkpoint/torch.js';
import { fixturesDir } from '../testing/shared.js';
import type { ResNetConfig } from './config.js';
import { ResNet } from './resnet.js';

interface JsonArray { shape: number[]; data: number[] }
interface Reference {
  inputs: JsonArray;
  masks: { name: string; keep: JsonArray }[];
  logits_full: JsonArray;
  logits_masked: { mask: string; logits: JsonArray }[];
}

const tiny = (name: string, blockType: 'basic' | 'bottleneck', blocksPerStage: number[]): ResNetConfig => ({
  name, blockType, blocksPerStage, widths: [8, 16, 32, 64], strides: [1, 2, 2, 2], shortcut: 'projection',
  numClasses: 10, inputSize: 64, stem: 'imagenet', stemWidth: 8,
});

const NETS = [
  { file: 'resnet18_tiny', arch: tiny('resnet18-tiny', 'basic', [2, 2, 2, 2]), tolerance: 1e-4 },
  { file: 'resnet101_tiny', arch: tiny('resnet101-tiny', 'bottleneck', [3, 4, 23, 3]), tolerance: 1e-3 },
];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

for (const backend of ['wasm', 'cpu'] as BackendName[]) {
  describe(`torchvision-layout tiny ResNets on ${backend}`, () => {
    for (const { file, arch, tolerance } of NETS) {
      it(`${file}: full and masked logits`, async () => {
        await initBackend(backend);
        const ref = JSON.parse(readFileSync(join(fixturesDir, `${file}_reference.json`), 'utf8')) as Reference;
        const net = ResNet.fromWeights(arch, stateDict(await loadTorchCheckpoint(join(fixturesDir, `${file}_torchvision.pt`))));
        const x = tf.tidy(() => tf.transpose(tf.tensor4d(ref.inputs.data, ref.inputs.shape as [number, number, number, number]), [0, 2, 3, 1]));
        const full = tf.tidy(() => net.forward(x).dataSync());
        assert.ok(maxAbsDiff(full, ref.logits_full.data) < tolerance, `full: ${maxAbsDiff(full, ref.logits_full.data)}`);
        for (const { mask, logits } of ref.logits_masked) {
          const m = ref.masks.find((k) => k.name === mask)!;
          const keep = tf.tensor2d(m.keep.data, m.keep.shape as [number, number]);
          const got = tf.tidy(() => net.forward(x, { keep }).dataSync());
          assert.ok(maxAbsDiff(got, logits.data) < tolerance, `${mask}: ${maxAbsDiff(got, logits.data)}`);
          keep.dispose();
        }
        x.dispose();
        net.dispose();
      });
    }
  });
}
