/**
 * The architecture table: every network blockdrop knows, as plain data.
 * Like torchvision's `resnet.py`, depth is a row in a table, not a class.
 */
import { BlockdropError } from '../errors.js';

/**
 * How a stage's first block matches shapes when stride or width changes.
 * - `downsampleB`: 2×2 average pool, then zero channels appended after the input channels
 *   (felixgwu / BlockDrop's own CIFAR checkpoints).
 * - `optionA`: stride-2 subsampling x[:, :, ::2, ::2], zero channels padded equally on both sides
 *   (akamaster's CIFAR checkpoints).
 * - `projection`: conv1x1(stride) + BN (torchvision ImageNet ResNets).
 */
export type ShortcutType = 'downsampleB' | 'optionA' | 'projection';

export type BlockType = 'basic' | 'bottleneck';

export interface ResNetConfig {
  /** Table key, e.g. `resnet32`. */
  readonly name: string;
  readonly blockType: BlockType;
  /** Residual blocks per stage; K = their sum. */
  readonly blocksPerStage: readonly number[];
  /** Planes per stage (output channels = planes × expansion). */
  readonly widths: readonly number[];
  /** Stride of each stage's first block. */
  readonly strides: readonly number[];
  readonly shortcut: ShortcutType;
  readonly numClasses: number;
  /** Square input side in pixels (32 for CIFAR). */
  readonly inputSize: number;
  /** Stem: 'cifar' = conv3x3(3→w0)+BN+ReLU; 'imagenet' = conv7x7 s2 + BN + ReLU + maxpool 3 s2. */
  readonly stem: 'cifar' | 'imagenet';
  /** Channels of the stem output. */
  readonly stemWidth: number;
}

/** Per-channel input normalisation, in [0, 1] pixel units: x' = (x/255 − mean) / std. */
export interface Normalization {
  readonly name: 'cifar' | 'imagenet' | 'none';
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
}

export const NORMALIZATIONS: Readonly<Record<Normalization['name'], Normalization>> = {
  // BlockDrop's ResNet-32 (the only BlockDrop model trained with normalisation).
  cifar: { name: 'cifar', mean: [125.3 / 255, 123.0 / 255, 113.9 / 255], std: [63.0 / 255, 62.1 / 255, 66.7 / 255] },
  // akamaster's models and torchvision's ImageNet models.
  imagenet: { name: 'imagenet', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  // BlockDrop's ResNet-110: raw [0, 1] pixels.
  none: { name: 'none', mean: [0, 0, 0], std: [1, 1, 1] },
};

const normalizationLuts = new Map<string, Float32Array>();

/**
 * Pixel → normalised value for every channel: lut[c·256 + v] = (v/255 − mean[c]) / std[c], computed in float64 and
 * rounded once to float32, so every input path (training batches, image folders, the executor) gives the same floats.
 * Cached per mean/std; callers must not write into it.
 */
export function normalizationLut(n: Normalization): Float32Array {
  const key = `${n.mean.join(',')}|${n.std.join(',')}`;
  let lut = normalizationLuts.get(key);
  if (!lut) {
    lut = new Float32Array(3 * 256);
    for (let c = 0; c < 3; c++) {
      for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - n.mean[c]!) / n.std[c]!;
    }
    normalizationLuts.set(key, lut);
  }
  return lut;
}

export const CIFAR10_CLASSES: readonly string[] = [
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
];

function cifar(depth: number, shortcut: ShortcutType, numClasses = 10): ResNetConfig {
  const n = (depth - 2) / 6;
  return {
    name: `resnet${depth}`,
    blockType: 'basic',
    blocksPerStage: [n, n, n],
    widths: [16, 32, 64],
    strides: [1, 2, 2],
    shortcut,
    numClasses,
    inputSize: 32,
    stem: 'cifar',
    stemWidth: 16,
  };
}

/**
 * torchvision's ImageNet ResNets (v1.5: stride on the 3×3 conv): 7×7 stem + max-pool, widths
 * 64/128/256/512, projection shortcut (conv1x1 + BN) where stride or width changes, 224×224 input.
 */
function imagenet(name: string, blockType: BlockType, blocksPerStage: readonly number[], numClasses = 1000): ResNetConfig {
  return {
    name,
    blockType,
    blocksPerStage,
    widths: [64, 128, 256, 512],
    strides: [1, 2, 2, 2],
    shortcut: 'projection',
    numClasses,
    inputSize: 224,
    stem: 'imagenet',
    stemWidth: 64,
  };
}

