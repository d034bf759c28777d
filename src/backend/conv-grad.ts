/**
 * The gradient of Conv2D written as ordinary forward convolutions.
 *
 * Why: the wasm backend has no Conv2DBackpropFilter kernel at all and its Conv2DBackpropInput runs at
 * ~2 GFLOP/s, while its forward Conv2D (XNNPACK) is fast; the cpu backend gains too. Both gradients of
 * y = conv(x, w; stride s, padding p) are themselves correlations:
 *
 * - filter: dW[a,b,i,o] = Σ_{n,r,c} xpad[n, r·s+a, c·s+b, i] · dy[n,r,c,o]
 *   = a stride-1 conv of x with batch and channel axes swapped ([Ci,H,W,N]) by dy laid out as a
 *   filter ([Ho,Wo,N,Co]) dilated by s.
 * - input: dxpad[n,h,w,i] = Σ_{a,b,o} dyUp[n, h−a, w−b, o] · w[a,b,i,o]
 *   = a stride-1 conv of the zero-upsampled dy by the filter rotated 180° with in/out swapped.
 *
 * Padding is exact for 'same', 'valid' and explicit/numeric padding, odd or even sizes: rows of the
 * padded input that the forward conv never read (when (H+pads−k) is not a multiple of s) get a zero
 * gradient, and the corresponding input rows are cropped from the filter-gradient conv.
 */
import * as tf from '@tensorflow/tfjs';

type Pads = readonly [number, number];

/** Pads (positive) or crops (negative) the two spatial axes of an NHWC tensor, returning what is left
 *  to pad as explicit conv padding (both entries ≥ 0). */
function cropForConv(t: tf.Tensor4D, rows: Pads, cols: Pads): { t: tf.Tensor4D; rows: Pads; cols: Pads } {
  const [n, h, w, c] = t.shape;
  const cropTop = Math.max(0, -rows[0]);
  const cropBottom = Math.max(0, -rows[1]);
  const cropLeft = Math.max(0, -cols[0]);
  const cropRight = Math.max(0, -cols[1]);
  const cropped =
    cropTop + cropBottom + cropLeft + cropRight === 0
      ? t
      : tf.slice(t, [0, cropTop, cropLeft, 0], [n, h - cropTop - cropBottom, w - cropLeft - cropRight, c]);
  return {
    t: cropped,
    rows: [Math.max(0, rows[0]), Math.max(0, rows[1])],
    cols: [Math.max(0, cols[0]), Math.max(0, cols[1])],
  };
}

function explicit(rows: Pads, cols: Pads): tf.backend_util.ExplicitPadding {
  return [[0, 0], [rows[0], rows[1]], [cols[0], cols[1]], [0, 0]];
}

/** Inserts s−1 zeros after every element along H and W (trailing zeros included). */
function zeroUpsample(dy: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  if (sh === 1 && sw === 1) return dy;
  const [n, h, w, c] = dy.shape;
  const spread = tf.reshape(dy, [n, h, 1, w, 1, c]);
  const padded = tf.pad(spread, [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
  return tf.reshape(padded, [n, h * sh, w * sw, c]);
}

export function conv2dFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw, padInfo } = info;
  const [, inH, inW, inC] = x.shape;
  const outC = dy.shape[3];
  if (fh === 1 && fw === 1 && sh === 1 && sw === 1 && padInfo.top + padInfo.bottom + padInfo.left + padInfo.right === 0) {
    // 1×1 stride-1 conv: the filter gradient is one matrix product.
    const g = tf.matMul(tf.reshape(x, [-1, inC]), tf.reshape(dy, [-1, outC]), true, false);
    return tf.reshape(g, [1, 1, inC, outC]);
  }
  // Padded-input rows the forward conv actually read: (Ho−1)·s + k.
  const usedH = (info.outHeight - 1) * sh + fh;
  const usedW = (info.outWidth - 1) * sw + fw;
  const c = cropForConv(
    x,
    [padInfo.top, usedH - padInfo.top - inH],
    [padInfo.left, usedW - padInfo.left - inW],
  );
  const xT = tf.transpose(c.t, [3, 1, 2, 0]) as tf.Tensor4D; // [Ci, H, W, N]
  const dyT = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [Ho, Wo, N, Co]
  const g = tf.conv2d(xT, dyT, 1, explicit(c.rows, c.cols), 'NHWC', [sh, sw]); // [Ci, fh, fw, Co]
  return tf.transpose(g, [1, 2, 0, 3]);
}

export function conv2dInputGrad(
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  xShape: readonly [number, number, number, number],
  info: tf.backend_util.Conv2DInfo,
): tf.Tensor4D {
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw, padInfo } = info;
  const [, inH, inW] = xShape;
  const up = zeroUpsample(dy, sh, sw);
  // Of the upsampled map, the first (Ho−1)·s+1 rows are meaningful; the rest are trailing zeros.
  const upH = up.shape[1];
  const upW = up.shape[2];
  const c = cropForConv(
    up,
    [fh - 1 - padInfo.top, inH + padInfo.top - upH],
    [fw - 1 - padInfo.left, inW + padInfo.left - upW],
  );
  const rotated = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D; // [fh, fw, Co, Ci]
  return tf.conv2d(c.t, rotated, 1, explicit(c.rows, c.cols), 'NHWC');
}

/** The Conv2D gradient config (same contract as tfjs-core's conv2DGradConfig). Falls back to `fallback`
 *  for NCHW or dilated convolutions, which the models never use. */
export function makeConv2DGradConfig(fallback: tf.GradConfig | undefined): tf.GradConfig {
  return {
    kernelName: 'Conv2D',
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const strides = attrs.strides as number | [number, number];
      const pad = attrs.pad as 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
      const dilations = (attrs.dilations ?? 1) as number | [number, number];
      const dataFormat = (attrs.dataFormat ?? 'NHWC') as string;
      const dimRoundingMode = attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined;
      const dilated = Array.isArray(dilations) ? dilations.some((d) => d !== 1) : dilations !== 1;
      if (dataFormat !== 'NHWC' || dilated) {
        if (!fallback) throw new Error('Conv2D gradient: NCHW / dilated convolutions are not supported');
        return fallback.gradFunc(dy, saved, attrs);
      }
      const info = tf.backend_util.computeConv2DInfo(
        x.shape, filter.shape as [number, number, number, number], strides, 1, pad, dimRoundingMode, false, 'channelsLast',
      );
      const dy4 = dy as tf.Tensor4D;
      return {
        x: () => conv2dInputGrad(dy4, filter, x.shape, info),
        filter: () => conv2dFilterGrad(x, dy4, info),
      };
    },
  };
}
