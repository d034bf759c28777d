/**
 * The ImageNet-style folder reader on a small synthetic folder written here: scanning and labels,
 * the evaluation and training transforms, streaming with bounded reads, and errors for bad folders.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import jpeg from 'jpeg-js';
import { BlockdropError } from '../errors.js';
import { NORMALIZATIONS } from '../models/config.js';
import { Rng } from '../util/rng.js';
import { encodePng } from './image.js';
import {
  centerCrop, evalTransform, imageFolderBatches, normalizeImages, randomResizedCropBox, resizeShorterSide,
  scanImageFolder, trainTransform, type ImageFolderBatch, type RgbImage,
} from './imagefolder.js';

/** width×height RGB where pixel (x, y) = f(x, y). */
function image(width: number, height: number, f: (x: number, y: number) => [number, number, number]): RgbImage {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) rgb.set(f(x, y), (y * width + x) * 3);
  return { rgb, width, height };
}

function jpegBytes(img: RgbImage): Uint8Array {
  const rgba = new Uint8Array(img.width * img.height * 4);
  for (let p = 0; p < img.width * img.height; p++) {
    rgba.set(img.rgb.subarray(p * 3, p * 3 + 3), p * 4);
    rgba[p * 4 + 3] = 255;
  }
  return jpeg.encode({ data: rgba, width: img.width, height: img.height }, 95).data;
}

const solid = (w: number, h: number, c: [number, number, number]) => image(w, h, () => c);
const RED: [number, number, number] = [255, 0, 0];
const BLUE: [number, number, number] = [0, 0, 255];

let root: string;
let folder: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'blockdrop-imagefolder-'));
  folder = join(root, 'val');
  // Classes deliberately created out of order; a nested subfolder, a stray text file and a dot file.
  mkdirSync(join(folder, 'n02_dog', 'extra'), { recursive: true });
  mkdirSync(join(folder, 'n01_cat'), { recursive: true });
  writeFileSync(join(folder, 'n01_cat', 'b.png'), encodePng(solid(300, 200, RED).rgb, 300, 200));
  writeFileSync(join(folder, 'n01_cat', 'a.JPEG'), jpegBytes(solid(40, 64, BLUE)));
  writeFileSync(join(folder, 'n01_cat', 'notes.txt'), 'not an image');
  writeFileSync(join(folder, 'n01_cat', '.DS_Store'), 'x');
  writeFileSync(join(folder, 'n02_dog', 'c.png'), encodePng(solid(224, 224, [0, 255, 0]).rgb, 224, 224));
  writeFileSync(join(folder, 'n02_dog', 'extra', 'd.jpg'), jpegBytes(solid(500, 375, [128, 128, 128])));
  writeFileSync(join(folder, 'n02_dog', 'e.png'), encodePng(solid(17, 9, [10, 20, 30]).rgb, 17, 9));
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('scanImageFolder', () => {
  it('sorted classes = labels, sorted files per class (nested ones too), other files skipped', () => {
    const index = scanImageFolder(folder);
    assert.deepEqual(index.classes, ['n01_cat', 'n02_dog']);
    assert.deepEqual(index.samples.map((s) => [s.file, s.label]), [
      [join('n01_cat', 'a.JPEG'), 0],
      [join('n01_cat', 'b.png'), 0],
      [join('n02_dog', 'c.png'), 1],
      [join('n02_dog', 'e.png'), 1],
      [join('n02_dog', 'extra', 'd.jpg'), 1],
    ]);
    assert.deepEqual(index.classCounts, [2, 3]);
    assert.equal(index.skipped, 1);
  });

  it('clear one-line errors for bad folders', () => {
    const bad = (fn: () => unknown, re: RegExp) =>
      assert.throws(fn, (e: unknown) => e instanceof BlockdropError && re.test(e.message) && !e.message.includes('\n'));
    bad(() => scanImageFolder(join(root, 'missing')), /no such directory.*ImageFolder layout/);
    bad(() => scanImageFolder(join(folder, 'n01_cat', 'b.png')), /is a file, not a directory/);
    const flat = join(root, 'flat');
    mkdirSync(flat);
    writeFileSync(join(flat, 'x.png'), encodePng(solid(2, 2, RED).rgb, 2, 2));
    bad(() => scanImageFolder(flat), /no class subfolders \(it holds 1 images directly: put them in one subfolder per class\)/);
    const withEmpty = join(root, 'with-empty');
    mkdirSync(join(withEmpty, 'a'), { recursive: true });
    mkdirSync(join(withEmpty, 'b'));
    writeFileSync(join(withEmpty, 'a', 'x.png'), encodePng(solid(2, 2, RED).rgb, 2, 2));
    bad(() => scanImageFolder(withEmpty), /class folder 'b' holds no \.jpg\/\.jpeg\/\.png images/);
    assert.deepEqual(scanImageFolder(withEmpty, { allowEmptyClasses: true }).classCounts, [1, 0]);
  });
});

