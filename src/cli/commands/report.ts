import { join } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { evaluateBaselines } from '../../eval/baselines.js';
import { writeBaselineResults } from '../../eval/results.js';
import { reportFromRun } from '../../report/run.js';
import { weightsDirDefault } from '../defaults.js';
import { formatPercent, logLine, positiveInt, printJson, probabilityList } from '../output.js';
import { progressBar } from '../progress.js';

function seedList(value: string): number[] {
  const seeds = value.split(',').map((s) => Number(s.trim()));
  if (seeds.length === 0 || seeds.some((s) => !Number.isInteger(s))) {
    throw new InvalidArgumentError(`expected comma-separated integer seeds, got '${value}'`);
  }
  return seeds;
}

const log = logLine;

export function registerReport(program: Command): void {
  program
    .command('baselines')
    .description('FirstK, RandomK (mean ± std over seeds) and DistributeK at a block budget k, and the full network')
    .requiredOption('--resnet <checkpoint>', 'backbone checkpoint')
    .option('--arch <name>', 'architecture preset (detected when omitted)')
    .requiredOption('--k <blocks>', 'blocks each baseline keeps', positiveInt('--k'))
    .option('--seeds <list>', 'RandomK seeds', seedList, [0, 1, 2, 3, 4])
    .option('--data <dir>', 'CIFAR-10 directory')
    .option('--split <name>', 'test or val', 'test')
    .option('--limit <n>', 'only the first n images', positiveInt('--limit'))
    .option('--json', 'print one JSON object on stdout')
    .action(async (opts: { resnet: string; arch?: string; k: number; seeds: number[]; data?: string; split: 'test' | 'val'; limit?: number; json?: boolean }) => {
      let bar: ReturnType<typeof progressBar> | undefined;
      const [result] = await evaluateBaselines({
        backbone: opts.resnet,
        arch: opts.arch,
        k: opts.k,
        seeds: opts.seeds,
        split: opts.split,
        limit: opts.limit,
        dataDir: opts.data,
        log,
        onProgress: (done, total) => {
          bar ??= progressBar('baselines', total);
          bar.update(done);
        },
      });
      bar?.stop();
      if (opts.json) return printJson(result);
      const r = result!;
      const row = (name: string, acc: string, blocks: number, flops: number): string =>
        `  ${name.padEnd(12)} ${acc.padStart(16)}  ${blocks.toFixed(2).padStart(6)}  ${flops.toExponential(3)}\n`;
      process.stdout.write(
        `${r.backbone.preset}, k = ${r.k} of ${r.K} blocks, ${r.images} ${r.split} images (FLOPs: backbone only)\n` +
          `  ${'method'.padEnd(12)} ${'accuracy'.padStart(16)}  ${'blocks'.padStart(6)}  FLOPs\n` +
          row('FirstK', formatPercent(r.firstK.accuracy), r.firstK.blocksMean, r.firstK.flopsMean) +
          row('RandomK', `${formatPercent(r.randomK.accuracyMean)} ± ${(100 * r.randomK.accuracyStd).toFixed(2)}`, r.randomK.blocksMean, r.randomK.flopsMean) +
          row('DistributeK', formatPercent(r.distributeK.accuracy), r.distributeK.blocksMean, r.distributeK.flopsMean) +
          (r.full ? row('Full', formatPercent(r.full.accuracy), r.full.blocksMean, r.full.flopsMean) : ''),
      );
    });

  program
    .command('table1')
    .description("the paper's Table 1 (FirstK, RandomK, DistributeK, BlockDrop, full ResNet) with the paper's numbers beside ours, plus the Figure-3 points; Markdown + JSON")
    .option('--weights <dir>', 'directory of the pretrained checkpoints', weightsDirDefault())
    .option('--out <dir>', 'where to write table1.md, table1.json, tradeoff.json and the JSON they come from', 'results')
    .option('--k <blocks>', 'block budget of the baselines', positiveInt('--k'), 10)
    .option('--seeds <list>', 'RandomK seeds', seedList, [0, 1, 2, 3, 4])
    .option('--data <dir>', 'CIFAR-10 directory')
    .option('--limit <n>', 'only the first n test images', positiveInt('--limit'))
    .option('--policy <checkpoint>', "a stage-1 policy for BlockDrop's ResNet-32: the BlockDrop row before finetuning")
    .option('--finetuned <run-dir>', "a finetune run directory (its resnet.safetensors and policy.safetensors): the BlockDrop row after finetuning")
    .option('--thresholds <list>', 'also evaluate those policies at these thresholds (e.g. 0.3,0.4,0.6,0.7): more trade-off points', probabilityList('--thresholds', { open: true }), [])
    .option('--no-all-backbones', 'only the main backbone (default: a section for every checkpoint in --weights)')
    .option('--json', 'print the table as JSON on stdout')
    .action(async (opts: { weights: string; out: string; k: number; seeds: number[]; data?: string; limit?: number; json?: boolean; policy?: string; finetuned?: string; thresholds: number[]; allBackbones: boolean }) => {
      const extra = [
        opts.policy ? ` --policy ${opts.policy}` : '',
        opts.finetuned ? ` --finetuned ${opts.finetuned}` : '',
        opts.thresholds.length > 0 ? ` --thresholds ${opts.thresholds.join(',')}` : '',
        opts.allBackbones ? '' : ' --no-all-backbones',
      ].join('');
      const result = await writeBaselineResults({
        weightsDir: opts.weights,
        outDir: opts.out,
        dataDir: opts.data,
        k: opts.k,
        seeds: opts.seeds,
        limit: opts.limit,
        policy: opts.policy,
        finetuned: opts.finetuned ? { resnet: join(opts.finetuned, 'resnet.safetensors'), policy: join(opts.finetuned, 'policy.safetensors') } : undefined,
        thresholds: opts.thresholds,
        allBackbones: opts.allBackbones,
        command: `blockdrop table1 --weights ${opts.weights} --out ${opts.out} --k ${opts.k}${extra}`,
        log,
      });
      if (opts.json) return printJson(result.table.json);
      process.stdout.write(`${result.table.markdown}\nwrote ${result.files.join(', ')}\n`);
    });

  program
    .command('report')
    .description('one self-contained HTML report of a training run: curves, trade-off plot, keep-rate heatmap, block histogram, easiest/hardest images, Table 1')
    .argument('<run-dir>', 'a directory written by train-policy or finetune')
    .option('--out <file>', 'HTML file to write (default: RUN_DIR/report.html)')
    .option('--png <dir>', 'also write every chart as PNG (and SVG) into this directory')
    .option('--results <dir>', 'directory with resnet-family.json for the trade-off plot', 'results')
    .option('--split <name>', 'test or val', 'test')
    .option('--limit <n>', 'only the first n images', positiveInt('--limit'))
    .option('--no-baselines', 'skip the baselines at the policy\'s block budget')
    .option('--json', 'print the evaluation as JSON on stdout')
    .action(async (runDir: string, opts: { out?: string; png?: string; results: string; split: 'test' | 'val'; limit?: number; baselines: boolean; json?: boolean }) => {
      const result = await reportFromRun({
        runDir,
        out: opts.out,
        pngDir: opts.png,
        resultsDir: opts.results,
        split: opts.split,
        limit: opts.limit,
        baselines: opts.baselines,
        log,
      });
      if (opts.json) return printJson({ report: result.report.file, evaluation: result.evaluation, table: result.table.json });
      const e = result.evaluation;
      process.stdout.write(
        `${result.table.markdown}\n` +
          `BlockDrop: ${formatPercent(e.accuracy)} at ${e.blocksMean.toFixed(2)} ± ${e.blocksStd.toFixed(2)} blocks, ${e.flopsMean.toExponential(3)} FLOPs, ${e.distinctPolicies} distinct paths\n` +
          `report: ${result.report.file}\n`,
      );
    });
}
