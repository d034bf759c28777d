/**
 * Training graphs of a CIFAR ResNet for ONNX Runtime: a forward graph (batch-norm batch statistics, BlockDrop's
 * masked blocks) and a backward graph (parameter gradients from the gradient of the loss w.r.t. the output),
 * both written with standard ONNX ops by a small reverse-mode tape.
 *
 * Parameters are graph inputs in the tfjs layouts the models keep (convs HWIO, fc [in, out]), so one session
 * serves every step and gradients come back in the layout Adam updates. The forward graph outputs what the
 * backward graph needs ("saved" tensors, under their own names) and each batch norm's batch mean and biased
 * variance (the caller updates the running statistics). The batch dimension is symbolic.
 *
 * Gradients, as the tfjs path computes them (see src/backend/conv-grad.ts for the convolution algebra):
 * - conv, input: ConvTranspose of the output gradient by the same filter;
 *   filter: a stride-1 conv of the input with batch and channel axes swapped, by the output gradient dilated by s.
 * - batch norm: dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂)); dγ = Σ dy·x̂, dβ = Σ dy (reductions over N, H, W).
 * - ReLU via Where(y > 0), the global average pool by Expand, the fc layer by Gemm.
 *
 * Blocks run in one of two ways (`blockExecution`):
 * - 'masked' (the original's batched forward): every block runs on every row, and x ← m·ReLU(sc + F(x)) + (1 − m)·sc;
 *   a dropped block costs as much as a kept one, and its batch norms see every row.
 * - 'gathered': block t runs only on the rows that keep it (input `rows.t`, int64 row indices): Gather those rows,
 *   run F, and ScatterND ReLU(sc + F) back into the shortcut. A dropped block costs nothing, and its batch norms'
 *   statistics are those of the rows that run it, as the per-image executor sees them at test time. Gradients:
 *   Gather ↔ ScatterND into zeros; the scatter sends the rows it replaced to the block and the rest to the shortcut.
 *   ONNX Runtime runs a block no row keeps on empty tensors (its statistics come out 0 and are ignored).
 */
import { GraphBuilder, type Dim } from '../export/graph.js';
import { BlockdropError } from '../errors.js';
import { blockCount, blockLayouts, type BlockLayout, type ResNetConfig } from '../models/config.js';
import { resnetParamSpecs } from '../models/weights.js';

export const BATCH_DIM: Dim = 'batch';
/** PyTorch's BatchNorm ε (as src/models/resnet.ts). */
const BN_EPS = 1e-5;
/** The backward graph's input: dLoss/d(output), [B, outputs]. */
const DOUT = 'dout';
/** ONNX TensorProto.DataType.FLOAT (Cast's `to`). */
const FLOAT = 1;

export type BlockExecution = 'masked' | 'gathered';

export interface TrainGraphOptions {
  /** 'sigmoid': the output is sigmoid(logits) (the policy's keep probabilities); 'logits': the fc output. */
  readonly output: 'logits' | 'sigmoid';
  /**
   * Per-row block decisions: block t of row b runs iff it is kept. Masked: input 'keep' [B, K] float 0/1
   * (x ← m·ReLU(sc + F(x)) + (1 − m)·sc); gathered: inputs 'rows.t', the kept rows of block t (see the header).
   */
  readonly keep: boolean;
  /** How kept and dropped blocks are computed (default 'masked', the original's). */
  readonly blockExecution?: BlockExecution;
}

/** The gathered graphs' input holding block t's kept rows (int64 [n_t]). */
export function rowsInputName(t: number): string {
  return `rows.${t}`;
}

export interface BatchNormInfo {
  /** Canonical prefix, e.g. `blocks.0.1.bn2`. */
  readonly prefix: string;
  readonly channels: number;
  /** H·W of the normalised activation (N = batch · spatial). */
  readonly spatial: number;
  /** The residual block it belongs to (undefined: the stem). */
  readonly block?: number;
  /** Forward outputs: batch mean and biased batch variance, [C]. */
  readonly meanOutput: string;
  readonly varOutput: string;
}

