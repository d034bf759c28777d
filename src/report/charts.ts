/**
 * The report's charts as Vega-Lite specifications, compiled and rendered to SVG in Node by Vega (headless,
 * no browser, no network: every spec carries its data inline), and to PNG by resvg for READMEs.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { DecisionSummary } from '../eval/decisions.js';
import type { TradeoffPoint } from '../eval/tradeoff.js';
import { BlockdropError } from '../errors.js';

/** One line of metrics.jsonl, as far as the charts need it (the trainer's EvalRecord fits). */
export interface MetricsRecord {
  readonly iteration: number;
  readonly epoch?: number;
  readonly trainReward?: number | null;
  readonly valReward?: number | null;
  readonly trainAccuracy?: number | null;
  readonly valAccuracy?: number | null;
  readonly trainBlocks?: number | null;
  readonly valBlocksMean?: number | null;
  readonly valDistinctPolicies?: number | null;
}

const FONT = 'DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif';

const CONFIG = {
  font: FONT,
  background: 'white',
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#eee' },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 320 },
  title: { fontSize: 14, anchor: 'start' as const },
};

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

// ---------------------------------------------------------------------------------------------------
// specifications

const CURVE_PANELS: readonly { panel: string; series: string; key: keyof MetricsRecord; scale?: number }[] = [
  { panel: 'reward', series: 'train (sampled policy)', key: 'trainReward' },
  { panel: 'reward', series: 'validation (greedy)', key: 'valReward' },
  { panel: 'accuracy (%)', series: 'train (greedy)', key: 'trainAccuracy', scale: 100 },
  { panel: 'accuracy (%)', series: 'validation (greedy)', key: 'valAccuracy', scale: 100 },
  { panel: 'blocks used', series: 'train (greedy)', key: 'trainBlocks' },
  { panel: 'blocks used', series: 'validation (greedy)', key: 'valBlocksMean' },
  { panel: 'distinct policies', series: 'validation (greedy)', key: 'valDistinctPolicies' },
];

/** Training curves: reward, accuracy, blocks and distinct policies against the iteration. */
export function trainingCurvesSpec(metrics: readonly MetricsRecord[]): TopLevelSpec {
  const values: { iteration: number; panel: string; series: string; value: number }[] = [];
  for (const m of metrics) {
    for (const p of CURVE_PANELS) {
      const v = m[p.key];
      if (typeof v === 'number' && Number.isFinite(v)) values.push({ iteration: m.iteration, panel: p.panel, series: p.series, value: v * (p.scale ?? 1) });
    }
  }
  return {
    $schema: SCHEMA,
    title: 'Training curves',
    data: { values },
    facet: { field: 'panel', type: 'nominal', title: null, sort: ['reward', 'accuracy (%)', 'blocks used', 'distinct policies'] },
    columns: 2,
    spec: {
      width: 320,
      height: 170,
      mark: { type: 'line', point: metrics.length <= 40, strokeWidth: 1.8 },
      encoding: {
        x: { field: 'iteration', type: 'quantitative', title: 'iteration' },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
        color: { field: 'series', type: 'nominal', title: null, scale: { domain: ['train (sampled policy)', 'train (greedy)', 'validation (greedy)'] } },
      },
    },
    resolve: { scale: { y: 'independent' } },
    config: CONFIG,
  } as TopLevelSpec;
}

export interface TradeoffSpecOptions {
  readonly title?: string;
  /** Only points with at least this accuracy (fraction), e.g. 0.88 for the paper's view. */
  readonly minAccuracy?: number;
  readonly width?: number;
  readonly height?: number;
}

