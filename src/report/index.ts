/** The visual report: charts (Vega-Lite → SVG/PNG) and the self-contained HTML page. */
export {
  blocksHistogramSpec,
  keepRateHeatmapSpec,
  prefixIds,
  renderSvg,
  svgToPng,
  tradeoffSpec,
  trainingCurvesSpec,
  type MetricsRecord,
  type TradeoffSpecOptions,
} from './charts.js';
export {
  imageDataUri,
  readMetricsFile,
  renderReport,
  upscaleNearest,
  type RenderedChart,
  type RenderReportOptions,
  type ReportEvaluation,
  type ReportInput,
  type ReportResult,
} from './html.js';
export { evaluationFromDecisions, reportFromRun, type RunEvaluation, type RunReport, type RunReportOptions } from './run.js';
