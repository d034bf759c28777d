/**
 * Export and the block-skipping executor on torchvision-layout ImageNet ResNets (7×7 stem + max-pool,
 * Bottleneck blocks, projection shortcuts computed even for dropped blocks): against PyTorch's logits
 * for the tiny ResNet-101 fixture, and a tiny random bottleneck network with its ResNet-10 policy
 * (image pooled 2×) under a synthetic policy against the tfjs masked forward.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { initBackend } from '../backend/index.js';
import { loadTorchCheckpoint, stateDict } from '../checkpoint/torch.js';
import { exportBlockDrop } from '../export/onnx.js';
import { blockCount, NORMALIZATIONS, policyArchFor, type ResNetConfig } from '../models/config.js';
import { PolicyNetwork } from '../models/policy.js';
import { ResNet } from '../models/resnet.js';
import { initResNetWeights, resnetParamSpecs } from '../models/weights.js';
import type { TensorMap } from '../tensor.js';
import { fixturesDir } from '../testing/shared.js';
import { Rng } from '../util/rng.js';
import { BlockDropModel, type Strategy } from './model.js';

interface JsonArray { shape: number[]; data: number[] }
interface Reference {
  inputs: JsonArray;
  masks: { name: string; keep: JsonArray }[];
  logits_full: JsonArray;
  logits_masked: { mask: string; logits: JsonArray }[];
}

/** The fixture's layout: torchvision ResNet-101 with every width / 8, 64×64 input, 10 classes. */
const tiny101: ResNetConfig = {
  name: 'resnet101-tiny', blockType: 'bottleneck', blocksPerStage: [3, 4, 23, 3], widths: [8, 16, 32, 64],
  strides: [1, 2, 2, 2], shortcut: 'projection', numClasses: 10, inputSize: 64, stem: 'imagenet', stemWidth: 8,
};

/**
 * A small random bottleneck net for the executor-vs-tfjs test. Widths are multiples of 16 so that ONNX
 * Runtime converts every conv to its blocked NCHWc kernels (it leaves 8-channel convs alone on AVX-512).
 */
const tinyBottleneck: ResNetConfig = {
  name: 'bottleneck-tiny', blockType: 'bottleneck', blocksPerStage: [2, 2, 1, 2], widths: [16, 16, 16, 32],
  strides: [1, 2, 2, 2], shortcut: 'projection', numClasses: 7, inputSize: 64, stem: 'imagenet', stemWidth: 16,
};

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** He-init weights with non-trivial BN (γ, β, running stats), so folding is really exercised. */
function randomWeights(arch: ResNetConfig, seed: number): TensorMap {
  const w = initResNetWeights(arch, seed);
  const rng = new Rng(seed + 100);
  for (const spec of resnetParamSpecs(arch)) {
    const data = w.get(spec.key)!.data as Float32Array;
    for (let i = 0; i < data.length; i++) {
      if (spec.kind === 'bn_weight') data[i] = 0.3 + 0.4 * rng.next();
      else if (spec.kind === 'bn_bias') data[i] = 0.2 * (rng.next() - 0.5);
      else if (spec.kind === 'bn_mean') data[i] = 0.1 * rng.normal();
      else if (spec.kind === 'bn_var') data[i] = 0.5 + rng.next();
    }
  }
  return w;
}

