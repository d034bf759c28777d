/**
 * ImageNet-scale inference benchmark: torchvision-layout ResNet-50 / ResNet-101 at 224×224 with random
 * weights (speed does not depend on the values), the full network as one fused ONNX graph vs the
 * BlockDrop executor with its ResNet-10 policy (on the image pooled to 112×112) and synthetic
 * decisions: Bernoulli(keep rate) per image and block, seeded. Also the data reader's decode + crop
 * speed on a synthetic 500×375 JPEG (ImageNet's typical size).
 *
 *   npm run bench -- imagenet [--json] [--arch resnet50,resnet101] [--keep-rate 0.75] [--seed 0]
 *     [--threads 2] [--rounds 3] [--images 8] [--latency-images 6]
 *
 * Small on purpose (a few minutes on 2 cores): batches 1 and 8, a handful of images per round.
 * Timings are medians of interleaved rounds after a warm-up; the machine may be shared.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import jpeg from 'jpeg-js';
import * as ort from 'onnxruntime-node';
import { decodeImageRgb } from '../src/data/image.js';
import { evalTransform, trainTransform } from '../src/data/imagefolder.js';
import { BlockdropError } from '../src/errors.js';
import { BlockDropModel } from '../src/executor/model.js';
import { exportBlockDrop } from '../src/export/onnx.js';
import { blockCount, getPreset, IMAGENET_PRESETS, policyArchFor, type ResNetConfig } from '../src/models/config.js';
import { resnetParamSpecs } from '../src/models/weights.js';
import type { TensorMap } from '../src/tensor.js';
import { Rng } from '../src/util/rng.js';
import { load1, mean, median, peakRssMb, round, timeMs, runIfScript } from './stats.js';

export interface ImagenetBenchOptions {
  readonly archs: readonly string[];
  readonly keepRate: number;
  readonly seed: number;
  readonly threads: number;
  readonly rounds: number;
  /** Images per throughput round (at batch 8 and at batch 1). */
  readonly images: number;
  /** Single-image calls per mode for the latency figures. */
  readonly latencyImages: number;
  readonly log: (line: string) => void;
}

const USAGE = `usage: npm run bench -- imagenet [--json] [--arch resnet50,resnet101] [--keep-rate p] [--seed n]
  [--threads n] [--rounds n] [--images n] [--latency-images n]`;

export function parseImagenetArgs(argv: readonly string[]): ImagenetBenchOptions & { json: boolean } {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      json: { type: 'boolean', default: false },
      arch: { type: 'string', default: IMAGENET_PRESETS.join(',') },
      'keep-rate': { type: 'string', default: '0.75' },
      seed: { type: 'string', default: '0' },
      threads: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '3' },
      images: { type: 'string', default: '8' },
      'latency-images': { type: 'string', default: '6' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new BlockdropError(`--${name} must be an integer ≥ ${min}, got '${v}'`);
    return n;
  };
  const keepRate = Number(values['keep-rate']);
  if (!(keepRate >= 0 && keepRate <= 1)) throw new BlockdropError(`--keep-rate must be a number from 0 to 1, got '${values['keep-rate']}'`);
  const archs = values.arch!.split(',').map((a) => a.trim()).filter(Boolean);
  for (const a of archs) {
    if (getPreset(a).arch.stem !== 'imagenet') throw new BlockdropError(`--arch ${a} is not an ImageNet network; use ${IMAGENET_PRESETS.join(' or ')}`);
  }
  return {
    json: values.json!,
    archs,
    keepRate,
    seed: int('seed', values.seed!, 0),
    threads: int('threads', values.threads!, 1),
    rounds: int('rounds', values.rounds!, 1),
    images: int('images', values.images!, 1),
    latencyImages: int('latency-images', values['latency-images']!, 1),
    log: values.json ? (line) => process.stderr.write(`${line}\n`) : (line) => console.log(line),
  };
}

/**
 * Random weights of the right shapes, cheaply (10⁷–10⁸ values): convs uniform with He-like scale, BN
 * with running stats 0 / 1 and γ shrunk so activations stay finite over 33 blocks.
 */
