/**
 * `renderReport`: one self-contained HTML file (inline CSS and SVG, images as data URIs, no script, no
 * network) with the training curves, the trade-off plot, the class × block keep-rate map, the histogram of
 * blocks used, the images that use the fewest and the most blocks per class, and Table 1.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageSet } from '../data/cifar.js';
import { encodePng } from '../data/image.js';
import { blocksPerImage, summarizeDecisions, type DecisionSummary, type PolicyDecisions } from '../eval/decisions.js';
import type { Table1, Table1Cell, Table1Json } from '../eval/table1.js';
import type { TradeoffPoint } from '../eval/tradeoff.js';
import { BlockdropError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import {
  blocksHistogramSpec,
  keepRateHeatmapSpec,
  renderSvg,
  svgToPng,
  tradeoffSpec,
  trainingCurvesSpec,
  type MetricsRecord,
} from './charts.js';

/** Headline numbers of a policy evaluation (PolicyEvaluation from src/eval/evaluate.ts fits). */
export interface ReportEvaluation {
  readonly images?: number;
  readonly accuracy: number;
  readonly blocksMean: number;
  readonly blocksStd?: number;
  readonly flopsMean?: number;
  readonly flopsStd?: number;
  readonly distinctPolicies?: number;
  readonly imagesPerSecond?: number;
}

export interface ReportInput {
  readonly title?: string;
  /** A training run directory: metrics.jsonl (curves), config.json, results.json (headline numbers). */
  readonly runDir?: string;
  /** Curves without a run directory (or instead of its metrics.jsonl). */
  readonly metrics?: readonly MetricsRecord[];
  /** Headline numbers; default: the `test` entry of runDir/results.json. */
  readonly evaluation?: ReportEvaluation;
  /** Per-image decisions: keep-rate map, histogram, gallery. */
  readonly decisions?: PolicyDecisions;
  /** The images the decisions refer to (for the gallery). */
  readonly images?: ImageSet;
  readonly table?: Table1 | Table1Json;
  readonly tradeoff?: readonly TradeoffPoint[];
  /** Full-network FLOPs, to state the saving next to the headline numbers. */
  readonly fullFlops?: number;
  /** Free text lines shown under the title (what was evaluated, with which command). */
  readonly notes?: readonly string[];
}

export interface RenderReportOptions {
  /** Also write every chart as `<name>.png` (and `<name>.svg`) into this directory. */
  readonly pngDir?: string;
  /** Images per class at each extreme in the gallery (default 4). */
  readonly galleryPerClass?: number;
  /** Upscaling of the gallery thumbnails (default 3: 32 px → 96 px). */
  readonly thumbnailScale?: number;
  /** Timestamp shown in the footer (default now); fixed in tests. */
  readonly generatedAt?: string;
}

export interface RenderedChart {
  readonly name: string;
  readonly title: string;
  readonly svg: string;
  readonly pngFile?: string;
}

export interface ReportResult {
  readonly file: string;
  readonly bytes: number;
  readonly charts: readonly RenderedChart[];
  /** Sections left out and why. */
  readonly missing: readonly string[];
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

/** metrics.jsonl of a run directory; broken lines (a kill mid-write) are skipped. */
export function readMetricsFile(path: string): MetricsRecord[] {
  if (!existsSync(path)) return [];
  const out: MetricsRecord[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as MetricsRecord;
      if (typeof r.iteration === 'number') out.push(r);
    } catch {
      continue;
    }
  }
  return out;
}

function readJson(path: string): Record<string, unknown> | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function asEvaluation(v: unknown): ReportEvaluation | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const r = v as Record<string, unknown>;
  return typeof r['accuracy'] === 'number' && typeof r['blocksMean'] === 'number' ? (r as unknown as ReportEvaluation) : undefined;
}

/** Nearest-neighbour upscaling of an RGB8 image. */
export function upscaleNearest(rgb: Uint8Array, width: number, height: number, scale: number): Uint8Array {
  const w = width * scale;
  const out = new Uint8Array(w * height * scale * 3);
  for (let y = 0; y < height * scale; y++) {
    const sy = Math.floor(y / scale);
    for (let x = 0; x < w; x++) {
      const s = (sy * width + Math.floor(x / scale)) * 3;
      const d = (y * w + x) * 3;
      out[d] = rgb[s]!;
      out[d + 1] = rgb[s + 1]!;
      out[d + 2] = rgb[s + 2]!;
    }
  }
  return out;
}

