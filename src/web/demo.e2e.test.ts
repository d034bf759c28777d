/**
 * The browser demo end to end: build it (32 test images, a synthetic policy), serve it on localhost,
 * open it in Debian's headless Chromium (playwright-core), run the batch of test images and check
 * that the page's keep decisions and predictions are the Node executor's (BlockDropModel) for the
 * same images; an uploaded PNG is resized and classified as `blockdrop predict` would; a text file
 * and a huge image get a message; no console errors, no request leaves localhost; the screenshot
 * is not blank.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decode } from 'fast-png';
import { decodeImageBytes, encodePng } from '../data/image.js';
import { BlockDropModel } from '../executor/model.js';
import { weightsDir } from '../testing/shared.js';
import { buildDemo, buildDemoIfNeeded, type DemoConfig } from './build.js';
import { serveStatic, type StaticServer } from './server.js';

const CHROMIUM = '/usr/bin/chromium';
const RESNET = join(weightsDir, 'blockdrop_R32_C10_pk_E_164_A_0.923.t7');
const IMAGES = 32;

interface BatchRecord {
  index: number;
  label: number;
  classIndex: number;
  keep: string;
  logits: number[];
  policyProbabilities: number[];
  fullClassIndex: number;
  fullLogits: number[];
}

const skip = !existsSync(CHROMIUM)
  ? `${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the browser demo test`
  : !existsSync(RESNET)
    ? `${RESNET} not found (the shared weights)`
    : false;

/** Largest |a − b| relative to the largest |b| (at least 1). */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

/** Gap between the two largest values: below ~1e-4 two engines may legitimately pick different classes. */
function margin(logits: ArrayLike<number>): number {
  const sorted = Array.from(logits).sort((x, y) => y - x);
  return sorted[0]! - sorted[1]!;
}

/** A PNG header claiming width × height, with no image data (never decoded if the page checks first). */
function hugePngHeader(width: number, height: number): Buffer {
  const header = Buffer.alloc(33);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(header, 0);
  header.writeUInt32BE(13, 8);
  header.write('IHDR', 12, 'ascii');
  header.writeUInt32BE(width, 16);
  header.writeUInt32BE(height, 20);
  header[24] = 8;
  header[25] = 2;
  return header;
}

