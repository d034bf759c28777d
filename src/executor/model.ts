/**
 * The block-skipping executor: runs an exported BlockDrop model (see src/export/onnx.ts) on
 * ONNX Runtime (CPU) with real savings: a dropped block costs (almost) nothing, per image, at every
 * batch size.
 *
 * Strategies (see docs/executor.md for the measurements behind the default):
 * - 'gather' (default for batches > 1): one graph; per block the images that keep it are gathered,
 *   run through the block and scattered back over the shortcut, inside ONNX Runtime.
 * - 'branch' (default for single images): one graph; per block an If node runs the block or only
 *   its shortcut.
 * - 'per-block': one session per block, sub-batches gathered and scattered in JS.
 * - 'path': a fused graph per distinct keep pattern (bounded LRU of sessions), images grouped by path.
 * 'gather' and 'branch' use ONNX Runtime's blocked NCHWc kernels directly (src/executor/nchwc.ts)
 * when they are available, the portable graphs otherwise.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { BlockdropError } from '../errors.js';
import type { FoldedResNet } from '../export/folded.js';
import { GraphBuilder } from '../export/graph.js';
import { buildDynamicGraph, buildFullGraph, portableOps, type LayerOps, type SkipMode } from '../export/networks.js';
import { decodeOnnxModel, foldedFromOnnx, POLICY_TAG, type BlockDropManifest } from '../export/onnx.js';
import { oneLine } from '../util/message.js';
import { Rng } from '../util/rng.js';
import { toNchwInput, type ImageInputOptions } from './input.js';
import { readManifest, readVerifiedFiles } from './manifest.js';
import { harvestNchwc, nchwcOps } from './nchwc.js';
import { keepFromProbabilities, pathCosts, softmaxRows } from './path.js';

export type Strategy = 'auto' | 'gather' | 'branch' | 'per-block' | 'path';
export type KernelChoice = 'auto' | 'nchwc' | 'portable';

export interface LoadOptions {
  /** ONNX Runtime intra-op threads (default: 2, at most the CPU count). */
  readonly threads?: number;
  /**
   * Synthetic policy: keep each block with probability `keepRate`, independently per image and block
   * (seeded). Replaces the policy's decisions; required when the export has no policy.
   */
  readonly keepRate?: number;
  /** Seed of the synthetic policy (default 0). */
  readonly seed?: number;
  /** Default 'auto': 'branch' for single images, 'gather' otherwise. */
  readonly strategy?: Strategy;
  /** 'auto' (default): blocked NCHWc kernels when ONNX Runtime provides them and they check out. */
  readonly kernels?: KernelChoice;
  /**
   * With `keepRate` and an exported policy: still run the policy network (its decisions are replaced)
   * so that time and FLOPs include it, as they would with a trained policy. Default true.
   */
  readonly chargePolicy?: boolean;
  /** Images per ONNX Runtime call (default 128). */
  readonly batchSize?: number;
  /** Sessions kept by the 'path' strategy (default 64). */
  readonly pathCacheSize?: number;
  /**
   * Let ORT's worker threads spin while waiting for work. Default: on for the one-session strategies,
   * off for 'per-block' / 'path' (many sessions alternating: spinning pools starve each other).
   */
  readonly spinning?: boolean;
}

export interface PredictOptions extends ImageInputOptions {
  /** Explicit keep masks, N×K (1 = execute block); the policy is not run (unless `chargePolicy`). */
  readonly keep?: Uint8Array;
  /**
   * With explicit `keep` masks: still run the policy network (its decisions are replaced), so that time and
   * FLOPs include it. How `BlockDropPool` hands its workers the synthetic decisions it drew. Default false.
   */
  readonly chargePolicy?: boolean;
  readonly batchSize?: number;
  readonly strategy?: Strategy;
}

