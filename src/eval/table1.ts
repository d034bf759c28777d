/**
 * The paper's Table 1 — FirstK, RandomK, DistributeK, BlockDrop and the full ResNet, before and after joint
 * finetuning, accuracy and mean blocks used — with our measurements beside the paper's numbers.
 * Accuracies are fractions in the JSON (as in every evaluation JSON) and percentages in the Markdown.
 */
import type { BaselineEvaluation } from './baselines.js';

export type Table1Method = 'firstK' | 'randomK' | 'distributeK' | 'blockdrop' | 'full';
export const TABLE1_METHODS: readonly Table1Method[] = ['firstK', 'randomK', 'distributeK', 'blockdrop', 'full'];
export const TABLE1_LABELS: Readonly<Record<Table1Method, string>> = {
  firstK: 'FirstK',
  randomK: 'RandomK',
  distributeK: 'DistributeK',
  blockdrop: 'BlockDrop',
  full: 'Full ResNet',
};

export type Table1Dataset = 'cifar10' | 'cifar100';
const DATASET_LABELS: Readonly<Record<Table1Dataset, string>> = { cifar10: 'CIFAR-10', cifar100: 'CIFAR-100' };

/** One measured cell pair: accuracy (fraction) and mean blocks used. */
export interface Table1Cell {
  readonly accuracy: number;
  /** RandomK: std over seeds. */
  readonly accuracyStd?: number;
  readonly blocks: number;
  readonly blocksStd?: number;
  /** Where the number comes from (a file, a command), for our cells. */
  readonly source?: string;
}

export interface Table1Entry {
  /** After curriculum policy learning only (baselines: the pretrained ResNet with their masks). */
  readonly before?: Table1Cell;
  /** After joint finetuning. For the full ResNet the paper repeats the 'before' numbers; so do we when omitted. */
  readonly after?: Table1Cell;
}

export interface Table1Section {
  /** Our backbone preset, e.g. 'resnet32' (BlockDrop's ResNet-32) or 'resnet110'. */
  readonly backbone: string;
  readonly dataset?: Table1Dataset;
  readonly ours: Partial<Record<Table1Method, Table1Entry>>;
  /** Images the numbers were measured on, e.g. 'CIFAR-10 test, 10,000 images'. */
  readonly measuredOn?: string;
}

export interface Table1Row {
  readonly method: Table1Method;
  readonly label: string;
  readonly before: { readonly ours: Table1Cell | null; readonly paper: Table1Cell | null };
  readonly after: { readonly ours: Table1Cell | null; readonly paper: Table1Cell | null };
}

export interface Table1Json {
  readonly kind: 'blockdrop-table1';
  readonly version: 1;
  readonly accuracyUnit: 'fraction';
  readonly sections: readonly {
    readonly backbone: string;
    /** The paper's network these rows compare with, or null when the paper has no numbers for this backbone. */
    readonly paperBackbone: string | null;
    readonly dataset: Table1Dataset;
    readonly measuredOn: string | null;
    readonly rows: readonly Table1Row[];
  }[];
  readonly notes: readonly string[];
}

export interface Table1 {
  readonly markdown: string;
  readonly json: Table1Json;
}

// Paper numbers as (accuracy in tenths of a percent, K); tenths/1000 is the exact nearest double of the fraction.
type PaperRow = readonly [acc: number, k: number, accFt: number, kFt: number];
type PaperSection = Readonly<Record<Table1Method, PaperRow>>;