describe('transforms', () => {
  it('Resize(256): shorter side 256, longer one truncated like torchvision', () => {
    const r = resizeShorterSide(solid(500, 375, RED), 256);
    assert.deepEqual([r.width, r.height], [341, 256]);
    const s = resizeShorterSide(solid(100, 300, RED), 256);
    assert.deepEqual([s.width, s.height], [256, 768]);
  });

  it('evaluation: 224×224 centre of the resized image', () => {
    // 512×256, left half red, right half blue: resize keeps it, the centre crop starts at x = 144.
    const split = image(512, 256, (x) => (x < 256 ? RED : BLUE));
    const out = evalTransform(split);
    assert.equal(out.length, 224 * 224 * 3);
    const px = (x: number, y: number) => Array.from(out.subarray((y * 224 + x) * 3, (y * 224 + x) * 3 + 3));
    assert.deepEqual(px(0, 0), RED);
    assert.deepEqual(px(111, 200), RED);
    assert.deepEqual(px(112, 5), BLUE);
    assert.deepEqual(px(223, 223), BLUE);
    // A smaller image is padded with zeros around it, as torchvision's CenterCrop does.
    const small = centerCrop(solid(10, 4, RED), 8);
    assert.deepEqual([small.width, small.height], [8, 8]);
    assert.deepEqual(Array.from(small.rgb.subarray(0, 3)), [0, 0, 0]);
    assert.deepEqual(Array.from(small.rgb.subarray((3 * 8 + 1) * 3, (3 * 8 + 1) * 3 + 3)), RED);
  });

  it('RandomResizedCrop boxes stay inside the image with area and aspect ratio in range', () => {
    const rng = new Rng(3);
    for (let i = 0; i < 200; i++) {
      const b = randomResizedCropBox(500, 375, rng);
      assert.ok(b.left >= 0 && b.top >= 0 && b.left + b.width <= 500 && b.top + b.height <= 375);
      const area = (b.width * b.height) / (500 * 375);
      assert.ok(area >= 0.07 && area <= 1.01, `area ${area}`);
      const ratio = b.width / b.height;
      assert.ok(ratio >= 0.74 && ratio <= 1.35, `ratio ${ratio}`);
    }
    // Impossible constraints fall back to a centred crop clamped to the ratio range.
    const fallback = randomResizedCropBox(1000, 10, new Rng(0), [0.99, 1], [1, 1]);
    assert.deepEqual(fallback, { left: 495, top: 0, width: 10, height: 10 });
  });

  it('training transforms are seeded; the flip mirrors; both crop modes give 224×224', () => {
    const ramp = image(300, 260, (x, y) => [x % 256, y % 256, 7]);
    for (const mode of ['random-resized', 'resize-random-crop'] as const) {
      const a = trainTransform(ramp, new Rng(5), { kind: 'train', mode });
      const b = trainTransform(ramp, new Rng(5), { kind: 'train', mode });
      assert.equal(a.length, 224 * 224 * 3);
      assert.deepEqual(a, b);
    }
    // resize-random-crop at the image's own scale with no flip is a plain window; with the flip it mirrors.
    const noFlip = trainTransform(ramp, new Rng(1), { kind: 'train', mode: 'resize-random-crop', resize: 260, flip: false });
    const rngA = new Rng(1);
    const left = rngA.nextInt(300 - 224 + 1);
    const top = rngA.nextInt(260 - 224 + 1);
    assert.deepEqual(Array.from(noFlip.subarray(0, 3)), [left, top, 7]);
    let flipped: Uint8Array | undefined;
    for (let seed = 0; seed < 20 && !flipped; seed++) {
      const rng = new Rng(seed);
      rng.nextInt(77);
      rng.nextInt(37);
      if (rng.bernoulli(0.5)) {
        flipped = trainTransform(ramp, new Rng(seed), { kind: 'train', mode: 'resize-random-crop', resize: 260 });
        const plain = trainTransform(ramp, new Rng(seed), { kind: 'train', mode: 'resize-random-crop', resize: 260, flip: false });
        assert.deepEqual(Array.from(flipped.subarray(0, 3)), Array.from(plain.subarray(223 * 3, 224 * 3)));
      }
    }
    assert.ok(flipped, 'some seed flips');
  });

  it('normalizeImages uses the ImageNet mean and std', () => {
    const out = normalizeImages(Uint8Array.of(0, 255, 128));
    const n = NORMALIZATIONS.imagenet;
    assert.ok(Math.abs(out[0]! - (0 - n.mean[0]) / n.std[0]) < 1e-6);
    assert.ok(Math.abs(out[1]! - (1 - n.mean[1]) / n.std[1]) < 1e-6);
    assert.ok(Math.abs(out[2]! - (128 / 255 - n.mean[2]) / n.std[2]) < 1e-6);
  });
});

