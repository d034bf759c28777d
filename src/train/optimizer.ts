/**
 * What a training run needs of an optimiser, so that the trainer and the step never know which one runs: Adam
 * (adam.ts, the reference's for both stages) or SGD with momentum (sgd.ts, how the CIFAR ResNets themselves were
 * trained). Both follow PyTorch's update rules and export their whole state for an exact resume.
 */
import * as tf from '@tensorflow/tfjs';
import { BlockdropError } from '../errors.js';
import { float32Tensor, shapeString, type HostTensor, type TensorMap } from '../tensor.js';

export type OptimizerKind = 'adam' | 'sgd';

export interface Optimizer {
  /** Base learning rate; the schedule sets it before each step. */
  lr: number;
  /** Updates applied so far. */
  readonly step: number;
  /** One update; `grads[i]` belongs to parameter i (undefined = no gradient this step, parameter untouched). */
  apply(grads: readonly (tf.Tensor | undefined)[]): void;
  /** State as named tensors `optimizer.<slot>.000`, … (for a checkpoint). */
  toTensorMap(): TensorMap;
  /** Restores the state `toTensorMap` wrote after `step` updates. */
  loadTensorMap(tensors: TensorMap, step: number): void;
  dispose(): void;
}

export interface OptimizerOptions {
  readonly lr: number;
  /** L2 decay added to the gradient (PyTorch's `weight_decay` for both optimisers). */
  readonly weightDecay?: number;
  /** SGD only: momentum factor (PyTorch's `momentum`, no dampening). */
  readonly momentum?: number;
  /** Per-parameter multipliers of the learning rate (parameter groups as a ratio, so one schedule drives them all). */
  readonly lrScale?: readonly number[];
}

/** Tensor names of one state slot: `prefix.slot.000`, `prefix.slot.001`, … */
export function slotName(prefix: string, slot: string, index: number): string {
  return `${prefix}.${slot}.${String(index).padStart(3, '0')}`;
}

/** The `count` tensors of one state slot of a checkpoint; a missing one is a one-line error. */
export function readSlot(tensors: TensorMap, prefix: string, slot: string, count: number): HostTensor[] {
  return Array.from({ length: count }, (_, i) => {
    const t = tensors.get(slotName(prefix, slot, i));
    if (!t) throw new BlockdropError(`the checkpoint lacks optimiser tensor ${slotName(prefix, slot, i)}; it was written by another optimiser or is damaged, so it cannot be resumed`);
    return t;
  });
}

/** One state slot (a tensor per parameter) copied to the host. */
export function hostSlot(slot: readonly tf.Variable[]): HostTensor[] {
  return slot.map((x) => float32Tensor(x.shape, Float32Array.from(x.dataSync() as Float32Array)));
}

/** Loads one state slot, checking that it has a tensor of the right shape for every parameter. */
export function assignSlot(slot: readonly tf.Variable[], values: readonly HostTensor[]): void {
  if (values.length !== slot.length) {
    throw new BlockdropError(`the checkpoint's optimiser state has ${values.length} parameters, the model ${slot.length}; it belongs to a different model`);
  }
  slot.forEach((target, i) => {
    const value = values[i]!;
    if (shapeString(value.shape) !== shapeString(target.shape)) {
      throw new BlockdropError(
        `optimiser state ${i} has shape ${shapeString(value.shape)}, parameter ${shapeString(target.shape)}; the checkpoint belongs to a different model`,
      );
    }
    target.assign(tf.tensor(value.data as Float32Array, [...value.shape], 'float32'));
  });
}