/** Table 1 of the paper (from the reference notes, §8.1). */
export const PAPER_TABLE1: Readonly<Record<string, Readonly<Partial<Record<Table1Dataset, PaperSection>>>>> = {
  'ResNet-32': {
    cifar10: {
      firstK: [166, 10, 843, 7],
      randomK: [205, 10, 889, 7],
      distributeK: [234, 10, 902, 7],
      blockdrop: [886, 9.4, 913, 6.9],
      full: [923, 15, 923, 15],
    },
    cifar100: {
      firstK: [233, 13, 665, 14],
      randomK: [383, 13, 676, 14],
      distributeK: [319, 13, 667, 14],
      blockdrop: [583, 12.4, 687, 13.1],
      full: [693, 15, 693, 15],
    },
  },
  'ResNet-110': {
    cifar10: {
      firstK: [133, 21, 713, 17],
      randomK: [145, 21, 901, 17],
      distributeK: [130, 21, 927, 17],
      blockdrop: [754, 20.1, 936, 16.9],
      full: [932, 54, 932, 54],
    },
    cifar100: {
      firstK: [635, 50, 579, 31],
      randomK: [663, 50, 684, 31],
      distributeK: [496, 50, 699, 31],
      blockdrop: [721, 49.1, 737, 30.2],
      full: [722, 54, 722, 54],
    },
  },
};

/** The paper network matching one of our presets: only BlockDrop's own checkpoints (DownsampleB) are the paper's. */
export function paperBackboneFor(preset: string): string | null {
  if (preset === 'resnet32') return 'ResNet-32';
  if (preset === 'resnet110') return 'ResNet-110';
  return null;
}

/** The paper's cells for one backbone, dataset and method (null when the paper has none). */
export function paperCells(paperBackbone: string | null, dataset: Table1Dataset, method: Table1Method): { before: Table1Cell; after: Table1Cell } | null {
  const row = paperBackbone ? PAPER_TABLE1[paperBackbone]?.[dataset]?.[method] : undefined;
  if (!row) return null;
  return {
    before: { accuracy: row[0] / 1000, blocks: row[1], source: 'paper, Table 1' },
    after: { accuracy: row[2] / 1000, blocks: row[3], source: 'paper, Table 1' },
  };
}

const DASH = '—';

function pct(fraction: number, digits: number): string {
  return (fraction * 100).toFixed(digits);
}

function accText(cell: Table1Cell | null, digits: number): string {
  if (!cell) return DASH;
  const std = cell.accuracyStd !== undefined ? ` ± ${pct(cell.accuracyStd, digits)}` : '';
  return `${pct(cell.accuracy, digits)}${std}`;
}

function blocksText(cell: Table1Cell | null, paper = false): string {
  if (!cell) return DASH;
  const v = Number.isInteger(cell.blocks) || paper ? String(cell.blocks) : cell.blocks.toFixed(2);
  return cell.blocksStd !== undefined && cell.blocksStd > 0 ? `${v} ± ${cell.blocksStd.toFixed(2)}` : v;
}

/** Builds the table (Markdown + JSON) for one or more backbones. */
export function buildTable1(sections: Table1Section | readonly Table1Section[]): Table1 {
  const list: readonly Table1Section[] = Array.isArray(sections) ? sections : [sections as Table1Section];
  const jsonSections = list.map((section) => {
    const dataset = section.dataset ?? 'cifar10';
    const paperBackbone = paperBackboneFor(section.backbone);
    const rows: Table1Row[] = TABLE1_METHODS.map((method) => {
      const ours = section.ours[method];
      const paper = paperCells(paperBackbone, dataset, method);
      const before = ours?.before ?? null;
      const after = ours?.after ?? (method === 'full' ? before : null);
      return {
        method,
        label: TABLE1_LABELS[method],
        before: { ours: before, paper: paper?.before ?? null },
        after: { ours: after, paper: paper?.after ?? null },
      };
    });
    return { backbone: section.backbone, paperBackbone, dataset, measuredOn: section.measuredOn ?? null, rows };
  });
  const notes = [
    "Accuracy in %, K = mean residual blocks executed per image. 'ours' = measured by blockdrop, 'paper' = Wu et al. (CVPR 2018), Table 1. '—' = not available.",
    "Before finetuning: the pretrained ResNet, unchanged; baselines apply their masks to it, BlockDrop uses the policy after curriculum learning. After finetuning: ResNet and policy (or baseline masks) trained jointly.",
    'RandomK: mean ± std over seeds, masks drawn independently per image. DistributeK: k spread over the stages in proportion to their sizes, first blocks of each stage.',
    'The paper\'s numbers are given only for BlockDrop\'s own checkpoints (resnet32 = ResNet-32, resnet110 = ResNet-110); other backbones show \'—\' there.',
  ];
  const json: Table1Json = { kind: 'blockdrop-table1', version: 1, accuracyUnit: 'fraction', sections: jsonSections, notes };

  const lines: string[] = [];
  for (const s of jsonSections) {
    const title = s.paperBackbone ? `${s.paperBackbone} (${s.backbone})` : s.backbone;
    lines.push(`### ${title} on ${DATASET_LABELS[s.dataset]}${s.measuredOn ? ` — ours measured on ${s.measuredOn}` : ''}`, '');
    lines.push(
      '| Method | Acc ours | Acc paper | K ours | K paper | Acc (ft) ours | Acc (ft) paper | K (ft) ours | K (ft) paper |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const r of s.rows) {
      const label = r.method === 'blockdrop' ? `**${r.label}**` : r.label;
      lines.push(
        `| ${label} | ${accText(r.before.ours, 2)} | ${accText(r.before.paper, 1)} | ${blocksText(r.before.ours)} | ${blocksText(r.before.paper, true)} | ` +
          `${accText(r.after.ours, 2)} | ${accText(r.after.paper, 1)} | ${blocksText(r.after.ours)} | ${blocksText(r.after.paper, true)} |`,
      );
    }
    lines.push('');
  }
  for (const n of notes) lines.push(`- ${n}`);
  return { markdown: lines.join('\n') + '\n', json };
}

