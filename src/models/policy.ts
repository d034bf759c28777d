/**
 * BlockDrop's policy networks: a small ResNet whose head has K outputs, one per residual block of the
 * backbone, squashed by a sigmoid into keep probabilities.
 * - CIFAR (`Policy32`): ResNet-8 (DownsampleB) on the same 32×32 image.
 * - ImageNet (`Policy224`): ResNet-10 (one BasicBlock per stage, torchvision layout) on the image
 *   average-pooled by 2 to 112×112; its 4×4 final map is average-pooled into the 512-d head input.
 *   The original initialises it from torchvision's ImageNet ResNet-18 (the first block of each stage,
 *   see `policyWeightsFromResnet18`).
 *
 * The original also has a value head `vnet` (Linear(features, 1)) that is computed but never used in
 * any loss; it is left out here (its weights are dropped when loading an original agent). Its FLOPs
 * are still counted by `policyFlops`, as the paper's counter did.
 */
import * as tf from '@tensorflow/tfjs';
import { BlockdropError } from '../errors.js';
import { shapeString, type TensorMap } from '../tensor.js';
import { blockCount, policyArchFor, policyInputPool, type ResNetConfig } from './config.js';
import { ResNet, type ResNetOptions } from './resnet.js';
import { canonicalizeResNetKeys, initResNetWeights, resnetParamSpecs, validateResNetWeights } from './weights.js';

export class PolicyNetwork {
  /** Number of keep probabilities = blocks of the backbone. */
  readonly numBlocks: number;
  /** The backbone's input is average-pooled by this factor before the policy sees it (ImageNet: 2). */
  readonly inputPool: number;

  private constructor(readonly backbone: ResNetConfig, readonly resnet: ResNet) {
    this.numBlocks = blockCount(backbone);
    this.inputPool = policyInputPool(backbone, resnet.arch);
  }

  /** The architecture of the policy's own ResNet (ResNet-8 / ResNet-10 with a K-way head). */
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

  /**
   * The ImageNet policy as the original builds it: ResNet-10 from a torchvision ResNet-18 checkpoint
   * (stem and the first block of each stage), K-way head freshly initialised (seeded).
   */
  static fromResnet18(backbone: ResNetConfig, resnet18: TensorMap, seed: number, opts: ResNetOptions = {}): PolicyNetwork {
    const arch = policyArchFor(backbone);
    return new PolicyNetwork(
      backbone,
      ResNet.fromWeights(arch, policyWeightsFromResnet18(arch, resnet18, seed), { trainable: opts.trainable ?? true }),
    );
  }

  /**
   * Pre-sigmoid scores [B, K]. `x` is the backbone's normalised NHWC input; for ImageNet it is
   * average-pooled to the policy's side here (an input already at the policy's side is used as is).
   */
  logits(x: tf.Tensor4D, opts: { training?: boolean } = {}): tf.Tensor2D {
    return tf.tidy(() => this.resnet.forward(this.policyInput(x), { training: opts.training }));
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

  /** Canonical names (conv1.*, bn1.*, blocks.*, ds.*, fc.*), PyTorch layouts. */
  toTensorMap(): TensorMap {
    return this.resnet.toTensorMap();
  }

  assignWeights(tensors: TensorMap): void {
    this.resnet.assignWeights(tensors);
  }

  dispose(): void {
    this.resnet.dispose();
  }

  /** F.avg_pool2d(x, 2) for ImageNet (the original's `Policy224.forward`); the identity for CIFAR. */
  private policyInput(x: tf.Tensor4D): tf.Tensor4D {
    const side = this.resnet.arch.inputSize;
    if (this.inputPool === 1 || (x.shape[1] === side && x.shape[2] === side)) return x;
    const expected = side * this.inputPool;
    if (x.shape[1] !== expected || x.shape[2] !== expected) {
      throw new BlockdropError(
        `the policy for ${this.backbone.name} takes ${expected}×${expected} images (pooled to ${side}×${side}), got ${shapeString(x.shape)}`,
      );
    }
    return tf.avgPool(x, this.inputPool, this.inputPool, 'valid');
  }
}

/**
 * Weights of a ResNet-10 policy (`policyArch`: BasicBlocks [1,1,1,1], torchvision layout) taken from a
 * torchvision ResNet-18 state dict, as BlockDrop's `Policy224` does: `conv1`, `bn1` and `layerN.0.*`
 * (its projection `layerN.0.downsample.*` included); `layerN.1.*` and the 1000-way `fc` are not used.
 * The K-way head gets PyTorch's default Linear init (seeded). Key names may be torchvision's or
 * canonical, with or without `module.`.
 */
export function policyWeightsFromResnet18(policyArch: ResNetConfig, resnet18: TensorMap, seed: number): TensorMap {
  if (policyArch.blockType !== 'basic' || policyArch.blocksPerStage.some((n) => n !== 1)) {
    throw new BlockdropError(`${policyArch.name} is not a ResNet-10 (one BasicBlock per stage); cannot take weights from a ResNet-18`);
  }
  const source = canonicalizeResNetKeys(resnet18);
  if (![...source.keys()].some((k) => /^blocks\.\d+\.1\.conv1\.weight$/.test(k))) {
    throw new BlockdropError('the checkpoint has no second block per stage (layerN.1.*); is it a torchvision ResNet-18?');
  }
  const fresh = initResNetWeights(policyArch, seed);
  const out: TensorMap = new Map();
  for (const spec of resnetParamSpecs(policyArch)) {
    if (spec.kind === 'fc_weight' || spec.kind === 'fc_bias') {
      out.set(spec.key, fresh.get(spec.key)!);
      continue;
    }
    const t = source.get(spec.key);
    if (!t) throw new BlockdropError(`the ResNet-18 checkpoint has no '${spec.key}' (torchvision name of a stage's first block); is it a torchvision ResNet-18?`);
    out.set(spec.key, t);
  }
  validateResNetWeights(policyArch, out);
  return out;
}