export interface ParamInfo {
  /** Canonical name; also the input name in both graphs. */
  readonly key: string;
  /** tfjs layout. */
  readonly shape: readonly number[];
  readonly block?: number;
  /** Backward output holding its gradient. */
  readonly gradOutput: string;
}

export interface TrainGraphs {
  readonly forward: Uint8Array;
  readonly backward: Uint8Array;
  /** Trainable parameters in the model's `variables()` order (canonical order without running statistics). */
  readonly params: readonly ParamInfo[];
  readonly batchNorms: readonly BatchNormInfo[];
  /** Forward outputs that are backward inputs (same names). */
  readonly saved: readonly string[];
  /** Parameters the backward graph reads (a subset of `params`). */
  readonly backwardParams: readonly string[];
  /** Whether the backward graph reads 'keep' (masked) or the 'rows.t' inputs (gathered). */
  readonly backwardKeep: boolean;
  readonly blockExecution: BlockExecution;
  readonly outputs: number;
}

/** Architectures the ONNX training graphs cover; others train on the tfjs engine. */
export function onnxTrainable(arch: ResNetConfig): string | undefined {
  if (arch.stem !== 'cifar') return `the ${arch.stem} stem`;
  if (arch.blockType !== 'basic') return `${arch.blockType} blocks`;
  if (arch.shortcut === 'projection') return 'projection shortcuts';
  return undefined;
}

type Step = () => void;

/** Reverse-mode tape over two graph builders. */
class Tape {
  readonly f = new GraphBuilder('train_forward');
  readonly b = new GraphBuilder('train_backward', 'b_'); // own prefix: saved forward names must not collide
  private readonly dims = new Map<string, readonly Dim[]>();
  private readonly savedNames = new Map<string, string>();
  private readonly steps: Step[] = [];
  private readonly grads = new Map<string, string>();
  private readonly backwardInputs = new Set<string>();
  readonly backwardParams: string[] = [];
  /** Forward values whose gradient is not wanted (the image). */
  readonly constant = new Set<string>();
  private readonly fConsts = new Map<string, string>();
  private readonly bConsts = new Map<string, string>();

  setDims(v: string, d: readonly Dim[]): string {
    this.dims.set(v, d);
    return v;
  }

  dimsOf(v: string): readonly Dim[] {
    const d = this.dims.get(v);
    if (!d) throw new Error(`train graph: no shape for ${v}`);
    return d;
  }

  /** A forward value made available to the backward graph (a forward output and a backward input of the same name). */
  save(v: string): string {
    let name = this.savedNames.get(v);
    if (name) return name;
    name = v;
    const d = this.dimsOf(v);
    this.f.output(v, name, 'float32', d);
    this.b.input(name, 'float32', d);
    this.savedNames.set(v, name);
    return name;
  }

  get saved(): string[] {
    return [...this.savedNames.values()];
  }

  /** A graph input the backward graph reads as well (parameters, keep, rows). */
  backwardInput(name: string, dims: readonly Dim[], param: boolean, elem: 'float32' | 'int64' = 'float32'): string {
    if (!this.backwardInputs.has(name)) {
      this.backwardInputs.add(name);
      this.b.input(name, elem, dims);
      if (param) this.backwardParams.push(name);
    }
    return name;
  }

  hasBackwardInput(name: string): boolean {
    return this.backwardInputs.has(name);
  }

  /** Cached scalar / vector constants per graph. */
  fConst(values: readonly number[], dims: readonly number[] = []): string {
    return this.cached(this.f, this.fConsts, values, dims);
  }

  bConst(values: readonly number[], dims: readonly number[] = []): string {
    return this.cached(this.b, this.bConsts, values, dims);
  }

  bInts(values: readonly number[]): string {
    const key = `i:${values.join(',')}`;
    let n = this.bConsts.get(key);
    if (!n) {
      n = this.b.int64Const('ints', values);
      this.bConsts.set(key, n);
    }
    return n;
  }

  fInts(values: readonly number[]): string {
    const key = `i:${values.join(',')}`;
    let n = this.fConsts.get(key);
    if (!n) {
      n = this.f.int64Const('ints', values);
      this.fConsts.set(key, n);
    }
    return n;
  }

