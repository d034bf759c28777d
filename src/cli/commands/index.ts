import type { Command } from 'commander';
import { registerDeploy } from './deploy.js';
import { registerEval } from './eval.js';
import { registerFlops } from './flops.js';
import { registerInspect } from './inspect.js';
import { registerReport } from './report.js';
import { registerRun } from './run.js';
import { registerServe } from './serve.js';
import { registerTrain } from './train.js';

/** Every CLI command, in the order `--help` lists them. */
export function registerCommands(program: Command): void {
  registerRun(program);
  registerInspect(program);
  registerEval(program);
  registerFlops(program);
  registerTrain(program);
  registerDeploy(program);
  registerReport(program);
  registerServe(program);
}