export interface Prediction {
  readonly classes: Int32Array;
  /** Softmax over classes, N×C. */
  readonly probabilities: Float32Array;
  readonly logits: Float32Array;
  /** N×K, 1 = block executed. */
  readonly keep: Uint8Array;
  readonly blocksUsed: Int32Array;
  /** FLOPs per image in BlockDrop's convention, the policy network included when it ran. */
  readonly flops: Float64Array;
  /** The policy's sigmoid outputs N×K, when it ran. */
  readonly policyProbabilities: Float32Array | null;
}

export interface ExecutorInfo {
  readonly kernels: 'nchwc' | 'portable';
  /** Why the portable kernels are used, if they are. */
  readonly kernelNote: string;
  readonly threads: number;
  /** Worker threads, each with its own sessions (`BlockDropPool`); 0 = this process runs the sessions. */
  readonly workers: number;
  readonly hasPolicy: boolean;
  readonly decisions: 'policy' | 'synthetic' | 'explicit-only';
}

type Decisions = { kind: 'explicit'; keep: Uint8Array } | { kind: 'synthetic' } | { kind: 'policy' };

/** Output count of the policy graph's fc layer, from its initialiser dims. */
function policyOutputs(bytes: Uint8Array, source: string): number | undefined {
  const model = decodeOnnxModel(bytes, source);
  const fc = model.graph?.initializer?.find((t) => t.name === `${POLICY_TAG}fc.weight`);
  const d = fc?.dims?.[0];
  return d === undefined ? undefined : Number(d);
}

class SessionLru {
  private readonly map = new Map<string, ort.InferenceSession>();
  constructor(private readonly capacity: number) {}
  get(key: string): ort.InferenceSession | undefined {
    const s = this.map.get(key);
    if (s) {
      this.map.delete(key);
      this.map.set(key, s);
    }
    return s;
  }
  async set(key: string, s: ort.InferenceSession): Promise<void> {
    this.map.set(key, s);
    while (this.map.size > this.capacity) {
      const [oldKey, old] = this.map.entries().next().value as [string, ort.InferenceSession];
      this.map.delete(oldKey);
      await old.release();
    }
  }
  get size(): number {
    return this.map.size;
  }
  async clear(): Promise<void> {
    for (const s of this.map.values()) await s.release();
    this.map.clear();
  }
}

function asUint8(data: ort.Tensor['data']): Uint8Array {
  if (data instanceof Uint8Array) return data;
  return Uint8Array.from(data as ArrayLike<number>, (v) => (v ? 1 : 0));
}

/** Bernoulli(keepRate) decisions, drawn in image-major order (so any split of a batch draws the same masks). */
export function syntheticKeep(rng: Rng, values: number, keepRate: number): Uint8Array {
  const keep = new Uint8Array(values);
  for (let i = 0; i < values; i++) keep[i] = rng.next() < keepRate ? 1 : 0;
  return keep;
}

/** What every BlockDrop executor offers: one process (`BlockDropModel`) or a pool of workers (`BlockDropPool`). */
export interface BlockDropPredictor {
  readonly manifest: BlockDropManifest;
  readonly info: ExecutorInfo;
  /** Residual blocks (policy outputs). */
  readonly K: number;
  readonly numClasses: number;
  predict(images: Uint8Array | Float32Array, options?: PredictOptions): Promise<Prediction>;
  predictFull(images: Uint8Array | Float32Array, options?: ImageInputOptions & { batchSize?: number }): Promise<Prediction>;
  policyProbabilities(images: Uint8Array | Float32Array, options?: ImageInputOptions): Promise<Float32Array>;
  release(): Promise<void>;
}

export class BlockDropModel implements BlockDropPredictor {
  readonly manifest: BlockDropManifest;
  readonly info: ExecutorInfo;
  /** Residual blocks (policy outputs). */
  readonly K: number;
  readonly numClasses: number;

