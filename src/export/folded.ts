/**
 * A ResNet with batch norm folded into its convolutions: the engine-neutral form every exported ONNX
 * graph is built from. Eval-mode BN after a bias-free conv is an affine map per output channel, so
 * conv(x, W) → BN  ==  conv(x, W·a) + (β − μ·a)  with  a = γ / √(σ² + ε).
 */
import { BlockdropError } from '../errors.js';
import { blockCount, blockPositions, type ResNetConfig } from '../models/config.js';
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
  readonly conv1: FoldedConv;
  readonly conv2: FoldedConv;
  /** Whether the shortcut changes the tensor (first block of a stage with stride or width change). */
  readonly downsample: boolean;
}

export interface FoldedResNet {
  readonly arch: ResNetConfig;
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

/** Source of one folded conv: `name` is `conv1`, `blocks.{s}.{i}.conv1` or `blocks.{s}.{i}.conv2`. */
export type FoldedConvSource = (name: string, outC: number, inC: number, k: number, stride: number) => FoldedConv;

/** The skeleton of a CIFAR basic-block ResNet with convs and fc from the given sources. */
export function buildFolded(
  arch: ResNetConfig,
  convOf: FoldedConvSource,
  fc: { weight: Float32Array; bias: Float32Array },
): FoldedResNet {
  if (arch.blockType !== 'basic' || arch.stem !== 'cifar') {
    throw new BlockdropError(`ONNX export supports CIFAR basic-block ResNets only, not ${arch.name}`);
  }
  if (arch.shortcut === 'projection') {
    throw new BlockdropError(`ONNX export does not support projection shortcuts yet (${arch.name})`);
  }
  const stem = convOf('conv1', arch.stemWidth, 3, 3, 1);
  const blocks: FoldedBlock[] = [];
  let inC = arch.stemWidth;
  let size = arch.inputSize;
  for (const { stage, index } of blockPositions(arch)) {
    const outC = arch.widths[stage]!;
    const stride = index === 0 ? arch.strides[stage]! : 1;
    const p = `blocks.${stage}.${index}`;
    const outSize = Math.floor((size - 1) / stride) + 1;
    blocks.push({
      stage,
      index,
      inC,
      outC,
      stride,
      inSize: size,
      outSize,
      conv1: convOf(`${p}.conv1`, outC, inC, 3, stride),
      conv2: convOf(`${p}.conv2`, outC, outC, 3, 1),
      downsample: stride !== 1 || inC !== outC,
    });
    inC = outC;
    size = outSize;
  }
  if (blocks.length !== blockCount(arch)) throw new Error('buildFolded: block count mismatch');
  if (fc.weight.length !== arch.numClasses * inC || fc.bias.length !== arch.numClasses) {
    throw new BlockdropError(`fc of ${arch.name} must be [${arch.numClasses}, ${inC}]`);
  }
  return { arch, stem, blocks, fcWeight: fc.weight, fcBias: fc.bias, features: inC, classes: arch.numClasses };
}

/**
 * Folds a CIFAR-style basic-block ResNet given canonical tensor names
 * (`conv1.weight`, `bn1.*`, `blocks.{stage}.{index}.{conv1,bn1,conv2,bn2}.*`, `fc.{weight,bias}`).
 */
export function foldResNet(arch: ResNetConfig, tensors: TensorMap): FoldedResNet {
  const bnOf = (conv: string) => conv.replace(/conv(\d)$/, 'bn$1');
  const features = arch.widths[arch.widths.length - 1]!;
  return buildFolded(
    arch,
    (name, outC, inC, k, stride) => foldConvBn(tensors, name, bnOf(name), outC, inC, k, stride),
    { weight: need(tensors, 'fc.weight', [arch.numClasses, features]), bias: need(tensors, 'fc.bias', [arch.numClasses]) },
  );
}
