/**
 * The executor's skipping strategies against each other and against the fused full network, on the
 * real ResNet-32 and CIFAR-10 test images, with explicit keep masks (the backbone alone; the policy
 * costs the same under every strategy). The numbers behind the default strategy (docs/executor.md).
 *
 *   node dist/bench/strategies.js [--json] [--keep-rates 0.3,0.5,1] [--rounds 5] [--images 1280]
 *
 * Masks: 'random' = Bernoulli(p) per image and block (every image its own path, the synthetic
 * policy's case); 'paths' = 53 distinct patterns drawn once and reused with Zipf frequencies (what a
 * trained policy looks like: BlockDrop's ResNet-32 policy uses ~53 paths on the test set).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadCifar10 } from '../src/data/cifar.js';
import { BlockdropError } from '../src/errors.js';
import { BlockDropModel, type Strategy } from '../src/executor/model.js';
import { exportBlockDrop } from '../src/export/onnx.js';
import { loadBackbone } from '../src/models/load.js';
import { Rng } from '../src/util/rng.js';
import { DEFAULT_WEIGHTS } from './inference.js';
import { load1, median, round, timeMs, runIfScript } from './stats.js';

interface Row {
  masks: 'random' | 'paths';
  keepRate: number;
  batch: number;
  strategy: string;
  msPerImage: number;
  /** Backbone FLOPs fraction: the ideal time relative to full. */
  idealFraction: number;
  /** Time relative to the fused full network. */
  timeFraction: number;
  /** idealFraction / timeFraction: 1 = savings fully realised. */
  efficiency: number;
}

function masksFor(kind: 'random' | 'paths', n: number, K: number, p: number, rng: Rng): Uint8Array {
  const keep = new Uint8Array(n * K);
  if (kind === 'random') {
    for (let i = 0; i < keep.length; i++) keep[i] = rng.next() < p ? 1 : 0;
    return keep;
  }
  const pool = Array.from({ length: 53 }, () => Array.from({ length: K }, () => (rng.next() < p ? 1 : 0)));
  const weights = pool.map((_, r) => 1 / (r + 1));
  const total = weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < n; i++) {
    let u = rng.next() * total;
    let r = 0;
    while (u > weights[r]! && r < pool.length - 1) u -= weights[r++]!;
    keep.set(pool[r]!, i * K);
  }
  return keep;
}

export async function main(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      json: { type: 'boolean', default: false },
      weights: { type: 'string' },
      'keep-rates': { type: 'string', default: '0.3,0.5,1' },
      rounds: { type: 'string', default: '5' },
      images: { type: 'string', default: '1280' },
      'latency-images': { type: 'string', default: '300' },
      threads: { type: 'string', default: '2' },
    },
  });
  const log = values.json ? (s: string) => process.stderr.write(`${s}\n`) : (s: string) => console.log(s);
  const rates = values['keep-rates']!.split(',').map(Number);
  if (rates.some((p) => !(p >= 0 && p <= 1))) throw new BlockdropError('--keep-rates must be numbers from 0 to 1');
  const rounds = Number(values.rounds);
  const backbone = await loadBackbone(resolve(values.weights ?? DEFAULT_WEIGHTS));
  const dir = mkdtempSync(join(tmpdir(), 'blockdrop-strategies-'));
  try {
    await exportBlockDrop({ arch: backbone.arch, normalization: backbone.normalization, resnet: backbone.tensors, outDir: dir });
    const threads = Number(values.threads);
    const nchwc = await BlockDropModel.load(dir, { kernels: 'auto', threads });
    const portable = await BlockDropModel.load(dir, { kernels: 'portable', threads });
    const K = nchwc.K;
    const f = nchwc.manifest.flops;
    const test = loadCifar10({ split: 'test' });
    const per = 32 * 32 * 3;
    const n = Math.min(Number(values.images), test.count);
    const nLat = Math.min(Number(values['latency-images']), test.count);
    const images = test.images.subarray(0, n * per);
    const rng = new Rng(0);
    const rows: Row[] = [];
    const candidates: { name: string; model: BlockDropModel; strategy: Strategy; batch1Only?: boolean }[] = [
      { name: 'gather (nchwc)', model: nchwc, strategy: 'gather' },
      { name: 'gather (portable)', model: portable, strategy: 'gather' },
      { name: 'per-block (JS sub-batches)', model: nchwc, strategy: 'per-block' },
      { name: 'path (fused per path, LRU)', model: nchwc, strategy: 'path' },
      { name: 'branch (nchwc)', model: nchwc, strategy: 'branch', batch1Only: true },
      { name: 'branch (portable)', model: portable, strategy: 'branch', batch1Only: true },
    ];
    for (const batch of [128, 1]) {
      const count = batch === 1 ? nLat : n;
      const subset = images.subarray(0, count * per);
      const full: number[] = [];
      await nchwc.predictFull(subset.subarray(0, Math.min(count, 256) * per), { batchSize: batch });
      for (let r = 0; r < rounds; r++) full.push((await timeMs(() => nchwc.predictFull(subset, { batchSize: batch }))) / count);
      const fullMs = median(full);
      rows.push({ masks: 'random', keepRate: 1, batch, strategy: 'full (fused, one graph)', msPerImage: round(fullMs, 4), idealFraction: 1, timeFraction: 1, efficiency: 1 });
      log(`batch ${batch}: full ${fullMs.toFixed(4)} ms/image (load ${load1().toFixed(2)})`);
      for (const kind of ['random', 'paths'] as const) {
        for (const p of rates) {
          const keep = masksFor(kind, count, K, p, rng);
          let flops = 0;
          for (let i = 0; i < count; i++) {
            flops += f.stemAndHead;
            for (let t = 0; t < K; t++) if (keep[i * K + t]) flops += f.perBlock[t]!;
          }
          const ideal = flops / count / f.full;
          for (const c of candidates) {
            if (c.batch1Only && batch !== 1) continue;
            // Fused per-path sessions cost ~25 ms each to build: hopeless when every image has its own path.
            if (c.strategy === 'path' && kind === 'random') continue;
            const run = () => c.model.predict(subset, { keep, batchSize: batch, strategy: c.strategy });
            await run(); // warm-up (and, for 'path', builds the sessions of the pool)
            // Paired rounds: the full network right before each candidate round; the median of the
            // per-round time ratios cancels most load drift on a shared machine.
            const times: number[] = [];
            const ratios: number[] = [];
            for (let r = 0; r < rounds; r++) {
              const fullRound = (await timeMs(() => nchwc.predictFull(subset, { batchSize: batch }))) / count;
              const t = (await timeMs(run)) / count;
              times.push(t);
              ratios.push(t / fullRound);
            }
            const ms = median(times);
            const fraction = median(ratios);
            const row: Row = {
              masks: kind,
              keepRate: p,
              batch,
              strategy: c.name,
              msPerImage: round(ms, 4),
              idealFraction: round(ideal, 3),
              timeFraction: round(fraction, 3),
              efficiency: round(ideal / fraction, 3),
            };
            rows.push(row);
            log(`batch ${batch} ${kind} p=${p} ${c.name}: ${ms.toFixed(4)} ms/image, ${row.timeFraction} of full (ideal ${row.idealFraction}), efficiency ${row.efficiency}`);
          }
        }
      }
    }
    const result = { benchmark: 'strategies', threads, images: n, latencyImages: nLat, rounds, kernels: nchwc.info.kernels, loadAverage1m: round(load1(), 2), rows };
    if (values.json) console.log(JSON.stringify(result, null, 2));
    await nchwc.release();
    await portable.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfScript(import.meta.url, main);