  private cached(g: GraphBuilder, cache: Map<string, string>, values: readonly number[], dims: readonly number[]): string {
    const key = `f:${values.join(',')}:${dims.join(',')}`;
    let n = cache.get(key);
    if (!n) {
      n = g.floatConst('const', dims, Float32Array.from(values));
      cache.set(key, n);
    }
    return n;
  }

  record(step: Step): void {
    this.steps.push(step);
  }

  addGrad(v: string, g: string): void {
    if (this.constant.has(v)) return;
    const old = this.grads.get(v);
    this.grads.set(v, old ? this.b.node('Add', [old, g]) : g);
  }

  grad(v: string): string | undefined {
    return this.grads.get(v);
  }

  runBackward(): void {
    for (let i = this.steps.length - 1; i >= 0; i--) this.steps[i]!();
  }
}

/** The symbolic row count of block t's gathered tensors. */
function rowsDim(t: number): string {
  return `rows_${t}`;
}

function spatial(d: readonly Dim[]): number {
  return (d[2] as number) * (d[3] as number);
}

/** ReduceSum over N, H, W of an NCHW tensor, in two stages (H·W, then N), keeping dims: [1, C, 1, 1]. */
function channelSum(t: Tape, x: string): string {
  const b = t.b;
  const hw = b.node('ReduceSum', [x, t.bInts([2, 3])], undefined, { keepdims: 1 });
  return b.node('ReduceSum', [hw, t.bInts([0])], undefined, { keepdims: 1 });
}

/** Per-channel mean over N, H, W in the forward graph (two stages, like the tfjs path's short reductions). */
function channelMeanF(t: Tape, x: string): string {
  const hw = t.f.node('ReduceMean', [x], undefined, { axes: [2, 3], keepdims: 1 });
  return t.f.node('ReduceMean', [hw], undefined, { axes: [0], keepdims: 1 });
}

class ResNetTrainGraph {
  readonly t = new Tape();
  readonly batchNorms: BatchNormInfo[] = [];
  private readonly paramShapes: Map<string, readonly number[]>;
  private readonly paramBlock = new Map<string, number | undefined>();
  private readonly paramGrads = new Map<string, string>();
  private keepF?: string;
  private readonly K: number;
  /** Gathered execution: block t's rows as [n_t] and [n_t, 1] (ScatterND indices), per graph. */
  private readonly rowsCache = new Map<string, string>();

  constructor(readonly arch: ResNetConfig, readonly options: TrainGraphOptions) {
    this.K = blockCount(arch);
    this.paramShapes = new Map(
      resnetParamSpecs(arch)
        .filter((s) => s.kind !== 'bn_mean' && s.kind !== 'bn_var')
        .map((s) => {
          // tfjs layouts: conv OIHW → HWIO, fc [out, in] → [in, out].
          const shape = s.kind === 'conv' ? [s.shape[2]!, s.shape[3]!, s.shape[1]!, s.shape[0]!] : s.kind === 'fc_weight' ? [s.shape[1]!, s.shape[0]!] : [...s.shape];
          return [s.key, shape] as const;
        }),
    );
  }

  private param(key: string, block: number | undefined): string {
    const shape = this.paramShapes.get(key);
    if (!shape) throw new Error(`train graph: unknown parameter ${key}`);
    if (!this.paramBlock.has(key)) {
      this.paramBlock.set(key, block);
      this.t.f.input(key, 'float32', shape);
    }
    return key;
  }

  private backwardParam(key: string): string {
    return this.t.backwardInput(key, this.paramShapes.get(key)!, true);
  }

  private setParamGrad(key: string, g: string): void {
    if (this.paramGrads.has(key)) throw new Error(`train graph: parameter ${key} used twice`);
    this.paramGrads.set(key, g);
  }