  private readonly net: FoldedResNet;
  private readonly policy: FoldedResNet | undefined;
  private readonly files: Map<string, Uint8Array>;
  private readonly ops: LayerOps;
  private readonly policyOps: LayerOps | undefined;
  private readonly options: LoadOptions;
  private readonly rng: Rng;
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  private readonly paths: SessionLru;

  private constructor(args: {
    manifest: BlockDropManifest;
    files: Map<string, Uint8Array>;
    net: FoldedResNet;
    policy: FoldedResNet | undefined;
    ops: LayerOps;
    policyOps: LayerOps | undefined;
    options: LoadOptions;
    info: ExecutorInfo;
  }) {
    this.manifest = args.manifest;
    this.files = args.files;
    this.net = args.net;
    this.policy = args.policy;
    this.ops = args.ops;
    this.policyOps = args.policyOps;
    this.options = args.options;
    this.info = args.info;
    this.K = args.manifest.K;
    this.numClasses = args.manifest.architecture.numClasses;
    this.rng = new Rng(args.options.seed ?? 0);
    this.paths = new SessionLru(args.options.pathCacheSize ?? 64);
  }

  static async load(dir: string, options: LoadOptions = {}): Promise<BlockDropModel> {
    if (options.keepRate !== undefined && !(options.keepRate >= 0 && options.keepRate <= 1)) {
      throw new BlockdropError(`keep rate ${options.keepRate} is not a probability; use a number from 0 to 1`);
    }
    const manifest = await readManifest(dir);
    const files = await readVerifiedFiles(dir, manifest);
    // Every graph parses and holds finite weights (checked once, here, rather than at its first use).
    for (const [file, bytes] of files) decodeOnnxModel(bytes, join(dir, file));
    const arch = manifest.architecture;
    const K = manifest.K;
    const fullBytes = files.get(manifest.graphs.full);
    if (!fullBytes) throw new BlockdropError(`${dir}: the manifest lists no full network graph; export the model again`);
    const net = foldedFromOnnx(arch, fullBytes, '', join(dir, manifest.graphs.full));
    if (net.blocks.length !== K) {
      throw new BlockdropError(`${dir}: the manifest says K = ${K} but ${arch.name} has ${net.blocks.length} blocks; export the model again`);
    }
    let policy: FoldedResNet | undefined;
    if (manifest.graphs.policy && manifest.policy) {
      const bytes = files.get(manifest.graphs.policy)!;
      const outputs = policyOutputs(bytes, join(dir, manifest.graphs.policy));
      const declared = manifest.policy.architecture.numClasses;
      if (outputs !== K || declared !== K) {
        throw new BlockdropError(
          `the policy network has ${outputs ?? declared} outputs but the backbone ${arch.name} has K = ${K} blocks; ` +
            'export it with a policy trained for this backbone',
        );
      }
      policy = foldedFromOnnx(manifest.policy.architecture, bytes, POLICY_TAG, join(dir, manifest.graphs.policy));
    }
    const threads = Math.max(1, Math.min(options.threads ?? 2, availableParallelism()));

    let ops: LayerOps = portableOps(net);
    let policyOps: LayerOps | undefined = policy ? portableOps(policy, POLICY_TAG) : undefined;
    let kernels: 'nchwc' | 'portable' = 'portable';
    let kernelNote = 'portable kernels requested';
    const choice = options.kernels ?? 'auto';
    if (choice !== 'portable') {
      const harvest = await harvestNchwc([{ net, tag: '' }, ...(policy ? [{ net: policy, tag: POLICY_TAG }] : [])]);
      if (harvest) {
        const candidate = nchwcOps(net, harvest);
        const problem = await selfCheck(net, candidate, threads);
        if (!problem) {
          ops = candidate;
          policyOps = policy ? nchwcOps(policy, harvest, POLICY_TAG) : undefined;
          kernels = 'nchwc';
          kernelNote = '';
        } else kernelNote = `NCHWc self-check failed (${problem})`;
      } else kernelNote = 'ONNX Runtime did not produce NCHWc convolutions on this CPU';
      if (choice === 'nchwc' && kernels !== 'nchwc') throw new BlockdropError(`NCHWc kernels unavailable: ${kernelNote}`);
    }
    const decisions = options.keepRate !== undefined ? 'synthetic' : policy ? 'policy' : 'explicit-only';
    return new BlockDropModel({
      manifest,
      files,
      net,
      policy,
      ops,
      policyOps,
      options,
      info: { kernels, kernelNote, threads, workers: 0, hasPolicy: !!policy, decisions },
    });
  }

