/**
 * Data-parallel BlockDrop executor: N worker threads, each with its own single-threaded ONNX Runtime
 * sessions, and a batch split between them.
 *
 * Why: ORT's intra-op threads parallelise each node, and the block-skipping graph has ~200 small nodes per batch
 * (NonZero, Gather, ScatterND, reshapes) that run on one thread while the other waits at every node boundary.
 * Two workers with one thread each keep both cores busy on whole sub-batches instead: the measurement that chose
 * this is in docs/executor.md (`npm run bench -- inference` measures both arrangements in one run).
 *
 * Decisions are the same as a single `BlockDropModel`'s: a synthetic policy is drawn here, in image order, from
 * the same seeded generator, and each worker receives its images' masks.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { BlockdropError } from '../errors.js';
import type { BlockDropManifest } from '../export/onnx.js';
import { Rng } from '../util/rng.js';
import { startWorkers, type ReadyMessage } from '../util/workers.js';
import { checkImageBatch, type ImageInputOptions } from './input.js';
import {
  syntheticKeep,
  type BlockDropPredictor,
  type ExecutorInfo,
  type LoadOptions,
  type Prediction,
  type PredictOptions,
} from './model.js';

export interface PoolOptions extends Omit<LoadOptions, 'threads'> {
  /** Worker threads (default: 2, at most the CPU count). Each runs ONNX Runtime with one intra-op thread. */
  readonly workers?: number;
}

/** What a worker is asked to do (see pool-worker.ts). */
export type PoolRequest =
  | { id: number; method: 'predict'; images: Uint8Array | Float32Array; options: PredictOptions }
  | { id: number; method: 'predictFull'; images: Uint8Array | Float32Array; options: ImageInputOptions & { batchSize?: number } }
  | { id: number; method: 'policyProbabilities'; images: Uint8Array | Float32Array; options: ImageInputOptions }
  | { id: number; method: 'release' };

export type PoolReply =
  | { id: number; ok: true; result: Prediction | Float32Array | null }
  | { id: number; ok: false; message: string; blockdrop: boolean };

export interface PoolReadyInfo {
  manifest: BlockDropManifest;
  info: ExecutorInfo;
  K: number;
  numClasses: number;
}

export type PoolReady = ReadyMessage<PoolReadyInfo>;

interface Pending {
  resolve: (value: Prediction | Float32Array | null) => void;
  reject: (error: Error) => void;
}

class PoolWorker {
  readonly pending = new Map<number, Pending>();
  private failure: Error | undefined;

  constructor(readonly worker: Worker) {
    worker.on('message', (message: PoolReply | PoolReady) => {
      if (!('id' in message)) return;
      const p = this.pending.get(message.id);
      if (!p) return;
      this.pending.delete(message.id);
      if (message.ok) p.resolve(message.result);
      else p.reject(message.blockdrop ? new BlockdropError(message.message) : new Error(message.message));
    });
    const fail = (error: Error) => {
      this.failure = error;
      for (const p of this.pending.values()) p.reject(error);
      this.pending.clear();
    };
    worker.on('error', (e) => fail(new BlockdropError(`an executor worker failed (${e.message}); load the model again`)));
    worker.on('exit', (code) => fail(new BlockdropError(`an executor worker exited (code ${code}); load the model again`)));
  }

  call(request: PoolRequest, transfer: ArrayBuffer[] = []): Promise<Prediction | Float32Array | null> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.set(request.id, { resolve, reject });
      this.worker.postMessage(request, transfer);
    });
  }
}

/** Splits `count` images into at most `parts` contiguous, near-equal ranges. */
export function shardRanges(count: number, parts: number): Array<[number, number]> {
  const n = Math.max(1, Math.min(parts, count));
  const ranges: Array<[number, number]> = [];
  for (let i = 0; i < n; i++) ranges.push([Math.floor((i * count) / n), Math.floor(((i + 1) * count) / n)]);
  return ranges;
}

