/**
 * The paper's Figure 3 (CIFAR-10): accuracy against FLOPs per image for BlockDrop, the plain ResNet family and
 * other methods, with our measured points beside the paper's published ones (read off the plot, approximate).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadCifar10 } from '../data/cifar.js';
import { normalizeBatch } from '../data/batches.js';
import { BlockdropError } from '../errors.js';
import { blockCount } from '../models/config.js';
import { resnetFlops } from '../models/flops.js';
import { loadBackbone } from '../models/load.js';
import type { BaselineEvaluation } from './baselines.js';
import { openBackboneEngine, type BackboneRunOptions } from './engine.js';

export type PointSource = 'ours' | 'paper';

export interface TradeoffPoint {
  /** Method or model family, e.g. 'BlockDrop', 'ResNet (akamaster)', 'FirstK', 'SACT'. */
  readonly series: string;
  /** The point itself, e.g. 'resnet56a', 'k=10', 'γ=5'. */
  readonly label: string;
  readonly source: PointSource;
  /** FLOPs per image (BlockDrop's convention: 2 × MACs), mean over images. */
  readonly flops: number;
  readonly flopsStd?: number;
  /** Fraction. */
  readonly accuracy: number;
  readonly accuracyStd?: number;
  /** Whether `flops` includes a policy network (BlockDrop: yes; fixed networks and baselines: none to include). */
  readonly includesPolicy: boolean;
  /** Points of one series that form separate curves (e.g. one trained policy at several thresholds). */
  readonly curve?: string;
  readonly note?: string;
}

const FIG3_NOTE = 'read off the paper\'s Fig. 3 (CIFAR-10), approximate (±0.05e8 FLOPs, ±0.05%)';

function paper(series: string, label: string, flops: number, accuracyPercentTenths: number, includesPolicy: boolean): TradeoffPoint {
  return { series, label, source: 'paper', flops, accuracy: accuracyPercentTenths / 1000, includesPolicy, note: FIG3_NOTE };
}

/** The paper's CIFAR-10 Fig. 3 points (reference notes §8.2). SACT/ACT: only the ends of their curves are known. */
export const PAPER_FIG3_CIFAR10: readonly TradeoffPoint[] = [
  paper('BlockDrop', 'ResNet-110 family', 0.88e8, 913, true),
  paper('BlockDrop', 'ResNet-110 family', 1.2e8, 923, true),
  paper('BlockDrop', 'ResNet-110 family', 1.5e8, 931, true),
  paper('BlockDrop', 'ResNet-110 (γ=10, README: 1.81e8, 93.6%)', 1.81e8, 936, true),
  paper('ResNet', 'small ResNet', 0.5e8, 902, false),
  paper('ResNet', 'ResNet-32', 1.4e8, 923, false),
  paper('ResNet', 'ResNet-110', 5.05e8, 932, false),
  paper('SACT', 'lowest cost', 0.75e8, 916, false),
  paper('SACT', 'highest cost', 3.1e8, 933.5, false),
  paper('ACT', 'lowest cost', 1.0e8, 914, false),
  paper('ACT', 'highest cost', 3.8e8, 935, false),
  paper('LCCL', '', 0.5e8, 917, false),
  paper('LCCL', '', 1.0e8, 925.5, false),
  paper('LCCL', '', 1.3e8, 927, false),
  paper('PFEC', '', 1.8e8, 930.5, false),
  paper('PFEC', '', 2.2e8, 931, false),
  paper('PFEC', '', 4.25e8, 935.5, false),
];

// ---------------------------------------------------------------------------------------------------
// the plain ResNet family

export interface WeightsFile {
  readonly preset: string;
  readonly path: string;
  /** 'akamaster' (option A) or 'blockdrop' (DownsampleB). */
  readonly origin: 'akamaster' | 'blockdrop';
}

/** The CIFAR-10 checkpoints of a weights directory: akamaster_resnet{N}-*.th and blockdrop_R{N}_C10_*.t7. */
export function discoverWeights(dir: string): WeightsFile[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    throw new BlockdropError(`cannot read the weights directory ${dir}; pass the directory holding the .th/.t7 checkpoints`);
  }
  const out: WeightsFile[] = [];
  for (const name of names.sort()) {
    const aka = /^akamaster_resnet(\d+)-.*\.th$/.exec(name);
    if (aka) out.push({ preset: `resnet${aka[1]}a`, path: join(dir, name), origin: 'akamaster' });
    const bd = /^blockdrop_R(\d+)_C10_.*\.t7$/.exec(name);
    if (bd) out.push({ preset: `resnet${bd[1]}`, path: join(dir, name), origin: 'blockdrop' });
  }
  const depth = (p: string) => Number(/\d+/.exec(p)![0]);
  return out.sort((a, b) => a.origin.localeCompare(b.origin) || depth(a.preset) - depth(b.preset));
}

export interface FamilyModelResult {
  readonly preset: string;
  readonly file: string;
  readonly origin: 'akamaster' | 'blockdrop';
  readonly blocks: number;
  readonly flops: number;
  readonly images: number;
  readonly correct: number;
  readonly accuracy: number;
  readonly seconds: number;
  readonly engine: string;
}

export interface FamilyEvaluation {
  readonly kind: 'blockdrop-resnet-family';
  readonly version: 1;
  readonly split: string;
  readonly images: number;
  readonly flopsConvention: string;
  readonly models: readonly FamilyModelResult[];
}

export interface EvaluateFamilyOptions extends BackboneRunOptions {
  /** Directory of the checkpoints (see `discoverWeights`), or the files themselves. */
  readonly weights: string | readonly WeightsFile[];
  readonly onProgress?: (preset: string, done: number, total: number) => void;
}

