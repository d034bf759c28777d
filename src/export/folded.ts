/**
 * A ResNet with batch norm folded into its convolutions: the engine-neutral form every exported ONNX
 * graph is built from. Eval-mode BN after a bias-free conv is an affine map per output channel, so
 * conv(x, W) → BN  ==  conv(x, W·a) + (β − μ·a)  with  a = γ / √(σ² + ε).
 */
import { BlockdropError } from '../errors.js';
import { blockCount, blockExpansion, blockLayouts, type ResNetConfig } from '../models/config.js';
import { shapeString, type HostTensor, type TensorMap } from '../tensor.js';

/** PyTorch's BatchNorm default, used by every BlockDrop / akamaster / torchvision checkpoint. */
export const BN_EPS = 1e-5;

export interface FoldedConv {
  /** OIHW [outC, inC, k, k]. */
  readonly weight: Float32Array;
  readonly bias: Float32Array;
  readonly outC: number;
  readonly inC: number;
  readonly k: number;
  readonly stride: number;
}

export interface FoldedBlock {
  readonly stage: number;
  readonly index: number;
  readonly inC: number;
  readonly outC: number;
  readonly stride: number;
  /** Input spatial side. */
  readonly inSize: number;
  readonly outSize: number;
  /** BasicBlock: conv3x3(stride), conv3x3. Bottleneck: conv1x1, conv3x3(stride), then `conv3`. */
  readonly conv1: FoldedConv;
  readonly conv2: FoldedConv;
  /** Bottleneck only: the closing conv1x1 (planes → planes × 4). */
  readonly conv3?: FoldedConv;
  /** Whether the shortcut changes the tensor (first block of a stage with stride or width change). */
  readonly downsample: boolean;
  /** Projection shortcut (conv1x1(stride) + BN, folded), computed even when the block is dropped. */
  readonly projection?: FoldedConv;
}

export interface FoldedResNet {
  readonly arch: ResNetConfig;
  /** CIFAR: conv3x3 + ReLU. ImageNet: conv7x7 stride 2 + ReLU, then max-pool 3×3 stride 2 pad 1. */
  readonly stem: FoldedConv;
  readonly blocks: readonly FoldedBlock[];
  /** [classes, features] row-major, as PyTorch's Linear. */
  readonly fcWeight: Float32Array;
  readonly fcBias: Float32Array;
  readonly features: number;
  readonly classes: number;
}

function toFloat32(t: HostTensor, key: string): Float32Array {
  if (t.dtype === 'float32') return t.data as Float32Array;
  if (t.dtype === 'float64') return Float32Array.from(t.data as Float64Array);
  throw new BlockdropError(`weight ${key} has dtype ${t.dtype}; expected float32 (convert the checkpoint to float32 first)`);
}

function need(tensors: TensorMap, key: string, shape: readonly number[]): Float32Array {
  const t = tensors.get(key);
  if (!t) throw new BlockdropError(`weights are missing ${key}; is this checkpoint for a different architecture?`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new BlockdropError(
      `weight ${key} has shape ${shapeString(t.shape)}, expected ${shapeString(shape)}; is this checkpoint for a different architecture?`,
    );
  }
  return toFloat32(t, key);
}

/** Folds `{conv}.weight` and `{bn}.*` (canonical names) into one conv with bias. */
export function foldConvBn(
  tensors: TensorMap,
  conv: string,
  bn: string,
  outC: number,
  inC: number,
  k: number,
  stride: number,
): FoldedConv {
  const w = need(tensors, `${conv}.weight`, [outC, inC, k, k]);
  const gamma = need(tensors, `${bn}.weight`, [outC]);
  const beta = need(tensors, `${bn}.bias`, [outC]);
  const mean = need(tensors, `${bn}.running_mean`, [outC]);
  const variance = need(tensors, `${bn}.running_var`, [outC]);
  const weight = new Float32Array(w.length);
  const bias = new Float32Array(outC);
  const per = inC * k * k;
  for (let o = 0; o < outC; o++) {
    // Folding in float64, rounding once, keeps the folded net within ~1 ulp of conv-then-BN.
    const a = gamma[o]! / Math.sqrt(variance[o]! + BN_EPS);
    bias[o] = beta[o]! - mean[o]! * a;
    for (let j = 0; j < per; j++) weight[o * per + j] = w[o * per + j]! * a;
  }
  return { weight, bias, outC, inC, k, stride };
}

