/**
 * Inference benchmark on the real CIFAR-10 test set, in one run: the full ResNet as one fused ONNX
 * graph vs the BlockDrop executor (policy network + per-image block skipping).
 *
 *   node dist/bench/inference.js [--json] [--limit N] [--keep-rate p] [--policy file] [--weights file]
 *
 * Without --policy there is no trained policy: decisions are synthetic (Bernoulli(keep rate) per image
 * and block, seeded) and an untrained ResNet-8 policy network still runs on every image, so that time
 * and FLOPs include the policy as they will with a trained one.
 *
 * Reports images/s at batch 128, 16 and 1, batch-1 latency p50 / p99, the policy network's share of
 * the executor's time, accuracy and mean FLOPs of each, peak RSS, and the targets as booleans:
 *   dynamic img/s (batch 128) ≥ 0.8 × full img/s ÷ flopsRatio;
 *   dynamic p50 (batch 1) ≤ full p50 × flopsRatio ÷ 0.8;
 *   full ≥ 1,400 img/s at batch 128.
 * Timings are medians of interleaved rounds after a warm-up.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { loadAnyCheckpoint } from '../src/checkpoint/store.js';
import { loadCifar10 } from '../src/data/cifar.js';
import { BlockdropError } from '../src/errors.js';
import { BlockDropModel, type KernelChoice, type Strategy } from '../src/executor/model.js';
import { exportBlockDrop } from '../src/export/onnx.js';
import { policyArchFor } from '../src/models/config.js';
import { loadBackbone } from '../src/models/load.js';
import { canonicalizeResNetKeys, initResNetWeights } from '../src/models/weights.js';
import { weightsDir } from '../src/testing/shared.js';
import { load1, mean, median, peakRssMb, percentile, round, timeMs, runIfScript } from './stats.js';

export const DEFAULT_WEIGHTS = join(weightsDir, 'blockdrop_R32_C10_pk_E_164_A_0.923.t7');

export interface InferenceBenchOptions {
  readonly weights: string;
  readonly arch?: string;
  readonly policy?: string;
  /** Synthetic decisions (default 0.5 without --policy). */
  readonly keepRate?: number;
  readonly seed: number;
  readonly limit?: number;
  readonly threads: number;
  readonly strategy: Strategy;
  readonly kernels: KernelChoice;
  /** ORT worker threads spin while idle (default: the executor's choice). */
  readonly spinning?: boolean;
  readonly rounds: number;
  /** Images per throughput round. */
  readonly timingImages: number;
  /** Single-image calls per mode for the latency figures. */
  readonly latencyImages: number;
  readonly log: (line: string) => void;
}

const USAGE = `usage: node dist/bench/inference.js [--json] [--limit N] [--keep-rate p] [--seed n] [--policy file]
  [--weights file] [--arch preset] [--threads n] [--strategy auto|gather|branch|per-block|path]
  [--kernels auto|nchwc|portable] [--spinning on|off] [--rounds n] [--timing-images n] [--latency-images n]`;

