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

/** The tensors whose names start with `prefix` (e.g. `policy.`), with it stripped (empty when there are none). */
export function tensorSection(tensors: TensorMap, prefix: string): TensorMap {
  const out: TensorMap = new Map();
  for (const [name, t] of tensors) if (name.startsWith(prefix)) out.set(name.slice(prefix.length), t);
  return out;
}

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

/** Bytes per element of each dtype (bool is one byte, 0 or 1). */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2,
  int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

/** IEEE 754 half-precision bits (as stored in a float16 tensor's Uint16Array) to a number. */
export function float16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

const bf16Scratch = new Float32Array(1);
const bf16ScratchBits = new Uint32Array(bf16Scratch.buffer);

/** bfloat16 bits (the top half of a float32) to a number. */
export function bfloat16BitsToNumber(bits: number): number {
  bf16ScratchBits[0] = (bits & 0xffff) << 16;
  return bf16Scratch[0]!;
}

/**
 * The tensor's values as float32. A float32 tensor's own array is returned (no copy); every other
 * dtype is converted (float16/bfloat16 decoded exactly, float64 and int64 rounded to nearest).
 */
export function toFloat32(t: HostTensor): Float32Array {
  const { dtype, data } = t;
  switch (dtype) {
    case 'float32':
      return data as Float32Array;
    case 'float16': {
      const src = data as Uint16Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = float16BitsToNumber(src[i]!);
      return out;
    }
    case 'bfloat16': {
      const src = data as Uint16Array;
      const out = new Float32Array(src.length);
      const outBits = new Uint32Array(out.buffer);
      for (let i = 0; i < src.length; i++) outBits[i] = src[i]! << 16;
      return out;
    }
    case 'int64': {
      const src = data as BigInt64Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]!);
      return out;
    }
    default: {
      // float64, int32, int16, int8, uint8, bool: plain number arrays.
      const src = data as Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array;
      return Float32Array.from(src);
    }
  }
}

/** Typed-array view of `buffer` for `dtype` (bool and uint8 as Uint8Array, float16/bfloat16 as raw Uint16Array bits). */
export function typedDataFromBuffer(dtype: DType, buffer: ArrayBuffer, byteOffset = 0, length?: number): TypedData {
  switch (dtype) {
    case 'float32': return new Float32Array(buffer, byteOffset, length);
    case 'float64': return new Float64Array(buffer, byteOffset, length);
    case 'float16':
    case 'bfloat16': return new Uint16Array(buffer, byteOffset, length);
    case 'int64': return new BigInt64Array(buffer, byteOffset, length);
    case 'int32': return new Int32Array(buffer, byteOffset, length);
    case 'int16': return new Int16Array(buffer, byteOffset, length);
    case 'int8': return new Int8Array(buffer, byteOffset, length);
    case 'uint8':
    case 'bool': return new Uint8Array(buffer, byteOffset, length);
  }
}

/** The tensor's elements as raw bytes (a view, no copy), little-endian on every supported host. */
export function tensorBytes(t: HostTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}
