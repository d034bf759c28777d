/**
 * The ResNets whose blocks BlockDrop drops, in TensorFlow.js (NHWC), driven by the architecture table.
 *
 * Read it like torchvision's resnet.py: small functions (conv+BN, residual branches, shortcuts, stem,
 * head) composed by `ResNet.forward`. Block semantics are BlockDrop's (`models/resnet.py` FlatResNet):
 * the shortcut is always computed; a kept block gives ReLU(shortcut + F(x)), a dropped block gives the
 * shortcut alone, without ReLU.
 */
import * as tf from '@tensorflow/tfjs';
import { batchNormTrain, conv2d, isRecordingGradients, linear } from '../backend/ops.js';
import { BlockdropError } from '../errors.js';
import { shapeString, type TensorMap } from '../tensor.js';
import { blockCount, blockLayouts, type BlockLayout, type ResNetConfig } from './config.js';
import {
  canonicalizeResNetKeys, initResNetWeights, resnetParamSpecs, validateResNetWeights, type ParamSpec,
} from './weights.js';

/** PyTorch BatchNorm defaults (every checkpoint we read was trained with them). */
export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.1;

export interface ResNetOptions {
  /** Mark the parameters trainable, so tf.variableGrads / optimizers pick them up. */
  readonly trainable?: boolean;
}

export interface ForwardOptions {
  /** [B, K] float keep mask, 1 = execute block t, 0 = drop it. Treated as a constant (no gradient). */
  readonly keep?: tf.Tensor2D;
  /** BN with batch statistics, updating the running stats (momentum 0.1, unbiased variance). */
  readonly training?: boolean;
  /**
   * How a block that some images keep and others drop runs in training mode or under a gradient tape: 'masked'
   * (default, the original's: on the whole batch, blended) or 'gathered' (only on the images that keep it, so its
   * batch statistics are theirs; the ONNX training engine's gathered graphs compute the same).
   */
  readonly blockExecution?: 'masked' | 'gathered';
}

// ---------------------------------------------------------------------------------------------------
// parameters

interface BatchNormParams {
  readonly gamma: tf.Variable<tf.Rank.R1>;
  readonly beta: tf.Variable<tf.Rank.R1>;
  readonly runningMean: tf.Variable<tf.Rank.R1>;
  readonly runningVar: tf.Variable<tf.Rank.R1>;
}

/** The model's variables by canonical name; convs stored HWIO, fc [in, out] (tfjs layouts). */
class Params {
  constructor(readonly vars: ReadonlyMap<string, tf.Variable>) {}

  private get(key: string): tf.Variable {
    const v = this.vars.get(key);
    if (!v) throw new Error(`internal: no parameter '${key}'`);
    return v;
  }

  conv(prefix: string): tf.Tensor4D {
    return this.get(`${prefix}.weight`) as tf.Variable<tf.Rank.R4>;
  }

  bn(prefix: string): BatchNormParams {
    return {
      gamma: this.get(`${prefix}.weight`) as tf.Variable<tf.Rank.R1>,
      beta: this.get(`${prefix}.bias`) as tf.Variable<tf.Rank.R1>,
      runningMean: this.get(`${prefix}.running_mean`) as tf.Variable<tf.Rank.R1>,
      runningVar: this.get(`${prefix}.running_var`) as tf.Variable<tf.Rank.R1>,
    };
  }

  fc(): { weight: tf.Tensor2D; bias: tf.Tensor1D } {
    return { weight: this.get('fc.weight') as tf.Variable<tf.Rank.R2>, bias: this.get('fc.bias') as tf.Variable<tf.Rank.R1> };
  }
}

/** PyTorch layout → tfjs layout. */
function toEngineLayout(spec: ParamSpec, data: Float32Array): tf.Tensor {
  return tf.tidy(() => {
    const t = tf.tensor(data, [...spec.shape], 'float32');
    if (spec.kind === 'conv') return tf.transpose(t, [2, 3, 1, 0]); // OIHW → HWIO
    if (spec.kind === 'fc_weight') return tf.transpose(t, [1, 0]); // [out,in] → [in,out]
    return t;
  });
}

