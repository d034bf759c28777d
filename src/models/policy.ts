/**
 * BlockDrop's CIFAR policy network (`Policy32`): a ResNet-8 (DownsampleB) whose head has K outputs,
 * one per residual block of the backbone, squashed by a sigmoid into keep probabilities.
 *
 * The original also has a value head `vnet` (Linear(64, 1)) that is computed but never used in any
 * loss; it is left out here (its weights are dropped when loading an original agent). Its FLOPs are
 * still counted by `policyFlops`, as the paper's counter did.
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorMap } from '../tensor.js';
import { blockCount, policyArchFor, type ResNetConfig } from './config.js';
import { ResNet, type ResNetOptions } from './resnet.js';

export class PolicyNetwork {
  /** Number of keep probabilities = blocks of the backbone. */
  readonly numBlocks: number;

  private constructor(readonly backbone: ResNetConfig, readonly resnet: ResNet) {
    this.numBlocks = blockCount(backbone);
  }

  /** The architecture of the policy's own ResNet (ResNet-8 with a K-way head). */
  get arch(): ResNetConfig {
    return this.resnet.arch;
  }

  /** Random init as the original (He-normal convs, default Linear head). Trainable unless told otherwise. */
  static init(backbone: ResNetConfig, seed: number, opts: ResNetOptions = {}): PolicyNetwork {
    return new PolicyNetwork(backbone, ResNet.init(policyArchFor(backbone), seed, { trainable: opts.trainable ?? true }));
  }

  /** From an agent state dict (`features.*`, `logit.*`, `vnet.*`) or canonical names. Trainable unless told otherwise. */
  static fromWeights(backbone: ResNetConfig, tensors: TensorMap, opts: ResNetOptions = {}): PolicyNetwork {
    return new PolicyNetwork(
      backbone,
      ResNet.fromWeights(policyArchFor(backbone), tensors, { trainable: opts.trainable ?? true }),
    );
  }

  /** Pre-sigmoid scores [B, K]. */
  logits(x: tf.Tensor4D, opts: { training?: boolean } = {}): tf.Tensor2D {
    return this.resnet.forward(x, { training: opts.training });
  }

  /** Keep probabilities s = sigmoid(logits), [B, K]. */
  probabilities(x: tf.Tensor4D, opts: { training?: boolean } = {}): tf.Tensor2D {
    return tf.tidy(() => tf.sigmoid(this.logits(x, opts)));
  }

  variables(): tf.Variable[] {
    return this.resnet.variables();
  }

  setTrainable(trainable: boolean): void {
    this.resnet.setTrainable(trainable);
  }

  /** Canonical names (conv1.*, bn1.*, blocks.*, fc.*), PyTorch layouts. */
  toTensorMap(): TensorMap {
    return this.resnet.toTensorMap();
  }

  assignWeights(tensors: TensorMap): void {
    this.resnet.assignWeights(tensors);
  }

  dispose(): void {
    this.resnet.dispose();
  }
}
