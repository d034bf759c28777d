/**
 * Evaluation: heuristic baselines, Table 1, trade-off points, per-image policy decisions, the engines that run
 * keep masks, and the results writer. (`evaluatePolicy` lives in ./evaluate.ts.)
 */
export {
  BASELINE_FLOPS_CONVENTION,
  BASELINE_KINDS,
  baselineMasks,
  DEFAULT_RANDOMK_SEEDS,
  distributeKPerStage,
  evaluateBaselines,
  evaluateBaselinesOn,
  meanSampleStd,
  staticBaselineMask,
  type BaselineEvaluation,
  type BaselineKind,
  type BaselineMaskOptions,
  type EvaluateBaselinesOnOptions,
  type EvaluateBaselinesOptions,
  type MaskResult,
  type RandomKResult,
  type StaticBaselineResult,
} from './baselines.js';
export {
  blocksPerImage,
  collectDecisions,
  decisionsFromMasks,
  summarizeDecisions,
  type CollectDecisionsOptions,
  type DecisionSummary,
  type PolicyDecisions,
} from './decisions.js';
export { openBackboneEngine, type BackboneEngine, type BackboneEngineOptions, type BackboneRunOptions, type EngineChoice } from './engine.js';
export { writeBaselineResults, type BaselineResults, type BaselineResultsOptions, type Provenance } from './results.js';
export {
  buildTable1,
  PAPER_TABLE1,
  paperBackboneFor,
  paperCells,
  TABLE1_LABELS,
  TABLE1_METHODS,
  table1Section,
  type PolicySummaryLike,
  type Table1,
  type Table1Cell,
  type Table1Dataset,
  type Table1Entry,
  type Table1Json,
  type Table1Method,
  type Table1Row,
  type Table1Section,
} from './table1.js';
export {
  discoverWeights,
  evaluateResNetFamily,
  PAPER_FIG3_CIFAR10,
  tradeoffPoints,
  type BlockDropPointInput,
  type EvaluateFamilyOptions,
  type FamilyEvaluation,
  type FamilyModelResult,
  type PointSource,
  type TradeoffInput,
  type TradeoffPoint,
  type WeightsFile,
} from './tradeoff.js';