/** tfjs layout → PyTorch layout (host copy). */
function toTorchLayout(spec: ParamSpec, v: tf.Tensor): Float32Array {
  return tf.tidy(() => {
    let t: tf.Tensor = v;
    if (spec.kind === 'conv') t = tf.transpose(v, [3, 2, 0, 1]); // HWIO → OIHW
    else if (spec.kind === 'fc_weight') t = tf.transpose(v, [1, 0]);
    return Float32Array.from(t.dataSync() as Float32Array);
  });
}

const isRunningStat = (spec: ParamSpec) => spec.kind === 'bn_mean' || spec.kind === 'bn_var';

// ---------------------------------------------------------------------------------------------------
// building blocks

interface Mode {
  readonly training: boolean;
  /** Folded eval-mode weights to reuse (only when no gradient tape records). */
  readonly folds?: FoldCache;
}

interface Folded {
  readonly filter: tf.Tensor4D;
  readonly bias: tf.Tensor1D;
}

/** conv → eval-mode BN as one conv: filter·a and bias β − μ·a, with a = γ / √(σ² + ε). */
function foldBatchNorm(filter: tf.Tensor4D, bn: BatchNormParams): Folded {
  const scale = tf.mul(bn.gamma, tf.rsqrt(tf.add(bn.runningVar, BN_EPS)));
  return {
    filter: tf.mul(filter, scale) as tf.Tensor4D, // scale broadcasts over the output channels
    bias: tf.sub(bn.beta, tf.mul(bn.runningMean, scale)) as tf.Tensor1D,
  };
}

/**
 * Folded weights kept between eval forwards. An entry is valid while the five source variables hold
 * the same data: any assign (optimizer step, BN running-stat update, assignWeights) gives a variable a
 * new dataId, which invalidates it. Reusing the same filter tensor also lets the wasm backend reuse
 * its packed XNNPACK operator.
 */
class FoldCache {
  private readonly entries = new Map<tf.Tensor, { sources: object[]; folded: Folded }>();

  get(filter: tf.Tensor4D, bn: BatchNormParams): Folded {
    const sources = [filter.dataId, bn.gamma.dataId, bn.beta.dataId, bn.runningMean.dataId, bn.runningVar.dataId];
    const hit = this.entries.get(filter);
    if (hit && hit.sources.every((s, i) => s === sources[i])) return hit.folded;
    if (hit) tf.dispose([hit.folded.filter, hit.folded.bias]);
    const [f, b] = tf.tidy(() => {
      const r = foldBatchNorm(filter, bn);
      return [r.filter, r.bias];
    });
    const folded: Folded = { filter: tf.keep(f as tf.Tensor4D), bias: tf.keep(b as tf.Tensor1D) };
    this.entries.set(filter, { sources, folded });
    return folded;
  }

  clear(): void {
    for (const { folded } of this.entries.values()) tf.dispose([folded.filter, folded.bias]);
    this.entries.clear();
  }
}

/**
 * conv → BN (→ ReLU). Eval mode folds BN into the conv (per-output-channel scale on the filter, shift
 * as bias: one fused kernel). Training mode normalises with batch statistics and updates the running
 * statistics in place.
 */
function convBn(
  x: tf.Tensor4D, filter: tf.Tensor4D, bn: BatchNormParams,
  stride: number, pad: number, relu: boolean, mode: Mode,
): tf.Tensor4D {
  if (!mode.training) {
    const folded = mode.folds ? mode.folds.get(filter, bn) : foldBatchNorm(filter, bn);
    return conv2d(x, folded.filter, { stride, pad, bias: folded.bias, activation: relu ? 'relu' : 'linear' });
  }
  const y = conv2d(x, filter, { stride, pad });
  const { y: normed, mean, variance } = batchNormTrain(y, bn.gamma, bn.beta, BN_EPS);
  const n = y.shape[0] * y.shape[1] * y.shape[2];
  const unbiased = tf.mul(variance, n / Math.max(n - 1, 1));
  bn.runningMean.assign(tf.add(tf.mul(bn.runningMean, 1 - BN_MOMENTUM), tf.mul(mean, BN_MOMENTUM)));
  bn.runningVar.assign(tf.add(tf.mul(bn.runningVar, 1 - BN_MOMENTUM), tf.mul(unbiased, BN_MOMENTUM)));
  return relu ? tf.relu(normed) : normed;
}