let root: string;
before(async () => {
  await initBackend('cpu');
  root = mkdtempSync(join(tmpdir(), 'blockdrop-imagenet-exec-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('ONNX export of a torchvision-layout ResNet-101 (tiny fixture)', () => {
  it('full graph, executor strategies and both masks match PyTorch (projection paid when dropped)', async () => {
    const ref = JSON.parse(readFileSync(join(fixturesDir, 'resnet101_tiny_reference.json'), 'utf8')) as Reference;
    const dir = join(root, 'r101');
    const tensors = stateDict(await loadTorchCheckpoint(join(fixturesDir, 'resnet101_tiny_torchvision.pt')));
    const { manifest } = await exportBlockDrop({ arch: tiny101, normalization: NORMALIZATIONS.imagenet, resnet: tensors, outDir: dir });
    assert.equal(manifest.K, 33);
    assert.deepEqual(Object.keys(manifest.graphs.shortcuts), ['0', '3', '7', '30']);
    const inputs = Float32Array.from(ref.inputs.data); // NCHW, already normalised
    const model = await BlockDropModel.load(dir, { threads: 1 });
    const full = await model.predictFull(inputs, { layout: 'nchw' });
    // PyTorch float32 vs float64 differ by up to 1e-4 over 33 blocks (fixtures README).
    assert.ok(maxAbsDiff(full.logits, ref.logits_full.data) <= 1e-3, `full ${maxAbsDiff(full.logits, ref.logits_full.data)}`);
    for (const { mask, logits } of ref.logits_masked) {
      const keep = Uint8Array.from(ref.masks.find((m) => m.name === mask)!.keep.data);
      for (const strategy of ['gather', 'branch', 'per-block', 'path'] as Strategy[]) {
        const p = await model.predict(inputs, { layout: 'nchw', keep, strategy });
        const d = maxAbsDiff(p.logits, logits.data);
        assert.ok(d <= 1e-3, `${mask} ${strategy} (${model.info.kernels}): ${d}`);
      }
    }
    // 'edge' image 0 drops every block: it pays stem, the four projections and the head only.
    const edge = Uint8Array.from(ref.masks.find((m) => m.name === 'edge')!.keep.data);
    const p = await model.predict(inputs, { layout: 'nchw', keep: edge });
    assert.equal(p.blocksUsed[0], 0);
    assert.equal(p.flops[0], manifest.flops.stemAndHead);
    await model.release();
  });
});

describe('executor on a random bottleneck network with a ResNet-10 policy', () => {
  it('synthetic policy: logits agree with the tfjs masked forward (≤ 1e-4), every strategy, both kernel sets', async () => {
    const arch = tinyBottleneck;
    const K = blockCount(arch);
    const weights = randomWeights(arch, 3);
    const policyArch = policyArchFor(arch);
    assert.equal(policyArch.inputSize, 32);
    assert.equal(policyArch.numClasses, K);
    const policyWeights = randomWeights(policyArch, 4);
    const dir = join(root, 'random-bottleneck');
    await exportBlockDrop({ arch, normalization: NORMALIZATIONS.imagenet, resnet: weights, policy: policyWeights, outDir: dir });

    const n = 5;
    const rng = new Rng(11);
    const nchw = Float32Array.from({ length: n * 3 * 64 * 64 }, () => rng.normal());
    const net = ResNet.fromWeights(arch, weights);
    const policy = PolicyNetwork.fromWeights(arch, policyWeights, { trainable: false });
    const x = tf.tidy(() => tf.transpose(tf.tensor4d(nchw, [n, 3, 64, 64]), [0, 2, 3, 1]) as tf.Tensor4D);
    const tfjsProbs = tf.tidy(() => policy.probabilities(x).dataSync());

    for (const kernels of ['auto', 'portable'] as const) {
      for (const strategy of ['gather', 'branch', 'per-block', 'path'] as Strategy[]) {
        const model = await BlockDropModel.load(dir, { keepRate: 0.5, seed: 9, threads: 1, kernels });
        const p = await model.predict(nchw, { layout: 'nchw', strategy });
        const keepT = tf.tensor2d(Float32Array.from(p.keep), [n, K]);
        const expected = tf.tidy(() => net.forward(x, { keep: keepT }).dataSync());
        keepT.dispose();
        const scale = Math.max(1, ...Array.from(expected, Math.abs));
        const d = maxAbsDiff(p.logits, expected);
        assert.ok(d <= 1e-4 * scale, `${kernels}/${model.info.kernels} ${strategy}: ${d} (scale ${scale})`);
        // The policy network ran on the pooled image (charged in FLOPs) and matches tfjs.
        assert.ok(maxAbsDiff(p.policyProbabilities!, tfjsProbs) <= 1e-4, `policy probabilities ${kernels} ${strategy}`);
        const used = new Set(Array.from({ length: n }, (_, i) => p.blocksUsed[i]));
        assert.ok(used.size > 1, 'the synthetic policy varies across images');
        assert.equal(p.flops[0], model.manifest.flops.stemAndHead + model.manifest.flops.policy! +
          model.manifest.flops.perBlock.reduce((s, f, t) => s + (p.keep[t] ? f : 0), 0));
        await model.release();
      }
    }
    x.dispose();
    net.dispose();
    policy.dispose();
  });

  it('the exported policy graph takes the full-size image and pools it by 2', async () => {
    const dir = join(root, 'random-bottleneck');
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { files: Record<string, { role: string }> };
    assert.match(manifest.files['policy.onnx']!.role, /average-pooled by 2/);
    const s = await ort.InferenceSession.create(readFileSync(join(dir, 'policy.onnx')), { logSeverityLevel: 3 });
    assert.deepEqual(s.inputNames, ['input']);
    const out = await s.run({ input: new ort.Tensor('float32', new Float32Array(3 * 64 * 64), [1, 3, 64, 64]) });
    assert.deepEqual(out['probabilities']!.dims, [1, blockCount(tinyBottleneck)]);
    await s.release();
  });
});
