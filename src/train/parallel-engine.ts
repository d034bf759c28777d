/**
 * Data-parallel ONNX Runtime training engine: N worker threads, each running the network's training graphs on one
 * ORT thread over its share of the batch; the main thread keeps the weights (tfjs variables, Adam), sums the
 * shards' gradients and updates the running statistics.
 *
 * Why: ORT's intra-op threads split each node of the training graphs, and most of their nodes (batch norm's
 * elementwise ops, ReLU masks, window slices) are memory-bound and gain little from a second thread; two workers on
 * half batches each keep a core busy on their own (`npm run bench -- train`: stage 2 at 180 against 126 images/s).
 *
 * What changes against one process: batch-norm statistics inside the forward pass are each shard's (as with
 * PyTorch's DataParallel, which the original code trains with on several GPUs), so activations after the first
 * batch norm differ slightly from a whole-batch pass. The running statistics are updated once per pass with the
 * shards' statistics combined into the batch's (law of total variance). Gradients of a mean loss are the sums of
 * the shards' gradients.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { isBatchNormBuffer } from '../checkpoint/torch.js';
import { BlockdropError } from '../errors.js';
import { blockCount } from '../models/config.js';
import { shardRanges } from '../executor/pool.js';
import { startWorkers, type ReadyMessage } from '../util/workers.js';
import type { EngineNetwork, ForwardOptions, ModuleForward, SavedState, TrainableModule } from './engine.js';
import { updateRunningStatistics, type BatchStatistics, type OnnxModuleOptions } from './onnx-engine.js';
import type { BatchNormInfo } from './onnx-graph.js';

export interface ParallelModuleOptions extends Omit<OnnxModuleOptions, 'threads'> {
  /** Worker threads (default: the CPU count); each runs ORT with one thread. */
  readonly workers?: number;
}

/** Sent once to each worker (see parallel-worker.ts). */
export interface ParallelWorkerData {
  readonly arch: EngineNetwork['arch'];
  readonly options: OnnxModuleOptions;
  /** Every parameter (not the running statistics): name, shape and offset in `weights`. */
  readonly variables: readonly { name: string; shape: number[]; offset: number; size: number }[];
  /** The main thread writes the current weights here before each forward pass. */
  readonly weights: SharedArrayBuffer;
}

export type ParallelRequest =
  | { id: number; type: 'forward'; images: Float32Array; batch: number; keep?: Uint8Array; grad: boolean; weightsVersion: number }
  | { id: number; type: 'backward'; saved: number; dOutput: Float32Array }
  | { id: number; type: 'release'; saved: number };

export type ParallelReply =
  | { id: number; ok: true; output?: Float32Array; statistics?: BatchStatistics[]; saved?: number; grads?: (Float32Array | null)[] }
  | { id: number; ok: false; message: string };

export interface ParallelReadyInfo {
  batchNorms: BatchNormInfo[];
  gradShapes: number[][];
}

export type ParallelReady = ReadyMessage<ParallelReadyInfo>;

class ParallelSaved implements SavedState {
  released = false;
  constructor(
    readonly parts: readonly { worker: number; saved: number; rows: number }[],
    private readonly module: ParallelTrainableModule,
  ) {}
  release(): void {
    if (this.released) return;
    this.released = true;
    this.module.releaseSaved(this);
  }
}