function randomWeights(arch: ResNetConfig, seed: number): TensorMap {
  const rng = new Rng(seed);
  const out: TensorMap = new Map();
  for (const spec of resnetParamSpecs(arch)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (spec.kind === 'conv' || spec.kind === 'fc_weight') {
      const fanIn = spec.shape.slice(1).reduce((a, b) => a * b, 1);
      const bound = Math.sqrt(6 / fanIn);
      // xorshift-style fill: one rng word per 4 096 values is plenty for timing and keeps this fast.
      let s = rng.nextUint32() | 1;
      for (let i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >>> 17;
        s ^= s << 5;
        data[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * bound;
        if ((i & 4095) === 4095) s = rng.nextUint32() | 1;
      }
    } else if (spec.kind === 'bn_weight') data.fill(0.5);
    else if (spec.kind === 'bn_var') data.fill(1);
    out.set(spec.key, { dtype: 'float32', shape: [...spec.shape], data });
  }
  return out;
}

interface ArchResult {
  arch: string;
  K: number;
  exportSeconds: number;
  loadSeconds: number;
  exportMB: number;
  kernels: string;
  full: { imagesPerSecondBatch8: number; imagesPerSecondBatch1: number; latencyP50Ms: number; flops: number };
  dynamic: {
    imagesPerSecondBatch8: number;
    imagesPerSecondBatch1: number;
    latencyP50Ms: number;
    meanFlops: number;
    flopsRatio: number;
    meanBlocks: number;
    policyLatencyP50Ms: number;
    policyFlops: number;
  };
  speedup: { batch8: number; batch1P50: number; ideal: number };
}

async function benchArch(name: string, o: ImagenetBenchOptions): Promise<ArchResult> {
  const log = o.log;
  const arch = getPreset(name).arch;
  const K = blockCount(arch);
  const dir = join(mkdtempSync(join(tmpdir(), 'blockdrop-imagenet-bench-')), 'export');
  try {
    log(`${name}: random weights, export to ONNX …`);
    const t0 = performance.now();
    const { manifest } = await exportBlockDrop({
      arch,
      normalization: getPreset(name).normalization,
      resnet: randomWeights(arch, o.seed + 1),
      policy: randomWeights(policyArchFor(arch), o.seed + 2),
      outDir: dir,
    });
    const exportSeconds = (performance.now() - t0) / 1000;
    const exportMB = Object.values(manifest.files).reduce((s, f) => s + f.bytes, 0) / 2 ** 20;
    const t1 = performance.now();
    const model = await BlockDropModel.load(dir, { threads: o.threads, keepRate: o.keepRate, seed: o.seed });
    const loadSeconds = (performance.now() - t1) / 1000;
    log(`${name}: executor ${model.info.kernels} kernels${model.info.kernelNote ? ` (${model.info.kernelNote})` : ''}, load ${loadSeconds.toFixed(1)} s`);

    const side = 224;
    const per = side * side * 3;
    const rng = new Rng(o.seed + 3);
    const count = Math.max(o.images, o.latencyImages);
    const images = Uint8Array.from({ length: count * per }, () => rng.nextInt(256));
    const batch8 = images.subarray(0, o.images * per);

    // Warm-up: sessions for batch 8 (gather) and batch 1 (branch) of both modes.
    await model.predictFull(batch8, { batchSize: 8 });
    await model.predict(batch8, { batchSize: 8 });
    await model.predictFull(images.subarray(0, per));
    await model.predict(images.subarray(0, per));
    await model.policyProbabilities(images.subarray(0, per));

    log(`${name}: throughput, ${o.rounds} rounds × ${o.images} images at batch 8 …`);
    const full8: number[] = [];
    const dyn8: number[] = [];
    let flopsSum = 0;
    let blocksSum = 0;
    let decided = 0;
    for (let r = 0; r < o.rounds; r++) {
      full8.push(o.images / ((await timeMs(() => model.predictFull(batch8, { batchSize: 8 }))) / 1000));
      let pred: Awaited<ReturnType<BlockDropModel['predict']>> | undefined;
      dyn8.push(o.images / ((await timeMs(async () => (pred = await model.predict(batch8, { batchSize: 8 })))) / 1000));
      flopsSum += pred!.flops.reduce((a, b) => a + b, 0);
      blocksSum += pred!.blocksUsed.reduce((a, b) => a + b, 0);
      decided += o.images;
    }

    log(`${name}: latency at batch 1, ${o.latencyImages} images per mode …`);
    const fullLat: number[] = [];
    const dynLat: number[] = [];
    const polLat: number[] = [];
    for (let i = 0; i < o.latencyImages; i++) {
      const one = images.subarray(i * per, (i + 1) * per);
      fullLat.push(await timeMs(() => model.predictFull(one)));
      dynLat.push(await timeMs(async () => {
        const p = await model.predict(one);
        flopsSum += p.flops[0]!;
        blocksSum += p.blocksUsed[0]!;
        decided++;
      }));
      polLat.push(await timeMs(() => model.policyProbabilities(one)));
    }
    const fullFlops = manifest.flops.full;
    const meanFlops = flopsSum / decided;
    const result: ArchResult = {
      arch: name,
      K,
      exportSeconds: round(exportSeconds, 1),
      loadSeconds: round(loadSeconds, 1),
      exportMB: round(exportMB, 1),
      kernels: model.info.kernels,
      full: {
        imagesPerSecondBatch8: round(median(full8), 2),
        imagesPerSecondBatch1: round(1000 / mean(fullLat), 2),
        latencyP50Ms: round(median(fullLat), 1),
        flops: fullFlops,
      },
      dynamic: {
        imagesPerSecondBatch8: round(median(dyn8), 2),
        imagesPerSecondBatch1: round(1000 / mean(dynLat), 2),
        latencyP50Ms: round(median(dynLat), 1),
        meanFlops: round(meanFlops, 0),
        flopsRatio: round(meanFlops / fullFlops, 4),
        meanBlocks: round(blocksSum / decided, 2),
        policyLatencyP50Ms: round(median(polLat), 1),
        policyFlops: manifest.flops.policy ?? 0,
      },
      speedup: {
        batch8: round(median(dyn8) / median(full8), 3),
        batch1P50: round(median(fullLat) / median(dynLat), 3),
        ideal: round(fullFlops / meanFlops, 3),
      },
    };
    await model.release();
    return result;
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
}

/** Decode + transform speed of the folder reader on a synthetic 500×375 JPEG (one thread). */
function benchDataPipeline(seed: number): Record<string, number> {
  const w = 500;
  const h = 375;
  const rng = new Rng(seed);
  // Smooth content with noise compresses like a photo better than pure noise does.
  const rgba = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 4;
      rgba[o] = (x + rng.nextInt(24)) & 255;
      rgba[o + 1] = (y + rng.nextInt(24)) & 255;
      rgba[o + 2] = ((x + y) >> 1) & 255;
      rgba[o + 3] = 255;
    }
  }
  const bytes = jpeg.encode({ data: rgba, width: w, height: h }, 90).data;
  const n = 20;
  const decode: number[] = [];
  const evalT: number[] = [];
  const trainT: number[] = [];
  const trng = new Rng(seed + 1);
  for (let i = 0; i < n; i++) {
    let t = performance.now();
    const img = decodeImageRgb(bytes, 'synthetic.jpg');
    decode.push(performance.now() - t);
    t = performance.now();
    evalTransform(img);
    evalT.push(performance.now() - t);
    t = performance.now();
    trainTransform(img, trng);
    trainT.push(performance.now() - t);
  }
  const d = median(decode);
  return {
    jpegBytes: bytes.length,
    decodeMs: round(d, 2),
    evalTransformMs: round(median(evalT), 2),
    trainTransformMs: round(median(trainT), 2),
    evalImagesPerSecondOneThread: round(1000 / (d + median(evalT)), 1),
    trainImagesPerSecondOneThread: round(1000 / (d + median(trainT)), 1),
  };
}