/** torchvision depths with their block type and blocks per stage. */
export const IMAGENET_DEPTHS: Readonly<Record<number, { blockType: BlockType; blocksPerStage: readonly number[] }>> = {
  18: { blockType: 'basic', blocksPerStage: [2, 2, 2, 2] },
  34: { blockType: 'basic', blocksPerStage: [3, 4, 6, 3] },
  50: { blockType: 'bottleneck', blocksPerStage: [3, 4, 6, 3] },
  101: { blockType: 'bottleneck', blocksPerStage: [3, 4, 23, 3] },
  152: { blockType: 'bottleneck', blocksPerStage: [3, 8, 36, 3] },
};

/** The ImageNet backbones in the preset table (ResNet-101 is BlockDrop's; ResNet-50 the smaller sibling). */
export const IMAGENET_PRESETS = ['resnet50', 'resnet101'] as const;

/** Side of the image BlockDrop's ImageNet policy sees: the 224×224 input average-pooled by 2. */
export const IMAGENET_POLICY_INPUT = 112;

/** CIFAR depths 6n+2 with BasicBlocks. ResNet-8 is BlockDrop's CIFAR policy backbone. */
export const CIFAR_DEPTHS = [8, 20, 32, 44, 56, 110] as const;
export type CifarDepth = (typeof CIFAR_DEPTHS)[number];

/**
 * A backbone preset: an architecture plus the input normalisation its pretrained weights expect.
 * Names: `resnet{depth}` is the DownsampleB family (BlockDrop's checkpoints), `resnet{depth}a` is the
 * option-A family (akamaster's checkpoints).
 */
export interface ModelPreset {
  readonly arch: ResNetConfig;
  readonly normalization: Normalization;
  readonly description: string;
}

function buildPresets(): Map<string, ModelPreset> {
  const presets = new Map<string, ModelPreset>();
  for (const depth of CIFAR_DEPTHS) {
    presets.set(`resnet${depth}`, {
      arch: cifar(depth, 'downsampleB'),
      // BlockDrop normalised only its ResNet-32; its ResNet-110 takes raw pixels.
      normalization: depth === 32 ? NORMALIZATIONS.cifar : NORMALIZATIONS.none,
      description: `CIFAR ResNet-${depth}, DownsampleB shortcut (BlockDrop / felixgwu checkpoints)`,
    });
    presets.set(`resnet${depth}a`, {
      arch: { ...cifar(depth, 'optionA'), name: `resnet${depth}a` },
      normalization: NORMALIZATIONS.imagenet,
      description: `CIFAR ResNet-${depth}, option-A shortcut (akamaster checkpoints)`,
    });
  }
  for (const name of IMAGENET_PRESETS) {
    const depth = Number(name.slice('resnet'.length));
    const { blockType, blocksPerStage } = IMAGENET_DEPTHS[depth]!;
    presets.set(name, {
      arch: imagenet(name, blockType, blocksPerStage),
      normalization: NORMALIZATIONS.imagenet,
      description: `ImageNet ResNet-${depth}, ${blockType === 'bottleneck' ? 'Bottleneck' : 'BasicBlock'} blocks, projection shortcuts (torchvision checkpoints)`,
    });
  }
  return presets;
}

/** A torchvision-layout ImageNet ResNet of a known depth (18, 34, 50, 101, 152), e.g. for a checkpoint's detected depth. */
export function imagenetArch(depth: number, numClasses = 1000): ResNetConfig {
  const entry = IMAGENET_DEPTHS[depth];
  if (!entry) {
    throw new BlockdropError(`no torchvision ResNet of depth ${depth}; choose one of ${Object.keys(IMAGENET_DEPTHS).join(', ')}`);
  }
  return imagenet(`resnet${depth}`, entry.blockType, entry.blocksPerStage, numClasses);
}

export const PRESETS: ReadonlyMap<string, ModelPreset> = buildPresets();

export function getPreset(name: string): ModelPreset {
  const preset = PRESETS.get(name);
  if (!preset) {
    throw new BlockdropError(
      `unknown architecture '${name}'; choose one of: ${[...PRESETS.keys()].join(', ')}`,
    );
  }
  return preset;
}

