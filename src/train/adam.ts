/**
 * Adam exactly as PyTorch's `torch.optim.Adam` (L2 weight decay added to the gradient, bias-corrected moments,
 * ε added after the square root), with its whole state exportable so that a resumed run continues bit for bit.
 * Written here rather than using tf.train.adam because that one's state is keyed by generated variable names
 * and its ε sits inside the bias correction differently.
 */
import * as tf from '@tensorflow/tfjs';
import { BlockdropError } from '../errors.js';
import { float32Tensor, shapeString, type HostTensor, type TensorMap } from '../tensor.js';

export interface AdamOptions {
  readonly lr: number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly eps?: number;
  readonly weightDecay?: number;
  /**
   * Per-parameter multipliers of the learning rate (PyTorch's parameter groups with their own lr, as a ratio so
   * that one schedule drives them all). Default 1 for every parameter.
   */
  readonly lrScale?: readonly number[];
}

/** Serialisable optimiser state: the step count and both moments per parameter, in parameter order. */
export interface AdamState {
  readonly step: number;
  readonly m: readonly HostTensor[];
  readonly v: readonly HostTensor[];
}

export class Adam {
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
    const host = (vars: tf.Variable[]): HostTensor[] =>
      vars.map((x) => float32Tensor(x.shape, Float32Array.from(x.dataSync() as Float32Array)));
    return { step: this.t, m: host(this.m), v: host(this.v) };
  }

  loadState(state: AdamState): void {
    if (state.m.length !== this.params.length || state.v.length !== this.params.length) {
      throw new BlockdropError(
        `the checkpoint's optimiser state has ${state.m.length} parameters, the model ${this.params.length}; it belongs to a different model`,
      );
    }
    const load = (targets: tf.Variable[], values: readonly HostTensor[]): void =>
      targets.forEach((target, i) => {
        const value = values[i]!;
        if (shapeString(value.shape) !== shapeString(target.shape)) {
          throw new BlockdropError(
            `optimiser moment ${i} has shape ${shapeString(value.shape)}, parameter ${shapeString(target.shape)}; the checkpoint belongs to a different model`,
          );
        }
        target.assign(tf.tensor(value.data as Float32Array, [...value.shape], 'float32'));
      });
    load(this.m, state.m);
    load(this.v, state.v);
    this.t = state.step;
  }

  /** Moments as named tensors `prefix.m.000`, `prefix.v.000`, … (for a checkpoint). */
  toTensorMap(prefix = 'optimizer'): TensorMap {
    const state = this.state();
    const out: TensorMap = new Map();
    const pad = (i: number): string => String(i).padStart(3, '0');
    state.m.forEach((t, i) => out.set(`${prefix}.m.${pad(i)}`, t));
    state.v.forEach((t, i) => out.set(`${prefix}.v.${pad(i)}`, t));
    return out;
  }

  static stateFromTensorMap(tensors: TensorMap, step: number, count: number, prefix = 'optimizer'): AdamState {
    const pad = (i: number): string => String(i).padStart(3, '0');
    const get = (kind: string, i: number): HostTensor => {
      const t = tensors.get(`${prefix}.${kind}.${pad(i)}`);
      if (!t) throw new BlockdropError(`the checkpoint lacks optimiser tensor ${prefix}.${kind}.${pad(i)}; it cannot be resumed`);
      return t;
    };
    return {
      step,
      m: Array.from({ length: count }, (_, i) => get('m', i)),
      v: Array.from({ length: count }, (_, i) => get('v', i)),
    };
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}