export function parseInferenceArgs(argv: readonly string[]): InferenceBenchOptions & { json: boolean } {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      json: { type: 'boolean', default: false },
      weights: { type: 'string' },
      arch: { type: 'string' },
      policy: { type: 'string' },
      'keep-rate': { type: 'string' },
      seed: { type: 'string', default: '0' },
      limit: { type: 'string' },
      threads: { type: 'string', default: '2' },
      strategy: { type: 'string', default: 'auto' },
      kernels: { type: 'string', default: 'auto' },
      spinning: { type: 'string' },
      rounds: { type: 'string', default: '7' },
      'timing-images': { type: 'string', default: '1280' },
      'latency-images': { type: 'string', default: '1000' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new BlockdropError(`--${name} must be an integer ≥ ${min}, got '${v}'`);
    return n;
  };
  const keepRate = values['keep-rate'] === undefined ? undefined : Number(values['keep-rate']);
  if (keepRate !== undefined && !(keepRate >= 0 && keepRate <= 1)) {
    throw new BlockdropError(`--keep-rate must be a number from 0 to 1, got '${values['keep-rate']}'`);
  }
  const strategies = ['auto', 'gather', 'branch', 'per-block', 'path'];
  if (!strategies.includes(values.strategy!)) throw new BlockdropError(`--strategy must be one of ${strategies.join(', ')}`);
  if (!['auto', 'nchwc', 'portable'].includes(values.kernels!)) throw new BlockdropError('--kernels must be auto, nchwc or portable');
  if (values.spinning !== undefined && !['on', 'off'].includes(values.spinning)) throw new BlockdropError('--spinning must be on or off');
  return {
    json: values.json!,
    weights: resolve(values.weights ?? DEFAULT_WEIGHTS),
    ...(values.arch ? { arch: values.arch } : {}),
    ...(values.policy ? { policy: resolve(values.policy) } : {}),
    ...(keepRate !== undefined ? { keepRate } : values.policy ? {} : { keepRate: 0.5 }),
    seed: int('seed', values.seed, 0)!,
    ...(values.limit ? { limit: int('limit', values.limit, 1)! } : {}),
    threads: int('threads', values.threads, 1)!,
    strategy: values.strategy as Strategy,
    kernels: values.kernels as KernelChoice,
    ...(values.spinning ? { spinning: values.spinning === 'on' } : {}),
    rounds: int('rounds', values.rounds, 1)!,
    timingImages: int('timing-images', values['timing-images'], 1)!,
    latencyImages: int('latency-images', values['latency-images'], 1)!,
    log: values.json ? (line) => process.stderr.write(`${line}\n`) : (line) => console.log(line),
  };
}

interface ModeResult {
  imagesPerSecond: number;
  imagesPerSecondBatch16: number;
  imagesPerSecondBatch1: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  accuracy: number;
  meanFlops: number;
}

