/**
 * ImageNet-scale BlockDrop in the model layer: the ResNet-50 / ResNet-101 presets (torchvision layout),
 * detection of torchvision state dicts, the paper's FLOP figures, and the ResNet-10 policy on the
 * image pooled to 112×112, initialised from a torchvision ResNet-18 (tiny fixture: features against
 * PyTorch's Policy224 backbone).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/index.js';
import { saveSafetensors } from '../checkpoint/safetensors.js';
import { loadTorchCheckpoint, stateDict } from '../checkpoint/torch.js';
import { BlockdropError } from '../errors.js';
import type { TensorMap } from '../tensor.js';
import { fixturesDir } from '../testing/shared.js';
import {
  blockCount, blockLayouts, getPreset, imagenetArch, NORMALIZATIONS, policyArchFor, policyInputPool, type ResNetConfig,
} from './config.js';
import { blockFlops, meanBlockDropFlops, policyFlops, resnetFlops, stemAndHeadFlops } from './flops.js';
import { loadBackbone } from './load.js';
import { PolicyNetwork, policyWeightsFromResnet18 } from './policy.js';
import { ResNet } from './resnet.js';
import { detectPreset, resnetParamSpecs } from './weights.js';

const resnet50 = getPreset('resnet50').arch;
const resnet101 = getPreset('resnet101').arch;

/** Canonical names → torchvision's (layerN.i.*, layerN.0.downsample.j.*), with num_batches_tracked. */
function torchvisionNames(canonical: TensorMap): TensorMap {
  const out: TensorMap = new Map();
  for (const [key, t] of canonical) {
    const name = key
      .replace(/^blocks\.(\d+)\./, (_, s: string) => `layer${Number(s) + 1}.`)
      .replace(/^ds\.(\d+)\./, (_, s: string) => `layer${Number(s) + 1}.0.downsample.`);
    out.set(name, t);
    if (name.endsWith('.running_var')) {
      out.set(name.replace(/running_var$/, 'num_batches_tracked'), { dtype: 'int64', shape: [], data: BigInt64Array.of(7n) });
    }
  }
  return out;
}

/**
 * Cheap deterministic weights of the right shapes (full-size ImageNet nets have 10⁷–10⁸ values; a normal
 * draw per value would dominate the test's time). BN variances stay positive.
 */
function quickWeights(arch: ResNetConfig, seed: number): TensorMap {
  const out: TensorMap = new Map();
  for (const spec of resnetParamSpecs(arch)) {
    const data = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
    if (spec.kind === 'bn_var' || spec.kind === 'bn_weight') data.fill(1);
    else if (spec.kind !== 'bn_mean' && spec.kind !== 'bn_bias') {
      for (let i = 0; i < data.length; i++) data[i] = 0.05 * Math.sin(seed + i * 0.7368);
    }
    out.set(spec.key, { dtype: 'float32', shape: [...spec.shape], data });
  }
  return out;
}

describe('ImageNet presets', () => {
  it('resnet50 [3,4,6,3] K = 16 and resnet101 [3,4,23,3] K = 33, torchvision layout', () => {
    assert.deepEqual(resnet50.blocksPerStage, [3, 4, 6, 3]);
    assert.equal(blockCount(resnet50), 16);
    assert.deepEqual(resnet101.blocksPerStage, [3, 4, 23, 3]);
    assert.equal(blockCount(resnet101), 33);
    for (const arch of [resnet50, resnet101]) {
      assert.equal(arch.blockType, 'bottleneck');
      assert.equal(arch.stem, 'imagenet');
      assert.equal(arch.shortcut, 'projection');
      assert.equal(arch.inputSize, 224);
      assert.equal(arch.numClasses, 1000);
      assert.equal(getPreset(arch.name).normalization, NORMALIZATIONS.imagenet);
      const layouts = blockLayouts(arch);
      // A projection on the first block of every stage (stage 1 too: 64 → 256 channels), stride on the 3×3.
      assert.deepEqual(layouts.filter((b) => b.shortcut === 'projection').map((b) => [b.stage, b.index, b.stride]),
        [[0, 0, 1], [1, 0, 2], [2, 0, 2], [3, 0, 2]]);
      assert.deepEqual([layouts[0]!.inSize, layouts.at(-1)!.outSize, layouts.at(-1)!.outChannels], [56, 7, 2048]);
    }
    // torchvision's ResNet-50 has 25,557,032 parameters (BN running stats excluded).
    const params = resnetParamSpecs(resnet50).filter((s) => s.kind !== 'bn_mean' && s.kind !== 'bn_var')
      .reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(params, 25_557_032);
    assert.throws(() => imagenetArch(42), BlockdropError);
  });

  it('the ImageNet policy is a ResNet-10 on the image pooled to 112×112 with a K-way head', () => {
    const policy = policyArchFor(resnet101);
    assert.deepEqual(policy.blocksPerStage, [1, 1, 1, 1]);
    assert.equal(policy.blockType, 'basic');
    assert.equal(policy.inputSize, 112);
    assert.equal(policy.numClasses, 33);
    assert.equal(policyInputPool(resnet101), 2);
    assert.equal(policyInputPool(getPreset('resnet32').arch), 1);
    // 4×4 final map at 112 input (AvgPool2d(4) in the original = global pooling here).
    assert.equal(blockLayouts(policy).at(-1)!.outSize, 4);
    assert.equal(policyArchFor(resnet50).numClasses, 16);
  });
});