async function collect(it: AsyncIterable<ImageFolderBatch>): Promise<ImageFolderBatch[]> {
  const out: ImageFolderBatch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

describe('imageFolderBatches', () => {
  it('evaluation batches: every image once, in order, decoded PNG and JPEG, labels, progress', async () => {
    const index = scanImageFolder(folder);
    const progress: number[] = [];
    const batches = await collect(imageFolderBatches(index, { batchSize: 2, transform: { kind: 'eval' }, onProgress: (d) => progress.push(d) }));
    assert.deepEqual(batches.map((b) => b.count), [2, 2, 1]);
    assert.deepEqual(batches.flatMap((b) => [...b.labels]), [0, 0, 1, 1, 1]);
    assert.deepEqual(batches.flatMap((b) => [...b.indices]), [0, 1, 2, 3, 4]);
    assert.deepEqual(progress, [1, 2, 3, 4, 5]);
    const pixel = (b: ImageFolderBatch, i: number) => Array.from(b.images.subarray(i * 224 * 224 * 3 + 3 * 1000, i * 224 * 224 * 3 + 3 * 1000 + 3));
    const close = (a: number[], b: number[], tol: number) => a.every((v, k) => Math.abs(v - b[k]!) <= tol);
    assert.ok(close(pixel(batches[0]!, 0), BLUE, 3), `JPEG blue: ${pixel(batches[0]!, 0)}`); // lossy
    assert.deepEqual(pixel(batches[0]!, 1), RED);
    assert.deepEqual(pixel(batches[1]!, 0), [0, 255, 0]);
    assert.equal(batches[2]!.images.length, 224 * 224 * 3);
  });

  it('shuffled training batches are a seeded permutation', async () => {
    const index = scanImageFolder(folder);
    const run = async (seed: number) =>
      (await collect(imageFolderBatches(index, { batchSize: 3, transform: { kind: 'train' }, shuffle: true, seed }))).flatMap((b) => [...b.indices]);
    const a = await run(4);
    assert.deepEqual(a, await run(4));
    assert.deepEqual([...a].sort(), [0, 1, 2, 3, 4]);
    const firstImages = async () => (await collect(imageFolderBatches(index, { batchSize: 5, transform: { kind: 'train' }, seed: 2 })))[0]!.images;
    assert.deepEqual(await firstImages(), await firstImages());
  });

  it('bounded reads: at most `prefetch` files in flight, and stopping early stops reading', async () => {
    const index = scanImageFolder(folder);
    let inFlight = 0;
    let maxInFlight = 0;
    let reads = 0;
    const readFileCounted = async (path: string) => {
      reads++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 2));
      const bytes = await readFile(path);
      inFlight--;
      return bytes;
    };
    for await (const b of imageFolderBatches(index, { batchSize: 1, transform: { kind: 'eval' }, prefetch: 2, readFile: readFileCounted })) {
      assert.equal(b.count, 1);
      break;
    }
    assert.ok(maxInFlight <= 2, `in flight ${maxInFlight}`);
    assert.ok(reads <= 2, `reads ${reads}`);
  });

  it('a corrupt image names its file; skipUnreadable skips and reports it', async () => {
    const dir = join(root, 'corrupt');
    mkdirSync(join(dir, 'a'), { recursive: true });
    writeFileSync(join(dir, 'a', 'good.png'), encodePng(solid(8, 8, RED).rgb, 8, 8));
    writeFileSync(join(dir, 'a', 'bad.jpg'), Uint8Array.of(0xff, 0xd8, 0xff, 0, 1, 2));
    const index = scanImageFolder(dir);
    await assert.rejects(
      collect(imageFolderBatches(index, { batchSize: 4, transform: { kind: 'eval' } })),
      (e: unknown) => e instanceof BlockdropError && e.message.includes('bad.jpg') && /corrupt JPEG/.test(e.message),
    );
    const skipped: string[] = [];
    const batches = await collect(
      imageFolderBatches(index, { batchSize: 4, transform: { kind: 'eval' }, skipUnreadable: true, onSkip: (f) => skipped.push(f) }),
    );
    assert.deepEqual(batches.map((b) => b.count), [1]);
    assert.equal(skipped.length, 1);
    assert.match(skipped[0]!, /bad\.jpg$/);
    await assert.rejects(collect(imageFolderBatches(index, { batchSize: 0, transform: { kind: 'eval' } })), /batch size/);
  });
});
