/**
 * The ONNX Runtime training engine: a network's training forward and backward graphs (src/train/onnx-graph.ts)
 * run as two inference sessions on all cores. Weights stay in the model's tfjs variables (Adam, checkpoints and
 * evaluation keep using them); every forward pass reads them, so a session is built once per network.
 */
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { blockCount } from '../models/config.js';
import { BN_MOMENTUM } from '../models/resnet.js';
import type { EngineNetwork, ForwardOptions, ModuleForward, SavedState, TrainableModule } from './engine.js';
import { buildTrainGraphs, rowsInputName, type BatchNormInfo, type TrainGraphOptions, type TrainGraphs } from './onnx-graph.js';

class OnnxSaved implements SavedState {
  released = false;
  constructor(
    readonly batch: number,
    /** The parameters of the forward pass (the backward pass must use the same weights). */
    readonly params: Record<string, ort.Tensor>,
    /** The block decisions as the graphs read them: 'keep' (masked) or every 'rows.t' (gathered). */
    readonly decisions: Record<string, ort.Tensor>,
    readonly tensors: Record<string, ort.Tensor>,
    /** Blocks every row dropped: their parameters get no gradient (the tfjs model skips such blocks). */
    readonly dropped: ReadonlySet<number>,
  ) {}

  release(): void {
    this.released = true;
  }
}

/** One batch norm's statistics over a batch: mean and biased variance per channel. */
export interface BatchStatistics {
  readonly mean: Float32Array;
  readonly variance: Float32Array;
}

/**
 * PyTorch's running-statistics update, r ← (1 − 0.1)·r + 0.1·batch statistic with the variance unbiased
 * (n / (n − 1)), as the tfjs model; skipped for the batch norms of blocks every row dropped. `blockRows[t]`: the
 * rows block t's batch norms normalised (gathered execution); without it, every row of the batch.
 */
export function updateRunningStatistics(
  batchNorms: readonly BatchNormInfo[],
  statistics: readonly BatchStatistics[],
  batch: number,
  dropped: ReadonlySet<number>,
  vars: ReadonlyMap<string, tf.Variable>,
  blockRows?: readonly number[],
): void {
  tf.tidy(() => {
    batchNorms.forEach((bn, i) => {
      if (bn.block !== undefined && dropped.has(bn.block)) return;
      const mean = tf.tensor1d(statistics[i]!.mean);
      const variance = tf.tensor1d(statistics[i]!.variance);
      const rows = bn.block !== undefined && blockRows ? blockRows[bn.block]! : batch;
      const n = rows * bn.spatial;
      const unbiased = tf.mul(variance, n / Math.max(n - 1, 1));
      const rm = vars.get(`${bn.prefix}.running_mean`)!;
      const rv = vars.get(`${bn.prefix}.running_var`)!;
      rm.assign(tf.add(tf.mul(rm, 1 - BN_MOMENTUM), tf.mul(mean, BN_MOMENTUM)));
      rv.assign(tf.add(tf.mul(rv, 1 - BN_MOMENTUM), tf.mul(unbiased, BN_MOMENTUM)));
    });
  });
}

export interface OnnxModuleOptions extends TrainGraphOptions {
  /** Intra-op threads (default: all cores). */
  readonly threads?: number;
}

export class OnnxTrainableModule implements TrainableModule {
  readonly engine = 'onnx' as const;
  readonly outputs: number;
  private readonly side: number;
  private readonly k: number;
  private readonly fetchStats: string[];
  /** The backward graph's inputs: it reads the block decisions ('keep' or some 'rows.t') only where it needs them. */
  private readonly backwardInputs: ReadonlySet<string>;

  private constructor(
    private readonly net: EngineNetwork,
    private readonly graphs: TrainGraphs,
    private readonly forwardSession: ort.InferenceSession,
    private readonly backwardSession: ort.InferenceSession,
    private readonly options: OnnxModuleOptions,
    readonly threads: number,
  ) {
    this.outputs = graphs.outputs;
    this.side = net.arch.inputSize;
    this.k = blockCount(net.arch);
    this.fetchStats = graphs.batchNorms.flatMap((b) => [b.meanOutput, b.varOutput]);
    this.backwardInputs = new Set(backwardSession.inputNames);
  }