/** Image `index` of a set as a PNG data URI, upscaled. */
export function imageDataUri(set: ImageSet, index: number, scale = 3): string {
  const per = set.width * set.height * 3;
  const rgb = set.images.subarray(index * per, (index + 1) * per);
  const png = encodePng(scale > 1 ? upscaleNearest(rgb, set.width, set.height, scale) : rgb, set.width * scale, set.height * scale);
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}

function pct(x: number, digits = 2): string {
  return `${(x * 100).toFixed(digits)}%`;
}

function tableJson(t: Table1 | Table1Json): Table1Json {
  return 'json' in t ? t.json : t;
}

function cellHtml(cell: Table1Cell | null, kind: 'acc' | 'k', paper: boolean): string {
  if (!cell) return '<td class="na">—</td>';
  if (kind === 'acc') {
    const d = paper ? 1 : 2;
    const std = cell.accuracyStd !== undefined ? ` ± ${(cell.accuracyStd * 100).toFixed(d)}` : '';
    return `<td class="${paper ? 'paper' : 'ours'}">${(cell.accuracy * 100).toFixed(d)}${std}</td>`;
  }
  const v = Number.isInteger(cell.blocks) || paper ? String(cell.blocks) : cell.blocks.toFixed(2);
  return `<td class="${paper ? 'paper' : 'ours'}">${v}</td>`;
}

function table1Html(t: Table1Json): string {
  const parts: string[] = [];
  for (const s of t.sections) {
    const title = s.paperBackbone ? `${s.paperBackbone} (${s.backbone})` : s.backbone;
    parts.push(`<h3>${esc(title)} on ${s.dataset === 'cifar10' ? 'CIFAR-10' : 'CIFAR-100'}${s.measuredOn ? ` <small>ours measured on ${esc(s.measuredOn)}</small>` : ''}</h3>`);
    parts.push(
      '<table class="t1"><thead><tr><th rowspan="2">Method</th><th colspan="4">before finetuning</th><th colspan="4">after finetuning</th></tr>' +
        '<tr><th>Acc ours</th><th>Acc paper</th><th>K ours</th><th>K paper</th><th>Acc ours</th><th>Acc paper</th><th>K ours</th><th>K paper</th></tr></thead><tbody>',
    );
    for (const r of s.rows) {
      parts.push(
        `<tr${r.method === 'blockdrop' ? ' class="bd"' : ''}><th>${esc(r.label)}</th>` +
          cellHtml(r.before.ours, 'acc', false) +
          cellHtml(r.before.paper, 'acc', true) +
          cellHtml(r.before.ours, 'k', false) +
          cellHtml(r.before.paper, 'k', true) +
          cellHtml(r.after.ours, 'acc', false) +
          cellHtml(r.after.paper, 'acc', true) +
          cellHtml(r.after.ours, 'k', false) +
          cellHtml(r.after.paper, 'k', true) +
          '</tr>',
      );
    }
    parts.push('</tbody></table>');
  }
  parts.push(`<ul class="notes">${t.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>`);
  return parts.join('\n');
}

function galleryHtml(d: PolicyDecisions, summary: DecisionSummary, set: ImageSet, scale: number): string {
  const blocks = blocksPerImage(d);
  const thumb = (row: number) => {
    const index = d.imageIndices[row]!;
    const wrong = d.correct[row] ? '' : ' wrong';
    return (
      `<figure class="thumb${wrong}"><img src="${imageDataUri(set, index, scale)}" width="${set.width * scale}" height="${set.height * scale}" ` +
      `alt="${esc(d.classes[d.labels[row]!] ?? '')} #${index}"><figcaption>${blocks[row]} blocks${d.correct[row] ? '' : ' ✗'}</figcaption></figure>`
    );
  };
  const rows = summary.extremes.map((e, c) => {
    if (summary.perClassImages[c] === 0) return '';
    return (
      `<tr><th>${esc(d.classes[c] ?? `class ${c}`)}<br><small>${summary.perClassBlocks[c]!.toFixed(2)} blocks avg</small></th>` +
      `<td>${e.fewest.map(thumb).join('')}</td><td>${e.most.map(thumb).join('')}</td></tr>`
    );
  });
  return (
    '<table class="gallery"><thead><tr><th>class</th><th>fewest blocks</th><th>most blocks</th></tr></thead><tbody>' +
    rows.join('') +
    '</tbody></table><p class="caption">Images the policy sends through the fewest and the most residual blocks, per class ' +
    '(the paper\'s qualitative figure). ✗ and a red frame: the ResNet\'s prediction was wrong.</p>'
  );
}

