/**
 * The HTML report: one self-contained file (no script, no external resource) with every section; PNG export of
 * each chart; and, in headless Chromium (Debian's, via playwright-core), it loads without console errors or
 * network requests, and its screenshot is not blank.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { decode } from 'fast-png';
import type { ImageSet } from '../data/cifar.js';
import type { BaselineEvaluation, MaskResult } from '../eval/baselines.js';
import { decisionsFromMasks } from '../eval/decisions.js';
import { buildTable1, table1Section } from '../eval/table1.js';
import { tradeoffPoints } from '../eval/tradeoff.js';
import { CIFAR10_CLASSES } from '../models/config.js';
import { renderReport, upscaleNearest } from './html.js';

const CHROMIUM = '/usr/bin/chromium';

/** Images coloured by class (hue) with a gradient, so thumbnails are visibly different. */
function colourSet(n: number): ImageSet {
  const images = new Uint8Array(n * 3072);
  for (let i = 0; i < n; i++) {
    const c = i % 10;
    for (let p = 0; p < 1024; p++) {
      const y = p >> 5;
      images[i * 3072 + p * 3] = (c * 25 + y * 4) % 256;
      images[i * 3072 + p * 3 + 1] = (255 - c * 20 + (p & 31) * 3) % 256;
      images[i * 3072 + p * 3 + 2] = (i * 13) % 256;
    }
  }
  return { images, labels: Uint8Array.from({ length: n }, (_, i) => i % 10), count: n, height: 32, width: 32, classes: CIFAR10_CLASSES };
}

function mask(accuracy: number, blocks: number): MaskResult {
  return { images: 200, correct: accuracy * 200, accuracy, blocksMean: blocks, blocksStd: 0, flopsMean: 9e7, flopsStd: 0, distinctPolicies: 1, blockUsage: [], perClassAccuracy: [] };
}

const baselines = {
  kind: 'blockdrop-baselines',
  version: 1,
  backbone: { preset: 'resnet32', source: 'x' },
  split: 'test',
  images: 200,
  k: 10,
  K: 15,
  flops: { convention: '', includesPolicy: false, full: 137725184, policy: 24479744 },
  engine: 'synthetic',
  full: { ...mask(0.925, 15), flopsMean: 137725184 },
  firstK: { ...mask(0.165, 10), flopsMean: 92898560, mask: '111111111100000', perStage: [5, 5, 0] },
  distributeK: { ...mask(0.46, 10), flopsMean: 95e6, mask: '111101110011100', perStage: [4, 3, 3] },
  randomK: { seeds: [0, 1], accuracyMean: 0.27, accuracyStd: 0.015, blocksMean: 10, flopsMean: 92108667, flopsStd: 1.5e6, perSeed: [] },
  seconds: 1,
} satisfies BaselineEvaluation;

let root: string;
let outFile: string;
let pngDir: string;
let html: string;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'blockdrop-report-test-'));
  const runDir = join(root, 'run');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(runDir);
  writeFileSync(join(runDir, 'config.json'), JSON.stringify({ resnet: 'r32.t7', penalty: -1, batchSize: 256 }));
  const lines = Array.from({ length: 25 }, (_, i) =>
    JSON.stringify({
      iteration: (i + 1) * 50,
      epoch: i,
      trainReward: -0.3 + i * 0.03,
      valReward: -0.2 + i * 0.03,
      trainAccuracy: 0.6 + i * 0.01,
      valAccuracy: 0.62 + i * 0.01,
      trainBlocks: 15 - i * 0.2,
      valBlocksMean: 15 - i * 0.22,
      valDistinctPolicies: 1 + i,
    }),
  );
  writeFileSync(join(runDir, 'metrics.jsonl'), lines.join('\n') + '\n{"torn line');
  writeFileSync(join(runDir, 'results.json'), JSON.stringify({ test: { images: 200, accuracy: 0.905, blocksMean: 8.1, blocksStd: 1.4, flopsMean: 1.05e8, flopsStd: 9e6, distinctPolicies: 37 } }));

  const n = 200;
  const K = 15;
  const set = colourSet(n);
  // Class c keeps roughly 5 + c blocks; the last blocks vary per image.
  const keep = new Uint8Array(n * K);
  for (let i = 0; i < n; i++) {
    const want = 5 + (i % 10) + ((i * 7) % 3) - 1;
    for (let t = 0; t < K; t++) keep[i * K + t] = t < want ? 1 : 0;
  }
  const decisions = decisionsFromMasks({
    k: K,
    classes: CIFAR10_CLASSES,
    labels: set.labels,
    keep,
    correct: Array.from({ length: n }, (_, i) => (i % 9 === 0 ? 0 : 1)),
    source: 'a synthetic policy',
  });
  const table = buildTable1(table1Section(baselines, { before: { accuracy: 0.885, blocksMean: 9.3 } }));
  const tradeoff = tradeoffPoints({ baselines: [baselines], blockdrop: [{ label: 'γ=5', accuracy: 0.905, flopsMean: 1.05e8, flopsStd: 9e6 }] });
  outFile = join(root, 'report.html');
  pngDir = join(root, 'charts');
  const result = await renderReport(
    { title: 'Test report', runDir, decisions, images: set, table, tradeoff, fullFlops: 137725184, notes: ['synthetic data'] },
    outFile,
    { pngDir, generatedAt: '2026-01-01T00:00:00Z' },
  );
  assert.deepEqual(result.missing, []);
  assert.deepEqual(
    result.charts.map((c) => c.name),
    ['tradeoff', 'tradeoff-zoom', 'training-curves', 'keep-rate', 'blocks-histogram'],
  );
  html = readFileSync(outFile, 'utf8');
  // To look at it: BLOCKDROP_KEEP_REPORT=/tmp/report.html npx tsx --test src/report/report.test.ts
  if (process.env.BLOCKDROP_KEEP_REPORT) writeFileSync(process.env.BLOCKDROP_KEEP_REPORT, html);
});

