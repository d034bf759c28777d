/**
 * Adam exactly as PyTorch's `torch.optim.Adam` (L2 weight decay added to the gradient, bias-corrected moments,
 * ε added after the square root), with its whole state exportable so that a resumed run continues bit for bit.
 * Written here rather than using tf.train.adam because that one's state is keyed by generated variable names
 * and its ε sits inside the bias correction differently.
 */
import * as tf from '@tensorflow/tfjs';
import type { HostTensor, TensorMap } from '../tensor.js';
import { assignSlot, hostSlot, readSlot, slotName, type Optimizer, type OptimizerOptions } from './optimizer.js';

export interface AdamOptions extends OptimizerOptions {
  readonly beta1?: number;
  readonly beta2?: number;
  readonly eps?: number;
}

/** Serialisable optimiser state: the step count and both moments per parameter, in parameter order. */
export interface AdamState {
  readonly step: number;
  readonly m: readonly HostTensor[];
  readonly v: readonly HostTensor[];
}

export class Adam implements Optimizer {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private t = 0;
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private readonly lrScale: readonly number[];

  constructor(
    private readonly params: readonly tf.Variable[],
    options: AdamOptions,
  ) {
    this.lr = options.lr;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    if (options.lrScale && options.lrScale.length !== params.length) {
      throw new Error(`Adam: ${options.lrScale.length} learning-rate scales for ${params.length} parameters`);
    }
    this.lrScale = options.lrScale ?? params.map(() => 1);
    this.m = params.map((p) => tf.variable(tf.zerosLike(p), false));
    this.v = params.map((p) => tf.variable(tf.zerosLike(p), false));
  }

  get step(): number {
    return this.t;
  }

  /** One update; `grads[i]` belongs to `params[i]` (undefined = no gradient this step, parameter untouched). */
  apply(grads: readonly (tf.Tensor | undefined)[]): void {
    if (grads.length !== this.params.length) {
      throw new Error(`Adam.apply: ${grads.length} gradients for ${this.params.length} parameters`);
    }
    this.t++;
    const correction1 = 1 - Math.pow(this.beta1, this.t);
    const correction2 = 1 - Math.pow(this.beta2, this.t);
    const stepSize = this.lr / correction1;
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        const raw = grads[i];
        if (!raw) return;
        const g = this.weightDecay !== 0 ? raw.add(p.mul(this.weightDecay)) : raw;
        const m = this.m[i]!.mul(this.beta1).add(g.mul(1 - this.beta1));
        const v = this.v[i]!.mul(this.beta2).add(g.square().mul(1 - this.beta2));
        this.m[i]!.assign(m);
        this.v[i]!.assign(v);
        const denom = v.sqrt().div(Math.sqrt(correction2)).add(this.eps);
        p.assign(p.sub(m.div(denom).mul(stepSize * this.lrScale[i]!)));
      });
    });
  }

  state(): AdamState {
    return { step: this.t, m: hostSlot(this.m), v: hostSlot(this.v) };
  }

  loadState(state: AdamState): void {
    assignSlot(this.m, state.m);
    assignSlot(this.v, state.v);
    this.t = state.step;
  }

  /** Moments as named tensors `prefix.m.000`, `prefix.v.000`, … (for a checkpoint). */
  toTensorMap(prefix = 'optimizer'): TensorMap {
    const state = this.state();
    const out: TensorMap = new Map();
    state.m.forEach((t, i) => out.set(slotName(prefix, 'm', i), t));
    state.v.forEach((t, i) => out.set(slotName(prefix, 'v', i), t));
    return out;
  }

  loadTensorMap(tensors: TensorMap, step: number): void {
    this.loadState(Adam.stateFromTensorMap(tensors, step, this.params.length));
  }

  static stateFromTensorMap(tensors: TensorMap, step: number, count: number, prefix = 'optimizer'): AdamState {
    return { step, m: readSlot(tensors, prefix, 'm', count), v: readSlot(tensors, prefix, 'v', count) };
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}
