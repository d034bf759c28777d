/**
 * The long fuzz run: the properties of src/checkpoint/fuzz.test.ts, src/data/image.fuzz.test.ts and
 * src/executor/manifest.test.ts with random seeds and many more inputs, the real checkpoints from
 * ../shared as seeds too.
 *
 *   node dist/bench/fuzz.js [--minutes 5] [--only text] [--seed n] [--hang-seconds 10] [--max-rss-mb 2048]
 *   node dist/bench/fuzz.js --replay <property> --seed <n> [--path <p>] [--runs n]   (a failure again)
 *   node dist/bench/fuzz.js --list
 *
 * Each chunk of a property runs in a worker thread, one at a time (one core). The main thread
 * watches it: no new input for --hang-seconds is a hang, a process RSS above --max-rss-mb a memory
 * blow-up; both stop the worker and are reported with the seed and the input's run index (fast-check
 * path) that reproduce them. Prints a JSON summary: inputs per reader and property, failures.
 * Exit code 1 when anything failed.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { checkpointProperties, imageProperties, manifestProperties, onFuzzInput, tried, type FuzzProperty } from '../src/testing/fuzz-targets.js';

interface ChunkRequest {
  readonly property: string;
  readonly seed: number;
  readonly timeMs: number;
  /** Shared counter: [0] inputs started in this chunk. */
  readonly counter: SharedArrayBuffer;
}

interface ChunkResult {
  readonly property: string;
  readonly seed: number;
  readonly runs: number;
  readonly tried: Record<string, number>;
  readonly failed: boolean;
  readonly path?: string;
  readonly message?: string;
  readonly input?: { length: number; headHex: string };
}

export interface FuzzFailure {
  readonly property: string;
  readonly kind: 'contract' | 'hang' | 'memory' | 'crash';
  readonly seed: number;
  readonly path: string | null;
  readonly message: string;
  readonly input?: { length: number; headHex: string };
  readonly reproduce: string;
}

function allProperties(): FuzzProperty[] {
  return [...checkpointProperties(), ...imageProperties(), ...manifestProperties()];
}

function describeInput(counterexample: unknown): { length: number; headHex: string } | undefined {
  const first = Array.isArray(counterexample) ? counterexample[0] : undefined;
  if (!(first instanceof Uint8Array)) return undefined;
  return { length: first.length, headHex: Buffer.from(first.subarray(0, 64)).toString('hex') };
}

/** One chunk, in this thread: for `timeMs`, or (replay) the run at `path`, or the first `runs` runs. */
async function runChunk(req: Omit<ChunkRequest, 'counter'>, counter: Int32Array | null, options: { path?: string; runs?: number } = {}): Promise<ChunkResult> {
  const prop = allProperties().find((p) => p.name === req.property);
  if (!prop) throw new Error(`unknown property ${req.property}`);
  tried.clear();
  onFuzzInput(() => {
    if (counter) Atomics.add(counter, 0, 1);
  });
  const replay = options.path !== undefined || options.runs !== undefined;
  const details = await fc.check(prop.build('all'), {
    seed: req.seed,
    numRuns: options.path !== undefined ? 1 : (options.runs ?? 1_000_000_000),
    ...(options.path !== undefined ? { path: options.path } : {}),
    ...(replay ? {} : { interruptAfterTimeLimit: req.timeMs }),
  });
  onFuzzInput(null);
  const error = details.errorInstance;
  return {
    property: req.property,
    seed: req.seed,
    runs: details.numRuns,
    tried: Object.fromEntries(tried),
    failed: details.failed,
    ...(details.failed
      ? {
          path: details.counterexamplePath ?? undefined,
          message: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
          input: describeInput(details.counterexample),
        }
      : {}),
  };
}

function currentRssMb(): number {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.memoryUsage.rss() / 2 ** 20;
}

const SCRIPT = 'node dist/bench/fuzz.js';

/** One chunk in a worker, watched for hangs and memory. */
function watchChunk(req: Omit<ChunkRequest, 'counter'>, limits: { hangMs: number; maxRssMb: number }): Promise<{ result?: ChunkResult; failure?: FuzzFailure; inputs: number }> {
  const counterBuffer = new SharedArrayBuffer(4);
  const counter = new Int32Array(counterBuffer);
  const worker = new Worker(fileURLToPath(import.meta.url), {
    workerData: { ...req, counter: counterBuffer } satisfies ChunkRequest,
    resourceLimits: { maxOldGenerationSizeMb: Math.max(256, Math.floor(limits.maxRssMb / 2)) },
  });
  return new Promise((done) => {
    let last = 0;
    let lastChange = Date.now();
    let settled = false;
    const finish = (out: { result?: ChunkResult; failure?: FuzzFailure }): void => {
      if (settled) return;
      settled = true;
      clearInterval(timer);
      done({ ...out, inputs: Atomics.load(counter, 0) });
    };
    const fail = (kind: FuzzFailure['kind'], message: string): void => {
      const index = Math.max(0, Atomics.load(counter, 0) - 1);
      void worker.terminate();
      finish({
        failure: {
          property: req.property, kind, seed: req.seed, path: String(index), message,
          reproduce: `${SCRIPT} --replay ${req.property} --seed ${req.seed} --path ${index}`,
        },
      });
    };
    const timer = setInterval(() => {
      const now = Date.now();
      const n = Atomics.load(counter, 0);
      if (n !== last) {
        last = n;
        lastChange = now;
      } else if (now - lastChange > limits.hangMs) {
        fail('hang', `no new input for ${(limits.hangMs / 1000).toFixed(0)} s: input ${n - 1} hangs (or shrinking one does)`);
        return;
      }
      const rss = currentRssMb();
      if (rss > limits.maxRssMb) fail('memory', `process RSS reached ${rss.toFixed(0)} MB (limit ${limits.maxRssMb} MB) during input ${n - 1}`);
    }, 100);
    worker.on('message', (result: ChunkResult) => finish({ result }));
    worker.on('error', (e) => fail(e.message.includes('out of memory') ? 'memory' : 'crash', `worker died: ${e.message}`));
    worker.on('exit', (code) => {
      if (!settled) fail('crash', `worker exited with code ${code} without a result`);
    });
  });
}

