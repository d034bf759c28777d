/**
 * The classification terms of stage 2, computed on plain arrays: the step function hands their gradient w.r.t. the
 * logits to the training engine's backward pass, so neither needs a tape.
 *
 *   cross-entropy:  CE = mean_r −log softmax(z_r)[y_r]
 *   distillation:   KD = mean_r T² · KL(softmax(t_r / T) ‖ softmax(z_r / T))   (Hinton et al. 2015; t = teacher logits)
 *   stage-2 term:   (1 − w)·CE + w·KD
 *
 * The T² keeps the soft term's gradient on the scale of the hard one as T changes.
 */

export interface LossWithGrad {
  readonly loss: number;
  /** d loss / d logits, [rows, classes]. */
  readonly grad: Float32Array;
}

/** log softmax(z / T) of the `classes` values from `offset`, into `out[0..classes)` (double precision). */
function logSoftmax(logits: Float32Array, offset: number, classes: number, temperature: number, out: Float64Array): void {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) max = Math.max(max, logits[offset + c]! / temperature);
  let z = 0;
  for (let c = 0; c < classes; c++) z += Math.exp(logits[offset + c]! / temperature - max);
  const logZ = Math.log(z) + max;
  for (let c = 0; c < classes; c++) out[c] = logits[offset + c]! / temperature - logZ;
}

/** Softmax cross-entropy, mean over rows, and its gradient ((softmax − onehot) / rows). */
export function crossEntropyWithGrad(logits: Float32Array, rows: number, classes: number, labels: (row: number) => number): LossWithGrad {
  const grad = new Float32Array(rows * classes);
  const logP = new Float64Array(classes);
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * classes;
    logSoftmax(logits, o, classes, 1, logP);
    const y = labels(r);
    loss -= logP[y]!;
    for (let c = 0; c < classes; c++) grad[o + c] = (Math.exp(logP[c]!) - (c === y ? 1 : 0)) / rows;
  }
  return { loss: loss / rows, grad };
}

/**
 * T²·KL(softmax(t/T) ‖ softmax(z/T)), mean over rows, and its gradient T·(softmax(z/T) − softmax(t/T)) / rows.
 * `teacherRow(r)` is the row of `teacherLogits` that row r of `logits` is distilled from (samples of one image share it).
 */
export function distillationWithGrad(
  logits: Float32Array,
  teacherLogits: Float32Array,
  rows: number,
  classes: number,
  temperature: number,
  teacherRow: (row: number) => number,
): LossWithGrad {
  const grad = new Float32Array(rows * classes);
  const logStudent = new Float64Array(classes);
  const logTeacher = new Float64Array(classes);
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * classes;
    logSoftmax(logits, o, classes, temperature, logStudent);
    logSoftmax(teacherLogits, teacherRow(r) * classes, classes, temperature, logTeacher);
    for (let c = 0; c < classes; c++) {
      const p = Math.exp(logTeacher[c]!);
      loss += p * (logTeacher[c]! - logStudent[c]!);
      grad[o + c] = (temperature * (Math.exp(logStudent[c]!) - p)) / rows;
    }
  }
  return { loss: (temperature * temperature * loss) / rows, grad };
}

/** (1 − weight)·a + weight·b for two losses over the same logits. */
export function blendLosses(a: LossWithGrad, b: LossWithGrad, weight: number): LossWithGrad {
  const grad = new Float32Array(a.grad.length);
  for (let i = 0; i < grad.length; i++) grad[i] = (1 - weight) * a.grad[i]! + weight * b.grad[i]!;
  return { loss: (1 - weight) * a.loss + weight * b.loss, grad };
}