const CSS = `
body{font-family:'DejaVu Sans','Liberation Sans',Arial,Helvetica,sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:34px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}small{color:#666;font-weight:normal}
.meta{color:#555;font-size:13px}.meta li{margin:2px 0}
.kpis{display:flex;flex-wrap:wrap;gap:12px;margin:14px 0}
.kpi{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:120px}
.kpi b{display:block;font-size:20px}.kpi span{font-size:12px;color:#666}
.chart{margin:10px 0 18px;overflow-x:auto}.chart svg{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:13px}
table.t1 th,table.t1 td{border:1px solid #ddd;padding:4px 8px;text-align:right}
table.t1 th{background:#f6f6f6}table.t1 tbody th{text-align:left}
table.t1 td.paper{color:#666;font-style:italic}table.t1 td.na{color:#aaa;text-align:center}
table.t1 tr.bd th,table.t1 tr.bd td.ours{font-weight:bold}
.notes{font-size:12px;color:#555}
table.gallery td,table.gallery th{border-bottom:1px solid #eee;padding:4px 8px;vertical-align:middle;text-align:left}
figure.thumb{display:inline-block;margin:2px 4px;text-align:center}
figure.thumb img{image-rendering:pixelated;border:2px solid #fff;display:block}
figure.thumb.wrong img{border-color:#d62728}
figure.thumb figcaption{font-size:11px;color:#555}
.missing{color:#888;font-style:italic;font-size:13px}
.caption{font-size:12px;color:#555}
footer{margin-top:40px;font-size:12px;color:#888}
`;

