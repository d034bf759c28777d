/** Small statistics and timing helpers for the benchmarks. */
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BlockdropError } from '../src/errors.js';

export function median(values: readonly number[]): number {
  return percentile(values, 0.5);
}

/** Nearest-rank percentile (q in [0, 1]). */
export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]!;
  return values.length ? s / values.length : NaN;
}

export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** 1-minute load average: other processes on a shared machine skew every timing. */
export function load1(): number {
  return loadavg()[0]!;
}

/**
 * Runs `main` when `moduleUrl` is the script Node was started with (`node dist/bench/<name>.js …`); a
 * BlockdropError prints as one line, anything else with its stack.
 */
export function runIfScript(moduleUrl: string, main: (argv: readonly string[]) => Promise<void>): void {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(resolve(process.argv[1])).href) return;
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e instanceof BlockdropError ? `error: ${e.message}` : e);
    process.exit(1);
  });
}
