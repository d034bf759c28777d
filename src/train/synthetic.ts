/**
 * A synthetic BlockDrop task whose best policy is known exactly, for tests of the trainer.
 *
 * The backbone is a small ResNet built by hand:
 * - the stem carries the image information in channels 0..3 (random conv), the real classes read only those;
 * - a "zero" block has its last BN γ = β = 0, so F(x) = 0 and, its input being non-negative, executing it
 *   changes nothing: dropping it is free;
 * - an "essential" block has conv2 = 0 and bn2.β = M on a channel of its own, so it adds the constant M there;
 *   an extra "wrong" class has logit M·E − Σ (those channels), which is 0 when all E essential blocks run and
 *   ≥ M (beating every real class) when any of them is dropped.
 * Labels are the full network's predictions, so the best policy is the same for every image: execute exactly
 * the essential blocks (reward 1 − (E/K)²); dropping any essential block makes every image wrong.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../data/cifar.js';
import { normalizeBatch } from '../data/batches.js';
import { blockCount, blockLayouts, NORMALIZATIONS, type ResNetConfig } from '../models/config.js';
import { ResNet } from '../models/resnet.js';
import { initResNetWeights } from '../models/weights.js';
import type { TensorMap } from '../tensor.js';
import { Rng } from '../util/rng.js';
import { defaultStage1Config, type Stage1Config } from './config.js';
import { tfjsOracle, type TrainablePolicy } from './models.js';
import type { TrainingSetup } from './trainer.js';

/** K = 6 blocks; 4 real classes + the "wrong" class. */
export const SYNTHETIC_BACKBONE: ResNetConfig = {
  name: 'synthetic-resnet14',
  blockType: 'basic',
  blocksPerStage: [2, 2, 2],
  widths: [8, 16, 32],
  strides: [1, 2, 2],
  shortcut: 'downsampleB',
  numClasses: 5,
  inputSize: 32,
  stem: 'cifar',
  stemWidth: 8,
};

/** A tiny DownsampleB ResNet (K = 5, 16×16 inputs) for the training engines' equivalence tests. */
export const SMALL_TEST_ARCH: ResNetConfig = {
  name: 'small-test',
  blockType: 'basic',
  blocksPerStage: [2, 1, 2],
  widths: [4, 8, 8],
  strides: [1, 2, 2],
  shortcut: 'downsampleB',
  numClasses: 5,
  inputSize: 16,
  stem: 'cifar',
  stemWidth: 4,
};

/** Which blocks run in the best policy. */
export const SYNTHETIC_ESSENTIAL: readonly number[] = [0, 2, 5];
const IMAGE_CHANNELS = 4;
const M = 20;

function data(tensors: TensorMap, key: string): Float32Array {
  const t = tensors.get(key);
  if (!t) throw new Error(`synthetic: no tensor ${key}`);
  return t.data as Float32Array;
}

/** The backbone's weights (canonical names, PyTorch layouts). */
export function syntheticBackboneWeights(seed = 1): TensorMap {
  const arch = SYNTHETIC_BACKBONE;
  const w = initResNetWeights(arch, seed);
  const rng = new Rng(seed + 100);
  // Stem: image information only in channels 0..3.
  const stem = data(w, 'conv1.weight'); // [8, 3, 3, 3]
  stem.fill(0, IMAGE_CHANNELS * 27);
  const layouts = blockLayouts(arch);
  let nextChannel = IMAGE_CHANNELS;
  const okChannels: number[] = [];
  for (const b of layouts) {
    const p = `blocks.${b.stage}.${b.index}`;
    const gamma = data(w, `${p}.bn2.weight`);
    const beta = data(w, `${p}.bn2.bias`);
    gamma.fill(0);
    beta.fill(0);
    if (SYNTHETIC_ESSENTIAL.includes(b.t)) {
      data(w, `${p}.conv2.weight`).fill(0);
      // A channel nothing else writes: past the stem's image channels and the previous stage's width.
      const channel = Math.max(nextChannel, b.stage === 0 ? IMAGE_CHANNELS : arch.widths[b.stage - 1]!);
      beta[channel] = M;
      okChannels.push(channel);
      nextChannel = channel + 1;
    }
  }
  const features = arch.widths[arch.widths.length - 1]!;
  const fc = data(w, 'fc.weight'); // [5, 32]
  const bias = data(w, 'fc.bias');
  fc.fill(0);
  for (let c = 0; c < arch.numClasses - 1; c++) {
    for (let ch = 0; ch < IMAGE_CHANNELS; ch++) fc[c * features + ch] = 2 * rng.normal();
    bias[c] = 5;
  }
  const wrong = arch.numClasses - 1;
  for (const ch of okChannels) fc[wrong * features + ch] = -1;
  bias[wrong] = M * okChannels.length;
  return w;
}