interface Options {
  minutes: number;
  only?: string;
  seed?: number;
  hangSeconds: number;
  maxRssMb: number;
  replay?: string;
  path?: string;
  runs?: number;
  list: boolean;
}

function parse(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      minutes: { type: 'string', default: '5' },
      only: { type: 'string' },
      seed: { type: 'string' },
      'hang-seconds': { type: 'string', default: '10' },
      'max-rss-mb': { type: 'string', default: '2048' },
      replay: { type: 'string' },
      path: { type: 'string' },
      runs: { type: 'string' },
      list: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const num = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got ${v}`);
    return n;
  };
  return {
    minutes: num(values.minutes, 'minutes')!,
    only: values.only,
    seed: num(values.seed, 'seed'),
    hangSeconds: num(values['hang-seconds'], 'hang-seconds')!,
    maxRssMb: num(values['max-rss-mb'], 'max-rss-mb')!,
    replay: values.replay,
    path: values.path,
    runs: num(values.runs, 'runs'),
    list: values.list,
  };
}

export async function main(argv: readonly string[]): Promise<boolean> {
  const o = parse(argv);
  if (o.list) {
    for (const p of allProperties()) console.log(p.name);
    return true;
  }
  if (o.replay) {
    if (o.seed === undefined) throw new Error('--replay needs --seed');
    const result = await runChunk({ property: o.replay, seed: o.seed, timeMs: 0 }, null, o.path !== undefined ? { path: o.path } : { runs: o.runs ?? 1000 });
    console.log(JSON.stringify(result, null, 2));
    return !result.failed;
  }
  const properties = allProperties().filter((p) => !o.only || p.name.includes(o.only));
  if (properties.length === 0) throw new Error(`no property matches --only ${o.only}`);
  const totalMs = o.minutes * 60_000;
  // Every property gets at least two chunks (two seeds) when time allows; chunks of 2–60 s.
  const chunkMs = Math.min(60_000, Math.max(2000, totalMs / (properties.length * 2)));
  const started = Date.now();
  const deadline = started + totalMs;
  const firstSeed = o.seed ?? (Math.random() * 2 ** 31) >>> 0;
  let seedCounter = firstSeed;
  const readers: Record<string, number> = {};
  const perProperty: Record<string, { inputs: number; chunks: number; seeds: number[] }> = {};
  const failures: FuzzFailure[] = [];
  const limits = { hangMs: o.hangSeconds * 1000, maxRssMb: o.maxRssMb };
  outer: for (;;) {
    for (const p of properties) {
      const left = deadline - Date.now();
      if (left < 500) break outer;
      const seed = seedCounter++ >>> 0;
      const out = await watchChunk({ property: p.name, seed, timeMs: Math.min(chunkMs, left) }, limits);
      const stats = (perProperty[p.name] ??= { inputs: 0, chunks: 0, seeds: [] });
      stats.inputs += out.inputs;
      stats.chunks += 1;
      stats.seeds.push(seed);
      if (out.result) {
        for (const [reader, n] of Object.entries(out.result.tried)) readers[reader] = (readers[reader] ?? 0) + n;
        if (out.result.failed) {
          const r = out.result;
          failures.push({
            property: p.name, kind: 'contract', seed, path: r.path ?? null, message: r.message ?? '', input: r.input,
            reproduce: `${SCRIPT} --replay ${p.name} --seed ${seed}${r.path ? ` --path ${r.path}` : ''}`,
          });
        }
      } else {
        readers[p.reader] = (readers[p.reader] ?? 0) + out.inputs;
      }
      if (out.failure) failures.push(out.failure);
    }
    if (o.minutes === 0) break;
  }
  const summary = {
    minutes: o.minutes,
    elapsedSeconds: Math.round((Date.now() - started) / 1000),
    // Chunks use firstSeed, firstSeed + 1, … in order; each failure carries its own seed.
    firstSeed,
    inputsPerReader: readers,
    properties: perProperty,
    failures,
    ok: failures.length === 0,
  };
  // Seed lists on one line each.
  console.log(JSON.stringify(summary, null, 2).replace(/\[\s+([\d,\s]+?)\s+\]/g, (_, inner: string) => `[${inner.split(/,\s*/).join(', ')}]`));
  return summary.ok;
}

if (!isMainThread && workerData) {
  const req = workerData as ChunkRequest;
  runChunk(req, new Int32Array(req.counter)).then(
    (result) => parentPort!.postMessage(result),
    (e: unknown) => {
      throw e;
    },
  );
} else if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  // exitCode, not exit(): a summary piped to another process must be flushed first.
  main(process.argv.slice(2)).then(
    (ok) => {
      process.exitCode = ok ? 0 : 1;
    },
    (e: unknown) => {
      console.error(e instanceof Error ? `error: ${e.message}` : e);
      process.exitCode = 2;
    },
  );
}
