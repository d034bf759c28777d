/**
 * `blockdrop run`: the main job with no arguments needed. Each step writes its output into the run directory
 * and is skipped when that output already exists, so an interrupted run continues where it stopped.
 *   1. policy    the project's trained policy (models/), or one trained here within --minutes (resumable)
 *   2. report    evaluation of the policy against the full network and the baselines, the HTML report
 *   3. speed     ONNX export, then the full fused network against the block-skipping executor on the clock
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadCifar10, PACKAGE_ROOT } from '../../data/cifar.js';
import { BlockdropError } from '../../errors.js';
import { BlockDropPool } from '../../executor/pool.js';
import { measureSpeedup, type SpeedMeasurement } from '../../executor/speed.js';
import { exportBlockDrop } from '../../export/onnx.js';
import { loadBackbone } from '../../models/load.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { reportFromRun, runWeights } from '../../report/run.js';
import { trainPolicy } from '../../train/index.js';
import { defaultBackbone } from '../defaults.js';
import { formatPercent, logLine, printJson } from '../output.js';

/** The stage-1 policy for BlockDrop's ResNet-32 that this project trained and committed. */
export const SHIPPED_POLICY = join(PACKAGE_ROOT, 'models', 'blockdrop-resnet32-stage1.safetensors');

const QUICK_SCHEDULE = {
  iterations: 1_000_000, // bounded by the time limit
  batchSize: 64,
  samples: 8,
  baseline: 'samples',
  curriculumEvery: 0,
  lrSchedule: 'constant',
  evalEvery: 100,
} as const;

interface RunOptions {
  resnet?: string;
  runDir: string;
  minutes: number;
  train?: boolean;
  limit?: number;
  json?: boolean;
}

const log = logLine;