/** Random images labelled by the full backbone (no image ever gets the "wrong" class). */
export function syntheticImages(backbone: ResNet, count: number, seed: number): ImageSet {
  const rng = new Rng(seed);
  const images = new Uint8Array(count * 32 * 32 * 3);
  // A random colour per image plus noise, so that the images (and their labels) differ.
  for (let n = 0; n < count; n++) {
    const base = [rng.nextInt(256), rng.nextInt(256), rng.nextInt(256)];
    for (let p = 0; p < 1024; p++) {
      for (let c = 0; c < 3; c++) images[n * 3072 + p * 3 + c] = Math.max(0, Math.min(255, base[c]! + rng.nextInt(81) - 40));
    }
  }
  const classes = ['a', 'b', 'c', 'd', 'wrong'];
  const set: ImageSet = { images, labels: new Uint8Array(count), count, height: 32, width: 32, classes };
  const indices = Array.from({ length: count }, (_, i) => i);
  const x = normalizeBatch(set, indices, NORMALIZATIONS.none);
  const predicted = tf.tidy(() => backbone.forward(tf.tensor4d(x, [count, 32, 32, 3])).argMax(1).dataSync());
  set.labels.set(predicted);
  return set;
}

/** A small policy network (ResNet with K sigmoid outputs) that trains in milliseconds. */
export class TinyPolicy implements TrainablePolicy {
  readonly net: ResNet;

  constructor(k: number, seed: number) {
    const arch: ResNetConfig = {
      name: 'tiny-policy',
      blockType: 'basic',
      blocksPerStage: [1, 1, 1],
      widths: [4, 8, 8],
      strides: [1, 2, 2],
      shortcut: 'downsampleB',
      numClasses: k,
      inputSize: 32,
      stem: 'cifar',
      stemWidth: 4,
    };
    this.net = ResNet.init(arch, seed);
  }

  /** The network itself (lets the ONNX training engine run it). */
  get resnet(): ResNet {
    return this.net;
  }

  probabilities(x: tf.Tensor4D, options: { training?: boolean } = {}): tf.Tensor2D {
    return tf.tidy(() => tf.sigmoid(this.net.forward(x, { training: options.training })));
  }

  variables(): tf.Variable[] {
    return this.net.variables();
  }

  toTensorMap(): TensorMap {
    return this.net.toTensorMap();
  }

  assignWeights(tensors: TensorMap): void {
    this.net.assignWeights(tensors);
  }

  dispose(): void {
    this.net.dispose();
  }
}

export function syntheticK(): number {
  return blockCount(SYNTHETIC_BACKBONE);
}

export interface SyntheticSetupOptions {
  readonly stage?: 1 | 2;
  /** Training and validation images (default 256 and 128). */
  readonly trainImages?: number;
  readonly valImages?: number;
  /** The policy to train (default a TinyPolicy seeded with `policySeed`, default 7). */
  readonly policy?: TinyPolicy;
  readonly policySeed?: number;
}

/**
 * A whole training setup on the synthetic task (the tests' and the crash tests' run): the synthetic backbone,
 * its images, a TinyPolicy, tfjs reward passes; `config` overrides a small stage-1 configuration.
 */
export function syntheticTrainingSetup(
  config: Partial<Stage1Config> & { readonly runDir: string },
  options: SyntheticSetupOptions = {},
): TrainingSetup & { dispose(): void } {
  const stage = options.stage ?? 1;
  const k = syntheticK();
  const resnet = ResNet.fromWeights(SYNTHETIC_BACKBONE, syntheticBackboneWeights(1), { trainable: stage === 2 });
  const train = syntheticImages(resnet, options.trainImages ?? 256, 3);
  const val = syntheticImages(resnet, options.valImages ?? 128, 4);
  const policy = options.policy ?? new TinyPolicy(k, options.policySeed ?? 7);
  const oracle = tfjsOracle(resnet, k, 32);
  return {
    stage,
    config: {
      ...defaultStage1Config,
      resnet: 'synthetic',
      batchSize: 32,
      iterations: 60,
      evalEvery: 20,
      lr: 0.01,
      curriculumEvery: 0,
      testAtEnd: false,
      ...config,
    },
    k,
    policy,
    resnet,
    oracle,
    evalOracle: oracle,
    train,
    val,
    loadTest: () => val,
    normalization: NORMALIZATIONS.none,
    augment: false,
    dispose() {
      policy.dispose();
      resnet.dispose();
    },
  };
}