  /** Keep column t as [B, 1, 1, 1] in the forward ('f') or backward ('b') graph. */
  private keepColumn(which: 'f' | 'b', col: number): string {
    const t = this.t;
    const g = which === 'f' ? t.f : t.b;
    let keep: string;
    if (which === 'f') keep = this.keepF!;
    else keep = t.backwardInput('keep', [BATCH_DIM, this.K], false);
    const ints = (v: number[]) => (which === 'f' ? t.fInts(v) : t.bInts(v));
    const column = g.node('Slice', [keep, ints([col]), ints([col + 1]), ints([1])]);
    return g.node('Reshape', [column, ints([-1, 1, 1, 1])]);
  }

  /** Block t's kept rows in the forward ('f') or backward ('b') graph: [n_t], or [n_t, 1] with `column`. */
  private rows(which: 'f' | 'b', col: number, column = false): string {
    const key = `${which}:${col}:${column}`;
    let v = this.rowsCache.get(key);
    if (v) return v;
    const t = this.t;
    const name = rowsInputName(col);
    if (column) {
      const g = which === 'f' ? t.f : t.b;
      v = g.node('Unsqueeze', [this.rows(which, col), which === 'f' ? t.fInts([1]) : t.bInts([1])]);
    } else if (which === 'f') v = t.f.input(name, 'int64', [rowsDim(col)]);
    else v = t.backwardInput(name, [rowsDim(col)], false, 'int64');
    this.rowsCache.set(key, v);
    return v;
  }

  /** The rows of x [B, C, H, W] that keep block `col`: [n_t, C, H, W]. Gradient: ScatterND into zeros. */
  gatherRows(x: string, col: number): string {
    const t = this.t;
    const [, c, h, w] = t.dimsOf(x) as [Dim, number, number, number];
    const y = t.setDims(t.f.node('Gather', [x, this.rows('f', col)], undefined, { axis: 0 }), [rowsDim(col), c, h, w]);
    t.record(() => {
      const g = t.grad(y);
      if (!g) return;
      const b = t.b;
      // Zeros of x's shape: the batch from the output gradient's (the backward graph's input 'dout'), the rest static.
      const batch = b.node('Slice', [b.node('Shape', [DOUT]), t.bInts([0]), t.bInts([1])]);
      const zeros = b.node('ConstantOfShape', [b.node('Concat', [batch, t.bInts([c, h, w])], undefined, { axis: 0 })]);
      t.addGrad(x, b.node('ScatterND', [zeros, this.rows('b', col, true), g]));
    });
    return y;
  }

  /**
   * Gathered block output: the shortcut sc [B, …] with block `col`'s rows replaced by ReLU(sc[rows] + r), r the
   * residual [n_t, …] of those rows.
   */
  scatterBlock(sc: string, r: string, col: number): string {
    const t = this.t;
    const f = t.f;
    const executed = t.setDims(f.node('Relu', [f.node('Add', [f.node('Gather', [sc, this.rows('f', col)], undefined, { axis: 0 }), r])]), t.dimsOf(r));
    const y = t.setDims(f.node('ScatterND', [sc, this.rows('f', col, true), executed]), t.dimsOf(sc));
    t.record(() => {
      const g = t.grad(y);
      if (!g) return;
      const b = t.b;
      const es = t.save(executed);
      const dExecuted = b.node('Mul', [
        b.node('Gather', [g, this.rows('b', col)], undefined, { axis: 0 }),
        b.node('Cast', [b.node('Greater', [es, t.bConst([0])])], undefined, { to: FLOAT }),
      ]);
      t.addGrad(r, dExecuted);
      // Rows that ran the block pass their gradient through the addition, the others straight through.
      t.addGrad(sc, b.node('ScatterND', [g, this.rows('b', col, true), dExecuted]));
    });
    return y;
  }