/** Renders the report to `outFile` (written atomically). */
export async function renderReport(input: ReportInput, outFile: string, options: RenderReportOptions = {}): Promise<ReportResult> {
  const missing: string[] = [];
  const charts: RenderedChart[] = [];
  const runConfig = input.runDir ? readJson(join(input.runDir, 'config.json')) : undefined;
  const results = input.runDir ? readJson(join(input.runDir, 'results.json')) : undefined;
  if (input.runDir && !existsSync(input.runDir)) {
    throw new BlockdropError(`run directory ${input.runDir} does not exist; pass the --run-dir of a training run`);
  }
  const metrics = input.metrics ?? (input.runDir ? readMetricsFile(join(input.runDir, 'metrics.jsonl')) : []);
  const evaluation = input.evaluation ?? asEvaluation(results?.['test']);

  const addChart = async (name: string, title: string, spec: Parameters<typeof renderSvg>[0]) => {
    const svg = await renderSvg(spec, `${name}-`);
    let pngFile: string | undefined;
    if (options.pngDir) {
      mkdirSync(options.pngDir, { recursive: true });
      pngFile = join(options.pngDir, `${name}.png`);
      await writeFileAtomic(pngFile, await svgToPng(svg));
      await writeFileAtomic(join(options.pngDir, `${name}.svg`), svg);
    }
    const chart: RenderedChart = { name, title, svg, ...(pngFile ? { pngFile } : {}) };
    charts.push(chart);
    return chart;
  };
  const chartHtml = (c: RenderedChart) => `<div class="chart" id="chart-${c.name}">${c.svg}</div>`;

  const sections: string[] = [];

  // headline numbers
  if (evaluation) {
    const kpi = (value: string, label: string) => `<div class="kpi"><b>${esc(value)}</b><span>${esc(label)}</span></div>`;
    const items = [
      kpi(pct(evaluation.accuracy), 'accuracy'),
      kpi(`${evaluation.blocksMean.toFixed(2)}${evaluation.blocksStd !== undefined ? ` ± ${evaluation.blocksStd.toFixed(2)}` : ''}`, 'blocks used'),
    ];
    if (evaluation.flopsMean) {
      items.push(kpi(`${evaluation.flopsMean.toExponential(3)}${evaluation.flopsStd ? ` ± ${evaluation.flopsStd.toExponential(2)}` : ''}`, 'FLOPs / image (policy included)'));
      if (input.fullFlops) items.push(kpi(pct(1 - evaluation.flopsMean / input.fullFlops, 1), `fewer FLOPs than the full ResNet (${input.fullFlops.toExponential(3)})`));
    }
    if (evaluation.distinctPolicies !== undefined) items.push(kpi(String(evaluation.distinctPolicies), 'distinct policies'));
    if (evaluation.images !== undefined) items.push(kpi(String(evaluation.images), 'images evaluated'));
    if (evaluation.imagesPerSecond) items.push(kpi(evaluation.imagesPerSecond.toFixed(0), 'images / s'));
    sections.push(`<section id="summary"><h2>Summary</h2><div class="kpis">${items.join('')}</div></section>`);
  } else missing.push('summary: no evaluation given and no results.json in the run directory');

  // Table 1
  if (input.table) {
    sections.push(`<section id="table1"><h2>Table 1: heuristic baselines vs BlockDrop</h2>${table1Html(tableJson(input.table))}</section>`);
  } else missing.push('Table 1: no table given');

  // trade-off
  if (input.tradeoff && input.tradeoff.length > 0) {
    const all = await addChart('tradeoff', 'Accuracy vs FLOPs', tradeoffSpec(input.tradeoff, { title: 'Accuracy vs FLOPs per image — all points' }));
    const parts = [chartHtml(all)];
    const top = input.tradeoff.filter((p) => p.accuracy >= 0.88);
    if (top.length > 0 && top.length < input.tradeoff.length) {
      parts.push(chartHtml(await addChart('tradeoff-zoom', 'Accuracy vs FLOPs (≥ 88%)', tradeoffSpec(input.tradeoff, { minAccuracy: 0.88, title: "Accuracy ≥ 88% (the paper's Fig. 3 view)" }))));
    }
    sections.push(
      `<section id="tradeoff"><h2>Trade-off (the paper's Figure 3)</h2>${parts.join('')}<p class="caption">` +
        'FLOPs in BlockDrop\'s convention (2 × multiply-accumulates of convolutions and linear layers). BlockDrop points include the policy network; ' +
        'full networks and the FirstK/RandomK/DistributeK baselines have none. Paper points are read off the published plot (approximate); ' +
        'SACT, ACT, LCCL and PFEC are the paper\'s comparison methods. Horizontal bars: ± std of FLOPs over images.</p></section>',
    );
  } else missing.push('trade-off plot: no points given');

  // training curves
  if (metrics.length > 0) {
    const c = await addChart('training-curves', 'Training curves', trainingCurvesSpec(metrics));
    sections.push(`<section id="training"><h2>Training</h2>${chartHtml(c)}<p class="caption">${metrics.length} evaluations from metrics.jsonl.</p></section>`);
  } else missing.push('training curves: no metrics.jsonl');

  // decisions
  if (input.decisions && input.decisions.labels.length > 0) {
    const d = input.decisions;
    const summary = summarizeDecisions(d, options.galleryPerClass ?? 4);
    const heat = await addChart('keep-rate', 'Keep rate per class and block', keepRateHeatmapSpec(summary, d.classes));
    const hist = await addChart('blocks-histogram', 'Blocks used per image', blocksHistogramSpec(summary));
    const parts = [
      `<p class="caption">Decisions of ${esc(d.source)} on ${summary.images} images: accuracy ${pct(summary.accuracy)}, ` +
        `${summary.blocksMean.toFixed(2)} ± ${summary.blocksStd.toFixed(2)} of ${d.k} blocks, ${summary.distinctPolicies} distinct policies.</p>`,
      chartHtml(heat),
      chartHtml(hist),
    ];
    if (input.images) parts.push(`<h3>Fewest and most blocks per class</h3>${galleryHtml(d, summary, input.images, options.thumbnailScale ?? 3)}`);
    else missing.push('gallery: no images given');
    sections.push(`<section id="policy"><h2>What the policy does</h2>${parts.join('')}</section>`);
  } else missing.push('keep-rate map, histogram, gallery: no per-image decisions given');

  const title = input.title ?? 'BlockDrop report';
  const meta: string[] = [];
  if (input.runDir) meta.push(`run directory: <code>${esc(input.runDir)}</code>`);
  if (runConfig) {
    const keys = ['resnet', 'arch', 'penalty', 'batchSize', 'lr', 'seed', 'timeLimitMinutes'].filter((k) => runConfig[k] !== undefined);
    if (keys.length) meta.push(keys.map((k) => `${esc(k)} = ${esc(String(runConfig[k]))}`).join(', '));
  }
  for (const n of input.notes ?? []) meta.push(esc(n));
  if (missing.length) meta.push(`<span class="missing">not shown: ${missing.map(esc).join('; ')}</span>`);
  const html =
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">' +
    `<meta name="viewport" content="width=device-width,initial-scale=1"><title>${esc(title)}</title><style>${CSS}</style></head><body>\n` +
    `<h1>${esc(title)}</h1><ul class="meta">${meta.map((m) => `<li>${m}</li>`).join('')}</ul>\n` +
    sections.join('\n') +
    `\n<footer>Generated by blockdrop on ${esc(options.generatedAt ?? new Date().toISOString())}. Charts: Vega-Lite rendered to SVG. ` +
    'BlockDrop: Wu, Nagarajan, Kumar, Rennie, Davis, Grauman, Feris — CVPR 2018.</footer>\n</body></html>\n';
  await writeFileAtomic(outFile, html);
  return { file: outFile, bytes: Buffer.byteLength(html), charts, missing };
}