export function registerRun(program: Command): void {
  program
    .command('run')
    .description("the main job: BlockDrop on BlockDrop's ResNet-32 — get a policy (shipped or trained within --minutes), evaluate it against the full network and the baselines, write the report")
    .option('--resnet <checkpoint>', "backbone (default: BlockDrop's ResNet-32 in ../shared/data/weights)")
    .option('--run-dir <dir>', 'where everything is written', 'runs/main')
    .option('--minutes <m>', 'training budget when no trained policy is available', (v: string) => Number(v), 10)
    .option('--train', 'train a policy here even if the shipped one is available')
    .option('--limit <n>', 'evaluate on the first n test images only', (v: string) => Number(v))
    .option('--json', 'print the summary as JSON on stdout')
    .action(async (opts: RunOptions) => {
      const resnet = opts.resnet ?? defaultBackbone();
      if (!existsSync(resnet)) {
        throw new BlockdropError(`backbone ${resnet} not found; pass --resnet CHECKPOINT (e.g. blockdrop_R32_C10_pk_E_164_A_0.923.t7)`);
      }
      if (!(opts.minutes > 0)) throw new BlockdropError(`--minutes must be a positive number, got ${opts.minutes}`);
      mkdirSync(opts.runDir, { recursive: true });

      // 1. policy
      const policyFile = join(opts.runDir, 'policy.safetensors');
      const useShipped = !opts.train && opts.resnet === undefined && existsSync(SHIPPED_POLICY);
      if (existsSync(policyFile) && existsSync(join(opts.runDir, 'config.json'))) {
        log(`policy: reusing ${policyFile}`);
      } else if (useShipped) {
        log(`policy: the shipped stage-1 policy ${SHIPPED_POLICY}`);
        copyFileSync(SHIPPED_POLICY, policyFile);
        writeFileSync(join(opts.runDir, 'config.json'), `${JSON.stringify({ resnet, policySource: SHIPPED_POLICY }, null, 2)}\n`);
      } else {
        const resume = existsSync(join(opts.runDir, 'checkpoints'));
        log(`policy: training for up to ${opts.minutes} min in ${opts.runDir}${resume ? ' (resuming)' : ''}`);
        const result = await trainPolicy(
          {
            resnet,
            runDir: opts.runDir,
            resume,
            timeLimitMinutes: opts.minutes,
            testAtEnd: false,
            // The fastest schedule measured so far on this machine (docs/training.md): no curriculum, small
            // batches with 8 sampled policies per image and a leave-one-out baseline; the paper's curriculum
            // advances one block per 7-minute epoch here, far too slow for a first try.
            ...QUICK_SCHEDULE,
          },
          { log },
        );
        if (!result.policyPath) throw new BlockdropError(`training in ${opts.runDir} produced no policy; run again to resume it`);
      }

      // 2. evaluation, baselines and report
      const out = join(opts.runDir, 'report.html');
      const result = await reportFromRun({
        runDir: opts.runDir,
        resnet,
        out,
        limit: opts.limit,
        resultsDir: join(PACKAGE_ROOT, 'results'),
        log,
      });
      // 3. the real speedup: export (skipped when present), then both networks on the same test images
      const speed = await measureRunSpeed(opts.runDir, resnet, opts.limit);
      const e = result.evaluation;
      const summary = {
        backbone: resnet,
        runDir: opts.runDir,
        report: result.report.file,
        accuracy: e.accuracy,
        blocksMean: e.blocksMean,
        blocksStd: e.blocksStd,
        flopsMean: e.flopsMean,
        distinctPolicies: e.distinctPolicies,
        speed,
        table: result.table.json,
      };
      if (opts.json) return printJson(summary);
      process.stdout.write(
        `\n${result.table.markdown}\n` +
          `BlockDrop on ${e.images} test images: ${formatPercent(e.accuracy)} at ${e.blocksMean.toFixed(2)} ± ${e.blocksStd.toFixed(2)} blocks, ` +
          `${e.flopsMean.toExponential(3)} FLOPs per image (policy included), ${e.distinctPolicies} distinct paths\n` +
          `speed (ONNX Runtime, batch ${speed.batchSize}, ${speed.images} test images): full ${speed.full.imagesPerSecond.toFixed(0)} images/s, ` +
          `BlockDrop ${speed.blockdrop.imagesPerSecond.toFixed(0)} images/s: ${speed.speedup.toFixed(2)}× (FLOPs ratio ${speed.flopsRatio.toFixed(3)}, ` +
          `ideal ${speed.idealSpeedup.toFixed(2)}×)\n` +
          `report: ${result.report.file}\n`,
      );
    });
}

/** Step 3 of the main job: `<runDir>/export` (ONNX), then `<runDir>/speed.json`; each skipped when present. */
async function measureRunSpeed(runDir: string, resnet: string, limit?: number): Promise<SpeedMeasurement> {
  const speedFile = join(runDir, 'speed.json');
  if (existsSync(speedFile)) {
    log(`speed: reusing ${speedFile}`);
    return JSON.parse(readFileSync(speedFile, 'utf8')) as SpeedMeasurement;
  }
  const exportDir = join(runDir, 'export');
  if (!existsSync(join(exportDir, 'manifest.json'))) {
    log(`speed: exporting the ONNX models to ${exportDir}`);
    const backbone = await loadBackbone(resnet);
    const weights = await runWeights(runDir);
    await exportBlockDrop({
      arch: backbone.arch,
      normalization: backbone.normalization,
      resnet: weights.resnet ?? backbone.tensors,
      policy: weights.policy,
      outDir: exportDir,
    });
  }
  const test = loadCifar10({ split: 'test' });
  const count = Math.min(test.count, limit ?? 1280, 1280);
  log(`speed: full network vs BlockDrop executor on ${count} test images (5 interleaved rounds)`);
  // The pool (one ORT thread per worker, batches split between them) is the executor's fastest arrangement for
  // batches on this kind of machine, for the full network as for BlockDrop (docs/executor.md).
  const model = await BlockDropPool.load(exportDir);
  try {
    const speed = await measureSpeedup(model, test.images.subarray(0, count * 32 * 32 * 3), count);
    await writeFileAtomic(speedFile, `${JSON.stringify(speed, null, 2)}\n`);
    return speed;
  } finally {
    await model.release();
  }
}