  // -------------------------------------------------------------------------------------------------
  // sessions

  private sessionOptions(manySessions: boolean): ort.InferenceSession.SessionOptions {
    const spin = this.options.spinning ?? !manySessions;
    return {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: this.info.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      logSeverityLevel: 3,
      extra: { session: { intra_op: { allow_spinning: spin ? '1' : '0' } } },
    };
  }

  private session(name: string, build: () => Uint8Array, manySessions = false): Promise<ort.InferenceSession> {
    const options = this.sessionOptions(manySessions);
    const key = `${name}|${JSON.stringify(options.extra)}`;
    let s = this.sessions.get(key);
    if (!s) {
      s = ort.InferenceSession.create(build(), options).catch((e: unknown) => {
        throw new BlockdropError(oneLine(`ONNX Runtime cannot load graph ${name} (${(e as Error).message ?? String(e)}); export the model again`));
      });
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  private dynamicSession(mode: SkipMode, withPolicy: boolean, keepFrom: 'policy' | 'input'): Promise<ort.InferenceSession> {
    return this.session(`${mode}:${withPolicy ? 'policy' : 'nopolicy'}:${keepFrom}`, () => {
      const g = new GraphBuilder(`blockdrop_${mode}`);
      buildDynamicGraph(g, this.ops, {
        mode,
        keepFrom,
        ...(withPolicy && this.policyOps ? { policy: this.policyOps } : {}),
      });
      return g.toModel();
    });
  }

  private fileSession(file: string, manySessions: boolean): Promise<ort.InferenceSession> {
    return this.session(`file:${file}`, () => this.files.get(file)!, manySessions);
  }

  /** Releases every ONNX Runtime session. */
  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).release();
    await this.paths.clear();
  }

  // -------------------------------------------------------------------------------------------------
  // prediction

