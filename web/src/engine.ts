/**
 * BlockDrop on onnxruntime-web: the policy network first, keep = p ≥ threshold, then only the kept
 * blocks (per image, batch 1), with the executor's own engine-independent code (src/executor) for
 * preprocessing, keep decisions, the path and its FLOPs. The full network (one fused graph) runs in
 * the same page as the baseline.
 */
import * as ort from 'onnxruntime-web';
import { toNchwInput } from '../../src/executor/input.js';
import { keepFromProbabilities, pathCosts, runPath, softmaxRows, type PathManifest } from '../../src/executor/path.js';
import type { Normalization } from '../../src/models/config.js';

/** What the page reads of models/manifest.json (written by src/export/onnx.ts). */
export interface DemoManifest extends PathManifest {
  readonly format: string;
  readonly normalization: Normalization;
  readonly classNames: readonly string[];
  readonly graphs: PathManifest['graphs'] & { readonly full: string; readonly policy: string | null };
  readonly files: Readonly<Record<string, { readonly sha256: string; readonly bytes: number }>>;
}

export type Backend = 'wasm' | 'webgpu';

export interface Classification {
  readonly classIndex: number;
  readonly confidence: number;
  readonly probabilities: Float32Array;
  readonly logits: Float32Array;
  /** K values, 1 = block ran. */
  readonly keep: Uint8Array;
  readonly policyProbabilities: Float32Array;
  readonly blocksUsed: number;
  /** Policy + stem/head + kept blocks. */
  readonly flops: number;
  readonly ms: number;
}

export interface FullClassification {
  readonly classIndex: number;
  readonly confidence: number;
  readonly logits: Float32Array;
  readonly ms: number;
}

class DemoError extends Error {}

async function sha256Hex(bytes: Uint8Array): Promise<string | null> {
  if (!globalThis.crypto?.subtle) return null; // not a secure context: skip the check
  const digest = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function fetchBytes(url: URL): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new DemoError(`${url.pathname}: HTTP ${response.status}; rebuild the demo (npm run demo:build)`);
  return new Uint8Array(await response.arrayBuffer());
}

export class BlockDropWeb {
  readonly K: number;
  readonly side: number;
  private readonly sessions = new Map<string, ort.InferenceSession>();
  /** ORT sessions must not run concurrently: every call goes through this chain. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly manifest: DemoManifest,
    readonly backend: Backend,
    private readonly graphBytes: Map<string, Uint8Array>,
  ) {
    this.K = manifest.K;
    this.side = manifest.architecture.inputSize;
  }

  /** Configures onnxruntime-web to load its .wasm from the demo's own folder (no network). */
  static configure(wasmBase: URL, threads: number): void {
    ort.env.wasm.wasmPaths = wasmBase.href;
    ort.env.wasm.numThreads = threads;
    ort.env.logLevel = 'error';
  }

  /** Fetches and checks every graph the page runs, then creates (and warms up) their sessions. */
  static async load(modelsBase: URL, backend: Backend, onProgress: (what: string) => void = () => {}): Promise<BlockDropWeb> {
    const manifestBytes = await fetchBytes(new URL('manifest.json', modelsBase));
    let manifest: DemoManifest;
    try {
      manifest = JSON.parse(new TextDecoder().decode(manifestBytes)) as DemoManifest;
    } catch {
      throw new DemoError('models/manifest.json is not valid JSON; rebuild the demo');
    }
    if (manifest.format !== 'blockdrop-onnx') throw new DemoError('models/manifest.json is not a blockdrop ONNX manifest; rebuild the demo');
    if (!manifest.graphs.policy) throw new DemoError('this export has no policy network; rebuild the demo with a policy');
    const g = manifest.graphs;
    const needed = [g.policy!, g.stem, ...g.blocks, ...Object.values(g.shortcuts), g.head, g.full];
    const bytes = new Map<string, Uint8Array>();
    let done = 0;
    await Promise.all(
      needed.map(async (file) => {
        const b = await fetchBytes(new URL(file, modelsBase));
        const entry = manifest.files[file];
        const hash = await sha256Hex(b);
        if (!entry || b.length !== entry.bytes || (hash !== null && hash !== entry.sha256)) {
          throw new DemoError(`models/${file} does not match its checksum in the manifest; rebuild the demo`);
        }
        bytes.set(file, b);
        onProgress(`downloaded ${++done} of ${needed.length} graphs`);
      }),
    );
    const model = new BlockDropWeb(manifest, backend, bytes);
    for (const file of needed) {
      onProgress(`preparing ${file}`);
      await model.session(file);
    }
    onProgress('warming up');
    await model.warmUp();
    return model;
  }

