/**
 * The real speedup of a BlockDrop model on the clock: the full network as one fused graph against the
 * block-skipping executor (policy included), on the same images, in interleaved rounds of the same run so that
 * both see the same machine load. What `blockdrop run` reports; `npm run bench -- inference` is the thorough
 * version (several batch sizes, latency percentiles, peak RSS).
 */
import type { BlockDropPredictor } from './model.js';

export interface SpeedOptions {
  /** Images per `predict` call (default 128). */
  readonly batchSize?: number;
  /** Timed rounds of each; the median counts (default 5). One untimed warm-up round comes first. */
  readonly rounds?: number;
}

export interface SpeedMeasurement {
  readonly images: number;
  readonly batchSize: number;
  readonly rounds: number;
  readonly full: { readonly imagesPerSecond: number; readonly flopsPerImage: number };
  readonly blockdrop: { readonly imagesPerSecond: number; readonly flopsPerImage: number; readonly blocksMean: number };
  /** BlockDrop FLOPs (policy included) ÷ full FLOPs. */
  readonly flopsRatio: number;
  /** blockdrop ÷ full images/s. */
  readonly speedup: number;
  /** 1 / flopsRatio: the speedup if time followed FLOPs exactly. */
  readonly idealSpeedup: number;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Times `model.predictFull` and `model.predict` on `count` uint8 HWC images (interleaved rounds, medians). */
export async function measureSpeedup(model: BlockDropPredictor, images: Uint8Array, count: number, options: SpeedOptions = {}): Promise<SpeedMeasurement> {
  const batchSize = options.batchSize ?? 128;
  const rounds = Math.max(1, options.rounds ?? 5);
  if (!(count > 0)) throw new RangeError('measureSpeedup needs at least one image');
  const fullSeconds: number[] = [];
  const dynamicSeconds: number[] = [];
  let flops = 0;
  let blocks = 0;
  for (let round = 0; round <= rounds; round++) {
    let t0 = performance.now();
    await model.predictFull(images, { batchSize });
    const full = (performance.now() - t0) / 1000;
    t0 = performance.now();
    const out = await model.predict(images, { batchSize });
    const dynamic = (performance.now() - t0) / 1000;
    if (round === 0) {
      // warm-up (session creation, first allocations); the decisions are the same every round
      for (let i = 0; i < count; i++) {
        flops += out.flops[i]!;
        blocks += out.blocksUsed[i]!;
      }
      continue;
    }
    fullSeconds.push(full);
    dynamicSeconds.push(dynamic);
  }
  const fullRate = count / median(fullSeconds);
  const dynamicRate = count / median(dynamicSeconds);
  const fullFlops = model.manifest.flops.full;
  const flopsRatio = flops / count / fullFlops;
  return {
    images: count,
    batchSize,
    rounds,
    full: { imagesPerSecond: fullRate, flopsPerImage: fullFlops },
    blockdrop: { imagesPerSecond: dynamicRate, flopsPerImage: flops / count, blocksMean: blocks / count },
    flopsRatio,
    speedup: dynamicRate / fullRate,
    idealSpeedup: 1 / flopsRatio,
  };
}
