/**
 * The report of a training run in one call (what `blockdrop report RUN_DIR` needs): the run's best policy (and,
 * after finetuning, its ResNet) on a CIFAR-10 split, the baselines at the policy's block budget, the trade-off
 * points, Table 1 and the training curves.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { loadCifar10, type CifarSplit } from '../data/cifar.js';
import { BlockdropError } from '../errors.js';
import { evaluateBaselinesOn, type BaselineEvaluation } from '../eval/baselines.js';
import { collectDecisions, summarizeDecisions, type PolicyDecisions } from '../eval/decisions.js';
import { openBackboneEngine, type EngineChoice } from '../eval/engine.js';
import { buildTable1, table1Section, type Table1 } from '../eval/table1.js';
import { tradeoffPoints, type FamilyEvaluation, type TradeoffPoint } from '../eval/tradeoff.js';
import { loadAnyCheckpoint } from '../checkpoint/store.js';
import { blockCount, type ResNetConfig } from '../models/config.js';
import { policyFlops, resnetFlops } from '../models/flops.js';
import { loadBackbone, type LoadedBackbone } from '../models/load.js';
import { tensorSection, type TensorMap } from '../tensor.js';
import { renderReport, type ReportEvaluation, type ReportResult } from './html.js';

export interface RunReportOptions {
  readonly runDir: string;
  /** Default `<runDir>/report.html`. */
  readonly out?: string;
  /** Backbone checkpoint (default: the run's config `resnet`). */
  readonly resnet?: string;
  readonly arch?: string;
  readonly dataDir?: string;
  /** Default 'test'. */
  readonly split?: CifarSplit;
  readonly limit?: number;
  readonly engine?: EngineChoice;
  readonly threads?: number;
  /** Directory with resnet-family.json (and baselines-<preset>.json) from `writeBaselineResults`, for the plot and table. */
  readonly resultsDir?: string;
  /** Evaluate FirstK/RandomK/DistributeK at the policy's mean budget on the same images (default true). */
  readonly baselines?: boolean;
  readonly seeds?: readonly number[];
  /** Write each chart as PNG too. */
  readonly pngDir?: string;
  readonly log?: (message: string) => void;
}

/** Headline numbers of a policy from its per-image decisions, FLOPs with the policy network (the paper's convention). */
export interface RunEvaluation extends ReportEvaluation {
  readonly images: number;
  readonly correct: number;
  readonly blocksStd: number;
  readonly flopsMean: number;
  readonly flopsStd: number;
  readonly distinctPolicies: number;
  readonly perClassAccuracy: number[];
  readonly perClassBlocks: number[];
  readonly imagesPerSecond: number;
  readonly seconds: number;
}

export interface RunReport {
  readonly report: ReportResult;
  readonly evaluation: RunEvaluation;
  readonly decisions: PolicyDecisions;
  readonly baselines: BaselineEvaluation | null;
  readonly table: Table1;
  readonly tradeoff: readonly TradeoffPoint[];
}

/** Accuracy, blocks and FLOPs (policy included) of decisions on `arch`. */
export function evaluationFromDecisions(d: PolicyDecisions, arch: ResNetConfig, seconds: number): RunEvaluation {
  const s = summarizeDecisions(d, 0);
  const policy = arch.stem === 'cifar' ? policyFlops(arch) : 0;
  const cache = new Map<string, number>();
  let sum = 0;
  let sq = 0;
  const n = d.labels.length;
  for (let i = 0; i < n; i++) {
    const row = d.keep.subarray(i * d.k, (i + 1) * d.k);
    const key = row.join('');
    let f = cache.get(key);
    if (f === undefined) cache.set(key, (f = resnetFlops(arch, row) + policy));
    sum += f;
    sq += f * f;
  }
  const mean = n > 0 ? sum / n : 0;
  return {
    images: n,
    correct: Math.round(s.accuracy * n),
    accuracy: s.accuracy,
    blocksMean: s.blocksMean,
    blocksStd: s.blocksStd,
    flopsMean: mean,
    flopsStd: n > 0 ? Math.sqrt(Math.max(0, sq / n - mean * mean)) : 0,
    distinctPolicies: s.distinctPolicies,
    perClassAccuracy: s.perClassAccuracy,
    perClassBlocks: s.perClassBlocks,
    imagesPerSecond: seconds > 0 ? n / seconds : 0,
    seconds,
  };
}