/** BasicBlock residual branch F(x) = bn2(conv2(relu(bn1(conv1(x))))); the stride is on conv1. */
function basicResidual(x: tf.Tensor4D, p: Params, prefix: string, stride: number, mode: Mode): tf.Tensor4D {
  const h = convBn(x, p.conv(`${prefix}.conv1`), p.bn(`${prefix}.bn1`), stride, 1, true, mode);
  return convBn(h, p.conv(`${prefix}.conv2`), p.bn(`${prefix}.bn2`), 1, 1, false, mode);
}

/** Bottleneck residual branch (1x1 → 3x3 with the stride → 1x1 ×4), torchvision v1.5. */
function bottleneckResidual(x: tf.Tensor4D, p: Params, prefix: string, stride: number, mode: Mode): tf.Tensor4D {
  const h1 = convBn(x, p.conv(`${prefix}.conv1`), p.bn(`${prefix}.bn1`), 1, 0, true, mode);
  const h2 = convBn(h1, p.conv(`${prefix}.conv2`), p.bn(`${prefix}.bn2`), stride, 1, true, mode);
  return convBn(h2, p.conv(`${prefix}.conv3`), p.bn(`${prefix}.bn3`), 1, 0, false, mode);
}

/** Zero channels around x: `before` in front, `after` behind. */
function padChannels(x: tf.Tensor4D, before: number, after: number): tf.Tensor4D {
  return before + after === 0 ? x : tf.pad(x, [[0, 0], [0, 0], [0, 0], [before, after]]);
}

/** DownsampleB (felixgwu / BlockDrop): AvgPool(stride), then zero channels appended after x. */
function downsampleB(x: tf.Tensor4D, b: BlockLayout): tf.Tensor4D {
  const pooled = b.stride > 1 ? tf.avgPool(x, b.stride, b.stride, 'valid') : x;
  return padChannels(pooled, 0, b.outChannels - b.inChannels);
}

/** Option A (akamaster): x[:, ::s, ::s] from (0,0), then planes/4 zero channels on each side. */
function optionA(x: tf.Tensor4D, b: BlockLayout): tf.Tensor4D {
  // A 1×1 average pool with stride s is exactly x[::s, ::s], and unlike stridedSlice it has a gradient.
  const sub = b.stride > 1 ? tf.avgPool(x, 1, b.stride, 'valid') : x;
  const before = Math.floor(b.planes / 4);
  return padChannels(sub, before, b.outChannels - b.inChannels - before);
}

function shortcut(x: tf.Tensor4D, b: BlockLayout, p: Params, mode: Mode): tf.Tensor4D {
  switch (b.shortcut) {
    case 'identity':
      return x;
    case 'downsampleB':
      return downsampleB(x, b);
    case 'optionA':
      return optionA(x, b);
    case 'projection':
      return convBn(x, p.conv(`ds.${b.stage}.0`), p.bn(`ds.${b.stage}.1`), b.stride, 0, false, mode);
  }
}

function stem(x: tf.Tensor4D, arch: ResNetConfig, p: Params, mode: Mode): tf.Tensor4D {
  if (arch.stem === 'cifar') return convBn(x, p.conv('conv1'), p.bn('bn1'), 1, 1, true, mode);
  const h = convBn(x, p.conv('conv1'), p.bn('bn1'), 2, 3, true, mode);
  // PyTorch's MaxPool2d(3, 2, padding=1) pads with −∞; after the ReLU every value is ≥ 0, so zeros are equivalent.
  return tf.maxPool(tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, 'valid');
}

/** Global average pool (CIFAR: AvgPool2d(8) on the 8×8 map) → fc. */
function head(x: tf.Tensor4D, p: Params): tf.Tensor2D {
  const pooled = tf.mean(x, [1, 2]) as tf.Tensor2D;
  const { weight, bias } = p.fc();
  return linear(pooled, weight, bias);
}

// ---------------------------------------------------------------------------------------------------
// the network

export class ResNet {
  readonly numBlocks: number;
  private readonly layouts: readonly BlockLayout[];
  private readonly params: Params;
  private readonly specs: readonly ParamSpec[];
  private readonly folds = new FoldCache();
  private disposed = false;

