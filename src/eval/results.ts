/**
 * Writes the evaluation results a release ships (results/): the baselines of BlockDrop's ResNet-32 at a budget k,
 * optionally a sweep of budgets, the plain ResNet family, Table 1, the trade-off points and a report without a
 * policy. Every JSON records how it was produced. Steps whose file exists (with the same parameters) are reused.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCifar10, type CifarSplit } from '../data/cifar.js';
import { BlockdropError } from '../errors.js';
import { loadBackbone } from '../models/load.js';
import { renderReport } from '../report/html.js';
import { writeFileAtomic } from '../util/atomic.js';
import { evaluateBaselines, type BaselineEvaluation } from './baselines.js';
import type { EngineChoice } from './engine.js';
import { evaluatePolicyCheckpoint, type PolicyCheckpointEvaluation } from './evaluate.js';
import { buildTable1, table1Section, type Table1 } from './table1.js';
import { discoverWeights, evaluateResNetFamily, tradeoffPoints, type FamilyEvaluation, type TradeoffPoint } from './tradeoff.js';

export interface Provenance {
  /** The library call, e.g. `writeBaselineResults` in src/eval/results.ts. */
  readonly function: string;
  readonly options: Record<string, unknown>;
  /** A shell command that reproduces the file. */
  readonly command: string;
  readonly date: string;
  readonly node: string;
}

export interface BaselineResultsOptions {
  /** Directory of the pretrained checkpoints (akamaster_resnet*.th, blockdrop_R32_C10_*.t7). */
  readonly weightsDir: string;
  readonly outDir: string;
  readonly dataDir?: string;
  /** Default: BlockDrop's ResNet-32 in `weightsDir`. */
  readonly backbone?: string;
  /** Table 1 budget (default 10, the paper's ResNet-32 / CIFAR-10 value before finetuning). */
  readonly k?: number;
  readonly seeds?: readonly number[];
  /** Extra budgets for the trade-off plot (default none). */
  readonly sweep?: readonly number[];
  readonly split?: CifarSplit;
  readonly limit?: number;
  readonly engine?: EngineChoice;
  readonly threads?: number;
  /** Reuse result files that exist with the same parameters (default true). */
  readonly reuse?: boolean;
  /** Recorded in every file's provenance (default: the tsx one-liner calling this function). */
  readonly command?: string;
  readonly log?: (message: string) => void;
  /** A stage-1 policy for the main backbone: BlockDrop's row before finetuning. */
  readonly policy?: string;
  /** Policy thresholds besides 0.5 at which the policies above are also evaluated, as trade-off points (default none). */
  readonly thresholds?: readonly number[];
  /** A stage-2 run's outputs (its finetuned ResNet and policy): BlockDrop's row after finetuning. */
  readonly finetuned?: { readonly resnet: string; readonly policy: string };
  /**
   * Also a Table 1 section (baselines and full network) for every other checkpoint in `weightsDir`, at the same
   * fraction of its blocks as k is of the main backbone's (default true).
   */
  readonly allBackbones?: boolean;
}

export interface BaselineResults {
  readonly baselines: BaselineEvaluation;
  /** Baselines of the other backbones (allBackbones). */
  readonly otherBaselines: readonly BaselineEvaluation[];
  readonly blockdrop: { readonly before?: PolicyCheckpointEvaluation; readonly after?: PolicyCheckpointEvaluation };
  readonly sweep: readonly BaselineEvaluation[];
  readonly family: FamilyEvaluation;
  readonly table: Table1;
  readonly tradeoff: readonly TradeoffPoint[];
  readonly files: readonly string[];
}

type WithProvenance<T> = T & { readonly provenance: Provenance };

