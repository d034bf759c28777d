import { Command, InvalidArgumentError, Option } from 'commander';
import {
  defaultStage1Config,
  defaultStage2Config,
  finetune,
  stage1Flags,
  stage2Flags,
  trainPolicy,
  type ConfigFlag,
  type TrainProgress,
  type TrainResult,
} from '../../train/index.js';
import { formatPercent, printJson } from '../output.js';
import { progressBar, type ProgressBar } from '../progress.js';

function parserFor<C>(flag: ConfigFlag<C>): ((value: string) => number) | undefined {
  if (flag.type !== 'number' && flag.type !== 'int') return undefined;
  return (value: string) => {
    const n = Number(value);
    if (!Number.isFinite(n) || (flag.type === 'int' && !Number.isInteger(n))) {
      throw new InvalidArgumentError(`expected ${flag.type === 'int' ? 'an integer' : 'a number'}, got '${value}'`);
    }
    return n;
  };
}

/** Commander options from the trainer's flag table; defaults shown in --help come from the config object. */
function addConfigOptions<C extends object>(command: Command, flags: readonly ConfigFlag<C>[], defaults: C): void {
  for (const flag of flags) {
    const fallback = defaults[flag.key];
    const showDefault = flag.type !== 'boolean' && fallback !== '' && fallback !== undefined;
    const option = new Option(flag.flag, flag.help + (showDefault ? ` (default: ${String(fallback)})` : ''));
    if (flag.choices) option.choices([...flag.choices]);
    const parse = parserFor(flag);
    if (parse) option.argParser(parse);
    if (flag.required) option.makeOptionMandatory();
    command.addOption(option);
  }
}

/** Options as commander parsed them → a partial config (only what the user gave). */
function configFromOptions<C extends object>(flags: readonly ConfigFlag<C>[], opts: Record<string, unknown>): Partial<C> {
  const config: Record<string, unknown> = {};
  for (const flag of flags) {
    const name = new Option(flag.flag).attributeName();
    const value = opts[name];
    if (value === undefined) continue;
    config[flag.key] = value;
  }
  return config as Partial<C>;
}

function progressReporter(): { onProgress(p: TrainProgress): void; log(m: string): void; stop(): void } {
  let bar: ProgressBar | undefined;
  let total = 0;
  const format = '{phase} lr {lr} reward {reward} acc {acc} blocks {blocks} {ips} img/s';
  return {
    onProgress(p) {
      if (!bar || total !== p.totalIterations) {
        bar?.stop();
        total = p.totalIterations;
        bar = progressBar('train', total, format);
      }
      bar.update(p.iteration, {
        phase: p.phase,
        lr: p.lr.toExponential(1),
        reward: p.reward.toFixed(3),
        acc: formatPercent(p.accuracy, 1),
        blocks: p.blocks.toFixed(2),
        ips: p.imagesPerSecond.toFixed(0),
      });
    },
    log(message) {
      bar?.stop();
      bar = undefined;
      process.stderr.write(`${message}\n`);
    },
    stop() {
      bar?.stop();
    },
  };
}

/** Ctrl-C stops after the current step with a checkpoint to --resume from; a second Ctrl-C quits at once. */
function abortOnSigint(): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const handler = (): void => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\nstopping after this step (a checkpoint is written; continue with --resume)…\n');
    controller.abort();
  };
  process.on('SIGINT', handler);
  return { signal: controller.signal, release: () => process.off('SIGINT', handler) };
}

function printResult(result: TrainResult, json: boolean | undefined): void {
  if (json) return printJson(result);
  const lines = [`run ${result.runDir}: ${result.iterations} iterations, ${(result.elapsedSeconds / 60).toFixed(1)} min, stopped: ${result.stoppedBy}`];
  if (result.best) {
    lines.push(
      `  best on validation: accuracy ${formatPercent(result.best.valAccuracy)}, blocks ${result.best.valBlocksMean.toFixed(2)}, iteration ${result.best.iteration}`,
    );
  }
  if (result.test) {
    lines.push(
      `  test (once, best checkpoint): accuracy ${formatPercent(result.test.accuracy)}, blocks ${result.test.blocksMean.toFixed(2)} ± ${result.test.blocksStd.toFixed(2)}, FLOPs ${result.test.flopsMean.toExponential(3)}, ${result.test.distinctPolicies} distinct policies`,
    );
  }
  if (result.policyPath) lines.push(`  policy: ${result.policyPath}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

type Trainer<C> = (config: C, hooks: Parameters<typeof trainPolicy>[1]) => Promise<TrainResult>;

/** One training command: options from the trainer's flag table, a progress bar, Ctrl-C to stop with a checkpoint. */
function trainingCommand<C extends object>(
  program: Command,
  name: string,
  description: string,
  flags: readonly ConfigFlag<C>[],
  defaults: C,
  train: Trainer<C>,
): void {
  const command = program.command(name).description(description);
  addConfigOptions(command, flags, defaults);
  command.option('--json', 'print the result as one JSON object on stdout');
  command.action(async (opts: Record<string, unknown>) => {
    const reporter = progressReporter();
    const abort = abortOnSigint();
    try {
      const result = await train(configFromOptions(flags, opts) as C, { onProgress: reporter.onProgress, log: reporter.log, signal: abort.signal });
      reporter.stop();
      printResult(result, opts['json'] === true);
    } finally {
      reporter.stop();
      abort.release();
    }
  });
}

export function registerTrain(program: Command): void {
  trainingCommand(program, 'train-policy', 'stage 1: learn the policy with curriculum REINFORCE, the ResNet frozen', stage1Flags, defaultStage1Config, trainPolicy as Trainer<typeof defaultStage1Config>);
  trainingCommand(program, 'finetune', 'stage 2: train the policy and the ResNet jointly', stage2Flags, defaultStage2Config, finetune as Trainer<typeof defaultStage2Config>);
}
