/**
 * Evaluation of an exported BlockDrop model on an image folder (class subfolders, torchvision's ImageFolder
 * layout: ImageNet's `val/`, or any PNG/JPEG dataset): top-1 accuracy, blocks and FLOPs per image (policy
 * included), distinct paths and images/s, streamed batch by batch with bounded memory.
 */
import { BlockdropError } from '../errors.js';
import type { BlockDropPredictor } from '../executor/model.js';
import { meanStd } from './evaluate.js';
import { imageFolderBatches, RESIZE_SIZE, CROP_SIZE, type ImageFolderIndex, type ImageTransform } from '../data/imagefolder.js';

export interface FolderEvalOptions {
  /** Images per `predict` call (default 16). */
  readonly batchSize?: number;
  /** Only the first `limit` images, in folder order (default: all). */
  readonly limit?: number;
  /** Skip files that fail to decode instead of stopping (they are counted). */
  readonly skipUnreadable?: boolean;
  readonly onProgress?: (done: number, total: number) => void;
}

export interface FolderEvaluation {
  readonly images: number;
  readonly correct: number;
  readonly accuracy: number;
  readonly blocksMean: number;
  readonly blocksStd: number;
  readonly flopsMean: number;
  /** Full network's FLOPs per image, for the ratio. */
  readonly flopsFull: number;
  readonly distinctPolicies: number;
  readonly imagesPerSecond: number;
  /** How folder names became labels. */
  readonly labels: 'by-name' | 'by-position';
  readonly skipped: number;
}

/**
 * Folder label → model class: by name when every folder is one of the model's class names (a CIFAR-10 folder of
 * `airplane/ … truck/`), else by sorted position, as torchvision's ImageFolder orders ImageNet's synsets.
 */
export function folderLabelMap(folderClasses: readonly string[], classNames: readonly string[] | undefined, numClasses: number): { map: Int32Array; kind: 'by-name' | 'by-position' } {
  if (classNames && folderClasses.every((c) => classNames.includes(c))) {
    return { map: Int32Array.from(folderClasses, (c) => classNames.indexOf(c)), kind: 'by-name' };
  }
  if (folderClasses.length > numClasses) {
    throw new BlockdropError(
      `the folder has ${folderClasses.length} class folders but the model predicts ${numClasses} classes; ` +
        'name the folders after the model\'s classes or give one folder per class in the model\'s order',
    );
  }
  return { map: Int32Array.from(folderClasses, (_, i) => i), kind: 'by-position' };
}

/** The evaluation transform for a model's input size: ImageNet's resize 256 + centre crop 224, scaled to the side. */
export function evalTransformFor(side: number): ImageTransform {
  return { kind: 'eval', resize: side === CROP_SIZE ? RESIZE_SIZE : side <= 32 ? side : Math.round((side * RESIZE_SIZE) / CROP_SIZE), crop: side };
}

export async function evaluateImageFolder(model: BlockDropPredictor, index: ImageFolderIndex, options: FolderEvalOptions = {}): Promise<FolderEvaluation> {
  const side = model.manifest.architecture.inputSize;
  const numClasses = model.manifest.architecture.numClasses;
  const { map, kind } = folderLabelMap(index.classes, model.manifest.classNames, numClasses);
  let images = 0;
  let correct = 0;
  let blocks = 0;
  let blocksSq = 0;
  let flops = 0;
  let skipped = 0;
  let seconds = 0;
  const paths = new Set<string>();
  for await (const batch of imageFolderBatches(index, {
    batchSize: options.batchSize ?? 16,
    transform: evalTransformFor(side),
    limit: options.limit,
    skipUnreadable: options.skipUnreadable,
    onSkip: () => skipped++,
    onProgress: options.onProgress,
  })) {
    if (batch.count === 0) continue;
    const t0 = performance.now();
    const out = await model.predict(batch.images.subarray(0, batch.count * side * side * 3));
    seconds += (performance.now() - t0) / 1000;
    const k = out.keep.length / batch.count;
    for (let i = 0; i < batch.count; i++) {
      if (out.classes[i] === map[batch.labels[i]!]) correct++;
      const b = out.blocksUsed[i]!;
      blocks += b;
      blocksSq += b * b;
      flops += out.flops[i]!;
      paths.add(out.keep.subarray(i * k, (i + 1) * k).join(''));
    }
    images += batch.count;
  }
  if (images === 0) throw new BlockdropError('no image of the folder could be evaluated; check the folder holds PNG or JPEG files');
  const blockStats = meanStd(blocks, blocksSq, images);
  return {
    images,
    correct,
    accuracy: correct / images,
    blocksMean: blockStats.mean,
    blocksStd: blockStats.std,
    flopsMean: flops / images,
    flopsFull: model.manifest.flops.full,
    distinctPolicies: paths.size,
    imagesPerSecond: seconds > 0 ? images / seconds : 0,
    labels: kind,
    skipped,
  };
}
