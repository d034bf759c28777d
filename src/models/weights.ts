/**
 * Canonical weight naming, key mapping from the checkpoint families we read, architecture detection,
 * validation and initialisation.
 *
 * Canonical layout = BlockDrop's flat ResNet (`models/resnet.py` FlatResNet), PyTorch tensor layouts:
 *   conv1.weight [stemWidth,3,k,k]   bn1.{weight,bias,running_mean,running_var}
 *   blocks.{stage}.{index}.{conv1,bn1,conv2,bn2[,conv3,bn3]}.*
 *   ds.{stage}.{0,1}.*  (projection shortcut conv1x1 + BN; only for `projection` nets)
 *   fc.weight [classes, features]    fc.bias [classes]
 * Conv weights are OIHW, linear weights [out, in]; the tfjs model transposes on load/save.
 */
import { BlockdropError } from '../errors.js';
import { numel, shapeString, toFloat32, type HostTensor, type TensorMap } from '../tensor.js';
import { Rng } from '../util/rng.js';
import {
  blockExpansion, blockLayouts, CIFAR_DEPTHS, getPreset, IMAGENET_DEPTHS, PRESETS, type ResNetConfig,
} from './config.js';

export type ParamKind = 'conv' | 'bn_weight' | 'bn_bias' | 'bn_mean' | 'bn_var' | 'fc_weight' | 'fc_bias';

export interface ParamSpec {
  readonly key: string;
  /** PyTorch layout. */
  readonly shape: readonly number[];
  readonly kind: ParamKind;
}

const BN_SUFFIXES: readonly [string, ParamKind][] = [
  ['weight', 'bn_weight'], ['bias', 'bn_bias'], ['running_mean', 'bn_mean'], ['running_var', 'bn_var'],
];

/** Every tensor of `arch` in canonical order (stem, blocks, projections, head). */
export function resnetParamSpecs(arch: ResNetConfig): ParamSpec[] {
  const specs: ParamSpec[] = [];
  const conv = (key: string, out: number, inC: number, k: number) =>
    specs.push({ key: `${key}.weight`, shape: [out, inC, k, k], kind: 'conv' });
  const bn = (key: string, c: number) => {
    for (const [suffix, kind] of BN_SUFFIXES) specs.push({ key: `${key}.${suffix}`, shape: [c], kind });
  };
  conv('conv1', arch.stemWidth, 3, arch.stem === 'cifar' ? 3 : 7);
  bn('bn1', arch.stemWidth);
  const layouts = blockLayouts(arch);
  for (const b of layouts) {
    const p = `blocks.${b.stage}.${b.index}`;
    if (arch.blockType === 'basic') {
      conv(`${p}.conv1`, b.planes, b.inChannels, 3);
      bn(`${p}.bn1`, b.planes);
      conv(`${p}.conv2`, b.planes, b.planes, 3);
      bn(`${p}.bn2`, b.planes);
    } else {
      conv(`${p}.conv1`, b.planes, b.inChannels, 1);
      bn(`${p}.bn1`, b.planes);
      conv(`${p}.conv2`, b.planes, b.planes, 3);
      bn(`${p}.bn2`, b.planes);
      conv(`${p}.conv3`, b.outChannels, b.planes, 1);
      bn(`${p}.bn3`, b.outChannels);
    }
  }
  for (const b of layouts) {
    if (b.shortcut !== 'projection') continue;
    conv(`ds.${b.stage}.0`, b.outChannels, b.inChannels, 1);
    bn(`ds.${b.stage}.1`, b.outChannels);
  }
  const features = arch.widths[arch.widths.length - 1]! * blockExpansion(arch);
  specs.push({ key: 'fc.weight', shape: [arch.numClasses, features], kind: 'fc_weight' });
  specs.push({ key: 'fc.bias', shape: [arch.numClasses], kind: 'fc_bias' });
  return specs;
}

