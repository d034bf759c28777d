/**
 * Optional stage-1 warm start: train the policy's ResNet-8 features as a CIFAR classifier first (a temporary
 * 10-way head, cross-entropy, cosine learning rate), then keep the features and the policy's own K-way head.
 * The original does the same for ImageNet, where its policy starts from an ImageNet-trained ResNet; its CIFAR policy
 * starts from random weights.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../data/cifar.js';
import { batchLabels, EpochSampler, normalizeBatch } from '../data/batches.js';
import type { Normalization, ResNetConfig } from '../models/config.js';
import { ResNet } from '../models/resnet.js';
import type { TensorMap } from '../tensor.js';
import type { Rng } from '../util/rng.js';
import { Adam } from './adam.js';
import type { TrainablePolicy } from './models.js';

export interface PretrainOptions {
  /** The policy network's own architecture (ResNet-8); the classifier gets `classes` outputs instead of K. */
  readonly policyArch: ResNetConfig;
  readonly classes: number;
  readonly epochs: number;
  readonly lr: number;
  readonly batchSize: number;
  readonly normalization: Normalization;
  readonly rng: Rng;
  readonly seed: number;
  readonly onProgress?: (done: number, total: number, accuracy: number) => void;
}

/** Pretrains the features and writes them into `policy` (its head is kept). Returns the last 100 steps' accuracy. */
export async function pretrainPolicyFeatures(policy: TrainablePolicy, train: ImageSet, options: PretrainOptions): Promise<number> {
  const classifier = ResNet.init({ ...options.policyArch, numClasses: options.classes }, options.seed);
  const params = classifier.variables();
  const optimizer = new Adam(params, { lr: options.lr });
  const sampler = new EpochSampler(train.count, options.batchSize, options.rng, { dropLast: true });
  const total = Math.max(1, Math.round(options.epochs * sampler.batchesPerEpoch));
  const side = train.height;
  let correct = 0;
  let seen = 0;
  let recent = 0;
  try {
    for (let it = 0; it < total; it++) {
      optimizer.lr = 0.5 * options.lr * (1 + Math.cos((Math.PI * it) / total));
      const indices = sampler.nextBatch();
      const labels = batchLabels(train, indices);
      const x = tf.tensor4d(normalizeBatch(train, indices, options.normalization, { rng: options.rng }), [indices.length, side, side, 3]);
      const y = tf.oneHot(tf.tensor1d(labels, 'int32'), options.classes);
      const { value, grads } = tf.variableGrads(() => {
        const logits = classifier.forward(x, { training: true });
        const predicted = logits.argMax(1).dataSync();
        for (let i = 0; i < labels.length; i++) correct += predicted[i] === labels[i] ? 1 : 0;
        seen += labels.length;
        return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
      }, params);
      optimizer.apply(params.map((p) => grads[p.name] ?? undefined));
      value.dispose();
      for (const g of Object.values(grads)) g?.dispose();
      x.dispose();
      y.dispose();
      if ((it + 1) % 100 === 0 || it + 1 === total) {
        recent = correct / Math.max(1, seen);
        correct = 0;
        seen = 0;
      }
      options.onProgress?.(it + 1, total, recent);
    }
    const features = classifier.toTensorMap();
    const merged: TensorMap = new Map();
    for (const [name, t] of policy.toTensorMap()) merged.set(name, name.startsWith('fc.') ? t : features.get(name) ?? t);
    policy.assignWeights(merged);
    return recent;
  } finally {
    optimizer.dispose();
    classifier.dispose();
  }
}