describe('ImageNet FLOPs (paper convention)', () => {
  it('full ResNet-101 1.5603E10, projections 7.19E8 always paid, ResNet-10 policy at 112×112 4.72E8', () => {
    assert.equal(resnetFlops(resnet101).toExponential(4), '1.5603e+10');
    const sh = stemAndHeadFlops(resnet101);
    assert.equal(sh.shortcuts.toExponential(2), '7.19e+8');
    assert.equal(sh.shortcuts, 102_760_448 + 3 * 205_520_896); // stage 1: 64→256 at 56²; stages 2–4 stride 2
    assert.equal(policyFlops(resnet101).toExponential(2), '4.72e+8');
    // Dropping every block leaves stem, projections and head.
    assert.equal(resnetFlops(resnet101, new Array(33).fill(0)), sh.total);
    // Per-block costs quoted in the reference notes.
    const perBlock = blockFlops(resnet101);
    assert.equal(perBlock[0]!.toExponential(2), '3.60e+8');
    assert.equal(perBlock[1]!.toExponential(2), '4.37e+8');
    assert.equal(perBlock[3]!.toExponential(2), '5.39e+8');
    // README: 24.77 blocks on average ≈ 1.25E10 with the policy; the all-blocks case is the sum.
    assert.equal(meanBlockDropFlops(resnet101, [new Array(33).fill(1)]), resnetFlops(resnet101) + policyFlops(resnet101));
  });

  it('ResNet-50: twice torchvision\'s 4.09 G multiply-adds', () => {
    // torchvision documents 4.09 GFLOPS meaning MACs; BlockDrop's convention counts 2·MACs.
    assert.equal((resnetFlops(resnet50) / 2).toExponential(2), '4.09e+9');
    assert.equal(blockCount(resnet50), blockFlops(resnet50).length);
  });
});

