import type { Command } from 'commander';
import { blockCount, getPreset, policyArchFor } from '../../models/config.js';
import { blockFlops, policyFlops, resnetFlops, stemAndHeadFlops } from '../../models/flops.js';
import { printJson } from '../output.js';

export function registerFlops(program: Command): void {
  program
    .command('flops')
    .description("FLOPs per image of a backbone and of its BlockDrop policy network (the paper's convention: 2 x MACs of conv and linear layers)")
    .requiredOption('--arch <name>', 'architecture preset, e.g. resnet32, resnet110, resnet56a, resnet50, resnet101')
    .option('--json', 'print one JSON object on stdout')
    .action((opts: { arch: string; json?: boolean }) => {
      const { arch } = getPreset(opts.arch);
      const flops = resnetFlops(arch);
      const policy = policyFlops(arch);
      const policyArch = policyArchFor(arch);
      const result = {
        arch: opts.arch,
        blocks: blockCount(arch),
        flops,
        policyFlops: policy,
        policyArch: policyArch.name,
        policyInputSize: policyArch.inputSize,
        policyShare: policy / flops,
        blockFlops: blockFlops(arch),
        alwaysPaid: stemAndHeadFlops(arch),
      };
      if (opts.json) return printJson(result);
      process.stdout.write(
        `${opts.arch}: ${result.blocks} residual blocks\n` +
          `  full network   ${flops.toExponential(4)} FLOPs\n` +
          (result.alwaysPaid.shortcuts > 0
            ? `  paid by every policy: stem ${result.alwaysPaid.stem.toExponential(3)}, projection shortcuts ${result.alwaysPaid.shortcuts.toExponential(3)}, head ${result.alwaysPaid.head.toExponential(3)}\n`
            : '') +
          `  policy ${policyArch.name} at ${policyArch.inputSize}×${policyArch.inputSize} ${policy.toExponential(4)} FLOPs (${(100 * result.policyShare).toFixed(1)}% of the full network)\n`,
      );
    });
}