  private constructor(readonly arch: ResNetConfig, vars: Map<string, tf.Variable>) {
    this.numBlocks = blockCount(arch);
    this.layouts = blockLayouts(arch);
    this.specs = resnetParamSpecs(arch);
    this.params = new Params(vars);
  }

  /** Builds the network from a state dict in any supported naming (mapped to canonical names and
   *  validated first). Parameters are frozen unless `trainable: true`. */
  static fromWeights(arch: ResNetConfig, tensors: TensorMap, opts: ResNetOptions = {}): ResNet {
    const canonical = canonicalizeResNetKeys(tensors);
    validateResNetWeights(arch, canonical);
    const trainable = opts.trainable ?? false;
    const vars = new Map<string, tf.Variable>();
    for (const spec of resnetParamSpecs(arch)) {
      const value = toEngineLayout(spec, canonical.get(spec.key)!.data as Float32Array);
      vars.set(spec.key, tf.variable(value, trainable && !isRunningStat(spec)));
      value.dispose();
    }
    return new ResNet(arch, vars);
  }

  /** Freshly initialised (see `initResNetWeights`); trainable unless `trainable: false`. */
  static init(arch: ResNetConfig, seed: number, opts: ResNetOptions = {}): ResNet {
    return ResNet.fromWeights(arch, initResNetWeights(arch, seed), { trainable: opts.trainable ?? true });
  }

