/**
 * The engine-independent half of the executor: keep decisions, the path an image takes through the
 * exported graphs, its FLOPs, softmax. No Node and no ONNX Runtime imports, so the browser demo
 * (web/) runs exactly this code on onnxruntime-web and the Node executor on onnxruntime-node.
 */
import { blockPositions, type ResNetConfig } from '../models/config.js';

/** The parts of the manifest (src/export/onnx.ts) this module reads; a full manifest fits. */
export interface PathManifest {
  readonly K: number;
  readonly architecture: ResNetConfig;
  readonly keep: { readonly threshold: number };
  readonly flops: {
    readonly perBlock: readonly number[];
    readonly stemAndHead: number;
    readonly policy: number | null;
    readonly full: number;
  };
  readonly graphs: {
    readonly stem: string;
    readonly blocks: readonly string[];
    readonly shortcuts: Readonly<Record<string, string>>;
    readonly head: string;
  };
}

/** Keep decisions from the policy's sigmoid outputs: block runs when p ≥ threshold (BlockDrop: 0.5). */
export function keepFromProbabilities(probabilities: ArrayLike<number>, threshold = 0.5): Uint8Array {
  return Uint8Array.from({ length: probabilities.length }, (_, i) => (probabilities[i]! >= threshold ? 1 : 0));
}

/** Row-wise softmax and arg-max of N×C logits. */
export function softmaxRows(logits: ArrayLike<number>, n: number, c: number): { probabilities: Float32Array; classes: Int32Array } {
  const probabilities = new Float32Array(n * c);
  const classes = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    let arg = 0;
    for (let j = 0; j < c; j++) {
      const v = logits[i * c + j]!;
      if (v > max) {
        max = v;
        arg = j;
      }
    }
    let sum = 0;
    for (let j = 0; j < c; j++) sum += probabilities[i * c + j] = Math.exp(logits[i * c + j]! - max);
    for (let j = 0; j < c; j++) probabilities[i * c + j]! /= sum;
    classes[i] = arg;
  }
  return { probabilities, classes };
}

/**
 * Blocks used and FLOPs per image (BlockDrop's convention) for N×K keep masks; the policy network's
 * FLOPs count when it ran.
 */
export function pathCosts(
  manifest: Pick<PathManifest, 'K' | 'flops'>,
  keep: ArrayLike<number>,
  count: number,
  policyRan: boolean,
): { blocksUsed: Int32Array; flops: Float64Array } {
  const K = manifest.K;
  const f = manifest.flops;
  const base = f.stemAndHead + (policyRan && f.policy ? f.policy : 0);
  const blocksUsed = new Int32Array(count);
  const flops = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    let used = 0;
    let total = base;
    for (let t = 0; t < K; t++) {
      if (keep[i * K + t]) {
        used++;
        total += f.perBlock[t]!;
      }
    }
    blocksUsed[i] = used;
    flops[i] = total;
  }
  return { blocksUsed, flops };
}

/** One step of an image's path: the graph to run (null = identity shortcut: nothing to compute). */
export interface PathStep {
  readonly t: number;
  readonly kept: boolean;
  readonly graph: string | null;
}

/** The graphs one image runs for its keep row (length K): kept blocks, else their shortcut. */
export function pathSteps(manifest: Pick<PathManifest, 'K' | 'graphs'>, keepRow: ArrayLike<number>): PathStep[] {
  if (keepRow.length !== manifest.K) throw new RangeError(`pathSteps: keep row of ${keepRow.length}, expected K = ${manifest.K}`);
  const steps: PathStep[] = [];
  for (let t = 0; t < manifest.K; t++) {
    const kept = !!keepRow[t];
    steps.push({ t, kept, graph: kept ? manifest.graphs.blocks[t]! : (manifest.graphs.shortcuts[String(t)] ?? null) });
  }
  return steps;
}

/**
 * Runs one image (or a batch sharing one keep row) along its path: stem, each kept block (a dropped
 * block only its shortcut, nothing at all when that is the identity), head. `run` executes one graph
 * on whatever tensor type the engine uses and returns its single output.
 */
export async function runPath<T>(
  manifest: Pick<PathManifest, 'K' | 'graphs'>,
  keepRow: ArrayLike<number>,
  input: T,
  run: (graph: string, x: T) => Promise<T>,
): Promise<T> {
  let x = await run(manifest.graphs.stem, input);
  for (const step of pathSteps(manifest, keepRow)) if (step.graph) x = await run(step.graph, x);
  return run(manifest.graphs.head, x);
}

/** Block indices grouped by stage (for showing a path stage by stage). */
export function blocksByStage(arch: ResNetConfig): number[][] {
  const stages: number[][] = arch.blocksPerStage.map(() => []);
  blockPositions(arch).forEach(({ stage }, t) => stages[stage]!.push(t));
  return stages;
}