  conv(x: string, key: string, stride: number, pad: number, block: number | undefined): string {
    const t = this.t;
    const [k, , ci, co] = this.paramShapes.get(key)! as [number, number, number, number];
    const xd = t.dimsOf(x);
    const inH = xd[2] as number;
    const outH = Math.floor((inH + 2 * pad - k) / stride) + 1;
    const w = t.f.node('Transpose', [this.param(key, block)], undefined, { perm: [3, 2, 0, 1] }); // HWIO → OIHW
    const y = t.setDims(
      t.f.node('Conv', [x, w], undefined, { kernel_shape: [k, k], pads: [pad, pad, pad, pad], strides: [stride, stride] }),
      [xd[0]!, co, outH, outH], // the batch, or a gathered block's rows
    );
    const needDx = !t.constant.has(x);
    t.record(() => {
      const g = t.grad(y);
      if (!g) return;
      const b = t.b;
      const xs = t.save(x);
      // Filter gradient: dW[a, b, i, o] = Σ_{n,h,w} xpad[i, n, h·s+a, w·s+b] · g[o, n, h, w], one GEMM per filter tap (a, b)
      // on a strided window of the channel-major padded input. The k² small [Ci, Co] products are concatenated in
      // HWIO order; concatenating the k² windows instead (one big im2col GEMM) copied them all a second time.
      const xT = b.node('Transpose', [xs], undefined, { perm: [1, 0, 2, 3] }); // [Ci, B, H, W]
      const xPad = pad > 0 ? b.node('Pad', [xT, t.bInts([0, 0, pad, pad, 0, 0, pad, pad])], undefined, { mode: { string: 'constant' } }) : xT;
      const gT = b.node('Reshape', [b.node('Transpose', [g], undefined, { perm: [1, 0, 2, 3] }), t.bInts([co, -1])]); // [Co, B·Ho·Wo]
      const taps: string[] = [];
      const end = (outH - 1) * stride + 1;
      for (let a = 0; a < k; a++) {
        for (let c = 0; c < k; c++) {
          const window = b.node('Slice', [xPad, t.bInts([a, c]), t.bInts([a + end, c + end]), t.bInts([2, 3]), t.bInts([stride, stride])]);
          taps.push(b.node('Gemm', [b.node('Reshape', [window, t.bInts([ci, -1])]), gT], undefined, { transB: 1 })); // [Ci, Co]
        }
      }
      const dw = taps.length > 1 ? b.node('Concat', taps, undefined, { axis: 0 }) : taps[0]!; // [k²·Ci, Co]
      this.setParamGrad(key, b.node('Reshape', [dw, t.bInts([k, k, ci, co])]));
      if (needDx) {
        let dx: string;
        if (stride === 1) {
          // Input gradient of a stride-1 conv: a forward conv of g by the filter rotated 180° with in/out swapped
          // (MLAS runs it as fast as the forward conv; ConvTranspose measured ~2× slower).
          const rotated = b.node('Slice', [this.backwardParam(key), t.bInts([k - 1, k - 1]), t.bInts([-k - 1, -k - 1]), t.bInts([0, 1]), t.bInts([-1, -1])]);
          const wr = b.node('Transpose', [rotated], undefined, { perm: [2, 3, 0, 1] }); // [Ci, Co, k, k]
          const p2 = k - 1 - pad;
          dx = b.node('Conv', [g, wr], undefined, { kernel_shape: [k, k], pads: [p2, p2, p2, p2] });
        } else {
          const wb = b.node('Transpose', [this.backwardParam(key)], undefined, { perm: [3, 2, 0, 1] });
          const extra = inH - ((outH - 1) * stride + k - 2 * pad);
          dx = b.node('ConvTranspose', [g, wb], undefined, {
            kernel_shape: [k, k],
            pads: [pad, pad, pad, pad],
            strides: [stride, stride],
            ...(extra > 0 ? { output_padding: [extra, extra] } : {}),
          });
        }
        t.addGrad(x, dx);
      }
    });
    return y;
  }