/**
 * Source of one folded conv: `name` is `conv1` (stem), `blocks.{s}.{i}.conv{1,2,3}` or `ds.{s}.0`
 * (projection shortcut).
 */
export type FoldedConvSource = (name: string, outC: number, inC: number, k: number, stride: number) => FoldedConv;

/** The skeleton of a ResNet (any row of the architecture table) with convs and fc from the given sources. */
export function buildFolded(
  arch: ResNetConfig,
  convOf: FoldedConvSource,
  fc: { weight: Float32Array; bias: Float32Array },
): FoldedResNet {
  const imagenetStem = arch.stem === 'imagenet';
  const stem = convOf('conv1', arch.stemWidth, 3, imagenetStem ? 7 : 3, imagenetStem ? 2 : 1);
  const blocks: FoldedBlock[] = blockLayouts(arch).map((b) => {
    const p = `blocks.${b.stage}.${b.index}`;
    const downsample = b.shortcut !== 'identity';
    const projection = b.shortcut === 'projection' ? convOf(`ds.${b.stage}.0`, b.outChannels, b.inChannels, 1, b.stride) : undefined;
    const common = {
      stage: b.stage, index: b.index, inC: b.inChannels, outC: b.outChannels, stride: b.stride,
      inSize: b.inSize, outSize: b.outSize, downsample, ...(projection ? { projection } : {}),
    };
    if (arch.blockType === 'basic') {
      return {
        ...common,
        conv1: convOf(`${p}.conv1`, b.planes, b.inChannels, 3, b.stride),
        conv2: convOf(`${p}.conv2`, b.outChannels, b.planes, 3, 1),
      };
    }
    return {
      ...common,
      conv1: convOf(`${p}.conv1`, b.planes, b.inChannels, 1, 1),
      conv2: convOf(`${p}.conv2`, b.planes, b.planes, 3, b.stride),
      conv3: convOf(`${p}.conv3`, b.outChannels, b.planes, 1, 1),
    };
  });
  if (blocks.length !== blockCount(arch)) throw new Error('buildFolded: block count mismatch');
  const features = arch.widths[arch.widths.length - 1]! * blockExpansion(arch);
  if (fc.weight.length !== arch.numClasses * features || fc.bias.length !== arch.numClasses) {
    throw new BlockdropError(`fc of ${arch.name} must be [${arch.numClasses}, ${features}]`);
  }
  return { arch, stem, blocks, fcWeight: fc.weight, fcBias: fc.bias, features, classes: arch.numClasses };
}

/** The BN that follows a conv, in canonical names: `…convN` → `…bnN`, `ds.{s}.0` → `ds.{s}.1`. */
export function bnNameOf(conv: string): string {
  return conv.startsWith('ds.') ? conv.replace(/\.0$/, '.1') : conv.replace(/conv(\d)$/, 'bn$1');
}

/**
 * Folds a ResNet given canonical tensor names (`conv1.weight`, `bn1.*`,
 * `blocks.{stage}.{index}.{conv,bn}{1,2[,3]}.*`, `ds.{stage}.{0,1}.*`, `fc.{weight,bias}`).
 */
export function foldResNet(arch: ResNetConfig, tensors: TensorMap): FoldedResNet {
  const features = arch.widths[arch.widths.length - 1]! * blockExpansion(arch);
  return buildFolded(
    arch,
    (name, outC, inC, k, stride) => foldConvBn(tensors, name, bnNameOf(name), outC, inC, k, stride),
    { weight: need(tensors, 'fc.weight', [arch.numClasses, features]), bias: need(tensors, 'fc.bias', [arch.numClasses]) },
  );
}
