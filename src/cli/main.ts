/**
 * The `blockdrop` command line. Each command lives in ./commands and only calls the library;
 * the library never imports from here.
 */
import { Command, CommanderError } from 'commander';
import { isBlockdropError } from '../errors.js';
import { registerCommands } from './commands/index.js';

export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command();
  program
    .name('blockdrop')
    .description('BlockDrop: dynamic inference paths in residual networks (Wu et al., CVPR 2018), in TypeScript')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerCommands(program);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has already printed its message (or the help text)
      return err.exitCode;
    }
    if (isBlockdropError(err)) {
      process.stderr.write(`blockdrop: ${err.message}\n`);
      return 1;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`blockdrop: unexpected error: ${message}\n`);
    if (process.env.BLOCKDROP_DEBUG) process.stderr.write(`${err instanceof Error ? err.stack : ''}\n`);
    else process.stderr.write('blockdrop: set BLOCKDROP_DEBUG=1 for a stack trace, and please report this\n');
    return 2;
  }
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