  batchNorm(y: string, prefix: string, block: number | undefined): string {
    const t = this.t;
    const f = t.f;
    const d = t.dimsOf(y);
    const channels = d[1] as number;
    const shape4 = t.fInts([1, -1, 1, 1]);
    const gamma = f.node('Reshape', [this.param(`${prefix}.weight`, block), shape4]);
    const beta = f.node('Reshape', [this.param(`${prefix}.bias`, block), shape4]);
    const mean = channelMeanF(t, y);
    const centered = t.setDims(f.node('Sub', [y, mean]), d);
    const variance = channelMeanF(t, f.node('Mul', [centered, centered]));
    const inv = t.setDims(f.node('Reciprocal', [f.node('Sqrt', [f.node('Add', [variance, t.fConst([BN_EPS])])])]), [1, channels, 1, 1]);
    const scale = f.node('Mul', [gamma, inv]);
    const out = t.setDims(f.node('Add', [f.node('Mul', [centered, scale]), beta]), d);
    const meanOutput = `bn.${prefix}.mean`;
    const varOutput = `bn.${prefix}.var`;
    const flat = t.fInts([-1]);
    f.output(f.node('Reshape', [mean, flat]), meanOutput, 'float32', [channels]);
    f.output(f.node('Reshape', [variance, flat]), varOutput, 'float32', [channels]);
    this.batchNorms.push({ prefix, channels, spatial: spatial(d), block, meanOutput, varOutput });
    t.record(() => {
      const g = t.grad(out);
      if (!g) return;
      const b = t.b;
      const cs = t.save(centered);
      const invS = t.save(inv);
      const xhat = b.node('Mul', [cs, invS]);
      const dbeta = channelSum(t, g); // [1, C, 1, 1]
      const dgamma = channelSum(t, b.node('Mul', [g, xhat]));
      const flatB = t.bInts([-1]);
      this.setParamGrad(`${prefix}.weight`, b.node('Reshape', [dgamma, flatB]));
      this.setParamGrad(`${prefix}.bias`, b.node('Reshape', [dbeta, flatB]));
      if (t.constant.has(y)) return;
      // 1/N with N = batch · H · W (the batch is symbolic).
      const batch = b.node('Cast', [b.node('Gather', [b.node('Shape', [g]), t.bInts([0])], undefined, { axis: 0 })], undefined, { to: 1 });
      const invN = b.node('Reciprocal', [b.node('Mul', [batch, t.bConst([spatial(d)], [1])])]);
      const gammaB = b.node('Reshape', [this.backwardParam(`${prefix}.weight`), t.bInts([1, -1, 1, 1])]);
      const scaleB = b.node('Mul', [gammaB, invS]);
      const meanG = b.node('Mul', [dbeta, invN]);
      const meanGX = b.node('Mul', [dgamma, invN]);
      const inner = b.node('Sub', [b.node('Sub', [g, meanG]), b.node('Mul', [xhat, meanGX])]);
      t.addGrad(y, b.node('Mul', [inner, scaleB]));
    });
    return out;
  }

  relu(x: string): string {
    const t = this.t;
    const y = t.setDims(t.f.node('Relu', [x]), t.dimsOf(x));
    t.record(() => {
      const g = t.grad(y);
      if (!g) return;
      const ys = t.save(y);
      const b = t.b;
      // The 0/1 mask [y > 0]: Greater + Cast measured faster than Sign (and than Where) in ORT's CPU kernels.
      t.addGrad(x, b.node('Mul', [g, b.node('Cast', [b.node('Greater', [ys, t.bConst([0])])], undefined, { to: FLOAT })]));
    });
    return y;
  }

  add(a: string, c: string): string {
    const t = this.t;
    const y = t.setDims(t.f.node('Add', [a, c]), t.dimsOf(a));
    t.record(() => {
      const g = t.grad(y);
      if (!g) return;
      t.addGrad(a, g);
      t.addGrad(c, g);
    });
    return y;
  }

  /** x ← m·executed + (1 − m)·shortcut, m = keep[:, col] (same arithmetic as the tfjs model). */
  blend(executed: string, sc: string, col: number): string {
    const t = this.t;
    const f = t.f;
    const m = this.keepColumn('f', col);
    const y = t.setDims(
      f.node('Add', [f.node('Mul', [m, executed]), f.node('Mul', [f.node('Sub', [t.fConst([1]), m]), sc])]),
      t.dimsOf(executed),
    );
    t.record(() => {
      const g = t.grad(y);
      if (!g) return;
      const b = t.b;
      const mb = this.keepColumn('b', col);
      t.addGrad(executed, b.node('Mul', [mb, g]));
      t.addGrad(sc, b.node('Mul', [b.node('Sub', [t.bConst([1]), mb]), g]));
    });
    return y;
  }