/** Accuracy and FLOPs of every full network (all blocks executed) in the weights directory. */
export async function evaluateResNetFamily(options: EvaluateFamilyOptions): Promise<FamilyEvaluation> {
  const files = typeof options.weights === 'string' ? discoverWeights(options.weights) : [...options.weights];
  if (files.length === 0) throw new BlockdropError('no CIFAR-10 ResNet checkpoints found; check the weights directory');
  const split = options.split ?? 'test';
  const set = options.set ?? loadCifar10({ dataDir: options.dataDir, split });
  const total = Math.min(options.limit && options.limit > 0 ? options.limit : set.count, set.count);
  const batchSize = options.batchSize ?? 250;
  const models: FamilyModelResult[] = [];
  for (const file of files) {
    const backbone = await loadBackbone(file.path, { arch: file.preset });
    const K = blockCount(backbone.arch);
    const engine = await openBackboneEngine(backbone, { engine: options.engine, threads: options.threads, log: options.log });
    const started = performance.now();
    let correct = 0;
    try {
      for (let start = 0; start < total; start += batchSize) {
        const count = Math.min(batchSize, total - start);
        const indices = Array.from({ length: count }, (_, i) => start + i);
        const images = normalizeBatch(set, indices, backbone.normalization);
        const keep = new Uint8Array(count * K).fill(1);
        const predicted = await engine.oracle.predict(images, count, keep, Int32Array.from(indices, (_, i) => i));
        for (let i = 0; i < count; i++) if (predicted[i] === set.labels[start + i]) correct++;
        options.onProgress?.(file.preset, start + count, total);
      }
    } finally {
      await engine.close();
    }
    models.push({
      preset: file.preset,
      file: file.path,
      origin: file.origin,
      blocks: K,
      flops: resnetFlops(backbone.arch),
      images: total,
      correct,
      accuracy: total > 0 ? correct / total : 0,
      seconds: (performance.now() - started) / 1000,
      engine: engine.oracle.name,
    });
  }
  return {
    kind: 'blockdrop-resnet-family',
    version: 1,
    split: options.set ? 'given' : split,
    images: total,
    flopsConvention: "BlockDrop's: 2 x MACs of convs and linears, parameter-free shortcuts free; full network, no policy",
    models,
  };
}

// ---------------------------------------------------------------------------------------------------
// assembling the plot's points

/** A BlockDrop result to plot (PolicyEvaluation fits, with a label such as 'γ=5' or 'threshold 0.4'). */
export interface BlockDropPointInput {
  readonly label: string;
  readonly accuracy: number;
  /** Policy network included, as the paper. */
  readonly flopsMean: number;
  readonly flopsStd?: number;
  readonly series?: string;
  /** Points sharing a curve are joined (one policy at several thresholds); default: the series' one curve. */
  readonly curve?: string;
}

export interface TradeoffInput {
  readonly family?: FamilyEvaluation;
  /** One evaluation per budget k. */
  readonly baselines?: readonly BaselineEvaluation[];
  readonly blockdrop?: readonly BlockDropPointInput[];
  /** The paper's points: 'all' (default), 'blockdrop-and-resnet' (leave out the other methods) or 'none'. */
  readonly paper?: 'all' | 'blockdrop-and-resnet' | 'none';
}

/** Every point of the trade-off plot, ours first, then the paper's. */
export function tradeoffPoints(input: TradeoffInput): TradeoffPoint[] {
  const out: TradeoffPoint[] = [];
  for (const m of input.family?.models ?? []) {
    out.push({
      series: m.origin === 'akamaster' ? 'ResNet (akamaster)' : 'ResNet (BlockDrop ckpt)',
      label: m.preset,
      source: 'ours',
      flops: m.flops,
      accuracy: m.accuracy,
      includesPolicy: false,
    });
  }
  for (const b of input.baselines ?? []) {
    const note = `${b.backbone.preset}, backbone FLOPs only (no policy network)`;
    out.push({ series: 'FirstK', label: `k=${b.k}`, source: 'ours', flops: b.firstK.flopsMean, accuracy: b.firstK.accuracy, includesPolicy: false, note });
    out.push({
      series: 'RandomK',
      label: `k=${b.k}`,
      source: 'ours',
      flops: b.randomK.flopsMean,
      flopsStd: b.randomK.flopsStd,
      accuracy: b.randomK.accuracyMean,
      accuracyStd: b.randomK.accuracyStd,
      includesPolicy: false,
      note,
    });
    out.push({
      series: 'DistributeK',
      label: `k=${b.k}`,
      source: 'ours',
      flops: b.distributeK.flopsMean,
      accuracy: b.distributeK.accuracy,
      includesPolicy: false,
      note,
    });
  }
  for (const p of input.blockdrop ?? []) {
    out.push({
      series: p.series ?? 'BlockDrop',
      label: p.label,
      source: 'ours',
      flops: p.flopsMean,
      ...(p.flopsStd !== undefined ? { flopsStd: p.flopsStd } : {}),
      accuracy: p.accuracy,
      includesPolicy: true,
      ...(p.curve !== undefined ? { curve: p.curve } : {}),
    });
  }
  const which = input.paper ?? 'all';
  if (which !== 'none') {
    for (const p of PAPER_FIG3_CIFAR10) {
      if (which === 'blockdrop-and-resnet' && p.series !== 'BlockDrop' && p.series !== 'ResNet') continue;
      out.push(p);
    }
  }
  return out;
}