  private async session(file: string): Promise<ort.InferenceSession> {
    let s = this.sessions.get(file);
    if (!s) {
      s = await ort.InferenceSession.create(this.graphBytes.get(file)!, {
        executionProviders: [this.backend],
        graphOptimizationLevel: 'all',
        logSeverityLevel: 3,
      });
      this.sessions.set(file, s);
    }
    return s;
  }

  private async runGraph(file: string, x: ort.Tensor): Promise<ort.Tensor> {
    const s = await this.session(file);
    const out = await s.run({ [s.inputNames[0]!]: x });
    return out[s.outputNames[0]!]!;
  }

  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const next = this.queue.then(task, task);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** One pass through every graph (first runs allocate and compile). */
  private async warmUp(): Promise<void> {
    const zeros = new Uint8Array(this.side * this.side * 3);
    await this.classify(zeros, new Uint8Array(this.K).fill(1));
    await this.classify(zeros, new Uint8Array(this.K));
    await this.classifyFull(zeros);
  }

  private input(rgb: Uint8Array): ort.Tensor {
    const { data } = toNchwInput(rgb, this.side, this.manifest.normalization);
    return new ort.Tensor('float32', data, [1, 3, this.side, this.side]);
  }

  /** BlockDrop: policy → keep decisions → only the kept blocks. `keep` overrides the policy (warm-up). */
  classify(rgb: Uint8Array, keepOverride?: Uint8Array): Promise<Classification> {
    return this.exclusive(async () => {
      const x = this.input(rgb);
      const t0 = performance.now();
      const policyProbabilities = (await this.runGraph(this.manifest.graphs.policy!, x)).data as Float32Array;
      const keep = keepOverride ?? keepFromProbabilities(policyProbabilities, this.manifest.keep.threshold);
      const out = await runPath(this.manifest, keep, x, (file, t) => this.runGraph(file, t));
      const logits = out.data as Float32Array;
      const ms = performance.now() - t0;
      const C = logits.length;
      const { probabilities, classes } = softmaxRows(logits, 1, C);
      const { blocksUsed, flops } = pathCosts(this.manifest, keep, 1, true);
      return {
        classIndex: classes[0]!,
        confidence: probabilities[classes[0]!]!,
        probabilities,
        logits,
        keep,
        policyProbabilities,
        blocksUsed: blocksUsed[0]!,
        flops: flops[0]!,
        ms,
      };
    });
  }

  /** The full network (every block, one fused graph), the baseline. */
  classifyFull(rgb: Uint8Array): Promise<FullClassification> {
    return this.exclusive(async () => {
      const x = this.input(rgb);
      const t0 = performance.now();
      const logits = (await this.runGraph(this.manifest.graphs.full, x)).data as Float32Array;
      const ms = performance.now() - t0;
      const { probabilities, classes } = softmaxRows(logits, 1, logits.length);
      return { classIndex: classes[0]!, confidence: probabilities[classes[0]!]!, logits, ms };
    });
  }

  async release(): Promise<void> {
    await this.queue;
    for (const s of this.sessions.values()) await s.release();
    this.sessions.clear();
  }
}

export { DemoError };