describe('browser demo (web/)', { skip }, () => {
  let root: string;
  let dir: string;
  let config: DemoConfig;
  let server: StaticServer | undefined;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'blockdrop-demo-test-'));
    dir = join(root, 'demo');
    config = (await buildDemo({ outDir: dir, resnet: RESNET, images: IMAGES, keepRate: 0.7, seed: 3 })).config;
    server = await serveStatic(dir);
  });
  after(async () => {
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('writes a complete build, and keeps it when nothing changed', async () => {
    for (const f of ['index.html', 'demo.json', 'models/manifest.json', 'ort/ort-wasm-simd-threaded.jsep.wasm', 'data/test-images.bin']) {
      assert.ok(existsSync(join(dir, f)), f);
    }
    assert.equal(config.testImages.count, IMAGES);
    assert.equal(config.policy.kind, 'synthetic');
    assert.equal(readFileSync(join(dir, 'data/test-images.bin')).length, IMAGES * 3072);
    const again = await buildDemoIfNeeded({ outDir: dir, resnet: RESNET, images: IMAGES, keepRate: 0.7, seed: 3 });
    assert.equal(again.built, false);
    // The server refuses to leave its folder.
    const escape = await fetch(`${server!.url}..%2f..%2fetc%2fpasswd`);
    assert.ok(escape.status === 403 || escape.status === 404, `status ${escape.status}`);
    const wasm = await fetch(`${server!.url}ort/ort-wasm-simd-threaded.jsep.wasm`, { method: 'HEAD' });
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
  });

  it('classifies test images in Chromium exactly as the Node executor does; bad files get a message', { timeout: 90_000 }, async () => {
    const { chromium } = await import('playwright-core');
    const profile = mkdtempSync(join(tmpdir(), 'blockdrop-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1200, height: 900 },
    });
    const model = await BlockDropModel.load(join(dir, 'models'), { threads: 1 });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const problems: string[] = [];
      const foreign: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('request', (r) => {
        const url = r.url();
        if (!url.startsWith(server!.url) && !url.startsWith('data:') && !url.startsWith('blob:')) foreign.push(url);
      });
      await page.goto(server!.url);
      // String expressions: they run in the page, and this project compiles without the DOM typings.
      await page.waitForFunction(`document.body.dataset.state !== 'loading'`, null, { timeout: 45_000 });
      const state = (await page.evaluate(`({ state: window.blockdropDemo.state, error: window.blockdropDemo.error })`)) as { state: string; error: string | null };
      assert.equal(state.state, 'ready', `page did not start: ${state.error}; ${problems.join('; ')}`);

      // The batch: every built test image through BlockDrop and the full network.
      await page.click('#run-batch');
      await page.waitForFunction(`document.body.dataset.batch === 'done'`, null, { timeout: 45_000 });
      const records = (await page.evaluate(`window.blockdropDemo.batch.records`)) as BatchRecord[];
      assert.equal(records.length, IMAGES);
      assert.match((await page.textContent('#b-dyn-n')) ?? '', new RegExp(`^${IMAGES}$`));

      const images = new Uint8Array(readFileSync(join(dir, 'data/test-images.bin')));
      const node = await model.predict(images);
      const nodeFull = await model.predictFull(images);
      const K = model.K;
      const C = model.numClasses;
      let nearThreshold = 0;
      let kept = 0;
      for (const r of records) {
        const i = r.index;
        assert.equal(r.label, config.testImages.labels[i]);
        const p = node.policyProbabilities!.subarray(i * K, (i + 1) * K);
        assert.ok(relDiff(r.policyProbabilities, p) < 1e-4, `image ${i}: policy probabilities differ`);
        const nodeKeep = Array.from(node.keep.subarray(i * K, (i + 1) * K)).join('');
        if (p.some((v) => Math.abs(v - 0.5) < 1e-5)) {
          nearThreshold++; // a decision this close to 0.5 may round either way on two engines
          continue;
        }
        assert.equal(r.keep, nodeKeep, `image ${i}: keep decisions`);
        kept += [...nodeKeep].filter((c) => c === '1').length;
        const logits = node.logits.subarray(i * C, (i + 1) * C);
        assert.ok(relDiff(r.logits, logits) < 1e-3, `image ${i}: logits differ by ${relDiff(r.logits, logits)}`);
        if (margin(logits) > 1e-3) assert.equal(r.classIndex, node.classes[i], `image ${i}: class`);
        assert.ok(relDiff(r.fullLogits, nodeFull.logits.subarray(i * C, (i + 1) * C)) < 1e-3, `image ${i}: full network logits`);
        if (margin(nodeFull.logits.subarray(i * C, (i + 1) * C)) > 1e-3) assert.equal(r.fullClassIndex, nodeFull.classes[i]);
      }
      assert.ok(nearThreshold <= 2, `${nearThreshold} images with a policy output within 1e-5 of 0.5`);
      // The synthetic policy really skips blocks, and not the same ones for every image.
      assert.ok(kept < (IMAGES - nearThreshold) * K, 'some blocks are skipped');
      assert.ok(new Set(records.map((r) => r.keep)).size > 3, 'images take different paths');
      // The page shows it: K cells in three stages, some filled.
      const cells = (await page.evaluate(
        `({ all: document.querySelectorAll('#path-strip .cell').length, kept: document.querySelectorAll('#path-strip .cell.kept').length, stages: document.querySelectorAll('#path-strip .stage').length })`,
      )) as { all: number; kept: number; stages: number };
      assert.deepEqual({ all: cells.all, stages: cells.stages }, { all: K, stages: 3 });

      // An uploaded (non-square) PNG: resized like `blockdrop predict`, then classified like the executor.
      const w = 75;
      const h = 50;
      const rgb = new Uint8Array(w * h * 3);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const o = (y * w + x) * 3;
          rgb[o] = (x * 3) & 255;
          rgb[o + 1] = (y * 5 + x) & 255;
          rgb[o + 2] = 200 - ((x + y) % 100);
        }
      }
      const png = Buffer.from(encodePng(rgb, w, h));
      await page.setInputFiles('#file', { name: 'upload.png', mimeType: 'image/png', buffer: png });
      await page.waitForFunction(`window.blockdropDemo.last && window.blockdropDemo.last.source.startsWith('upload.png')`, null, { timeout: 20_000 });
      const last = (await page.evaluate(`window.blockdropDemo.last`)) as { rgb: number[]; keep: string; logits: number[]; classIndex: number };
      const expected = decodeImageBytes(png, 'upload.png').rgb;
      assert.deepEqual(last.rgb, Array.from(expected), 'the page resizes as blockdrop predict does');
      const one = await model.predict(expected);
      assert.equal(last.keep, Array.from(one.keep).join(''));
      assert.ok(relDiff(last.logits, one.logits) < 1e-3);

      // Bad input: a visible message, and the page still works afterwards.
      await page.setInputFiles('#file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not an image at all\n') });
      await page.waitForSelector('#message:not([hidden])', { timeout: 10_000 });
      assert.match((await page.textContent('#message')) ?? '', /notes\.txt.*not an image/);
      await page.setInputFiles('#file', { name: 'huge.png', mimeType: 'image/png', buffer: hugePngHeader(30_000, 20_000) });
      await page.waitForFunction(`/huge\\.png"? is too large/.test(document.getElementById('message').textContent)`, null, { timeout: 10_000 });
      assert.match((await page.textContent('#message')) ?? '', /30000×20000 = 600\.0 megapixels/);
      await page.click('#gallery .thumb[data-index="5"]');
      await page.waitForFunction(`window.blockdropDemo.last && window.blockdropDemo.last.index === 5`, null, { timeout: 10_000 });

      assert.deepEqual(problems, []);
      assert.deepEqual(foreign, [], 'the page loads nothing from outside localhost');

      await page.click('#gallery .thumb[data-index="0"]');
      await page.waitForFunction(`window.blockdropDemo.last && window.blockdropDemo.last.index === 0`, null, { timeout: 10_000 });
      const shot = await page.screenshot({ fullPage: true });
      writeFileSync(join(root, 'demo.png'), shot);
      if (process.env.BLOCKDROP_KEEP_SCREENSHOT) writeFileSync(process.env.BLOCKDROP_KEEP_SCREENSHOT, shot);
      const img = decode(shot);
      const ch = img.channels;
      const colours = new Set<number>();
      let dark = 0;
      for (let i = 0; i < img.width * img.height; i++) {
        const r = Number(img.data[i * ch]);
        const g = Number(img.data[i * ch + 1]);
        const b = Number(img.data[i * ch + 2]);
        if (r + g + b < 300) dark++;
        if (i % 5 === 0) colours.add((r << 16) | (g << 8) | b);
      }
      assert.ok(img.width >= 1000 && img.height >= 700, `screenshot ${img.width}×${img.height}`);
      assert.ok(dark / (img.width * img.height) > 0.01, `only ${dark} dark pixels: blank page?`);
      assert.ok(colours.size > 300, `only ${colours.size} colours: the images are not drawn?`);
    } finally {
      await model.release();
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
