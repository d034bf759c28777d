/**
 * Host-side tensors: what checkpoint readers produce and model builders consume.
 * Independent of any compute engine (TensorFlow.js, ONNX Runtime).
 */
export type DType =
  | 'float32' | 'float64' | 'float16' | 'bfloat16'
  | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export type TypedData =
  | Float32Array | Float64Array | Uint16Array /* float16 / bfloat16 raw bits */
  | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

export interface HostTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Contiguous row-major (C order) values; views in a checkpoint are materialised on read. */
  readonly data: TypedData;
}

/** Named tensors in insertion order, e.g. a state dict. */
export type TensorMap = Map<string, HostTensor>;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** A float32 tensor from plain values. */
export function float32Tensor(shape: readonly number[], data: Float32Array): HostTensor {
  if (data.length !== numel(shape)) {
    throw new Error(`float32Tensor: ${data.length} values do not fill shape ${shapeString(shape)}`);
  }
  return { dtype: 'float32', shape: [...shape], data };
}