/** What a BlockDrop evaluation contributes to the table (PolicyEvaluation fits). */
export interface PolicySummaryLike {
  readonly accuracy: number;
  readonly blocksMean: number;
  readonly blocksStd?: number;
}

/**
 * Our cells of a section from a baseline evaluation (the 'before finetuning' columns) and, when given, BlockDrop's
 * evaluations before and after finetuning. Values are copied, not recomputed: the table equals the eval JSON.
 */
export function table1Section(
  baselines: BaselineEvaluation | null,
  blockdrop: { before?: PolicySummaryLike; after?: PolicySummaryLike } = {},
  options: { backbone?: string; dataset?: Table1Dataset; source?: string; measuredOn?: string } = {},
): Table1Section {
  const source = options.source;
  const cell = (accuracy: number, blocks: number, extra: Partial<Table1Cell> = {}): Table1Cell => ({
    accuracy,
    blocks,
    ...extra,
    ...(source ? { source } : {}),
  });
  const ours: Partial<Record<Table1Method, Table1Entry>> = {};
  if (baselines) {
    ours.firstK = { before: cell(baselines.firstK.accuracy, baselines.firstK.blocksMean) };
    ours.randomK = { before: cell(baselines.randomK.accuracyMean, baselines.randomK.blocksMean, { accuracyStd: baselines.randomK.accuracyStd }) };
    ours.distributeK = { before: cell(baselines.distributeK.accuracy, baselines.distributeK.blocksMean) };
    if (baselines.full) ours.full = { before: cell(baselines.full.accuracy, baselines.full.blocksMean) };
  }
  const policyCell = (p: PolicySummaryLike) => cell(p.accuracy, p.blocksMean, p.blocksStd !== undefined ? { blocksStd: p.blocksStd } : {});
  if (blockdrop.before || blockdrop.after) {
    ours.blockdrop = {
      ...(blockdrop.before ? { before: policyCell(blockdrop.before) } : {}),
      ...(blockdrop.after ? { after: policyCell(blockdrop.after) } : {}),
    };
  }
  const measuredOn =
    options.measuredOn ?? (baselines ? `${baselines.split === 'given' ? 'the given images' : `the ${baselines.split} split`}, ${baselines.images} images` : undefined);
  return {
    backbone: options.backbone ?? baselines?.backbone.preset ?? 'resnet32',
    dataset: options.dataset ?? 'cifar10',
    ours,
    ...(measuredOn ? { measuredOn } : {}),
  };
}