/** Canonical key → PyTorch shape. */
export function resnetWeightShapes(arch: ResNetConfig): Map<string, readonly number[]> {
  return new Map(resnetParamSpecs(arch).map((s) => [s.key, s.shape]));
}

// ---------------------------------------------------------------------------------------------------
// dtype conversion

const FLOAT_DTYPES = new Set(['float32', 'float64', 'float16', 'bfloat16']);

function asFloat32(t: HostTensor): HostTensor {
  return t.dtype === 'float32' ? t : { dtype: 'float32', shape: t.shape, data: toFloat32(t) };
}

// ---------------------------------------------------------------------------------------------------
// key mapping

/**
 * Maps the key names of the checkpoint families we read to the canonical layout:
 * - `module.` prefixes (nn.DataParallel) are stripped;
 * - akamaster: `layer{N}.{i}.*` → `blocks.{N-1}.{i}.*`, `linear.*` → `fc.*`;
 * - felixgwu / BlockDrop base nets and torchvision: `layer{N}.{i}.*` as above,
 *   `layer{N}.{i}.downsample.{j}.*` (and akamaster option-B `shortcut.{j}`) → `ds.{N-1}.{j}.*`;
 * - BlockDrop policy agents: `features.X` → `X`, `logit.*` → `fc.*`, `vnet.*` (unused value head) and a
 *   legacy `features.fc.*` are dropped;
 * - `*.num_batches_tracked` is dropped; canonical names pass through unchanged.
 * Floating-point tensors come out as float32, other tensors unchanged.
 */
