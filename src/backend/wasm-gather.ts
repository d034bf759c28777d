/**
 * GatherV2 along axis 0 on the wasm backend as row copies inside the wasm heap.
 *
 * Why: the masked forward runs a block only on the images that keep it, which means gathering whole
 * images (contiguous rows in NHWC). tfjs-wasm's generic Gather kernel takes ~40 ms for 64 images of
 * 32×32×16 — as long as the convolution it is meant to save; a memmove per row takes ~1 ms.
 * Everything else (other axes, batchDims, complex/string dtypes) goes to the original kernel.
 */
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-backend-wasm's BackendWasm this kernel touches. */
interface WasmBackendInternals {
  readonly wasm: { readonly HEAPU8: Uint8Array };
  readonly dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  readSync(dataId: object): ArrayLike<number>;
}

const BYTES: Partial<Record<tf.DataType, number>> = { float32: 4, int32: 4, bool: 1 };

export function makeWasmGatherKernel(original: tf.KernelConfig): tf.KernelConfig {
  const kernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) => {
    const { inputs, attrs } = args;
    const x = inputs.x!;
    const indices = inputs.indices!;
    const axis = tf.util.parseAxisParam((attrs?.axis ?? 0) as number, x.shape)[0];
    const batchDims = (attrs?.batchDims ?? 0) as number;
    const bytes = BYTES[x.dtype];
    if (axis !== 0 || batchDims !== 0 || bytes === undefined || indices.shape.length !== 1) {
      return original.kernelFunc(args as Parameters<tf.KernelFunc>[0]);
    }
    const backend = args.backend as WasmBackendInternals;
    const rows = backend.readSync(indices.dataId);
    const dimSize = x.shape[0]!;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      if (!(r >= 0 && r <= dimSize - 1)) throw new Error(`GatherV2: the index value ${r} is not in [0, ${dimSize - 1}]`);
    }
    const rowBytes = tf.util.sizeFromShape(x.shape.slice(1)) * bytes;
    const out = backend.makeOutput([rows.length, ...x.shape.slice(1)], x.dtype);
    if (rowBytes === 0 || rows.length === 0) return out;
    // Read the heap view only after makeOutput: allocating may grow (and replace) the wasm memory.
    const heap = backend.wasm.HEAPU8;
    const src = backend.dataIdMap.get(x.dataId)!.memoryOffset;
    const dst = backend.dataIdMap.get(out.dataId)!.memoryOffset;
    for (let i = 0; i < rows.length; i++) {
      const from = src + rows[i]! * rowBytes;
      heap.copyWithin(dst + i * rowBytes, from, from + rowBytes);
    }
    return out;
  };
  return { ...original, kernelFunc: kernelFunc as tf.KernelFunc };
}