/** Fixed colours, so a series looks the same in every chart and report: BlockDrop red, ResNets blue, baselines warm, others muted. */
const SERIES_COLOURS: Readonly<Record<string, string>> = {
  BlockDrop: '#d62728',
  ResNet: '#1f77b4',
  'ResNet (akamaster)': '#6baed6',
  'ResNet (BlockDrop ckpt)': '#08306b',
  FirstK: '#ff7f0e',
  RandomK: '#9467bd',
  DistributeK: '#8c564b',
  SACT: '#2ca02c',
  ACT: '#98df8a',
  LCCL: '#e377c2',
  PFEC: '#bcbd22',
};
const SPARE_COLOURS = ['#17becf', '#7f7f7f', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#dbdb8d', '#9edae5'];

function seriesColour(series: string, index: number): string {
  return SERIES_COLOURS[series] ?? SPARE_COLOURS[index % SPARE_COLOURS.length]!;
}

/** Accuracy (%) against FLOPs (×10⁸): our points filled circles and solid lines, the paper's triangles and dashes. */
export function tradeoffSpec(points: readonly TradeoffPoint[], options: TradeoffSpecOptions = {}): TopLevelSpec {
  const min = options.minAccuracy ?? 0;
  // Colours by name (spares by position among every point), so that a zoomed view keeps the full one's colours.
  const seriesDomain = [...new Set(points.map((p) => p.series))];
  const values = points
    .filter((p) => p.accuracy >= min)
    .map((p) => ({
      series: p.series,
      source: p.source === 'ours' ? 'ours (measured)' : "paper (read off Fig. 3)",
      key: `${p.series} · ${p.source}${p.curve ? ` · ${p.curve}` : ''}`,
      label: p.label,
      flops: p.flops / 1e8,
      flopsLo: (p.flops - (p.flopsStd ?? 0)) / 1e8,
      flopsHi: (p.flops + (p.flopsStd ?? 0)) / 1e8,
      hasStd: (p.flopsStd ?? 0) > 0,
      // Only the ends of the paper's SACT and ACT curves are known: a straight line between them would invent the rest.
      connect: !(p.source === 'paper' && (p.series === 'SACT' || p.series === 'ACT')),
      accuracy: p.accuracy * 100,
    }));
  const present = seriesDomain.filter((series) => values.some((v) => v.series === series));
  const color = {
    field: 'series',
    type: 'nominal',
    title: 'method / family',
    scale: { domain: present, range: present.map((series) => seriesColour(series, seriesDomain.indexOf(series))) },
  };
  const x = { field: 'flops', type: 'quantitative', title: 'FLOPs per image (×10⁸)', scale: { zero: false, nice: true } };
  const y = { field: 'accuracy', type: 'quantitative', title: 'accuracy (%)', scale: { zero: false } };
  return {
    $schema: SCHEMA,
    title: options.title ?? 'Accuracy vs FLOPs (CIFAR-10)',
    width: options.width ?? 560,
    height: options.height ?? 340,
    data: { values },
    layer: [
      {
        transform: [{ filter: 'datum.hasStd' }],
        mark: { type: 'rule', strokeWidth: 1.2 },
        encoding: { x: { ...x, field: 'flopsLo' }, x2: { field: 'flopsHi' }, y, color },
      },
      {
        transform: [{ filter: 'datum.connect' }],
        mark: { type: 'line', strokeWidth: 1.5 },
        encoding: {
          x,
          y,
          color,
          detail: { field: 'key', type: 'nominal' },
          strokeDash: { field: 'source', type: 'nominal', title: 'source', scale: { domain: ['ours (measured)', 'paper (read off Fig. 3)'], range: [[1, 0], [5, 3]] } },
          order: { field: 'flops', type: 'quantitative' },
        },
      },
      {
        mark: { type: 'point', filled: true, size: 70, opacity: 0.9 },
        encoding: {
          x,
          y,
          color,
          shape: { field: 'source', type: 'nominal', title: 'source', scale: { domain: ['ours (measured)', 'paper (read off Fig. 3)'], range: ['circle', 'triangle-up'] } },
        },
      },
    ],
    resolve: { legend: { strokeDash: 'shared' } },
    config: CONFIG,
  } as TopLevelSpec;
}

/** Per-class × per-block keep rate. */
export function keepRateHeatmapSpec(summary: DecisionSummary, classes: readonly string[]): TopLevelSpec {
  const K = summary.classBlockKeepRate[0]?.length ?? 0;
  const values = summary.classBlockKeepRate.flatMap((row, c) => row.map((rate, t) => ({ block: t, class: classes[c] ?? `class ${c}`, rate })));
  const labelled = K <= 20;
  return {
    $schema: SCHEMA,
    title: 'Keep rate per class and block',
    width: Math.max(240, Math.min(760, K * 36)),
    height: classes.length * 22,
    data: { values },
    encoding: {
      x: { field: 'block', type: 'ordinal', title: 'residual block (forward order)' },
      y: { field: 'class', type: 'nominal', title: null, sort: [...classes] },
    },
    layer: [
      {
        mark: 'rect',
        encoding: { color: { field: 'rate', type: 'quantitative', title: 'keep rate', scale: { domain: [0, 1], scheme: 'viridis' } } },
      },
      ...(labelled
        ? [
            {
              mark: { type: 'text', fontSize: 9 },
              encoding: {
                text: { field: 'rate', type: 'quantitative', format: '.2f' },
                color: { condition: { test: 'datum.rate > 0.6', value: 'black' }, value: 'white' },
              },
            },
          ]
        : []),
    ],
    config: CONFIG,
  } as TopLevelSpec;
}

/** Histogram of the number of blocks each image executes. */
export function blocksHistogramSpec(summary: DecisionSummary): TopLevelSpec {
  const values = summary.histogram.map((images, blocks) => ({ blocks, images }));
  return {
    $schema: SCHEMA,
    title: `Blocks used per image (mean ${summary.blocksMean.toFixed(2)} ± ${summary.blocksStd.toFixed(2)})`,
    width: Math.max(240, Math.min(640, values.length * 22)),
    height: 200,
    data: { values },
    mark: { type: 'bar', color: '#4c78a8' },
    encoding: {
      x: { field: 'blocks', type: 'ordinal', title: 'blocks executed', axis: { labelAngle: 0 } },
      y: { field: 'images', type: 'quantitative', title: 'images' },
    },
    config: CONFIG,
  } as TopLevelSpec;
}

// ---------------------------------------------------------------------------------------------------
// rendering

/**
 * Renders a spec to a standalone SVG string. `idPrefix` makes the SVG's internal ids (clip paths, gradients)
 * unique, so that several charts can be inlined in one HTML page.
 */
export async function renderSvg(spec: TopLevelSpec, idPrefix = ''): Promise<string> {
  let view: vega.View | undefined;
  try {
    const compiled = compile(spec).spec;
    view = new vega.View(vega.parse(compiled), { renderer: 'none', logLevel: vega.Error });
    const svg = await view.toSVG();
    return idPrefix ? prefixIds(svg, idPrefix) : svg;
  } catch (e) {
    throw new BlockdropError(`cannot render chart '${spec.title ? String(typeof spec.title === 'string' ? spec.title : '') : idPrefix}': ${(e as Error).message}`, { cause: e });
  } finally {
    view?.finalize();
  }
}

/** Renames every id="x" to id="<prefix>x" and its references url(#x) / href="#x". */
export function prefixIds(svg: string, prefix: string): string {
  const ids = new Set<string>();
  for (const m of svg.matchAll(/\sid="([^"]+)"/g)) ids.add(m[1]!);
  if (ids.size === 0) return svg;
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const alt = [...ids].map(esc).join('|');
  return svg
    .replace(new RegExp(`(\\sid=")(${alt})"`, 'g'), `$1${prefix}$2"`)
    .replace(new RegExp(`url\\(#(${alt})\\)`, 'g'), `url(#${prefix}$1)`)
    .replace(new RegExp(`(href=")#(${alt})"`, 'g'), `$1#${prefix}$2"`);
}

/** SVG → PNG bytes with resvg (scale 2 by default, white background). */
export async function svgToPng(svg: string, scale = 2): Promise<Uint8Array> {
  let Resvg: typeof import('@resvg/resvg-js').Resvg;
  try {
    ({ Resvg } = await import('@resvg/resvg-js'));
  } catch (e) {
    throw new BlockdropError(`PNG export needs @resvg/resvg-js with its prebuilt binary for this platform (${(e as Error).message}); reinstall the package`, { cause: e });
  }
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return r.render().asPng();
}
