/** Area-averaging resize of RGB8 images: pure TypeScript (the browser demo uses it too). */

/** Source ranges and weights of a 1-D box filter from n to m samples (each output averages its footprint). */
function boxWeights(n: number, m: number): { start: Int32Array; weights: Float64Array[] } {
  const start = new Int32Array(m);
  const weights: Float64Array[] = [];
  const scale = n / m;
  for (let o = 0; o < m; o++) {
    const a = o * scale;
    const b = (o + 1) * scale;
    const first = Math.floor(a);
    const last = Math.min(n - 1, Math.ceil(b) - 1);
    const w = new Float64Array(last - first + 1);
    for (let s = first; s <= last; s++) w[s - first] = (Math.min(b, s + 1) - Math.max(a, s)) / scale;
    start[o] = first;
    weights.push(w);
  }
  return { start, weights };
}

/**
 * Resizes RGB8 HWC by area averaging (box filter over each output pixel's footprint in the source; for
 * enlargement this degenerates to a blend of the nearest pixels). Separable: rows first, then columns.
 */
export function resizeArea(rgb: Uint8Array, width: number, height: number, outWidth: number, outHeight: number): Uint8Array {
  if (rgb.length !== width * height * 3) throw new RangeError(`resizeArea: ${rgb.length} bytes for ${width}×${height}×3`);
  const wx = boxWeights(width, outWidth);
  const wy = boxWeights(height, outHeight);
  const tmp = new Float64Array(height * outWidth * 3);
  for (let y = 0; y < height; y++) {
    for (let ox = 0; ox < outWidth; ox++) {
      const s0 = wx.start[ox]!;
      const w = wx.weights[ox]!;
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = 0; k < w.length; k++) {
        const i = (y * width + s0 + k) * 3;
        r += rgb[i]! * w[k]!;
        g += rgb[i + 1]! * w[k]!;
        b += rgb[i + 2]! * w[k]!;
      }
      const t = (y * outWidth + ox) * 3;
      tmp[t] = r;
      tmp[t + 1] = g;
      tmp[t + 2] = b;
    }
  }
  const out = new Uint8Array(outWidth * outHeight * 3);
  for (let oy = 0; oy < outHeight; oy++) {
    const s0 = wy.start[oy]!;
    const w = wy.weights[oy]!;
    for (let ox = 0; ox < outWidth; ox++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let k = 0; k < w.length; k++) {
        const t = ((s0 + k) * outWidth + ox) * 3;
        r += tmp[t]! * w[k]!;
        g += tmp[t + 1]! * w[k]!;
        b += tmp[t + 2]! * w[k]!;
      }
      const o = (oy * outWidth + ox) * 3;
      out[o] = Math.min(255, Math.max(0, Math.round(r)));
      out[o + 1] = Math.min(255, Math.max(0, Math.round(g)));
      out[o + 2] = Math.min(255, Math.max(0, Math.round(b)));
    }
  }
  return out;
}