  static async create(net: EngineNetwork, options: OnnxModuleOptions): Promise<OnnxTrainableModule> {
    const graphs = buildTrainGraphs(net.arch, options);
    const threads = options.threads ?? availableParallelism();
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      logSeverityLevel: 3,
      // Without the arena, memory of the forward pass is returned before the backward pass runs: ResNet-32 stage 2
      // at batch 256 peaked at 2.6 GB RSS instead of 4+ GB, at the same speed.
      enableCpuMemArena: false,
    };
    const [f, b] = await Promise.all([
      ort.InferenceSession.create(graphs.forward, sessionOptions),
      ort.InferenceSession.create(graphs.backward, sessionOptions),
    ]);
    return new OnnxTrainableModule(net, graphs, f, b, options, threads);
  }

  /** Shapes of the trainable parameters, in the order `backward` returns their gradients. */
  get parameterShapes(): readonly (readonly number[])[] {
    return this.graphs.params.map((p) => p.shape);
  }

  /** Batch-norm layers in graph order (the data-parallel engine combines their batch statistics). */
  get batchNorms(): readonly BatchNormInfo[] {
    return this.graphs.batchNorms;
  }

  async forward(images: Float32Array, batch: number, options: ForwardOptions = {}): Promise<ModuleForward> {
    const { forward, statistics, dropped, blockRows } = await this.forwardWithStatistics(images, batch, options);
    updateRunningStatistics(this.graphs.batchNorms, statistics, batch, dropped, this.net.allVariables(), blockRows);
    return forward;
  }

  /**
   * The training forward without the running-statistics update: its batch statistics (mean and biased variance of
   * every batch norm, graph order), the blocks every row dropped and (gathered execution) each block's row count
   * are returned instead.
   */
  async forwardWithStatistics(
    images: Float32Array,
    batch: number,
    options: ForwardOptions = {},
  ): Promise<{ forward: ModuleForward; statistics: BatchStatistics[]; dropped: ReadonlySet<number>; blockRows?: number[] }> {
    const per = this.side * this.side * 3;
    const x = images.length === batch * per ? images : images.subarray(0, batch * per);
    const vars = this.net.allVariables();
    const params: Record<string, ort.Tensor> = {};
    for (const p of this.graphs.params) {
      params[p.key] = new ort.Tensor('float32', vars.get(p.key)!.dataSync() as Float32Array, [...p.shape]);
    }
    const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor('float32', x, [batch, this.side, this.side, 3]), ...params };
    const decisions: Record<string, ort.Tensor> = {};
    const dropped = new Set<number>();
    let blockRows: number[] | undefined;
    if (this.options.keep) {
      const k = this.k;
      if (options.keep && options.keep.length !== batch * k) throw new Error(`keep holds ${options.keep.length} values, expected ${batch}×${k}`);
      const kept = (r: number, t: number): boolean => !options.keep || options.keep[r * k + t] !== 0;
      for (let t = 0; t < k; t++) {
        let any = false;
        for (let r = 0; r < batch && !any; r++) any = kept(r, t);
        if (!any) dropped.add(t);
      }
      if (this.graphs.blockExecution === 'gathered') {
        blockRows = [];
        for (let t = 0; t < k; t++) {
          const rows: bigint[] = [];
          for (let r = 0; r < batch; r++) if (kept(r, t)) rows.push(BigInt(r));
          blockRows.push(rows.length);
          decisions[rowsInputName(t)] = new ort.Tensor('int64', BigInt64Array.from(rows), [rows.length]);
        }
      } else {
        const keepData = new Float32Array(batch * k).fill(1);
        if (options.keep) for (let i = 0; i < keepData.length; i++) keepData[i] = options.keep[i]!;
        decisions.keep = new ort.Tensor('float32', keepData, [batch, k]);
      }
      Object.assign(feeds, decisions);
    } else if (options.keep) throw new Error('this network takes no keep mask');
    const grad = options.grad !== false;
    const fetches = ['output', ...this.fetchStats, ...(grad ? this.graphs.saved : [])];
    const out = await this.forwardSession.run(feeds, fetches);
    const statistics = this.graphs.batchNorms.map((bn) => ({
      mean: out[bn.meanOutput]!.data as Float32Array,
      variance: out[bn.varOutput]!.data as Float32Array,
    }));
    const output = out.output!.data as Float32Array;
    if (!grad) return { forward: { output }, statistics, dropped, ...(blockRows ? { blockRows } : {}) };
    const tensors: Record<string, ort.Tensor> = {};
    for (const name of this.graphs.saved) tensors[name] = out[name]!;
    return {
      forward: { output, saved: new OnnxSaved(batch, params, decisions, tensors, dropped) },
      statistics,
      dropped,
      ...(blockRows ? { blockRows } : {}),
    };
  }

  async backward(saved: SavedState, dOutput: Float32Array): Promise<(tf.Tensor | undefined)[]> {
    if (!(saved instanceof OnnxSaved)) throw new Error('ONNX engine: backward of a state from another engine');
    if (saved.released) throw new Error('ONNX engine: this forward state was already used or released');
    try {
      const feeds: Record<string, ort.Tensor> = { ...saved.tensors, dout: new ort.Tensor('float32', dOutput, [saved.batch, this.outputs]) };
      for (const key of this.graphs.backwardParams) feeds[key] = saved.params[key]!;
      if (this.graphs.backwardKeep) {
        for (const [name, tensor] of Object.entries(saved.decisions)) if (this.backwardInputs.has(name)) feeds[name] = tensor;
      }
      const out = await this.backwardSession.run(feeds, this.graphs.params.map((p) => p.gradOutput));
      return this.graphs.params.map((p) =>
        p.block !== undefined && saved.dropped.has(p.block) ? undefined : tf.tensor(out[p.gradOutput]!.data as Float32Array, [...p.shape], 'float32'),
      );
    } finally {
      saved.release();
    }
  }

  dispose(): void {
    void this.forwardSession.release();
    void this.backwardSession.release();
  }
}
