/**
 * `npm run bench -- data [--json]`: how long loading and decoding CIFAR-10 takes (all 60,000 images), with no
 * cache (pure PNG decode) and warm (decoded cache on disk), against one stage-1 training epoch at the
 * measured step rate, so that "loading must not dominate a training run" is a number.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureLoad } from '../src/data/cifar.js';

export async function main(argv: readonly string[]): Promise<void> {
  const json = argv.includes('--json');
  const dataDirIndex = argv.indexOf('--data');
  const dataDir = dataDirIndex >= 0 ? argv[dataDirIndex + 1] : undefined;
  const cacheDir = mkdtempSync(join(tmpdir(), 'blockdrop-bench-cache-'));
  try {
    const decode = measureLoad({ dataDir, cacheDir: false });
    const cold = measureLoad({ dataDir, cacheDir }); // decodes and writes the cache
    const warm = measureLoad({ dataDir, cacheDir });
    const result = {
      benchmark: 'data',
      dir: decode.dir,
      layout: decode.layout,
      images: 60000,
      decodeNoCacheMs: decode.totalMs,
      firstLoadWritingCacheMs: cold.totalMs,
      warmCacheMs: warm.totalMs,
      decodeTrainMs: decode.trainMs,
      decodeTestMs: decode.testMs,
      decodedImagesPerSecond: 60000 / (decode.totalMs / 1000),
    };
    if (json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      `CIFAR-10 (${result.layout}, ${result.dir}): decode ${result.decodeNoCacheMs.toFixed(0)} ms, ` +
        `first load with cache write ${result.firstLoadWritingCacheMs.toFixed(0)} ms, warm cache ${result.warmCacheMs.toFixed(0)} ms\n`,
    );
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}