/** Number of residual blocks K (one keep/drop decision each). */
export function blockCount(arch: ResNetConfig): number {
  return arch.blocksPerStage.reduce((a, b) => a + b, 0);
}

/**
 * The policy network BlockDrop pairs with a backbone: ResNet-8 (DownsampleB) on the same 32×32 image
 * for CIFAR (`Policy32`); for ImageNet (`Policy224`) a ResNet-10 (one BasicBlock per stage,
 * torchvision layout) on the image average-pooled to 112×112, whose 4×4 final map is average-pooled
 * (= global pooling) into the K-way head.
 */
export function policyArchFor(backbone: ResNetConfig): ResNetConfig {
  const K = blockCount(backbone);
  if (backbone.stem === 'cifar') return { ...cifar(8, 'downsampleB'), name: 'policy-resnet8', numClasses: K };
  if (backbone.inputSize % 2 !== 0) {
    throw new BlockdropError(`the ImageNet policy pools the input by 2; ${backbone.name} has an odd input side ${backbone.inputSize}`);
  }
  return {
    ...imagenet('policy-resnet10', 'basic', [1, 1, 1, 1], K),
    inputSize: backbone.inputSize / 2,
  };
}

/** Factor by which the backbone's input is average-pooled before the policy network sees it (1 or 2). */
export function policyInputPool(backbone: ResNetConfig, policy: ResNetConfig = policyArchFor(backbone)): number {
  const factor = backbone.inputSize / policy.inputSize;
  if (!Number.isInteger(factor) || factor < 1) {
    throw new BlockdropError(`policy input ${policy.inputSize} does not divide the backbone input ${backbone.inputSize}`);
  }
  return factor;
}

/** Index of each block's stage and position: block t ↦ {stage, index}. Order: stage by stage. */
export function blockPositions(arch: ResNetConfig): { stage: number; index: number }[] {
  const out: { stage: number; index: number }[] = [];
  arch.blocksPerStage.forEach((n, stage) => {
    for (let index = 0; index < n; index++) out.push({ stage, index });
  });
  return out;
}

/** Output channels per input channel of a block: BasicBlock 1, Bottleneck 4. */
export function blockExpansion(arch: ResNetConfig): number {
  return arch.blockType === 'bottleneck' ? 4 : 1;
}

/** Spatial side of the stem output (input of the first stage). */
export function stemOutputSize(arch: ResNetConfig): number {
  if (arch.stem === 'cifar') return arch.inputSize;
  // conv7x7 stride 2 pad 3, then maxpool 3x3 stride 2 pad 1.
  const afterConv = Math.floor((arch.inputSize + 6 - 7) / 2) + 1;
  return Math.floor((afterConv + 2 - 3) / 2) + 1;
}

/** What a block's shortcut computes. `identity` unless the block changes stride or width. */
export type BlockShortcut = 'identity' | ShortcutType;

/** Everything shape-related about one residual block, derived from the table. */
export interface BlockLayout {
  /** Policy index (stage-major). */
  readonly t: number;
  readonly stage: number;
  readonly index: number;
  readonly inChannels: number;
  /** Width of the block's inner convs. */
  readonly planes: number;
  readonly outChannels: number;
  readonly stride: number;
  readonly inSize: number;
  readonly outSize: number;
  readonly shortcut: BlockShortcut;
}

/** The blocks in forward (= policy) order. Stride sits on the 3x3 conv (conv1 of a BasicBlock, conv2 of
 *  a Bottleneck), so every block's output side is ⌊(in − 1) / stride⌋ + 1. */
export function blockLayouts(arch: ResNetConfig): BlockLayout[] {
  const expansion = blockExpansion(arch);
  const out: BlockLayout[] = [];
  let channels = arch.stemWidth;
  let size = stemOutputSize(arch);
  let t = 0;
  arch.blocksPerStage.forEach((n, stage) => {
    const planes = arch.widths[stage]!;
    for (let index = 0; index < n; index++) {
      const stride = index === 0 ? arch.strides[stage]! : 1;
      const outChannels = planes * expansion;
      const outSize = Math.floor((size - 1) / stride) + 1;
      const changes = stride !== 1 || channels !== outChannels;
      out.push({
        t: t++, stage, index, inChannels: channels, planes, outChannels, stride,
        inSize: size, outSize, shortcut: changes ? arch.shortcut : 'identity',
      });
      channels = outChannels;
      size = outSize;
    }
  });
  return out;
}
