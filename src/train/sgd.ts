/**
 * SGD with momentum exactly as PyTorch's `torch.optim.SGD` (dampening 0, no Nesterov): d = g + λ·p,
 * b ← μ·b + d (b = d on the first step), p ← p − lr·b. The CIFAR ResNets were trained with it (lr 0.1, μ 0.9);
 * finetuning them with it keeps the weight decay a real regulariser, which Adam's L2 term is not.
 */
import * as tf from '@tensorflow/tfjs';
import type { HostTensor, TensorMap } from '../tensor.js';
import { assignSlot, hostSlot, readSlot, slotName, type Optimizer, type OptimizerOptions } from './optimizer.js';

export interface SgdState {
  readonly step: number;
  /** Momentum buffer per parameter, in parameter order. */
  readonly momentum: readonly HostTensor[];
}

export class Sgd implements Optimizer {
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  private t = 0;
  private readonly buffers: tf.Variable[];
  private readonly lrScale: readonly number[];

  constructor(
    private readonly params: readonly tf.Variable[],
    options: OptimizerOptions,
  ) {
    this.lr = options.lr;
    this.momentum = options.momentum ?? 0.9;
    this.weightDecay = options.weightDecay ?? 0;
    if (options.lrScale && options.lrScale.length !== params.length) {
      throw new Error(`Sgd: ${options.lrScale.length} learning-rate scales for ${params.length} parameters`);
    }
    this.lrScale = options.lrScale ?? params.map(() => 1);
    // A zero buffer makes the first update b = d, as PyTorch's lazily created one.
    this.buffers = params.map((p) => tf.variable(tf.zerosLike(p), false));
  }

  get step(): number {
    return this.t;
  }

  apply(grads: readonly (tf.Tensor | undefined)[]): void {
    if (grads.length !== this.params.length) {
      throw new Error(`Sgd.apply: ${grads.length} gradients for ${this.params.length} parameters`);
    }
    this.t++;
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        const raw = grads[i];
        if (!raw) return;
        const d = this.weightDecay !== 0 ? raw.add(p.mul(this.weightDecay)) : raw;
        const buffer = this.momentum !== 0 ? this.buffers[i]!.mul(this.momentum).add(d) : d;
        if (this.momentum !== 0) this.buffers[i]!.assign(buffer);
        p.assign(p.sub(buffer.mul(this.lr * this.lrScale[i]!)));
      });
    });
  }

  state(): SgdState {
    return { step: this.t, momentum: hostSlot(this.buffers) };
  }

  loadState(state: SgdState): void {
    assignSlot(this.buffers, state.momentum);
    this.t = state.step;
  }

  toTensorMap(prefix = 'optimizer'): TensorMap {
    return new Map(this.state().momentum.map((t, i) => [slotName(prefix, 'momentum', i), t]));
  }

  loadTensorMap(tensors: TensorMap, step: number, prefix = 'optimizer'): void {
    this.loadState({ step, momentum: readSlot(tensors, prefix, 'momentum', this.params.length) });
  }

  dispose(): void {
    for (const x of this.buffers) x.dispose();
  }
}