export class ParallelTrainableModule implements TrainableModule {
  readonly engine = 'onnx' as const;
  private nextId = 1;
  private weightsVersion = 0;
  /** The parameters' data ids when the weights were last published (tfjs gives a variable a new id per assign). */
  private publishedIds: readonly object[];
  private readonly pending = new Map<number, { resolve: (r: ParallelReply & { ok: true }) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  private constructor(
    private readonly net: EngineNetwork,
    private readonly workers: readonly Worker[],
    private readonly data: ParallelWorkerData,
    private readonly batchNorms: readonly BatchNormInfo[],
    private readonly gradShapes: readonly number[][],
    readonly outputs: number,
    private readonly keepInput: boolean,
    private readonly k: number,
    /** Gathered blocks: a block's batch norms normalise only the rows that keep it (their counts weight the shards). */
    private readonly gathered: boolean,
  ) {
    this.publishedIds = parameterIds(net, data); // create() wrote these before starting the workers
    for (const w of workers) {
      w.on('message', (m: ParallelReply) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.ok) p.resolve(m);
        else p.reject(new Error(`training worker: ${m.message}`));
      });
      const fail = (e: Error) => {
        this.failure ??= e;
        for (const p of this.pending.values()) p.reject(e);
        this.pending.clear();
      };
      w.on('error', (e) => fail(new BlockdropError(`a training worker failed (${e.message}); run with --train-workers 1 to train in one process`)));
      w.on('exit', () => fail(new BlockdropError('a training worker exited')));
    }
  }

  get workerCount(): number {
    return this.workers.length;
  }

  static async create(net: EngineNetwork, options: ParallelModuleOptions): Promise<ParallelTrainableModule> {
    const count = Math.max(1, Math.min(options.workers ?? availableParallelism(), availableParallelism()));
    const vars = net.allVariables();
    const variables: { name: string; shape: number[]; offset: number; size: number }[] = [];
    let offset = 0;
    for (const [name, v] of vars) {
      // The training graphs read the parameters only; running statistics stay with the main thread.
      if (isBatchNormBuffer(name)) continue;
      variables.push({ name, shape: [...v.shape], offset, size: v.size });
      offset += v.size;
    }
    const data: ParallelWorkerData = {
      arch: net.arch,
      options: { output: options.output, keep: options.keep, blockExecution: options.blockExecution ?? 'masked', threads: 1 },
      variables,
      weights: new SharedArrayBuffer(offset * 4),
    };
    writeWeights(net, data); // the workers' initial copy (version 0)
    const { workers, ready } = await startWorkers<ParallelReadyInfo>(new URL('./parallel-worker.js', import.meta.url), count, data, (m) => new Error(m.message));
    const first = ready[0]!;
    // The policy's outputs are its K keep probabilities, the backbone's its class logits: numClasses either way.
    return new ParallelTrainableModule(
      net,
      workers,
      data,
      first.batchNorms,
      first.gradShapes,
      net.arch.numClasses,
      options.keep,
      blockCount(net.arch),
      options.blockExecution === 'gathered',
    );
  }

  private call(worker: number, request: ParallelRequest, transfer: ArrayBuffer[] = []): Promise<ParallelReply & { ok: true }> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.set(request.id, { resolve, reject });
      this.workers[worker]!.postMessage(request, transfer);
    });
  }

  async forward(images: Float32Array, batch: number, options: ForwardOptions = {}): Promise<ModuleForward> {
    if (options.keep && !this.keepInput) throw new Error('this network takes no keep mask');
    // Parameters change between steps (Adam) and not within one: publish them, and have the
    // workers reload them, only when some variable was assigned since the last publication.
    const ids = parameterIds(this.net, this.data);
    if (ids.some((id, i) => id !== this.publishedIds[i])) {
      writeWeights(this.net, this.data);
      this.publishedIds = ids;
      this.weightsVersion++;
    }
    const version = this.weightsVersion;
    const per = images.length / batch;
    const ranges = shardRanges(batch, this.workers.length);
    const grad = options.grad !== false;
    const replies = await Promise.all(
      ranges.map(([start, end], w) => {
        const shard = images.slice(start * per, end * per);
        const keep = options.keep?.slice(start * this.k, end * this.k);
        return this.call(w, { id: this.nextId++, type: 'forward', images: shard, batch: end - start, ...(keep ? { keep } : {}), grad, weightsVersion: version }, [
          shard.buffer as ArrayBuffer,
        ]);
      }),
    );
    const output = new Float32Array(batch * this.outputs);
    replies.forEach((r, w) => output.set(r.output!, ranges[w]![0] * this.outputs));
    this.updateRunningStatistics(replies.map((r) => r.statistics!), ranges, options.keep);
    if (!grad) return { output };
    return {
      output,
      saved: new ParallelSaved(
        replies.map((r, w) => ({ worker: w, saved: r.saved!, rows: ranges[w]![1] - ranges[w]![0] })),
        this,
      ),
    };
  }

  /** The whole batch's mean and biased variance from the shards' (law of total variance), then PyTorch's update. */
  private updateRunningStatistics(shards: readonly BatchStatistics[][], ranges: readonly [number, number][], keep: Uint8Array | undefined): void {
    const batch = ranges[ranges.length - 1]![1];
    // Rows of each shard that keep each block.
    const keptIn = ranges.map(([start, end]) =>
      Array.from({ length: this.k }, (_, t) => {
        if (!keep) return end - start;
        let n = 0;
        for (let r = start; r < end; r++) if (keep[r * this.k + t] !== 0) n++;
        return n;
      }),
    );
    const blockRows = Array.from({ length: this.k }, (_, t) => keptIn.reduce((n, shard) => n + shard[t]!, 0));
    const dropped = new Set<number>();
    for (let t = 0; t < this.k; t++) if (blockRows[t] === 0) dropped.add(t);
    const combined = this.batchNorms.map((bn, i) => {
      const channels = shards[0]![i]!.mean.length;
      const mean = new Float32Array(channels);
      const variance = new Float32Array(channels);
      // Masked blocks: a shard in which every row dropped the block computed it anyway, and so does the single-process
      // engine, so every shard counts by its rows. Gathered blocks: a shard counts by the rows that ran the block.
      const byKept = this.gathered && bn.block !== undefined;
      const total = byKept ? blockRows[bn.block!]! : batch;
      for (let c = 0; c < channels; c++) {
        let m = 0;
        let second = 0;
        shards.forEach((s, w) => {
          const rows = byKept ? keptIn[w]![bn.block!]! : ranges[w]![1] - ranges[w]![0];
          if (rows === 0) return;
          const weight = rows / total;
          const sm = s[i]!.mean[c]!;
          m += weight * sm;
          second += weight * (s[i]!.variance[c]! + sm * sm);
        });
        mean[c] = m;
        variance[c] = Math.max(0, second - m * m);
      }
      return { mean, variance };
    });
    updateRunningStatistics(this.batchNorms, combined, batch, dropped, this.net.allVariables(), this.gathered ? blockRows : undefined);
  }

  async backward(saved: SavedState, dOutput: Float32Array): Promise<(tf.Tensor | undefined)[]> {
    if (!(saved instanceof ParallelSaved)) throw new Error('parallel engine: backward of a state from another engine');
    if (saved.released) throw new Error('parallel engine: this forward state was already used or released');
    saved.released = true;
    let row = 0;
    const replies = await Promise.all(
      saved.parts.map((part) => {
        const d = dOutput.slice(row * this.outputs, (row + part.rows) * this.outputs);
        row += part.rows;
        return this.call(part.worker, { id: this.nextId++, type: 'backward', saved: part.saved, dOutput: d }, [d.buffer as ArrayBuffer]);
      }),
    );
    return this.gradShapes.map((shape, p) => {
      const parts = replies.map((r) => r.grads![p]).filter((g): g is Float32Array => g !== null && g !== undefined);
      if (parts.length === 0) return undefined;
      const sum = parts[0]!.slice();
      for (const g of parts.slice(1)) for (let i = 0; i < sum.length; i++) sum[i]! += g[i]!;
      return tf.tensor(sum, shape, 'float32');
    });
  }

  /** Frees the workers' saved activations of a forward pass whose backward pass is not taken. */
  releaseSaved(saved: ParallelSaved): void {
    if (this.failure) return;
    for (const part of saved.parts) {
      this.workers[part.worker]!.postMessage({ id: this.nextId++, type: 'release', saved: part.saved } satisfies ParallelRequest);
    }
  }

  dispose(): void {
    this.failure ??= new BlockdropError('the training engine was disposed');
    for (const w of this.workers) void w.terminate();
  }
}

function parameterIds(net: EngineNetwork, data: ParallelWorkerData): object[] {
  const vars = net.allVariables();
  return data.variables.map((v) => vars.get(v.name)!.dataId as object);
}

function writeWeights(net: EngineNetwork, data: ParallelWorkerData): void {
  const view = new Float32Array(data.weights);
  const vars = net.allVariables();
  for (const v of data.variables) view.set(vars.get(v.name)!.dataSync() as Float32Array, v.offset);
}
