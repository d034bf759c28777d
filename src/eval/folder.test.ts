/**
 * Evaluation on an image folder: CIFAR-10 test images written as PNG files into class folders reproduce, through
 * the folder reader and the exported model, exactly what the executor predicts on the same pixels.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadCifar10 } from '../data/cifar.js';
import { scanImageFolder } from '../data/imagefolder.js';
import { encodePng } from '../data/image.js';
import { BlockdropError } from '../errors.js';
import { BlockDropModel } from '../executor/model.js';
import { exportBlockDrop } from '../export/onnx.js';
import { CIFAR10_CLASSES } from '../models/config.js';
import { loadBackbone } from '../models/load.js';
import { loadAnyCheckpoint } from '../checkpoint/store.js';
import { repoRoot, weightsDir } from '../testing/shared.js';
import { evaluateImageFolder, folderLabelMap } from './folder.js';

const N = 60;
let root: string;
let exportDir: string;
let folder: string;
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'blockdrop-folder-eval-'));
  exportDir = join(root, 'export');
  folder = join(root, 'cifar-test');
  const backbone = await loadBackbone(join(weightsDir, 'blockdrop_R32_C10_pk_E_164_A_0.923.t7'));
  const policy = (await loadAnyCheckpoint(join(repoRoot, 'models', 'blockdrop-resnet32-stage1.safetensors'))).tensors;
  await exportBlockDrop({ arch: backbone.arch, normalization: backbone.normalization, resnet: backbone.tensors, policy, outDir: exportDir });
  const test = loadCifar10({ split: 'test' });
  for (let i = 0; i < N; i++) {
    const dir = join(folder, CIFAR10_CLASSES[test.labels[i]!]!);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${String(i).padStart(5, '0')}.png`), encodePng(test.images.subarray(i * 3072, (i + 1) * 3072), 32, 32));
  }
});
after(() => rmSync(root, { recursive: true, force: true }));

test("a folder of CIFAR-10 test PNGs gives the executor's own predictions, labels matched by class name", async () => {
  const model = await BlockDropModel.load(exportDir, { threads: 1 });
  try {
    const index = scanImageFolder(folder);
    const e = await evaluateImageFolder(model, index, { batchSize: 7 });
    // The same images straight from the data set, in the folder's order.
    const test = loadCifar10({ split: 'test' });
    const pixels = new Uint8Array(N * 3072);
    const labels: number[] = [];
    index.samples.forEach((s, j) => {
      const i = Number(s.file.split('/').pop()!.slice(0, 5));
      pixels.set(test.images.subarray(i * 3072, (i + 1) * 3072), j * 3072);
      labels.push(test.labels[i]!);
    });
    const direct = await model.predict(pixels);
    let correct = 0;
    let blocks = 0;
    for (let j = 0; j < N; j++) {
      correct += direct.classes[j] === labels[j] ? 1 : 0;
      blocks += direct.blocksUsed[j]!;
    }
    assert.equal(e.labels, 'by-name');
    assert.equal(e.images, N);
    assert.equal(e.correct, correct);
    assert.ok(Math.abs(e.blocksMean - blocks / N) < 1e-9);
    assert.ok(e.accuracy > 0.7, `accuracy ${e.accuracy}: the shipped policy reaches 87% on the test set`);
    assert.ok(e.flopsMean > 0 && e.flopsFull > 0 && e.distinctPolicies >= 1);
  } finally {
    await model.release();
  }
});

test('folder labels: by name when the folders are class names, by position otherwise, refused when too many', () => {
  assert.deepEqual([...folderLabelMap(['cat', 'airplane'], CIFAR10_CLASSES, 10).map], [3, 0]);
  const byPosition = folderLabelMap(['n01', 'n02'], CIFAR10_CLASSES, 10);
  assert.equal(byPosition.kind, 'by-position');
  assert.deepEqual([...byPosition.map], [0, 1]);
  assert.throws(() => folderLabelMap(['a', 'b', 'c'], ['x', 'y'], 2), (e: unknown) => e instanceof BlockdropError && /3 class folders.*2 classes/.test((e as Error).message));
});