function concat<T extends Float32Array | Float64Array | Int32Array | Uint8Array>(parts: readonly T[], make: (n: number) => T): T {
  const out = make(parts.reduce((s, p) => s + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Joins the predictions of consecutive shards. */
export function joinPredictions(parts: readonly Prediction[]): Prediction {
  if (parts.length === 1) return parts[0]!;
  const probs = parts.map((p) => p.policyProbabilities);
  return {
    classes: concat(parts.map((p) => p.classes), (n) => new Int32Array(n)),
    probabilities: concat(parts.map((p) => p.probabilities), (n) => new Float32Array(n)),
    logits: concat(parts.map((p) => p.logits), (n) => new Float32Array(n)),
    keep: concat(parts.map((p) => p.keep), (n) => new Uint8Array(n)),
    blocksUsed: concat(parts.map((p) => p.blocksUsed), (n) => new Int32Array(n)),
    flops: concat(parts.map((p) => p.flops), (n) => new Float64Array(n)),
    policyProbabilities: probs.every((p) => p !== null) ? concat(probs as Float32Array[], (n) => new Float32Array(n)) : null,
  };
}

export class BlockDropPool implements BlockDropPredictor {
  private nextId = 1;
  private nextSingle = 0;
  private released = false;
  private readonly rng: Rng;

  private constructor(
    private readonly workers: readonly PoolWorker[],
    readonly manifest: BlockDropManifest,
    readonly info: ExecutorInfo,
    readonly K: number,
    readonly numClasses: number,
    private readonly options: PoolOptions,
  ) {
    this.rng = new Rng(options.seed ?? 0);
  }

  /** Starts the workers; each verifies the export and builds its sessions (as `BlockDropModel.load`). */
  static async load(dir: string, options: PoolOptions = {}): Promise<BlockDropPool> {
    if (options.keepRate !== undefined && !(options.keepRate >= 0 && options.keepRate <= 1)) {
      throw new BlockdropError(`keep rate ${options.keepRate} is not a probability; use a number from 0 to 1`);
    }
    const count = Math.max(1, Math.min(options.workers ?? 2, availableParallelism()));
    // The workers get explicit masks for a synthetic policy (drawn here), so they load without keepRate.
    const { keepRate: _keepRate, workers: _workers, ...rest } = options;
    const workerOptions: LoadOptions = { ...rest, threads: 1 };
    const { workers, ready } = await startWorkers<PoolReadyInfo>(new URL('./pool-worker.js', import.meta.url), count, { dir, options: workerOptions }, (m) =>
      m.blockdrop ? new BlockdropError(m.message) : new Error(m.message),
    );
    const first = ready[0]!;
    const decisions = options.keepRate !== undefined ? 'synthetic' : first.info.decisions;
    return new BlockDropPool(
      workers.map((w) => new PoolWorker(w)),
      first.manifest,
      { ...first.info, workers: count, decisions },
      first.K,
      first.numClasses,
      options,
    );
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await Promise.allSettled(this.workers.map((w) => w.call({ id: this.nextId++, method: 'release' })));
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }

  async predict(images: Uint8Array | Float32Array, options: PredictOptions = {}): Promise<Prediction> {
    const side = this.manifest.architecture.inputSize;
    const { count } = checkImageBatch(images, side, options);
    const K = this.K;
    let keep = options.keep;
    let chargePolicy = options.chargePolicy;
    if (keep && keep.length !== count * K) {
      throw new BlockdropError(
        `keep masks hold ${keep.length} values; expected ${count} images × K = ${K} blocks of ${this.manifest.architecture.name}`,
      );
    }
    if (!keep && this.options.keepRate !== undefined) {
      keep = syntheticKeep(this.rng, count * K, this.options.keepRate);
      chargePolicy = this.info.hasPolicy && this.options.chargePolicy !== false;
    }
    const { shape: _shape, ...rest } = options;
    const parts = await this.scatter(images, count, (id, shard, [start, end]) => ({
      id,
      method: 'predict',
      images: shard,
      options: { ...rest, ...(keep ? { keep: keep.slice(start * K, end * K) } : {}), ...(chargePolicy ? { chargePolicy } : {}) },
    }));
    return joinPredictions(parts as Prediction[]);
  }

  async predictFull(images: Uint8Array | Float32Array, options: ImageInputOptions & { batchSize?: number } = {}): Promise<Prediction> {
    const { count } = checkImageBatch(images, this.manifest.architecture.inputSize, options);
    const { shape: _shape, ...rest } = options;
    const parts = await this.scatter(images, count, (id, shard) => ({ id, method: 'predictFull', images: shard, options: rest }));
    return joinPredictions(parts as Prediction[]);
  }

  async policyProbabilities(images: Uint8Array | Float32Array, options: ImageInputOptions = {}): Promise<Float32Array> {
    if (!this.info.hasPolicy) throw new BlockdropError('this export has no policy network');
    const { count } = checkImageBatch(images, this.manifest.architecture.inputSize, options);
    const { shape: _shape, ...rest } = options;
    const parts = await this.scatter(images, count, (id, shard) => ({ id, method: 'policyProbabilities', images: shard, options: rest }));
    return concat(parts as Float32Array[], (n) => new Float32Array(n));
  }

  /**
   * One shard per worker (contiguous images); a single image goes to the workers in turn, so that concurrent
   * single-image requests run in parallel.
   */
  private scatter(
    images: Uint8Array | Float32Array,
    count: number,
    request: (id: number, shard: Uint8Array | Float32Array, range: [number, number]) => PoolRequest,
  ): Promise<Array<Prediction | Float32Array | null>> {
    if (this.released) return Promise.reject(new BlockdropError('this BlockDropPool was released; load the model again'));
    const per = images.length / count;
    const ranges = shardRanges(count, this.workers.length);
    const first = ranges.length === 1 ? this.nextSingle++ % this.workers.length : 0;
    return Promise.all(
      ranges.map((range, i) => {
        const shard = images.slice(range[0] * per, range[1] * per);
        return this.workers[(first + i) % this.workers.length]!.call(request(this.nextId++, shard, range), [shard.buffer as ArrayBuffer]);
      }),
    );
  }
}