export async function runInferenceBench(o: InferenceBenchOptions): Promise<Record<string, unknown>> {
  const log = o.log;
  const backbone = await loadBackbone(o.weights, o.arch ? { arch: o.arch } : {});
  const arch = backbone.arch;
  let policyTensors;
  let policyNote: string;
  if (o.policy) {
    const ckpt = await loadAnyCheckpoint(o.policy, { prefer: ['agent', 'policy', 'state_dict', 'net', 'model', ''] });
    policyTensors = canonicalizeResNetKeys(ckpt.tensors);
    policyNote = o.keepRate === undefined ? `trained policy ${o.policy}` : `policy ${o.policy} run for its cost, decisions synthetic`;
  } else {
    policyTensors = initResNetWeights(policyArchFor(arch), o.seed + 1);
    policyNote = `synthetic: Bernoulli(${o.keepRate}) per image and block (seed ${o.seed}); an untrained ResNet-8 policy runs for its cost`;
  }
  const dir = mkdtempSync(join(tmpdir(), 'blockdrop-bench-'));
  try {
    log(`exporting ${backbone.preset} (${backbone.source}) to ONNX …`);
    await exportBlockDrop({ arch, normalization: backbone.normalization, resnet: backbone.tensors, policy: policyTensors, outDir: dir });
    const model = await BlockDropModel.load(dir, {
      threads: o.threads,
      strategy: o.strategy,
      kernels: o.kernels,
      seed: o.seed,
      ...(o.spinning !== undefined ? { spinning: o.spinning } : {}),
      ...(o.keepRate !== undefined ? { keepRate: o.keepRate } : {}),
    });
    log(`executor: ${model.info.kernels} kernels${model.info.kernelNote ? ` (${model.info.kernelNote})` : ''}, ${model.info.threads} threads`);

    const test = loadCifar10({ split: 'test' });
    const count = Math.min(o.limit ?? test.count, test.count);
    const per = 32 * 32 * 3;
    const images = test.images.subarray(0, count * per);
    const labels = test.labels.subarray(0, count);
    const fullFlops = model.manifest.flops.full;

    // Accuracy and FLOPs on every image (also the warm-up of both batch-128 sessions).
    log(`accuracy pass over ${count} test images …`);
    const fullPred = await model.predictFull(images, { batchSize: 128 });
    const dynPred = await model.predict(images, { batchSize: 128 });
    const accuracy = (classes: Int32Array) => classes.reduce((s, c, i) => s + (c === labels[i] ? 1 : 0), 0) / count;
    const paths = new Set<string>();
    for (let i = 0; i < count; i++) paths.add(dynPred.keep.subarray(i * model.K, (i + 1) * model.K).join(''));
    const dynFlops = mean(dynPred.flops);
    const flopsRatio = dynFlops / fullFlops;

    const timingCount = Math.min(o.timingImages, count);
    const timingImages = images.subarray(0, timingCount * per);
    const throughput = async (batch: number) => {
      const full: number[] = [];
      const dyn: number[] = [];
      const pol: number[] = [];
      const n = batch === 16 ? Math.min(timingCount, 1280) : timingCount;
      const subset = timingImages.subarray(0, n * per);
      // Warm-up at this batch size, then interleaved rounds.
      await model.predictFull(subset.subarray(0, batch * 2 * per), { batchSize: batch });
      await model.predict(subset.subarray(0, batch * 2 * per), { batchSize: batch });
      await policyOnly(model, subset.subarray(0, batch * 2 * per), batch);
      // Paired rounds: on a shared machine the load drifts; a ratio within one round cancels most of it.
      const ratio: number[] = [];
      for (let r = 0; r < o.rounds; r++) {
        full.push(n / ((await timeMs(() => model.predictFull(subset, { batchSize: batch }))) / 1000));
        dyn.push(n / ((await timeMs(() => model.predict(subset, { batchSize: batch }))) / 1000));
        pol.push(n / ((await timeMs(() => policyOnly(model, subset, batch))) / 1000));
        ratio.push(dyn[r]! / full[r]!);
      }
      return { full: median(full), dynamic: median(dyn), policy: median(pol), pairedSpeedup: median(ratio) };
    };
    log(`throughput at batch 128 (${o.rounds} rounds × ${timingCount} images) …`);
    const t128 = await throughput(128);
    log(`throughput at batch 16 …`);
    const t16 = await throughput(16);

    log(`latency at batch 1 (${Math.min(o.latencyImages, count)} images per mode) …`);
    const latencyCount = Math.min(o.latencyImages, count);
    const fullLat: number[] = [];
    const dynLat: number[] = [];
    const polLat: number[] = [];
    const one = (i: number) => images.subarray(i * per, (i + 1) * per);
    for (let i = 0; i < Math.min(50, latencyCount); i++) {
      await model.predictFull(one(i));
      await model.predict(one(i));
      await model.policyProbabilities(one(i));
    }
    const chunk = 20; // interleave finely: load changes on a shared machine hit both modes alike
    for (let start = 0; start < latencyCount; start += chunk) {
      const end = Math.min(latencyCount, start + chunk);
      for (let i = start; i < end; i++) fullLat.push(await timeMs(() => model.predictFull(one(i))));
      for (let i = start; i < end; i++) dynLat.push(await timeMs(() => model.predict(one(i))));
      for (let i = start; i < end; i++) polLat.push(await timeMs(() => model.policyProbabilities(one(i))));
    }

    const full: ModeResult = {
      imagesPerSecond: round(t128.full, 1),
      imagesPerSecondBatch16: round(t16.full, 1),
      imagesPerSecondBatch1: round(1000 / mean(fullLat), 1),
      latencyP50Ms: round(median(fullLat), 4),
      latencyP99Ms: round(percentile(fullLat, 0.99), 4),
      accuracy: round(accuracy(fullPred.classes), 4),
      meanFlops: fullFlops,
    };
    const dynamic = {
      imagesPerSecond: round(t128.dynamic, 1),
      imagesPerSecondBatch16: round(t16.dynamic, 1),
      imagesPerSecondBatch1: round(1000 / mean(dynLat), 1),
      latencyP50Ms: round(median(dynLat), 4),
      latencyP99Ms: round(percentile(dynLat, 0.99), 4),
      accuracy: round(accuracy(dynPred.classes), 4),
      meanFlops: round(dynFlops, 0),
      flopsRatio: round(flopsRatio, 4),
      meanBlocks: round(mean(dynPred.blocksUsed), 3),
      distinctPaths: paths.size,
      policyShareOfTime: {
        batch128: round(t128.dynamic / t128.policy, 3),
        batch16: round(t16.dynamic / t16.policy, 3),
        batch1: round(median(polLat) / median(dynLat), 3),
      },
      policyFlopsShare: round((model.manifest.flops.policy ?? 0) / dynFlops, 3),
    };
    const requiredIps = (0.8 * full.imagesPerSecond) / flopsRatio;
    const requiredP50 = (full.latencyP50Ms * flopsRatio) / 0.8;
    const result = {
      benchmark: 'inference',
      config: {
        weights: o.weights,
        preset: backbone.preset,
        normalization: backbone.normalization.name,
        decisions: policyNote,
        keepRate: o.keepRate ?? null,
        seed: o.seed,
        images: count,
        timingImages: timingCount,
        latencyImages: latencyCount,
        rounds: o.rounds,
        threads: model.info.threads,
        strategy: o.strategy,
        kernels: model.info.kernels,
        spinning: o.spinning ?? 'default',
        onnxruntime: ort.env.versions.common,
        node: process.version,
        loadAverage1m: round(load1(), 2),
      },
      full,
      dynamic,
      speedup: {
        batch128: round(dynamic.imagesPerSecond / full.imagesPerSecond, 3),
        batch128PairedMedian: round(t128.pairedSpeedup, 3),
        batch16: round(dynamic.imagesPerSecondBatch16 / full.imagesPerSecondBatch16, 3),
        batch16PairedMedian: round(t16.pairedSpeedup, 3),
        batch1P50: round(full.latencyP50Ms / dynamic.latencyP50Ms, 3),
        ideal: round(1 / flopsRatio, 3),
      },
      peakRssMb: round(peakRssMb(), 1),
      targets: {
        batch128SpeedupAtLeast80PercentOfFlopReduction: dynamic.imagesPerSecond >= requiredIps,
        batch1LatencyAtLeast80PercentOfFlopReduction: dynamic.latencyP50Ms <= requiredP50,
        fullAtLeast1400ImagesPerSecond: full.imagesPerSecond >= 1400,
        required: { dynamicImagesPerSecond: round(requiredIps, 1), dynamicLatencyP50Ms: round(requiredP50, 4) },
      },
    };
    await model.release();
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The policy network alone over `images` in batches (for its share of the executor's time). */
async function policyOnly(model: BlockDropModel, images: Uint8Array, batch: number): Promise<void> {
  const per = 32 * 32 * 3;
  for (let start = 0; start * per < images.length; start += batch) {
    await model.policyProbabilities(images.subarray(start * per, Math.min(images.length, (start + batch) * per)));
  }
}

function printHuman(r: Record<string, unknown>): void {
  const full = r['full'] as ModeResult;
  const dyn = r['dynamic'] as ModeResult & { flopsRatio: number; meanBlocks: number; distinctPaths: number };
  const rows: [string, string, string][] = [
    ['images/s, batch 128', String(full.imagesPerSecond), String(dyn.imagesPerSecond)],
    ['images/s, batch 16', String(full.imagesPerSecondBatch16), String(dyn.imagesPerSecondBatch16)],
    ['images/s, batch 1', String(full.imagesPerSecondBatch1), String(dyn.imagesPerSecondBatch1)],
    ['latency p50 / p99 ms, batch 1', `${full.latencyP50Ms} / ${full.latencyP99Ms}`, `${dyn.latencyP50Ms} / ${dyn.latencyP99Ms}`],
    ['accuracy', String(full.accuracy), String(dyn.accuracy)],
    ['mean FLOPs', full.meanFlops.toExponential(4), `${dyn.meanFlops.toExponential(4)} (×${dyn.flopsRatio})`],
  ];
  console.log(`\n${'metric'.padEnd(32)}${'full (fused)'.padEnd(22)}BlockDrop executor`);
  for (const [a, b, c] of rows) console.log(`${a.padEnd(32)}${b.padEnd(22)}${c}`);
  console.log(`\nmean blocks ${dyn.meanBlocks}, distinct paths ${dyn.distinctPaths}, peak RSS ${r['peakRssMb']} MB`);
  console.log(`targets: ${JSON.stringify(r['targets'])}`);
}

export async function main(argv: readonly string[]): Promise<void> {
  const options = parseInferenceArgs(argv);
  const result = await runInferenceBench(options);
  if (options.json) console.log(JSON.stringify(result, null, 2));
  else printHuman(result);
}

runIfScript(import.meta.url, main);