  /** BlockDrop inference: policy (or synthetic / explicit decisions), then the backbone with skipping. */
  async predict(images: Uint8Array | Float32Array, options: PredictOptions = {}): Promise<Prediction> {
    const { data, count } = toNchwInput(images, this.manifest.architecture.inputSize, this.manifest.normalization, options);
    let decisions: Decisions;
    if (options.keep) {
      if (options.keep.length !== count * this.K) {
        throw new BlockdropError(
          `keep masks hold ${options.keep.length} values; expected ${count} images × K = ${this.K} blocks of ${this.manifest.architecture.name}`,
        );
      }
      decisions = { kind: 'explicit', keep: options.keep };
    } else if (this.options.keepRate !== undefined) decisions = { kind: 'synthetic' };
    else if (this.policy) decisions = { kind: 'policy' };
    else {
      throw new BlockdropError('this export has no policy network; load it with a keepRate or pass explicit keep masks');
    }
    const batch = Math.max(1, options.batchSize ?? this.options.batchSize ?? 128);
    const strategy = options.strategy ?? this.options.strategy ?? 'auto';
    const C = this.numClasses;
    const K = this.K;
    const logits = new Float32Array(count * C);
    const keep = new Uint8Array(count * K);
    const runPolicy =
      decisions.kind === 'policy' ||
      (decisions.kind === 'synthetic' && !!this.policy && this.options.chargePolicy !== false) ||
      (decisions.kind === 'explicit' && !!this.policy && options.chargePolicy === true);
    const policyProbabilities = runPolicy ? new Float32Array(count * K) : null;
    const per = 3 * this.manifest.architecture.inputSize ** 2;
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      const x = data.subarray(start * per, (start + n) * per);
      let chunkKeep: Uint8Array | null = null;
      if (decisions.kind === 'explicit') chunkKeep = decisions.keep.subarray(start * K, (start + n) * K);
      else if (decisions.kind === 'synthetic') {
        chunkKeep = new Uint8Array(n * K);
        const p = this.options.keepRate!;
        for (let i = 0; i < chunkKeep.length; i++) chunkKeep[i] = this.rng.next() < p ? 1 : 0;
      }
      const out = await this.runChunk(x, n, chunkKeep, runPolicy, strategy);
      logits.set(out.logits, start * C);
      keep.set(out.keep, start * K);
      if (policyProbabilities && out.probabilities) policyProbabilities.set(out.probabilities, start * K);
    }
    return this.finish(logits, keep, count, runPolicy, policyProbabilities);
  }

  /** The full network as one fused graph (every block, no policy): the baseline. */
  async predictFull(images: Uint8Array | Float32Array, options: ImageInputOptions & { batchSize?: number } = {}): Promise<Prediction> {
    const { data, count } = toNchwInput(images, this.manifest.architecture.inputSize, this.manifest.normalization, options);
    const batch = Math.max(1, options.batchSize ?? this.options.batchSize ?? 128);
    const session = await this.fileSession(this.manifest.graphs.full, false);
    const C = this.numClasses;
    const logits = new Float32Array(count * C);
    const per = 3 * this.manifest.architecture.inputSize ** 2;
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      const side = this.manifest.architecture.inputSize;
      const input = new ort.Tensor('float32', data.subarray(start * per, (start + n) * per), [n, 3, side, side]);
      const out = await session.run({ input });
      logits.set(out['logits']!.data as Float32Array, start * C);
    }
    return this.finish(logits, new Uint8Array(count * this.K).fill(1), count, false, null);
  }

  /** Runs only the policy network (NCHW normalised or raw images): sigmoid probabilities N×K. */
  async policyProbabilities(images: Uint8Array | Float32Array, options: ImageInputOptions = {}): Promise<Float32Array> {
    if (!this.policy || !this.manifest.graphs.policy) throw new BlockdropError('this export has no policy network');
    const { data, count } = toNchwInput(images, this.manifest.architecture.inputSize, this.manifest.normalization, options);
    const side = this.manifest.architecture.inputSize;
    const session = await this.fileSession(this.manifest.graphs.policy, false);
    const out = await session.run({ input: new ort.Tensor('float32', data, [count, 3, side, side]) });
    return out['probabilities']!.data as Float32Array;
  }

  private finish(
    logits: Float32Array,
    keep: Uint8Array,
    count: number,
    policyRan: boolean,
    policyProbabilities: Float32Array | null,
  ): Prediction {
    const { probabilities, classes } = softmaxRows(logits, count, this.numClasses);
    const { blocksUsed, flops } = pathCosts(this.manifest, keep, count, policyRan);
    return { classes, probabilities, logits, keep, blocksUsed, flops, policyProbabilities };
  }

  private async runChunk(
    x: Float32Array,
    n: number,
    keepIn: Uint8Array | null,
    runPolicy: boolean,
    strategy: Strategy,
  ): Promise<{ logits: Float32Array; keep: Uint8Array; probabilities: Float32Array | null }> {
    const side = this.manifest.architecture.inputSize;
    const K = this.K;
    const chosen = strategy === 'auto' ? (n === 1 ? 'branch' : 'gather') : strategy;
    if (chosen === 'gather' || chosen === 'branch') {
      if (chosen === 'branch' && n > 1) {
        // Single-image graph: one call per image.
        const per = 3 * side * side;
        const logits = new Float32Array(n * this.numClasses);
        const keep = new Uint8Array(n * K);
        const probabilities = runPolicy ? new Float32Array(n * K) : null;
        for (let i = 0; i < n; i++) {
          const r = await this.runChunk(x.subarray(i * per, (i + 1) * per), 1, keepIn ? keepIn.subarray(i * K, (i + 1) * K) : null, runPolicy, 'branch');
          logits.set(r.logits, i * this.numClasses);
          keep.set(r.keep, i * K);
          if (probabilities && r.probabilities) probabilities.set(r.probabilities, i * K);
        }
        return { logits, keep, probabilities };
      }
      const keepFrom = keepIn ? 'input' : 'policy';
      const session = await this.dynamicSession(chosen, runPolicy, keepFrom);
      const feeds: Record<string, ort.Tensor> = { input: new ort.Tensor('float32', x, [n, 3, side, side]) };
      if (keepIn) feeds['keep'] = new ort.Tensor('bool', keepIn, [n, K]);
      const out = await session.run(feeds);
      return {
        logits: out['logits']!.data as Float32Array,
        keep: keepIn ?? asUint8(out['keep']!.data),
        probabilities: runPolicy ? (out['probabilities']!.data as Float32Array) : null,
      };
    }
    // Strategies that need the decisions before the backbone runs: the policy goes first.
    let probabilities: Float32Array | null = null;
    let keep = keepIn;
    if (runPolicy) {
      const policySession = await this.fileSession(this.manifest.graphs.policy!, true);
      const out = await policySession.run({ input: new ort.Tensor('float32', x, [n, 3, side, side]) });
      probabilities = out['probabilities']!.data as Float32Array;
      if (!keep) keep = keepFromProbabilities(probabilities, this.manifest.keep.threshold);
    }
    if (!keep) throw new Error('runChunk: no keep decisions');
    const logits = chosen === 'per-block' ? await this.runPerBlock(x, n, keep) : await this.runPaths(x, n, keep);
    return { logits, keep, probabilities };
  }

  /** One session per block; the images that keep block t are gathered in JS, run, scattered back. */
  private async runPerBlock(x: Float32Array, n: number, keep: Uint8Array): Promise<Float32Array> {
    const g = this.manifest.graphs;
    const K = this.K;
    const side = this.manifest.architecture.inputSize;
    let act = (await (await this.fileSession(g.stem, true)).run({ input: new ort.Tensor('float32', x, [n, 3, side, side]) }))['output']!
      .data as Float32Array;
    for (let t = 0; t < K; t++) {
      const b = this.net.blocks[t]!;
      const inSize = b.inC * b.inSize * b.inSize;
      const outSize = b.outC * b.outSize * b.outSize;
      const kept: number[] = [];
      for (let i = 0; i < n; i++) if (keep[i * K + t]) kept.push(i);
      const shape = (m: number) => [m, b.inC, b.inSize, b.inSize];
      if (kept.length === n) {
        act = (await (await this.fileSession(g.blocks[t]!, true)).run({ input: new ort.Tensor('float32', act, shape(n)) }))['output']!
          .data as Float32Array;
        continue;
      }
      // Dropped images: the shortcut (identity, or the exported shortcut graph).
      let next = act;
      const scFile = g.shortcuts[String(t)];
      if (scFile) {
        const sc = (await (await this.fileSession(scFile, true)).run({ input: new ort.Tensor('float32', act, shape(n)) }))['output']!
          .data as Float32Array;
        next = sc.slice(); // ORT may reuse output buffers between runs; own the copy we write into
      }
      if (kept.length > 0) {
        const sub = new Float32Array(kept.length * inSize);
        kept.forEach((i, j) => sub.set(act.subarray(i * inSize, (i + 1) * inSize), j * inSize));
        const y = (await (await this.fileSession(g.blocks[t]!, true)).run({ input: new ort.Tensor('float32', sub, shape(kept.length)) }))[
          'output'
        ]!.data as Float32Array;
        if (next === act) next = act.slice();
        kept.forEach((i, j) => next.set(y.subarray(j * outSize, (j + 1) * outSize), i * outSize));
      }
      act = next;
    }
    const last = this.net.blocks[K - 1]!;
    const head = await this.fileSession(g.head, true);
    const out = await head.run({ input: new ort.Tensor('float32', act, [n, last.outC, last.outSize, last.outSize]) });
    return out['logits']!.data as Float32Array;
  }

  /** Images grouped by keep pattern; each group runs a fused graph of its path (LRU of sessions). */
  private async runPaths(x: Float32Array, n: number, keep: Uint8Array): Promise<Float32Array> {
    const K = this.K;
    const C = this.numClasses;
    const side = this.manifest.architecture.inputSize;
    const per = 3 * side * side;
    const groups = new Map<string, number[]>();
    for (let i = 0; i < n; i++) {
      let key = '';
      for (let t = 0; t < K; t++) key += keep[i * K + t] ? '1' : '0';
      const list = groups.get(key);
      if (list) list.push(i);
      else groups.set(key, [i]);
    }
    const logits = new Float32Array(n * C);
    for (const [key, members] of groups) {
      let session = this.paths.get(key);
      if (!session) {
        const pattern = [...key].map((c) => c === '1');
        session = await ort.InferenceSession.create(buildFullGraph(this.net, pattern), this.sessionOptions(true));
        await this.paths.set(key, session);
      }
      let input: Float32Array;
      if (members.length === n) input = x;
      else {
        input = new Float32Array(members.length * per);
        members.forEach((i, j) => input.set(x.subarray(i * per, (i + 1) * per), j * per));
      }
      const out = (await session.run({ input: new ort.Tensor('float32', input, [members.length, 3, side, side]) }))['logits']!
        .data as Float32Array;
      members.forEach((i, j) => logits.set(out.subarray(j * C, (j + 1) * C), i * C));
    }
    return logits;
  }

  /** Sessions held by the 'path' strategy's cache. */
  get cachedPaths(): number {
    return this.paths.size;
  }
}