/** The run's best weights: the best checkpoint (policy.*, and resnet.* after finetuning), else policy.safetensors. */
export async function runWeights(runDir: string): Promise<{ policy: TensorMap; resnet?: TensorMap; source: string }> {
  const { RunDirectory } = await import('../train/run-dir.js');
  try {
    const best = await new RunDirectory(runDir).loadBest();
    const policy = tensorSection(best.tensors, 'policy.');
    if (policy.size > 0) {
      const resnet = tensorSection(best.tensors, 'resnet.');
      return { policy, ...(resnet.size > 0 ? { resnet } : {}), source: `best checkpoint of ${runDir}` };
    }
  } catch {
    // no best checkpoint: fall through to policy.safetensors
  }
  const file = join(runDir, 'policy.safetensors');
  if (!existsSync(file)) throw new BlockdropError(`${runDir} holds no trained policy yet (no best checkpoint, no policy.safetensors); train first`);
  return { policy: (await loadAnyCheckpoint(file)).tensors, source: file };
}

function readJsonIf<T>(file: string): T | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Evaluates the run's policy and writes its report. */
export async function reportFromRun(options: RunReportOptions): Promise<RunReport> {
  const log = options.log ?? (() => {});
  const { runDir } = options;
  const configPath = join(runDir, 'config.json');
  if (!existsSync(configPath)) throw new BlockdropError(`${runDir} is not a run directory (no config.json); pass the --run-dir of a training run`);
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as { resnet?: string; arch?: string; dataDir?: string; policy?: string };
  const resnetPath = options.resnet ?? config.resnet;
  if (!resnetPath) throw new BlockdropError(`${configPath} names no backbone; pass the ResNet checkpoint`);
  const finetuned = typeof config.policy === 'string';
  const weights = await runWeights(runDir);
  const loaded = await loadBackbone(resnetPath, { arch: options.arch ?? config.arch });
  const backbone: LoadedBackbone = weights.resnet ? { ...loaded, tensors: weights.resnet, source: weights.source } : loaded;
  const split = options.split ?? 'test';
  const set = loadCifar10({ dataDir: options.dataDir ?? config.dataDir, split });
  const K = blockCount(backbone.arch);

  const [{ initBackend }, { PolicyNetwork }] = await Promise.all([import('../backend/index.js'), import('../models/policy.js')]);
  await initBackend('wasm');
  const policy = PolicyNetwork.fromWeights(backbone.arch, weights.policy, { trainable: false });
  const engine = await openBackboneEngine(backbone, { engine: options.engine, threads: options.threads, log });
  let decisions: PolicyDecisions;
  let evaluation: RunEvaluation;
  let baselines: BaselineEvaluation | null = null;
  try {
    log(`evaluating the policy on ${split} (${engine.oracle.name})`);
    const started = performance.now();
    decisions = await collectDecisions(policy, engine.oracle, set, {
      k: K,
      normalization: backbone.normalization,
      limit: options.limit,
      source: `the policy of ${basename(runDir)}`,
    });
    evaluation = evaluationFromDecisions(decisions, backbone.arch, (performance.now() - started) / 1000);
    if (options.baselines !== false) {
      const k = Math.min(K, Math.max(0, Math.round(evaluation.blocksMean)));
      log(`baselines at k = ${k}`);
      baselines = await evaluateBaselinesOn(engine.oracle, set, {
        arch: backbone.arch,
        normalization: backbone.normalization,
        k,
        seeds: options.seeds ?? [0, 1, 2],
        limit: options.limit,
        backbone: { preset: backbone.preset, source: backbone.source },
        split,
      });
    }
  } finally {
    await engine.close();
    policy.dispose();
  }

  const family = options.resultsDir ? readJsonIf<FamilyEvaluation>(join(options.resultsDir, 'resnet-family.json')) : undefined;
  const bdCell = { accuracy: evaluation.accuracy, blocksMean: evaluation.blocksMean, blocksStd: evaluation.blocksStd };
  const table = buildTable1(
    table1Section(baselines, finetuned ? { after: bdCell } : { before: bdCell }, {
      backbone: backbone.preset,
      source: runDir,
      measuredOn: `CIFAR-10 ${split}, ${evaluation.images} images${finetuned ? '; baselines and full network on this run\'s finetuned ResNet' : ''}`,
    }),
  );
  const tradeoff = tradeoffPoints({
    ...(family ? { family } : {}),
    ...(baselines ? { baselines: [baselines] } : {}),
    blockdrop: [{ label: basename(runDir), accuracy: evaluation.accuracy, flopsMean: evaluation.flopsMean, flopsStd: evaluation.flopsStd }],
  });
  const report = await renderReport(
    {
      title: `BlockDrop report: ${basename(runDir)}`,
      runDir,
      evaluation,
      decisions,
      images: set,
      table,
      tradeoff,
      fullFlops: resnetFlops(backbone.arch),
      notes: [
        `backbone ${backbone.preset} (${backbone.source}); policy from ${weights.source}; ${finetuned ? 'after joint finetuning' : 'after curriculum learning (stage 1)'}`,
        `evaluated on CIFAR-10 ${split}, ${evaluation.images} images`,
      ],
    },
    options.out ?? join(runDir, 'report.html'),
    options.pngDir ? { pngDir: options.pngDir } : {},
  );
  return { report, evaluation, decisions, baselines, table, tradeoff };
}