describe('torchvision state dicts', () => {
  it('a torchvision ResNet-101 / ResNet-50 state dict is detected and loads by its names', async () => {
    for (const arch of [resnet50, resnet101]) {
      const tv = torchvisionNames(quickWeights({ ...arch, numClasses: 5 }, 1));
      assert.ok(tv.has('layer1.0.downsample.0.weight') && tv.has('layer3.22.conv3.weight') === (arch === resnet101));
      const detected = detectPreset(tv);
      assert.equal(detected?.preset, arch.name);
      assert.equal(detected?.arch.numClasses, 5);
      assert.match(detected!.reason, /torchvision ResNet-/);
    }
    const dir = mkdtempSync(join(tmpdir(), 'blockdrop-imagenet-'));
    try {
      const file = join(dir, 'r50.safetensors');
      await saveSafetensors(file, torchvisionNames(quickWeights(resnet50, 2)));
      const loaded = await loadBackbone(file);
      assert.equal(loaded.preset, 'resnet50');
      assert.equal(loaded.normalization.name, 'imagenet');
      assert.ok(loaded.tensors.has('ds.0.0.weight'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a torchvision ResNet-18 is not taken for a backbone preset', () => {
    assert.equal(detectPreset(torchvisionNames(quickWeights(imagenetArch(18), 1))), undefined);
  });
});

interface JsonArray { shape: number[]; data: number[] }

describe('ResNet-10 policy from a torchvision ResNet-18', () => {
  it('tiny fixture: stem + first block of each stage give PyTorch Policy224 features (1e-4)', async () => {
    await initBackend('cpu');
    const ref = JSON.parse(readFileSync(join(fixturesDir, 'resnet18_tiny_reference.json'), 'utf8')) as {
      resnet10_policy_backbone: { inputs_112: JsonArray; features: JsonArray };
    };
    const resnet18 = stateDict(await loadTorchCheckpoint(join(fixturesDir, 'resnet18_tiny_torchvision.pt')));
    // The fixture's widths are torchvision's / 8; features are 64-d. Read them through an identity head.
    const tinyPolicy: ResNetConfig = {
      name: 'policy-resnet10-tiny', blockType: 'basic', blocksPerStage: [1, 1, 1, 1], widths: [8, 16, 32, 64],
      strides: [1, 2, 2, 2], shortcut: 'projection', numClasses: 64, inputSize: 112, stem: 'imagenet', stemWidth: 8,
    };
    const weights = policyWeightsFromResnet18(tinyPolicy, resnet18, 0);
    assert.ok(!weights.has('blocks.0.1.conv1.weight'));
    const eye = new Float32Array(64 * 64);
    for (let i = 0; i < 64; i++) eye[i * 65] = 1;
    weights.set('fc.weight', { dtype: 'float32', shape: [64, 64], data: eye });
    weights.set('fc.bias', { dtype: 'float32', shape: [64], data: new Float32Array(64) });
    const net = ResNet.fromWeights(tinyPolicy, weights);
    const inp = ref.resnet10_policy_backbone.inputs_112;
    const features = tf.tidy(() => {
      const x = tf.transpose(tf.tensor4d(inp.data, inp.shape as [number, number, number, number]), [0, 2, 3, 1]) as tf.Tensor4D;
      return net.forward(x).dataSync();
    });
    let diff = 0;
    ref.resnet10_policy_backbone.features.data.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - features[i]!))));
    assert.ok(diff <= 1e-4, `features differ by ${diff}`);
    net.dispose();
  });

  it('PolicyNetwork.fromResnet18: K outputs, the backbone image average-pooled by 2', async () => {
    await initBackend('cpu');
    // A small backbone (64×64 input) keeps the real-width ResNet-10 cheap: the policy sees 32×32.
    const backbone: ResNetConfig = { ...resnet50, name: 'resnet50-64px', inputSize: 64 };
    const resnet18 = torchvisionNames(quickWeights(imagenetArch(18), 3));
    const weights = policyWeightsFromResnet18(policyArchFor(backbone), resnet18, 5);
    assert.equal(weights.get('blocks.3.0.conv2.weight'), resnet18.get('layer4.0.conv2.weight'));
    assert.equal(weights.get('ds.1.1.running_var'), resnet18.get('layer2.0.downsample.1.running_var'));
    assert.deepEqual(weights.get('fc.weight')!.shape, [16, 512]);
    const policy = PolicyNetwork.fromResnet18(backbone, resnet18, 5, { trainable: false });
    assert.equal(policy.inputPool, 2);
    assert.equal(policy.arch.inputSize, 32);
    const [viaPolicy, direct] = tf.tidy(() => {
      const x = tf.randomNormal([2, 64, 64, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      return [policy.logits(x).dataSync(), policy.resnet.forward(tf.avgPool(x, 2, 2, 'valid') as tf.Tensor4D).dataSync()];
    });
    assert.equal(viaPolicy.length, 2 * 16);
    assert.deepEqual(viaPolicy, direct);
    assert.throws(() => tf.tidy(() => policy.logits(tf.zeros([1, 48, 48, 3]) as tf.Tensor4D)), /64×64/);
    assert.throws(() => policyWeightsFromResnet18(policy.arch, quickWeights(policy.arch, 1), 0), /ResNet-18/);
    policy.dispose();
  });
});