  shortcut(x: string, layout: BlockLayout): string {
    if (layout.shortcut === 'identity') return x;
    const t = this.t;
    const f = t.f;
    const [, c, h] = t.dimsOf(x) as [Dim, number, number];
    const s = layout.stride;
    const extra = layout.outChannels - layout.inChannels;
    const before = layout.shortcut === 'optionA' ? Math.floor(layout.planes / 4) : 0;
    const after = extra - before;
    const outH = Math.floor((h - 1) / s) + 1;
    let sub = x;
    if (s > 1) {
      if (layout.shortcut === 'downsampleB') {
        if (h % s !== 0) throw new BlockdropError(`the ONNX training engine needs activation sides divisible by the stride (${h} / ${s})`);
        sub = f.node('AveragePool', [x], undefined, { kernel_shape: [s, s], strides: [s, s] });
      } else {
        sub = f.node('Slice', [x, t.fInts([0, 0]), t.fInts([h, h]), t.fInts([2, 3]), t.fInts([s, s])]);
      }
    }
    const y = t.setDims(
      extra > 0 ? f.node('Pad', [sub, t.fInts([0, before, 0, 0, 0, after, 0, 0])], undefined, { mode: { string: 'constant' } }) : sub,
      [t.dimsOf(x)[0]!, layout.outChannels, outH, outH],
    );
    t.record(() => {
      const g = t.grad(y);
      if (!g) return;
      const b = t.b;
      let d = extra > 0 ? b.node('Slice', [g, t.bInts([before]), t.bInts([before + c]), t.bInts([1])]) : g;
      if (s > 1) {
        const up =
          layout.shortcut === 'downsampleB'
            ? b.node('Resize', [b.node('Mul', [d, t.bConst([1 / (s * s)])]), '', t.bConst([1, 1, s, s], [4])], undefined, {
                mode: { string: 'nearest' },
                coordinate_transformation_mode: { string: 'asymmetric' },
                nearest_mode: { string: 'floor' },
              })
            : b.node('Pad', [b.node('Reshape', [d, t.bInts([0, c, outH, 1, outH, 1])]), t.bInts([0, 0, 0, 0, 0, 0, 0, 0, 0, s - 1, 0, s - 1])], undefined, { mode: { string: 'constant' } });
        d = layout.shortcut === 'downsampleB' ? up : b.node('Reshape', [up, t.bInts([0, c, outH * s, outH * s])]);
        if (outH * s !== h) d = b.node('Slice', [d, t.bInts([0, 0]), t.bInts([h, h]), t.bInts([2, 3])]);
      }
      t.addGrad(x, d);
    });
    return y;
  }

  convBn(x: string, prefix: string, stride: number, pad: number, relu: boolean, block: number | undefined): string {
    const y = this.batchNorm(this.conv(x, `${prefix.replace(/bn(\d)$/, 'conv$1')}.weight`, stride, pad, block), prefix, block);
    return relu ? this.relu(y) : y;
  }

  head(x: string): string {
    const t = this.t;
    const f = t.f;
    const [, c, h, w] = t.dimsOf(x) as [Dim, number, number, number];
    const classes = this.arch.numClasses;
    const pooled = t.setDims(f.node('ReduceMean', [x], undefined, { axes: [2, 3], keepdims: 0 }), [BATCH_DIM, c]);
    const logits = t.setDims(
      f.node('Gemm', [pooled, this.param('fc.weight', undefined), this.param('fc.bias', undefined)]),
      [BATCH_DIM, classes],
    );
    t.record(() => {
      const g = t.grad(logits);
      if (!g) return;
      const b = t.b;
      const ps = t.save(pooled);
      this.setParamGrad('fc.weight', b.node('Gemm', [ps, g], undefined, { transA: 1 }));
      this.setParamGrad('fc.bias', b.node('ReduceSum', [g, t.bInts([0])], undefined, { keepdims: 0 }));
      const dPooled = b.node('Gemm', [g, this.backwardParam('fc.weight')], undefined, { transB: 1 });
      const spread = b.node('Unsqueeze', [b.node('Mul', [dPooled, t.bConst([1 / (h * w)])]), t.bInts([2, 3])]);
      t.addGrad(x, b.node('Expand', [spread, t.bInts([1, 1, h, w])]));
    });
    return logits;
  }

