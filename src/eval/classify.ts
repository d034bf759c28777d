/**
 * Accuracy of a full (no policy) backbone on a CIFAR split with the TensorFlow.js forward.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../data/cifar.js';
import { normalizeBatch } from '../data/batches.js';
import type { Normalization } from '../models/config.js';
import type { ResNet } from '../models/resnet.js';

export interface ClassifyResult {
  readonly accuracy: number;
  readonly correct: number;
  readonly images: number;
  readonly imagesPerSecond: number;
  readonly seconds: number;
  /** Accuracy per class index. */
  readonly perClassAccuracy: number[];
  /** Predicted class per image. */
  readonly predictions: Int32Array;
}

export interface ClassifyOptions {
  readonly batchSize?: number;
  readonly limit?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

export async function classifyImages(
  model: ResNet,
  normalization: Normalization,
  set: ImageSet,
  options: ClassifyOptions = {},
): Promise<ClassifyResult> {
  const total = Math.min(options.limit ?? set.count, set.count);
  const batchSize = options.batchSize ?? 128;
  const numClasses = model.arch.numClasses;
  const predictions = new Int32Array(total);
  const classTotal = new Array<number>(numClasses).fill(0);
  const classCorrect = new Array<number>(numClasses).fill(0);
  let correct = 0;
  const started = performance.now();
  for (let start = 0; start < total; start += batchSize) {
    const count = Math.min(batchSize, total - start);
    const indices = Array.from({ length: count }, (_, i) => start + i);
    const input = normalizeBatch(set, indices, normalization);
    const predicted = tf.tidy(() => {
      const x = tf.tensor4d(input, [count, set.height, set.width, 3]);
      return model.forward(x).argMax(1);
    });
    const classes = (await predicted.data()) as Int32Array;
    predicted.dispose();
    for (let i = 0; i < count; i++) {
      const label = set.labels[start + i]!;
      predictions[start + i] = classes[i]!;
      classTotal[label]!++;
      if (classes[i] === label) {
        correct++;
        classCorrect[label]!++;
      }
    }
    options.onProgress?.(start + count, total);
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    accuracy: total > 0 ? correct / total : 0,
    correct,
    images: total,
    imagesPerSecond: total / seconds,
    seconds,
    perClassAccuracy: classTotal.map((n, c) => (n > 0 ? classCorrect[c]! / n : 0)),
    predictions,
  };
}