export function canonicalizeResNetKeys(tensors: TensorMap): TensorMap {
  const keys = [...tensors.keys()].map((k) => k.replace(/^(module\.)+/, ''));
  const isAgent = keys.some((k) => k.startsWith('logit.'));
  const out: TensorMap = new Map();
  const origin = new Map<string, string>();
  for (const [rawKey, tensor] of tensors) {
    let key = rawKey.replace(/^(module\.)+/, '');
    if (key.endsWith('num_batches_tracked')) continue;
    if (key.startsWith('vnet.')) continue;
    if (key.startsWith('features.')) {
      key = key.slice('features.'.length);
      if (isAgent && key.startsWith('fc.')) continue;
    }
    let m: RegExpMatchArray | null;
    if (key.startsWith('logit.')) key = `fc.${key.slice('logit.'.length)}`;
    else if (key.startsWith('linear.')) key = `fc.${key.slice('linear.'.length)}`;
    else if ((m = key.match(/^layer(\d+)\.(\d+)\.(?:downsample|shortcut)\.(\d+)\.(.+)$/))) {
      if (m[2] !== '0') {
        throw new BlockdropError(`'${rawKey}': a shortcut projection outside a stage's first block is not supported`);
      }
      key = `ds.${Number(m[1]) - 1}.${m[3]}.${m[4]}`;
    } else if ((m = key.match(/^layer(\d+)\.(\d+)\.(.+)$/))) {
      key = `blocks.${Number(m[1]) - 1}.${m[2]}.${m[3]}`;
    }
    const previous = origin.get(key);
    if (previous !== undefined) {
      throw new BlockdropError(`'${previous}' and '${rawKey}' both map to '${key}'; the checkpoint mixes two models`);
    }
    origin.set(key, rawKey);
    out.set(key, FLOAT_DTYPES.has(tensor.dtype) ? asFloat32(tensor) : tensor);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// detection

export interface DetectedPreset {
  /** Preset name from the table (`resnet32`, `resnet20a`, …). */
  readonly preset: string;
  /** One line: why this preset. */
  readonly reason: string;
  /** The preset's architecture with the class count found in the head (may differ from the preset's 10). */
  readonly arch: ResNetConfig;
}

/**
 * Guesses the preset of a CIFAR ResNet (or of a torchvision ImageNet ResNet-50 / 101, see
 * `detectImagenetPreset`) from its tensors **as read from the file** (before `canonicalizeResNetKeys`,
 * which erases the distinguishing name).
 *
 * Depth comes from the number of blocks (6n+2). The shortcut type cannot be seen in the weights —
 * option A and DownsampleB are both parameter-free — so the only reliable signal is the naming:
 * akamaster's files call the head `linear.*` and always use option A; felixgwu / BlockDrop files
 * (e.g. BlockDrop's R32 .t7) call it `fc.*` and use DownsampleB; a policy agent (`logit.*`) is
 * BlockDrop's DownsampleB ResNet-8. A file already in canonical names (`fc.*`) is therefore taken as
 * DownsampleB: record the preset in project checkpoints instead of relying on this.
 * Returns undefined when the tensors are not a CIFAR BasicBlock ResNet of a known depth.
 */
export function detectPreset(tensors: TensorMap): DetectedPreset | undefined {
  const raw = [...tensors.keys()].map((k) => k.replace(/^(module\.)+/, ''));
  let canonical: TensorMap;
  try {
    canonical = canonicalizeResNetKeys(tensors);
  } catch {
    return undefined;
  }
  const stem = canonical.get('conv1.weight');
  if (stem && stem.shape.join(',') === '64,3,7,7') return detectImagenetPreset(canonical);
  if (!stem || stem.shape.join(',') !== '16,3,3,3') return undefined;
  if ([...canonical.keys()].some((k) => k.startsWith('ds.') || /\.conv3\./.test(k))) return undefined;
  const perStage = [0, 0, 0];
  for (const key of canonical.keys()) {
    const m = key.match(/^blocks\.(\d+)\.(\d+)\.conv1\.weight$/);
    if (!m) continue;
    const stage = Number(m[1]);
    if (stage > 2) return undefined;
    perStage[stage] = Math.max(perStage[stage]!, Number(m[2]) + 1);
  }
  const n = perStage[0]!;
  if (n === 0 || perStage[1] !== n || perStage[2] !== n) return undefined;
  const depth = 6 * n + 2;
  if (!(CIFAR_DEPTHS as readonly number[]).includes(depth)) return undefined;
  const fc = canonical.get('fc.weight');
  if (!fc || fc.shape.length !== 2) return undefined;
  const classes = fc.shape[0]!;

  let preset: string;
  let why: string;
  if (raw.some((k) => k.startsWith('linear.'))) {
    preset = `resnet${depth}a`;
    why = "head named 'linear' (akamaster naming, which means the option-A shortcut)";
  } else if (raw.some((k) => k.startsWith('logit.'))) {
    preset = `resnet${depth}`;
    why = "head named 'logit' (BlockDrop policy agent: DownsampleB shortcut)";
  } else {
    preset = `resnet${depth}`;
    why = "head named 'fc' (felixgwu / BlockDrop naming, which means the DownsampleB shortcut)";
  }
  const base = getPreset(preset).arch;
  const arch = classes === base.numClasses ? base : { ...base, numClasses: classes };
  const classNote = classes === base.numClasses ? '' : `, ${classes} classes`;
  return { preset, arch, reason: `${3 * n} blocks → depth ${depth}; ${why}${classNote}` };
}

/**
 * A torchvision ImageNet ResNet (7×7 stem with 64 channels) in canonical names: the block type from
 * the presence of conv3, the depth from the blocks per stage. Only depths in the preset table match.
 */
function detectImagenetPreset(canonical: TensorMap): DetectedPreset | undefined {
  const perStage = [0, 0, 0, 0];
  let bottleneck = false;
  for (const key of canonical.keys()) {
    const m = key.match(/^blocks\.(\d+)\.(\d+)\.(conv\d)\.weight$/);
    if (!m) continue;
    const stage = Number(m[1]);
    if (stage > 3) return undefined;
    perStage[stage] = Math.max(perStage[stage]!, Number(m[2]) + 1);
    if (m[3] === 'conv3') bottleneck = true;
  }
  const blockType = bottleneck ? 'bottleneck' : 'basic';
  const match = Object.entries(IMAGENET_DEPTHS).find(
    ([, d]) => d.blockType === blockType && d.blocksPerStage.every((n, i) => n === perStage[i]),
  );
  if (!match) return undefined;
  const preset = `resnet${match[0]}`;
  if (!PRESETS.has(preset)) return undefined;
  const fc = canonical.get('fc.weight');
  if (!fc || fc.shape.length !== 2) return undefined;
  const classes = fc.shape[0]!;
  const base = getPreset(preset).arch;
  const arch = classes === base.numClasses ? base : { ...base, numClasses: classes };
  return {
    preset,
    arch,
    reason: `7×7 stem, ${blockType} blocks [${perStage.join(', ')}] → torchvision ResNet-${match[0]} (projection shortcuts), ${classes} classes`,
  };
}

// ---------------------------------------------------------------------------------------------------
// validation

/** Throws a one-line BlockdropError on the first missing, unexpected or mis-shaped tensor.
 *  `tensors` must be in canonical names (see `canonicalizeResNetKeys`). */
export function validateResNetWeights(arch: ResNetConfig, tensors: TensorMap): void {
  const specs = resnetParamSpecs(arch);
  const expected = new Map(specs.map((s) => [s.key, s]));
  const hint = `; is '${arch.name}' the right architecture for this checkpoint?`;
  const missing = specs.filter((s) => !tensors.has(s.key));
  if (missing.length > 0) {
    const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
    throw new BlockdropError(
      `missing weight '${missing[0]!.key}' ${shapeString(missing[0]!.shape)}${more} for ${arch.name}${hint}`,
    );
  }
  const unexpected = [...tensors.keys()].filter((k) => !expected.has(k));
  if (unexpected.length > 0) {
    const more = unexpected.length > 1 ? ` (and ${unexpected.length - 1} more)` : '';
    const t = tensors.get(unexpected[0]!)!;
    throw new BlockdropError(
      `unexpected weight '${unexpected[0]}' ${shapeString(t.shape)}${more} for ${arch.name}${hint}`,
    );
  }
  for (const spec of specs) {
    const t = tensors.get(spec.key)!;
    if (t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
      throw new BlockdropError(
        `weight '${spec.key}' has shape ${shapeString(t.shape)} but ${arch.name} expects ${shapeString(spec.shape)}${hint}`,
      );
    }
    if (!FLOAT_DTYPES.has(t.dtype)) {
      throw new BlockdropError(`weight '${spec.key}' has dtype ${t.dtype}, expected a floating-point tensor`);
    }
    if (t.data.length !== numel(t.shape)) {
      throw new BlockdropError(`weight '${spec.key}' holds ${t.data.length} values for shape ${shapeString(t.shape)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// initialisation

/**
 * Fresh weights as in BlockDrop's FlatResNet: convs N(0, √(2 / (k·k·out))), BN γ=1 β=0 with running
 * stats 0 / 1, fc with PyTorch's default Linear init (weight and bias U(−1/√in, 1/√in)).
 * Deterministic for a given seed.
 */
export function initResNetWeights(arch: ResNetConfig, seed: number): TensorMap {
  const rng = new Rng(seed);
  const out: TensorMap = new Map();
  for (const spec of resnetParamSpecs(arch)) {
    const data = new Float32Array(numel(spec.shape));
    switch (spec.kind) {
      case 'conv': {
        const [o, , kh, kw] = spec.shape as [number, number, number, number];
        const std = Math.sqrt(2 / (kh * kw * o));
        for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
        break;
      }
      case 'bn_weight':
      case 'bn_var':
        data.fill(1);
        break;
      case 'bn_bias':
      case 'bn_mean':
        break;
      case 'fc_weight':
      case 'fc_bias': {
        const fanIn = arch.widths[arch.widths.length - 1]! * blockExpansion(arch);
        const bound = 1 / Math.sqrt(fanIn);
        for (let i = 0; i < data.length; i++) data[i] = (2 * rng.next() - 1) * bound;
        break;
      }
    }
    out.set(spec.key, { dtype: 'float32', shape: [...spec.shape], data });
  }
  return out;
}