  sigmoid(x: string): string {
    const t = this.t;
    const y = t.setDims(t.f.node('Sigmoid', [x]), t.dimsOf(x));
    t.record(() => {
      const g = t.grad(y);
      if (!g) return;
      const b = t.b;
      const s = t.save(y);
      t.addGrad(x, b.node('Mul', [g, b.node('Mul', [s, b.node('Sub', [t.bConst([1]), s])])]));
    });
    return y;
  }

  build(): TrainGraphs {
    const t = this.t;
    const arch = this.arch;
    const side = arch.inputSize;
    const image = t.f.input('x', 'float32', [BATCH_DIM, side, side, 3]);
    const gathered = this.options.keep && this.options.blockExecution === 'gathered';
    if (this.options.keep && !gathered) this.keepF = t.f.input('keep', 'float32', [BATCH_DIM, this.K]);
    const x = t.setDims(t.f.node('Transpose', [image], undefined, { perm: [0, 3, 1, 2] }), [BATCH_DIM, 3, side, side]);
    t.constant.add(x);
    let h = this.convBn(x, 'bn1', 1, 1, true, undefined);
    for (const layout of blockLayouts(arch)) {
      const p = `blocks.${layout.stage}.${layout.index}`;
      const sc = this.shortcut(h, layout);
      if (gathered) {
        const a = this.convBn(this.gatherRows(h, layout.t), `${p}.bn1`, layout.stride, 1, true, layout.t);
        h = this.scatterBlock(sc, this.convBn(a, `${p}.bn2`, 1, 1, false, layout.t), layout.t);
        continue;
      }
      const a = this.convBn(h, `${p}.bn1`, layout.stride, 1, true, layout.t);
      const r = this.convBn(a, `${p}.bn2`, 1, 1, false, layout.t);
      const executed = this.relu(this.add(sc, r));
      h = this.options.keep ? this.blend(executed, sc, layout.t) : executed;
    }
    let out = this.head(h);
    if (this.options.output === 'sigmoid') out = this.sigmoid(out);
    t.f.output(out, 'output', 'float32', [BATCH_DIM, arch.numClasses]);
    // The backward pass from dLoss/d(output).
    const dout = t.b.input(DOUT, 'float32', [BATCH_DIM, arch.numClasses]);
    t.addGrad(out, dout);
    t.runBackward();
    const params: ParamInfo[] = [];
    for (const [key, shape] of this.paramShapes) {
      const g = this.paramGrads.get(key);
      if (!g) throw new Error(`train graph: no gradient for ${key}`);
      const gradOutput = `grad.${key}`;
      t.b.output(g, gradOutput, 'float32', shape);
      params.push({ key, shape, block: this.paramBlock.get(key), gradOutput });
    }
    return {
      forward: t.f.toModel(`${arch.name} training forward`),
      backward: t.b.toModel(`${arch.name} training backward`),
      params,
      batchNorms: this.batchNorms,
      saved: t.saved,
      backwardParams: t.backwardParams,
      backwardKeep: gathered ? blockLayouts(arch).some((l) => t.hasBackwardInput(rowsInputName(l.t))) : t.hasBackwardInput('keep'),
      blockExecution: gathered ? 'gathered' : 'masked',
      outputs: arch.numClasses,
    };
  }
}

/** The forward and backward training graphs of `arch` (BasicBlock CIFAR ResNets). */
export function buildTrainGraphs(arch: ResNetConfig, options: TrainGraphOptions): TrainGraphs {
  const why = onnxTrainable(arch);
  if (why) throw new BlockdropError(`the ONNX training engine does not support ${why} (${arch.name}); use --train-engine tfjs`);
  return new ResNetTrainGraph(arch, options).build();
}
