import type { Command } from 'commander';
import { describeAnyCheckpoint } from '../../checkpoint/store.js';
import { canonicalizeResNetKeys, detectPreset } from '../../models/weights.js';
import { printJson } from '../output.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('format, tensors, shapes and dtypes of a checkpoint, and which architecture it matches')
    .argument('<checkpoint>', 'PyTorch (.t7/.th/.pt) or blockdrop safetensors file')
    .option('--json', 'print one JSON object on stdout')
    .action(async (path: string, opts: { json?: boolean }) => {
      const description = await describeAnyCheckpoint(path);
      const matches = description.stateDicts.map((entry) => {
        const detected = detectPreset(entry.tensors);
        let canonicalKeys = 0;
        try {
          canonicalKeys = canonicalizeResNetKeys(entry.tensors).size;
        } catch {
          canonicalKeys = 0;
        }
        return { entry: entry.name, preset: detected?.preset ?? null, reason: detected?.reason ?? 'no known architecture matches', canonicalKeys };
      });
      const report = { ...description.summary, architectures: matches };
      if (opts.json) return printJson(report);
      process.stdout.write(description.text);
      for (const m of matches) {
        process.stdout.write(`architecture of '${m.entry || '(root)'}': ${m.preset ?? 'unknown'} (${m.reason})\n`);
      }
    });
}
