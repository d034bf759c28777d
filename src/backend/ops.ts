/**
 * The few composite ops the models call. They pick the fastest formulation the engine offers while
 * staying differentiable; models never ask which engine runs.
 */
import * as tf from '@tensorflow/tfjs';

export type Activation = 'linear' | 'relu';

export interface Conv2DOptions {
  readonly stride?: number;
  /** Symmetric zero padding in pixels (PyTorch semantics), or 'same'/'valid'. Default 0. */
  readonly pad?: number | 'same' | 'valid';
  /** Per-output-channel bias [Cout]. */
  readonly bias?: tf.Tensor1D;
  readonly activation?: Activation;
}

/** True while a gradient tape records (inside tf.grad / tf.variableGrads / optimizer.minimize). */
export function isRecordingGradients(): boolean {
  return tf.engine().state.gradientDepth > 0;
}

/**
 * NHWC conv2d with an HWIO filter, optional bias and ReLU.
 * Without a gradient tape this is one fused kernel (conv + bias + activation); under a tape it is
 * plain conv2d/add/relu, whose Conv2D gradient is the registry's forward-conv formulation
 * (tfjs's fused-conv gradient calls Conv2DBackpropFilter directly, which wasm lacks).
 */
export function conv2d(x: tf.Tensor4D, filter: tf.Tensor4D, opts: Conv2DOptions = {}): tf.Tensor4D {
  const stride = opts.stride ?? 1;
  const pad = opts.pad ?? 0;
  const activation = opts.activation ?? 'linear';
  if (!isRecordingGradients()) {
    return tf.fused.conv2d({ x, filter, strides: stride, pad, bias: opts.bias, activation });
  }
  let y = tf.conv2d(x, filter, stride, pad);
  if (opts.bias) y = tf.add(y, opts.bias);
  return activation === 'relu' ? tf.relu(y) : y;
}

/** x·W + b for W [in, out]. */
export function linear(x: tf.Tensor2D, weight: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor2D {
  if (!isRecordingGradients()) return tf.fused.matMul({ a: x, b: weight, bias }) as tf.Tensor2D;
  const y = tf.matMul(x, weight) as tf.Tensor2D;
  return bias ? (tf.add(y, bias) as tf.Tensor2D) : y;
}

/**
 * Per-channel mean of an NHWC tensor over N, H and W, reduced one axis at a time (W, then H, then N).
 * The wasm Mean kernel accumulates sequentially in float32; one 8192-term reduction is off by ~1e-6,
 * which train-mode BN divides by a small batch std (errors of 1e-5 in activations, flipped ReLUs and
 * 1% gradient errors on PyTorch's fixtures). Short reductions keep it at the 1e-7 level for the same cost.
 */
export function channelMean(x: tf.Tensor4D): tf.Tensor1D {
  return tf.mean(tf.mean(tf.mean(x, 2), 1), 0) as tf.Tensor1D;
}

/**
 * Training-mode batch norm over N, H, W with plain broadcasting ops (fast gradients on every engine).
 * Returns the output and the batch mean and biased variance (for the running-stat update).
 */
export function batchNormTrain(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): {
  y: tf.Tensor4D; mean: tf.Tensor1D; variance: tf.Tensor1D;
} {
  const mean = channelMean(x);
  const centered = tf.sub(x, mean);
  const variance = channelMean(tf.square(centered) as tf.Tensor4D);
  const scale = tf.mul(gamma, tf.rsqrt(tf.add(variance, eps)));
  const y = tf.add(tf.mul(centered, scale), beta) as tf.Tensor4D;
  return { y, mean, variance };
}