export async function runImagenetBench(o: ImagenetBenchOptions): Promise<Record<string, unknown>> {
  const results: ArchResult[] = [];
  for (const a of o.archs) results.push(await benchArch(a, o));
  o.log('data reader: decode + crop of a 500×375 JPEG …');
  const data = benchDataPipeline(o.seed);
  return {
    benchmark: 'imagenet',
    config: {
      weights: 'random (speed only)',
      decisions: `synthetic: Bernoulli(${o.keepRate}) per image and block (seed ${o.seed}); a random ResNet-10 policy runs on every image for its cost`,
      keepRate: o.keepRate,
      seed: o.seed,
      threads: o.threads,
      rounds: o.rounds,
      imagesPerRound: o.images,
      latencyImages: o.latencyImages,
      strategy: 'auto (gather at batch 8, branch at batch 1)',
      onnxruntime: ort.env.versions.common,
      node: process.version,
      loadAverage1m: round(load1(), 2),
    },
    results,
    dataReader: data,
    peakRssMb: round(peakRssMb(), 1),
  };
}

function printHuman(r: Record<string, unknown>): void {
  for (const a of r['results'] as ArchResult[]) {
    console.log(`\n${a.arch} (K = ${a.K}, ${a.kernels} kernels; export ${a.exportMB} MB in ${a.exportSeconds} s, load ${a.loadSeconds} s)`);
    const rows: [string, string, string][] = [
      ['images/s, batch 8', String(a.full.imagesPerSecondBatch8), String(a.dynamic.imagesPerSecondBatch8)],
      ['images/s, batch 1', String(a.full.imagesPerSecondBatch1), String(a.dynamic.imagesPerSecondBatch1)],
      ['latency p50 ms, batch 1', String(a.full.latencyP50Ms), `${a.dynamic.latencyP50Ms} (policy alone ${a.dynamic.policyLatencyP50Ms})`],
      ['FLOPs / image', a.full.flops.toExponential(4), `${a.dynamic.meanFlops.toExponential(4)} (×${a.dynamic.flopsRatio}, ${a.dynamic.meanBlocks} blocks)`],
    ];
    console.log(`${'metric'.padEnd(28)}${'full (fused)'.padEnd(18)}BlockDrop executor`);
    for (const [x, y, z] of rows) console.log(`${x.padEnd(28)}${y.padEnd(18)}${z}`);
    console.log(`speedup: batch 8 ×${a.speedup.batch8}, batch 1 p50 ×${a.speedup.batch1P50} (ideal from FLOPs ×${a.speedup.ideal})`);
  }
  console.log(`\ndata reader (one thread): ${JSON.stringify(r['dataReader'])}`);
  console.log(`peak RSS ${r['peakRssMb']} MB`);
}

export async function main(argv: readonly string[]): Promise<void> {
  const options = parseImagenetArgs(argv);
  const result = await runImagenetBench(options);
  if (options.json) console.log(JSON.stringify(result, null, 2));
  else printHuman(result);
}

runIfScript(import.meta.url, main);