/**
 * Compares the NCHWc skipping graph with the portable one on a few images and masks (all kept,
 * none kept, mixed). Returns a description of the mismatch, or null when they agree.
 */
async function selfCheck(net: FoldedResNet, candidate: LayerOps, threads: number): Promise<string | null> {
  const K = net.blocks.length;
  const side = net.arch.inputSize;
  const n = 3;
  const rng = new Rng(1234);
  const x = Float32Array.from({ length: n * 3 * side * side }, () => rng.normal());
  const keep = new Uint8Array(n * K);
  for (let t = 0; t < K; t++) {
    keep[t] = 1;
    keep[2 * K + t] = t % 2;
  }
  const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', intraOpNumThreads: threads, logSeverityLevel: 3 };
  const run = async (ops: LayerOps): Promise<Float32Array> => {
    const g = new GraphBuilder('check');
    buildDynamicGraph(g, ops, { mode: 'gather', keepFrom: 'input' });
    const s = await ort.InferenceSession.create(g.toModel(), options);
    try {
      const out = await s.run({
        input: new ort.Tensor('float32', x, [n, 3, side, side]),
        keep: new ort.Tensor('bool', keep, [n, K]),
      });
      return out['logits']!.data as Float32Array;
    } finally {
      await s.release();
    }
  };
  try {
    const [a, b] = [await run(candidate), await run(portableOps(net))];
    let diff = 0;
    let scale = 1;
    for (let i = 0; i < a.length; i++) {
      diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
      scale = Math.max(scale, Math.abs(b[i]!));
    }
    return diff <= 1e-3 * scale && Number.isFinite(diff) ? null : `max |difference| ${diff.toExponential(2)}`;
  } catch (e) {
    return e instanceof Error ? e.message.split('\n')[0]! : String(e);
  }
}