after(() => rmSync(root, { recursive: true, force: true }));

describe('renderReport', () => {
  it('writes one self-contained file: inline SVG charts, data-URI images, no script, no external resource', () => {
    assert.ok(html.startsWith('<!DOCTYPE html>'));
    assert.equal((html.match(/<svg/g) ?? []).length, 5);
    assert.ok(!/<script|<link|<iframe|@import/i.test(html));
    // Only XML namespace URIs may mention http(s); nothing is loaded from anywhere.
    const urls = [...html.matchAll(/(?:src|href)\s*=\s*"([^"]*)"|url\(([^)]*)\)/g)].map((m) => m[1] ?? m[2]!);
    for (const u of urls) assert.ok(u.startsWith('data:image/png;base64,') || u.startsWith('#'), `external reference ${u.slice(0, 60)}`);
    const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
    assert.equal(new Set(ids).size, ids.length, 'element ids are unique across the inlined charts');
    // gallery: 10 classes × (4 fewest + 4 most)
    assert.equal((html.match(/<img /g) ?? []).length, 80);
    // sections and numbers
    for (const text of ['Summary', '90.50%', '8.10 ± 1.40', '37', 'Table 1', 'FirstK', '16.50', '16.6', 'Trade-off', 'Training', 'What the policy does', 'penalty = -1', 'synthetic data']) {
      assert.ok(html.includes(text), `missing '${text}'`);
    }
  });

  it('exports every chart as PNG and SVG', () => {
    for (const name of ['tradeoff', 'tradeoff-zoom', 'training-curves', 'keep-rate', 'blocks-histogram']) {
      const png = decode(readFileSync(join(pngDir, `${name}.png`)));
      assert.ok(png.width > 200 && png.height > 150, name);
      assert.ok(readFileSync(join(pngDir, `${name}.svg`), 'utf8').startsWith('<svg'));
    }
  });

  it('leaves out what it was not given, and says so', async () => {
    const file = join(root, 'minimal.html');
    const r = await renderReport({ tradeoff: tradeoffPoints({}) }, file);
    assert.equal(r.charts.length, 1); // every paper point is above 88%: no zoomed view
    assert.equal(r.missing.length, 4);
    assert.match(readFileSync(file, 'utf8'), /not shown: summary/);
    await assert.rejects(renderReport({ runDir: join(root, 'nope') }, file), /does not exist/);
  });

  it('upscales thumbnails by pixel replication', () => {
    const rgb = Uint8Array.from([1, 2, 3, 4, 5, 6]); // 2×1
    assert.deepEqual([...upscaleNearest(rgb, 2, 1, 2)], [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6, 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6]);
  });

  const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the browser test`;
  it('renders in headless Chromium without console errors or network requests; the screenshot is not blank', { skip, timeout: 60_000 }, async () => {
    const { chromium } = await import('playwright-core');
    const profile = mkdtempSync(join(tmpdir(), 'blockdrop-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 900 },
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const problems: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      page.on('request', (r) => {
        if (!r.url().startsWith('data:')) requests.push(r.url());
      });
      const url = pathToFileURL(outFile).href;
      await page.goto(url, { waitUntil: 'load' });
      assert.deepEqual(problems, []);
      assert.deepEqual(requests, [url], 'the page loads nothing but itself');
      // A string expression: it runs in the page, and this project compiles without the DOM typings.
      const dom = (await page.evaluate(
        `({ svgs: document.querySelectorAll('svg').length,
            images: [...document.images].filter((i) => i.complete && i.naturalWidth === 96).length,
            height: document.body.scrollHeight })`,
      )) as { svgs: number; images: number; height: number };
      assert.equal(dom.svgs, 5);
      assert.equal(dom.images, 80);
      const shot = await page.screenshot({ fullPage: true });
      writeFileSync(join(root, 'screenshot.png'), shot);
      const img = decode(shot);
      const ch = img.channels;
      let nonWhite = 0;
      const colours = new Set<number>();
      for (let i = 0; i < img.width * img.height; i++) {
        const r = Number(img.data[i * ch]);
        const g = Number(img.data[i * ch + 1]);
        const b = Number(img.data[i * ch + 2]);
        if (r < 245 || g < 245 || b < 245) nonWhite++;
        if (i % 7 === 0) colours.add((r << 16) | (g << 8) | b);
      }
      assert.ok(img.height >= dom.height - 1 && img.height > 1500, `screenshot ${img.width}×${img.height}`);
      assert.ok(nonWhite / (img.width * img.height) > 0.03, `only ${nonWhite} non-white pixels`);
      assert.ok(colours.size > 200, `only ${colours.size} colours`);
      if (process.env.BLOCKDROP_KEEP_SCREENSHOT) writeFileSync(process.env.BLOCKDROP_KEEP_SCREENSHOT, shot);
    } finally {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