function readIf<T>(file: string, matches: (value: T) => boolean): T | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const value = JSON.parse(readFileSync(file, 'utf8')) as T;
    return matches(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

/** Produces results/{baselines-<preset>.json, baselines-sweep-<preset>.json, resnet-family.json, table1.{md,json}, tradeoff.json, report.html, charts/}. */
export async function writeBaselineResults(options: BaselineResultsOptions): Promise<BaselineResults> {
  const log = options.log ?? (() => {});
  const k = options.k ?? 10;
  const seeds = [...(options.seeds ?? [0, 1, 2, 3, 4])];
  const split = options.split ?? 'test';
  const reuse = options.reuse ?? true;
  const backbonePath =
    options.backbone ?? discoverWeights(options.weightsDir).find((w) => w.origin === 'blockdrop' && w.preset === 'resnet32')?.path;
  if (!backbonePath) throw new BlockdropError(`no BlockDrop ResNet-32 checkpoint (blockdrop_R32_C10_*.t7) in ${options.weightsDir}; pass the backbone`);
  mkdirSync(options.outDir, { recursive: true });
  const recorded = {
    weightsDir: options.weightsDir,
    backbone: backbonePath,
    k,
    seeds,
    sweep: options.sweep ?? [],
    split,
    limit: options.limit ?? null,
    engine: options.engine ?? 'auto',
    policy: options.policy ?? null,
    finetuned: options.finetuned ?? null,
    allBackbones: options.allBackbones ?? true,
  };
  const provenance: Provenance = {
    function: 'writeBaselineResults (src/eval/results.ts)',
    options: recorded,
    command:
      options.command ??
      `npx tsx -e "import('./src/eval/results.ts').then((m) => m.writeBaselineResults(${JSON.stringify({ weightsDir: options.weightsDir, outDir: options.outDir, k, seeds, sweep: options.sweep ?? [], ...(options.limit ? { limit: options.limit } : {}) }).replace(/"/g, "'")}))"`,
    date: new Date().toISOString(),
    node: process.version,
  };
  const files: string[] = [];
  const write = async (name: string, content: string) => {
    const file = join(options.outDir, name);
    await writeFileAtomic(file, content);
    files.push(file);
  };

  const backbone = await loadBackbone(backbonePath);
  const set = loadCifar10({ dataDir: options.dataDir, split });
  const total = Math.min(options.limit && options.limit > 0 ? options.limit : set.count, set.count);
  const sameRun = (b: BaselineEvaluation) => b.images === total && b.split === split && b.backbone.preset === backbone.preset;
  const progress = (what: string) => {
    let last = -1;
    return (done: number, all: number) => {
      const step = Math.floor((10 * done) / all);
      if (step !== last) log(`${what}: ${done}/${all}`);
      last = step;
    };
  };

  // 1. Table 1 budget
  const mainName = `baselines-${backbone.preset}.json`;
  let baselines = reuse
    ? readIf<WithProvenance<BaselineEvaluation>>(join(options.outDir, mainName), (b) => sameRun(b) && b.k === k && b.full !== undefined && b.randomK.seeds.join() === seeds.join())
    : undefined;
  if (baselines) log(`reusing ${mainName}`);
  else {
    const [b] = await evaluateBaselines({ backbone, k, seeds, set, limit: total, engine: options.engine, threads: options.threads, log, onProgress: progress(`baselines k=${k}`) });
    baselines = { ...b!, split, provenance };
    await write(mainName, json(baselines));
  }

  // 2. sweep of budgets
  const sweepName = `baselines-sweep-${backbone.preset}.json`;
  let sweep: BaselineEvaluation[] = [];
  const wanted = (options.sweep ?? []).filter((s) => s !== k);
  if (wanted.length > 0) {
    const old = reuse ? readIf<{ evaluations: BaselineEvaluation[] }>(join(options.outDir, sweepName), () => true)?.evaluations ?? [] : [];
    for (const s of wanted) {
      const found = old.find((b) => b.k === s && sameRun(b) && b.randomK.seeds.join() === seeds.join());
      if (found) sweep.push(found);
      else {
        const [b] = await evaluateBaselines({ backbone, k: s, seeds, set, limit: total, engine: options.engine, threads: options.threads, log, onProgress: progress(`baselines k=${s}`) });
        sweep.push({ ...b!, split });
      }
    }
    sweep = [...sweep, baselines].sort((a, b) => a.k - b.k);
    await write(sweepName, json({ kind: 'blockdrop-baseline-sweep', version: 1, provenance, evaluations: sweep }));
  }

  // 3. the plain ResNet family
  const familyName = 'resnet-family.json';
  const weights = discoverWeights(options.weightsDir);
  let family = reuse
    ? readIf<WithProvenance<FamilyEvaluation>>(join(options.outDir, familyName), (f) => f.images === total && f.split === split && f.models.length === weights.length)
    : undefined;
  if (family) log(`reusing ${familyName}`);
  else {
    const f = await evaluateResNetFamily({
      weights,
      set,
      limit: total,
      engine: options.engine,
      threads: options.threads,
      log,
      onProgress: (preset, done, all) => progress(preset)(done, all),
    });
    family = { ...f, split, provenance };
    await write(familyName, json(family));
  }

  // 4. BlockDrop's rows: the policy before finetuning, the finetuned ResNet and policy after
  const blockdrop: { before?: PolicyCheckpointEvaluation; after?: PolicyCheckpointEvaluation } = {};
  const evalPolicy = async (name: string, resnet: string, policy: string, threshold = 0.5): Promise<PolicyCheckpointEvaluation> => {
    const sameEval = (e: WithProvenance<PolicyCheckpointEvaluation>) =>
      e.images === total &&
      e.split === split &&
      e.provenance?.options?.['resnet'] === resnet &&
      e.provenance?.options?.['policy'] === policy &&
      (e.provenance?.options?.['threshold'] ?? 0.5) === threshold;
    const old = reuse ? readIf<WithProvenance<PolicyCheckpointEvaluation>>(join(options.outDir, name), sameEval) : undefined;
    if (old) {
      log(`reusing ${name}`);
      return old;
    }
    const e = await evaluatePolicyCheckpoint({ resnet, policy, split, threshold, limit: total, dataDir: options.dataDir, engine: options.engine, log, onProgress: progress(name) });
    await write(name, json({ ...e, provenance: { ...provenance, options: { ...provenance.options, resnet, policy, threshold } } }));
    return e;
  };
  if (options.policy) blockdrop.before = await evalPolicy(`eval-policy-${backbone.preset}.json`, backbonePath, options.policy);
  if (options.finetuned) blockdrop.after = await evalPolicy(`eval-finetuned-${backbone.preset}.json`, options.finetuned.resnet, options.finetuned.policy);
  // The same policies at other thresholds: more points of the trade-off curve from one trained policy.
  const thresholdPoints: { label: string; accuracy: number; flopsMean: number; flopsStd: number; curve: string }[] = [];
  for (const threshold of options.thresholds ?? []) {
    for (const [stage, resnet, policy, tag] of [
      ['stage 1', backbonePath, options.policy, 'policy'],
      ['stage 2', options.finetuned?.resnet, options.finetuned?.policy, 'finetuned'],
    ] as const) {
      if (!resnet || !policy) continue;
      const e = await evalPolicy(`eval-${tag}-${backbone.preset}-t${threshold}.json`, resnet, policy, threshold);
      thresholdPoints.push({ label: `${stage}, threshold ${threshold}`, accuracy: e.accuracy, flopsMean: e.flopsMean, flopsStd: e.flopsStd, curve: stage });
    }
  }

  // 5. the other backbones: baselines at the same fraction of their blocks
  const otherBaselines: BaselineEvaluation[] = [];
  if (options.allBackbones ?? true) {
    const mainK = backbone.arch.blocksPerStage.reduce((a, b) => a + b, 0);
    for (const w of weights.filter((w) => w.path !== backbonePath)) {
      const other = await loadBackbone(w.path);
      const otherK = other.arch.blocksPerStage.reduce((a, b) => a + b, 0);
      const kOther = Math.max(1, Math.round((k * otherK) / mainK));
      const name = `baselines-${w.origin}-${other.preset}.json`;
      let b = reuse
        ? readIf<WithProvenance<BaselineEvaluation>>(join(options.outDir, name), (e) => e.images === total && e.split === split && e.k === kOther && e.full !== undefined && e.randomK.seeds.join() === seeds.join())
        : undefined;
      if (b) log(`reusing ${name}`);
      else {
        const [e] = await evaluateBaselines({ backbone: other, k: kOther, seeds, set, limit: total, engine: options.engine, threads: options.threads, log, onProgress: progress(`${w.origin} ${other.preset} k=${kOther}`) });
        b = { ...e!, split, provenance };
        await write(name, json(b));
      }
      otherBaselines.push(b);
    }
  }

  // 6. Table 1, trade-off points, report
  const sections = [
    table1Section(baselines, blockdrop, { source: join(options.outDir, mainName) }),
    ...otherBaselines.map((b) => table1Section(b, {}, { backbone: b.backbone.preset })),
  ];
  const table = buildTable1(sections);
  await write('table1.md', table.markdown);
  await write('table1.json', json({ ...table.json, provenance }));
  const blockdropPoints = [
    ...(blockdrop.before ? [{ label: 'stage 1 (curriculum)', accuracy: blockdrop.before.accuracy, flopsMean: blockdrop.before.flopsMean, flopsStd: blockdrop.before.flopsStd, curve: 'stage 1' }] : []),
    ...(blockdrop.after ? [{ label: 'stage 2 (finetuned)', accuracy: blockdrop.after.accuracy, flopsMean: blockdrop.after.flopsMean, flopsStd: blockdrop.after.flopsStd, curve: 'stage 2' }] : []),
    ...thresholdPoints,
  ];
  const tradeoff = tradeoffPoints({ family, baselines: sweep.length > 0 ? sweep : [baselines], blockdrop: blockdropPoints });
  await write('tradeoff.json', json({ kind: 'blockdrop-tradeoff', version: 1, provenance, points: tradeoff }));
  const report = await renderReport(
    {
      title: blockdrop.before || blockdrop.after ? `BlockDrop on ${backbone.preset}: Table 1 and trade-off` : `BlockDrop baselines on ${backbone.preset} (no policy yet)`,
      table,
      tradeoff,
      notes: [
        `Measured on CIFAR-10 ${split}, ${total} images; RandomK seeds ${seeds.join(', ')}.`,
        `Reproduce: ${provenance.command}`,
      ],
    },
    join(options.outDir, 'report.html'),
    { pngDir: join(options.outDir, 'charts') },
  );
  files.push(report.file, ...report.charts.flatMap((c) => (c.pngFile ? [c.pngFile] : [])));
  return { baselines, otherBaselines, blockdrop, sweep, family, table, tradeoff, files };
}
