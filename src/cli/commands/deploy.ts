import { basename } from 'node:path';
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { decodeImageFile, decodeImageRgb } from '../../data/image.js';
import { evalTransform, RESIZE_SIZE, scanImageFolder } from '../../data/imagefolder.js';
import { evaluateImageFolder } from '../../eval/folder.js';
import { BlockdropError } from '../../errors.js';
import { exportBlockDrop } from '../../export/onnx.js';
import { BlockDropModel } from '../../executor/model.js';
import { BlockDropPool } from '../../executor/pool.js';
import { CIFAR10_CLASSES, blockCount } from '../../models/config.js';
import { loadBackbone } from '../../models/load.js';
import { loadPolicyWeights } from '../../train/index.js';
import { formatPercent, printJson, probability } from '../output.js';
import { progressBar } from '../progress.js';

/** ImageNet evaluation preprocessing: shorter side 256 (scaled for other input sides), centre crop. */
function decodeEvalImage(file: string, side: number): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new BlockdropError(`${file}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? String(e)}); check the path`);
  }
  return evalTransform(decodeImageRgb(bytes, file), Math.round((side * RESIZE_SIZE) / 224), side);
}

export function registerDeploy(program: Command): void {
  program
    .command('export')
    .description('write ONNX models (policy, stem, blocks, head, fused full network; batch norm folded) and a manifest')
    .requiredOption('--resnet <checkpoint>', 'backbone checkpoint (PyTorch or blockdrop safetensors)')
    .option('--arch <name>', 'architecture preset (detected when omitted)')
    .option('--policy <checkpoint>', 'trained policy (blockdrop policy.safetensors, a run checkpoint or an original BlockDrop agent)')
    .requiredOption('--out <dir>', 'output directory (written to a temporary directory, then renamed)')
    .option('--json', 'print the manifest as JSON on stdout')
    .action(async (opts: { resnet: string; arch?: string; policy?: string; out: string; json?: boolean }) => {
      const backbone = await loadBackbone(opts.resnet, { arch: opts.arch });
      const policy = opts.policy ? await loadPolicyWeights(opts.policy) : undefined;
      const result = await exportBlockDrop({
        arch: backbone.arch,
        normalization: backbone.normalization,
        resnet: backbone.tensors,
        policy,
        outDir: opts.out,
      });
      if (opts.json) return printJson(result.manifest);
      const files = Object.keys(result.manifest.files).length;
      process.stdout.write(
        `exported ${backbone.preset} (K = ${blockCount(backbone.arch)})${policy ? ' with its policy' : ' without a policy'}: ${files} files in ${result.dir}\n`,
      );
    });

  program
    .command('predict')
    .description('classify PNG/JPEG images with an exported BlockDrop model, running only the blocks the policy keeps')
    .argument('<dir>', "directory written by 'blockdrop export'")
    .argument('<images...>', 'PNG or JPEG files (CIFAR models: resized to 32×32; ImageNet models: shorter side 256, centre crop 224)')
    .option('--keep-rate <p>', 'synthetic policy: keep each block with probability p (seeded), for exports without a policy', probability('--keep-rate'))
    .option('--seed <n>', 'seed of the synthetic policy', (v: string) => Number(v), 0)
    .option('--json', 'print one JSON object on stdout')
    .action(async (dir: string, images: string[], opts: { keepRate?: number; seed: number; json?: boolean }) => {
      const model = await BlockDropModel.load(dir, { keepRate: opts.keepRate, seed: opts.seed });
      try {
        const side = model.manifest.architecture.inputSize;
        const decoded = images.map((file) => (side === 32 ? decodeImageFile(file) : { rgb: decodeEvalImage(file, side) }));
        const batch = new Uint8Array(decoded.length * side * side * 3);
        decoded.forEach((d, i) => batch.set(d.rgb, i * side * side * 3));
        const out = await model.predict(batch);
        const k = out.keep.length / decoded.length;
        const numClasses = out.probabilities.length / decoded.length;
        const classNames = model.manifest.classNames ?? CIFAR10_CLASSES;
        const rows = images.map((file, i) => ({
          file,
          class: out.classes[i]!,
          label: classNames[out.classes[i]!] ?? String(out.classes[i]),
          confidence: out.probabilities[i * numClasses + out.classes[i]!]!,
          blocksUsed: out.blocksUsed[i]!,
          keep: Array.from(out.keep.subarray(i * k, (i + 1) * k)).join(''),
          flops: out.flops[i]!,
        }));
        if (opts.json) return printJson({ model: dir, images: rows });
        for (const r of rows) {
          process.stdout.write(
            `${basename(r.file)}: ${r.label} (${(100 * r.confidence).toFixed(1)}%), blocks ${r.blocksUsed}/${k} [${r.keep}], ${r.flops.toExponential(3)} FLOPs\n`,
          );
        }
      } finally {
        await model.release();
      }
    });

  program
    .command('eval-folder')
    .description('accuracy, blocks and FLOPs of an exported model on a folder of class subfolders of PNG/JPEG images (ImageNet val/ layout)')
    .argument('<dir>', "directory written by 'blockdrop export'")
    .argument('<folder>', 'image folder: one subfolder per class (named after the model\'s classes, or in its class order)')
    .option('--limit <n>', 'only the first n images', (v: string) => Number(v))
    .option('--batch-size <n>', 'images per batch', (v: string) => Number(v), 16)
    .option('--keep-rate <p>', 'synthetic policy: keep each block with probability p (seeded), for exports without a policy', probability('--keep-rate'))
    .option('--skip-unreadable', 'count and skip files that fail to decode instead of stopping')
    .option('--json', 'print one JSON object on stdout')
    .action(async (dir: string, folder: string, opts: { limit?: number; batchSize: number; keepRate?: number; skipUnreadable?: boolean; json?: boolean }) => {
      const index = scanImageFolder(folder);
      const model = await BlockDropPool.load(dir, { keepRate: opts.keepRate });
      const total = Math.min(index.samples.length, opts.limit ?? Infinity);
      const bar = progressBar('eval', total);
      try {
        const e = await evaluateImageFolder(model, index, {
          batchSize: opts.batchSize,
          limit: opts.limit,
          skipUnreadable: opts.skipUnreadable,
          onProgress: (done) => bar.update(done),
        }).catch((err: unknown) => {
          // A file that does not decode stops the run; say how to go on without it.
          if (err instanceof BlockdropError && !opts.skipUnreadable && /image/.test(err.message)) {
            throw new BlockdropError(`${err.message}; pass --skip-unreadable to count and skip such files`);
          }
          throw err;
        });
        bar.stop();
        if (opts.json) return printJson({ folder, classes: index.classes.length, ...e });
        process.stdout.write(
          `${e.images} images, ${index.classes.length} classes (labels ${e.labels}): top-1 ${formatPercent(e.accuracy)}, ` +
            `${e.blocksMean.toFixed(2)} ± ${e.blocksStd.toFixed(2)} blocks, ${e.flopsMean.toExponential(3)} FLOPs per image ` +
            `(${(e.flopsMean / e.flopsFull).toFixed(3)} of the full network), ${e.distinctPolicies} distinct paths, ` +
            `${e.imagesPerSecond.toFixed(1)} images/s${e.skipped ? `, ${e.skipped} unreadable files skipped` : ''}\n`,
        );
      } finally {
        bar.stop();
        await model.release();
      }
    });
}