  /**
   * x: normalised NHWC [B,H,W,3]. keep: optional [B,K] 0/1 mask (1 = execute block).
   * training: BN uses batch statistics and updates running stats (momentum 0.1, unbiased running var).
   * Returns logits [B, numClasses].
   *
   * A block every image drops is skipped outright. In training mode a block some images keep runs
   * on the whole batch and is blended, x ← m·ReLU(sc+F(x)) + (1−m)·sc, so its BN batch statistics
   * include the images that drop it (BlockDrop's finetuning), unless `blockExecution: 'gathered'`. In eval
   * mode without a gradient tape it runs only on the images that keep it (identical values, less work).
   */
  forward(x: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor2D {
    this.checkAlive();
    const training = opts.training ?? false;
    if (x.rank !== 4 || x.shape[3] !== 3) {
      throw new BlockdropError(`model input must be NHWC [batch, height, width, 3], got ${shapeString(x.shape)}`);
    }
    const batch = x.shape[0];
    const columns = opts.keep ? this.readKeep(opts.keep, batch) : undefined;
    return tf.tidy(() => {
      const mode: Mode = { training, folds: training || isRecordingGradients() ? undefined : this.folds };
      const keep = opts.keep && (opts.keep.dtype === 'float32' ? opts.keep : tf.cast(opts.keep, 'float32'));
      let h = stem(x, this.arch, this.params, mode);
      for (const b of this.layouts) {
        const column = columns?.[b.t];
        if (column && column.kept.length === 0 && column.binary) {
          h = shortcut(h, b, this.params, mode); // dropped by every image: the residual branch never runs
          continue;
        }
        const sc = shortcut(h, b, this.params, mode);
        if (!column || (column.binary && column.dropped.length === 0)) {
          h = tf.relu(tf.add(sc, this.residual(h, b, mode))) as tf.Tensor4D;
        } else if (column.binary && (opts.blockExecution === 'gathered' || (!training && !isRecordingGradients()))) {
          h = this.forwardKeptOnly(h, sc, b, column, mode);
        } else {
          const m = tf.reshape(tf.slice(keep!, [0, b.t], [batch, 1]), [batch, 1, 1, 1]);
          const executed = tf.relu(tf.add(sc, this.residual(h, b, mode))) as tf.Tensor4D;
          h = tf.add(tf.mul(m, executed), tf.mul(tf.sub(1, m), sc)) as tf.Tensor4D;
        }
      }
      return head(h, this.params);
    });
  }

  /** The trainable parameters (conv weights, BN γ/β, fc), in canonical order. Not the BN running stats. */
  variables(): tf.Variable[] {
    this.checkAlive();
    return this.specs.filter((s) => !isRunningStat(s)).map((s) => this.params.vars.get(s.key)!);
  }

  /** The trainable parameters by canonical name (tfjs layouts: convs HWIO, fc [in, out]). */
  namedVariables(): Map<string, tf.Variable> {
    this.checkAlive();
    return new Map(this.specs.filter((s) => !isRunningStat(s)).map((s) => [s.key, this.params.vars.get(s.key)!]));
  }

  /** Every variable by canonical name, BN running statistics included (tfjs layouts); a training engine reads them. */
  allVariables(): ReadonlyMap<string, tf.Variable> {
    this.checkAlive();
    return this.params.vars;
  }

  /** Marks the parameters (not the running stats) trainable or frozen. */
  setTrainable(trainable: boolean): void {
    for (const v of this.variables()) v.trainable = trainable;
  }

  /** All tensors in canonical names and PyTorch layouts, BN running stats included, float32. */
  toTensorMap(): TensorMap {
    this.checkAlive();
    const out: TensorMap = new Map();
    for (const spec of this.specs) {
      out.set(spec.key, { dtype: 'float32', shape: [...spec.shape], data: toTorchLayout(spec, this.params.vars.get(spec.key)!) });
    }
    return out;
  }

  /** Overwrites every tensor (e.g. when resuming); same naming/validation rules as `fromWeights`. */
  assignWeights(tensors: TensorMap): void {
    this.checkAlive();
    const canonical = canonicalizeResNetKeys(tensors);
    validateResNetWeights(this.arch, canonical);
    for (const spec of this.specs) {
      const value = toEngineLayout(spec, canonical.get(spec.key)!.data as Float32Array);
      this.params.vars.get(spec.key)!.assign(value);
      value.dispose();
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.folds.clear();
    for (const v of this.params.vars.values()) v.dispose();
    this.disposed = true;
  }

  private residual(x: tf.Tensor4D, b: BlockLayout, mode: Mode): tf.Tensor4D {
    const prefix = `blocks.${b.stage}.${b.index}`;
    return this.arch.blockType === 'basic'
      ? basicResidual(x, this.params, prefix, b.stride, mode)
      : bottleneckResidual(x, this.params, prefix, b.stride, mode);
  }

  /** Runs block b only on the images that keep it and merges them back with the others' shortcuts. */
  private forwardKeptOnly(x: tf.Tensor4D, sc: tf.Tensor4D, b: BlockLayout, column: KeepColumn, mode: Mode): tf.Tensor4D {
    const kept = tf.tensor1d(column.kept, 'int32');
    const xKept = tf.gather(x, kept);
    const scKept = b.shortcut === 'identity' ? xKept : tf.gather(sc, kept);
    const executed = tf.relu(tf.add(scKept, this.residual(xKept, b, mode)));
    // [executed images…, whole batch's shortcuts…]: pick each image's row back in batch order.
    const order = Int32Array.from({ length: x.shape[0] }, (_, i) => executed.shape[0] + i);
    column.kept.forEach((img, i) => (order[img] = i));
    return tf.gather(tf.concat([executed, sc], 0), tf.tensor1d(order, 'int32')) as tf.Tensor4D;
  }

  private readKeep(keep: tf.Tensor2D, batch: number): KeepColumn[] {
    if (keep.rank !== 2 || keep.shape[0] !== batch || keep.shape[1] !== this.numBlocks) {
      throw new BlockdropError(
        `keep mask must be [${batch}, ${this.numBlocks}] (images × blocks of ${this.arch.name}), got ${shapeString(keep.shape)}`,
      );
    }
    const values = keep.dataSync();
    const columns: KeepColumn[] = [];
    for (let t = 0; t < this.numBlocks; t++) {
      const kept: number[] = [];
      const dropped: number[] = [];
      let binary = true;
      for (let i = 0; i < batch; i++) {
        const v = values[i * this.numBlocks + t]!;
        if (v === 1) kept.push(i);
        else if (v === 0) dropped.push(i);
        else binary = false;
      }
      columns.push({ kept, dropped, binary });
    }
    return columns;
  }

  private checkAlive(): void {
    if (this.disposed) throw new BlockdropError(`${this.arch.name} was disposed; build a new model`);
  }
}

interface KeepColumn {
  readonly kept: number[];
  readonly dropped: number[];
  /** All values exactly 0 or 1. */
  readonly binary: boolean;
}
