/**
 * The demo page: loads demo.json (what the build wrote), the exported models and the CIFAR-10 test
 * images, then classifies the image the user picks or drops, and on request a run of test images,
 * with BlockDrop (policy + kept blocks) and the full network side by side.
 */
import { blocksByStage } from '../../src/executor/path.js';
import { BlockDropWeb, DemoError, type Backend, type Classification, type FullClassification } from './engine.js';
import { decodeUpload, ImageInputError } from './image.js';
import './style.css';

/** demo.json, written by `blockdrop serve` / `npm run demo:build` (src/web/build.ts). */
interface DemoConfig {
  readonly format: 'blockdrop-demo';
  readonly version: number;
  readonly models: string;
  readonly ortWasm: string;
  readonly testImages: { readonly file: string; readonly count: number; readonly side: number; readonly labels: readonly number[]; readonly source: string };
  readonly policy: { readonly kind: 'trained' | 'synthetic'; readonly description: string };
  readonly backbone: { readonly preset: string; readonly source: string };
  readonly batchImages: number;
}

interface ImageResult {
  readonly source: string;
  /** Test-set index, or -1 for an uploaded image. */
  readonly index: number;
  readonly label: number | null;
  readonly rgb: Uint8Array;
  readonly dynamic: Classification;
  readonly full: FullClassification;
}

/** Compact per-image record kept for the batch (and read by the end-to-end test). */
interface BatchRecord {
  readonly index: number;
  readonly label: number;
  readonly classIndex: number;
  readonly keep: string;
  readonly logits: number[];
  readonly policyProbabilities: number[];
  readonly blocksUsed: number;
  readonly flops: number;
  readonly ms: number;
  readonly fullClassIndex: number;
  readonly fullLogits: number[];
  readonly fullMs: number;
}

interface DemoHandle {
  state: 'loading' | 'ready' | 'error';
  error: string | null;
  backend: Backend | null;
  last: (Omit<ImageResult, 'rgb' | 'dynamic' | 'full'> & { rgb: number[]; classIndex: number; keep: string; logits: number[] }) | null;
  batch: { running: boolean; done: number; total: number; records: BatchRecord[] } | null;
  messages: string[];
}

declare global {
  interface Window {
    blockdropDemo: DemoHandle;
  }
}

const handle: DemoHandle = { state: 'loading', error: null, backend: null, last: null, batch: null, messages: [] };
window.blockdropDemo = handle;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page element #${id} is missing`);
  return el as T;
};

const params = new URLSearchParams(location.search);
let model: BlockDropWeb | null = null;
let config: DemoConfig;
let testImages: Uint8Array = new Uint8Array(0);
let classNames: readonly string[] = [];
let busy = false;
let stopRequested = false;

function setStatus(text: string): void {
  $('status').textContent = text;
}

function showMessage(text: string | null, kind: 'error' | 'info' = 'error'): void {
  const box = $('message');
  if (text === null) {
    box.hidden = true;
    box.textContent = '';
    return;
  }
  box.hidden = false;
  box.className = `message ${kind}`;
  box.textContent = text;
  handle.messages.push(text);
}

function fmtFlops(f: number): string {
  return f >= 1e9 ? `${(f / 1e9).toFixed(2)} GFLOPs` : `${(f / 1e6).toFixed(1)} MFLOPs`;
}
function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
}
function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

function imageOf(index: number): Uint8Array {
  const per = config.testImages.side ** 2 * 3;
  return testImages.subarray(index * per, (index + 1) * per);
}

function drawRgb(canvas: HTMLCanvasElement, rgb: Uint8Array, side: number): void {
  canvas.width = side;
  canvas.height = side;
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(side, side);
  for (let p = 0, q = 0; q < rgb.length; p += 4, q += 3) {
    img.data[p] = rgb[q]!;
    img.data[p + 1] = rgb[q + 1]!;
    img.data[p + 2] = rgb[q + 2]!;
    img.data[p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// ---------------------------------------------------------------------------------------------------
// the path strip

function buildPathStrip(): void {
  const strip = $('path-strip');
  strip.replaceChildren();
  blocksByStage(model!.manifest.architecture).forEach((blocks, stage) => {
    const group = document.createElement('div');
    group.className = 'stage';
    const cells = document.createElement('div');
    cells.className = 'cells';
    for (const t of blocks) {
      const cell = document.createElement('span');
      cell.className = 'cell';
      cell.dataset.t = String(t);
      cell.title = `block ${t + 1}`;
      cells.append(cell);
    }
    const label = document.createElement('div');
    label.className = 'stage-label';
    label.textContent = `stage ${stage + 1}`;
    group.append(cells, label);
    strip.append(group);
  });
}

function showPath(keep: Uint8Array, probabilities: Float32Array | null): void {
  for (const cell of $('path-strip').querySelectorAll<HTMLElement>('.cell')) {
    const t = Number(cell.dataset.t);
    const kept = keep[t] === 1;
    cell.classList.toggle('kept', kept);
    const p = probabilities ? `, policy p = ${probabilities[t]!.toFixed(2)}` : '';
    cell.title = `block ${t + 1}: ${kept ? 'ran' : 'skipped'}${p}`;
  }
}

// ---------------------------------------------------------------------------------------------------
// one image

async function classifyAndShow(rgb: Uint8Array, source: string, index: number, label: number | null): Promise<void> {
  if (!model) return;
  const picture = $<HTMLCanvasElement>('picture');
  drawRgb(picture, rgb, model.side);
  $('picture-caption').textContent = source;
  // Alternate the order so that neither side always runs with warmer caches.
  const fullFirst = Math.random() < 0.5;
  let full: FullClassification | undefined;
  if (fullFirst) full = await model.classifyFull(rgb);
  const dynamic = await model.classify(rgb);
  if (!fullFirst) full = await model.classifyFull(rgb);
  const result: ImageResult = { source, index, label, rgb, dynamic, full: full! };
  render(result);
  handle.last = {
    source,
    index,
    label,
    rgb: Array.from(rgb),
    classIndex: dynamic.classIndex,
    keep: Array.from(dynamic.keep).join(''),
    logits: Array.from(dynamic.logits),
  };
}

function render(r: ImageResult): void {
  const m = model!.manifest;
  const d = r.dynamic;
  $('pred-class').textContent = classNames[d.classIndex] ?? String(d.classIndex);
  $('pred-conf').textContent = `${pct(d.confidence)} confident`;
  const truth = $('pred-truth');
  if (r.label !== null) {
    const ok = r.label === d.classIndex;
    truth.textContent = ok ? `✓ correct (${classNames[r.label]})` : `✗ true class: ${classNames[r.label]}`;
    truth.className = `pred-truth ${ok ? 'ok' : 'wrong'}`;
  } else {
    truth.textContent = '';
    truth.className = 'pred-truth';
  }
  showPath(d.keep, d.policyProbabilities);
  const full = m.flops.full;
  const maxFlops = Math.max(d.flops, full);
  $('flops-bar').style.width = `${(100 * d.flops) / maxFlops}%`;
  $('flops-bar-full').style.width = `${(100 * full) / maxFlops}%`;
  $('flops-dyn').textContent = fmtFlops(d.flops);
  $('flops-full').textContent = fmtFlops(full);
  $('flops-text').textContent = `${d.blocksUsed} of ${m.K} blocks ran: ${pct(d.flops / full)} of the full network's FLOPs`;
  const maxMs = Math.max(d.ms, r.full.ms, 1e-9);
  $('time-bar').style.width = `${(100 * d.ms) / maxMs}%`;
  $('time-bar-full').style.width = `${(100 * r.full.ms) / maxMs}%`;
  $('time-dyn').textContent = fmtMs(d.ms);
  $('time-full').textContent = fmtMs(r.full.ms);
  $('time-text').textContent = `${pct(d.ms / r.full.ms)} of the full network's time (${model!.backend === 'webgpu' ? 'WebGPU' : 'WebAssembly'})`;
  const agree = r.full.classIndex === d.classIndex;
  $('full-note').textContent = `The full network says ${classNames[r.full.classIndex]} (${pct(r.full.confidence)})${agree ? ', the same class.' : '.'}`;
}

async function guarded(task: () => Promise<void>): Promise<void> {
  if (busy) {
    showMessage('Busy: wait for the current run to finish (or stop it).', 'info');
    return;
  }
  busy = true;
  try {
    await task();
  } catch (e) {
    showMessage(e instanceof ImageInputError || e instanceof DemoError ? e.message : `Something went wrong: ${(e as Error).message ?? e}`);
  } finally {
    busy = false;
  }
}

async function handleFile(file: File | undefined): Promise<void> {
  if (!file || !model) return;
  await guarded(async () => {
    showMessage(null);
    const decoded = await decodeUpload(file, model!.side);
    await classifyAndShow(decoded.rgb, `${file.name} (${decoded.format} ${decoded.width}×${decoded.height}, resized to ${model!.side}×${model!.side})`, -1, null);
  });
}

// ---------------------------------------------------------------------------------------------------
// the batch run

interface Totals {
  n: number;
  correct: number;
  blocks: number;
  flops: number;
  ms: number;
}

function showTotals(prefix: 'dyn' | 'full', t: Totals): void {
  if (t.n === 0) return;
  $(`b-${prefix}-n`).textContent = String(t.n);
  $(`b-${prefix}-acc`).textContent = pct(t.correct / t.n);
  $(`b-${prefix}-blocks`).textContent = (t.blocks / t.n).toFixed(2);
  $(`b-${prefix}-flops`).textContent = fmtFlops(t.flops / t.n);
  $(`b-${prefix}-time`).textContent = fmtMs(t.ms);
  $(`b-${prefix}-per`).textContent = fmtMs(t.ms / t.n);
}

async function runBatch(): Promise<void> {
  await guarded(async () => {
    showMessage(null);
    const m = model!;
    const total = Math.min(config.batchImages, config.testImages.count);
    const dyn: Totals = { n: 0, correct: 0, blocks: 0, flops: 0, ms: 0 };
    const full: Totals = { n: 0, correct: 0, blocks: 0, flops: 0, ms: 0 };
    const records: BatchRecord[] = [];
    handle.batch = { running: true, done: 0, total, records };
    document.body.dataset.batch = 'running';
    stopRequested = false;
    $<HTMLButtonElement>('run-batch').disabled = true;
    $('stop-batch').hidden = false;
    let lastPaint = 0;
    for (let i = 0; i < total && !stopRequested; i++) {
      const rgb = imageOf(i);
      const label = config.testImages.labels[i]!;
      let f: FullClassification | undefined;
      if (i % 2 === 1) f = await m.classifyFull(rgb);
      const d = await m.classify(rgb);
      if (i % 2 === 0) f = await m.classifyFull(rgb);
      dyn.n++;
      dyn.correct += d.classIndex === label ? 1 : 0;
      dyn.blocks += d.blocksUsed;
      dyn.flops += d.flops;
      dyn.ms += d.ms;
      full.n++;
      full.correct += f!.classIndex === label ? 1 : 0;
      full.blocks += m.K;
      full.flops += m.manifest.flops.full;
      full.ms += f!.ms;
      records.push({
        index: i,
        label,
        classIndex: d.classIndex,
        keep: Array.from(d.keep).join(''),
        logits: Array.from(d.logits),
        policyProbabilities: Array.from(d.policyProbabilities),
        blocksUsed: d.blocksUsed,
        flops: d.flops,
        ms: d.ms,
        fullClassIndex: f!.classIndex,
        fullLogits: Array.from(f!.logits),
        fullMs: f!.ms,
      });
      handle.batch.done = i + 1;
      const now = performance.now();
      if (now - lastPaint > 100 || i + 1 === total) {
        lastPaint = now;
        showTotals('dyn', dyn);
        showTotals('full', full);
        $('batch-progress').textContent = `${i + 1} / ${total}`;
        drawRgb($<HTMLCanvasElement>('picture'), rgb, m.side);
        $('picture-caption').textContent = `CIFAR-10 test image ${i}`;
        render({ source: `CIFAR-10 test image ${i}`, index: i, label, rgb, dynamic: d, full: f! });
        await new Promise((r) => setTimeout(r, 0)); // let the page paint
      }
    }
    const speed = full.ms / Math.max(dyn.ms, 1e-9);
    $('batch-note').textContent =
      `${dyn.n} images, ${m.backend === 'webgpu' ? 'WebGPU' : 'WebAssembly'}, batch 1. BlockDrop used ${pct(dyn.flops / full.flops)} of the full network's FLOPs ` +
      `and took ${pct(dyn.ms / full.ms)} of its time (${speed.toFixed(2)}× ${speed >= 1 ? 'faster' : 'slower'}); ` +
      `predictions agree on ${pct(records.filter((r) => r.classIndex === r.fullClassIndex).length / records.length)} of the images.`;
    $('batch-progress').textContent = stopRequested ? `stopped at ${dyn.n} / ${total}` : `done: ${total} / ${total}`;
    handle.batch.running = false;
    document.body.dataset.batch = 'done';
    $<HTMLButtonElement>('run-batch').disabled = false;
    $('stop-batch').hidden = true;
  });
}

// ---------------------------------------------------------------------------------------------------
// start-up

function selectTestImage(i: number, clearMessage: boolean): Promise<void> {
  return guarded(() => {
    if (clearMessage) showMessage(null);
    const gallery = $('gallery');
    for (const c of gallery.querySelectorAll('.selected')) c.classList.remove('selected');
    gallery.querySelector(`.thumb[data-index="${i}"]`)?.classList.add('selected');
    return classifyAndShow(imageOf(i), `CIFAR-10 test image ${i}`, i, config.testImages.labels[i]!);
  });
}

function buildGallery(): void {
  const gallery = $('gallery');
  const shown = Math.min(config.testImages.count, 60);
  $('gallery-note').textContent = `(${shown} of ${config.testImages.count}; click one)`;
  for (let i = 0; i < shown; i++) {
    const canvas = document.createElement('canvas');
    canvas.className = 'thumb';
    canvas.title = `test image ${i}: ${classNames[config.testImages.labels[i]!]}`;
    canvas.dataset.index = String(i);
    drawRgb(canvas, imageOf(i), config.testImages.side);
    canvas.addEventListener('click', () => void selectTestImage(i, true));
    gallery.append(canvas);
  }
}

function wireInputs(): void {
  const input = $<HTMLInputElement>('file');
  input.addEventListener('change', () => {
    void handleFile(input.files?.[0]).finally(() => (input.value = ''));
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    e.stopPropagation();
    drop.classList.remove('over');
    const files = e.dataTransfer?.files;
    if (files && files.length > 1) showMessage(`${files.length} files dropped; classifying the first.`, 'info');
    void handleFile(files?.[0]);
  });
  // A file dropped anywhere else would make the browser navigate away from the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    void handleFile(e.dataTransfer?.files?.[0]);
  });
  $('run-batch').addEventListener('click', () => void runBatch());
  $('stop-batch').addEventListener('click', () => (stopRequested = true));
  const select = $<HTMLSelectElement>('backend');
  select.value = handle.backend ?? 'wasm';
  select.addEventListener('change', () => {
    const url = new URL(location.href);
    url.searchParams.set('backend', select.value);
    location.href = url.href;
  });
}

async function chooseBackend(): Promise<Backend> {
  const wanted = params.get('backend');
  const gpuOption = document.querySelector<HTMLOptionElement>('#backend option[value="webgpu"]')!;
  const nav = navigator as Navigator & { gpu?: unknown };
  gpuOption.disabled = !nav.gpu;
  if (!nav.gpu) gpuOption.textContent = 'WebGPU (not offered by this browser)';
  if (wanted !== 'webgpu') return 'wasm';
  if (!nav.gpu) {
    showMessage('This browser does not offer WebGPU; using WebAssembly.', 'info');
    return 'wasm';
  }
  return 'webgpu';
}

async function fetchJson<T>(url: URL): Promise<T> {
  const r = await fetch(url);
  if (!r.ok) throw new DemoError(`${url.pathname}: HTTP ${r.status}; build the demo first (npm run demo:build)`);
  return (await r.json()) as T;
}

async function start(): Promise<void> {
  const base = new URL('./', location.href);
  config = await fetchJson<DemoConfig>(new URL('demo.json', base));
  if (config.format !== 'blockdrop-demo') throw new DemoError('demo.json is not a BlockDrop demo description; rebuild the demo');
  const threads = Math.max(1, Math.min(Number(params.get('threads') ?? 1) || 1, navigator.hardwareConcurrency || 1));
  BlockDropWeb.configure(new URL(config.ortWasm, base), crossOriginIsolated ? threads : 1);
  let backend = await chooseBackend();
  handle.backend = backend;
  const imagesPromise = fetch(new URL(config.testImages.file, base)).then(async (r) => {
    if (!r.ok) throw new DemoError(`${config.testImages.file}: HTTP ${r.status}; rebuild the demo`);
    return new Uint8Array(await r.arrayBuffer());
  });
  const progress = (what: string) => setStatus(`Loading the models (${what})…`);
  try {
    model = await BlockDropWeb.load(new URL(config.models, base), backend, progress);
  } catch (e) {
    if (backend !== 'webgpu') throw e;
    showMessage(`WebGPU failed (${(e as Error).message}); using WebAssembly.`, 'info');
    backend = 'wasm';
    handle.backend = backend;
    model = await BlockDropWeb.load(new URL(config.models, base), backend, progress);
  }
  testImages = await imagesPromise;
  const per = config.testImages.side ** 2 * 3;
  if (testImages.length !== config.testImages.count * per) throw new DemoError(`${config.testImages.file} has the wrong size; rebuild the demo`);
  classNames = model.manifest.classNames;
  const m = model.manifest;
  setStatus(
    `${config.backbone.preset} with K = ${m.K} residual blocks · ${config.policy.description} · ` +
      `${backend === 'webgpu' ? 'WebGPU' : 'WebAssembly'} · keep a block when the policy's p ≥ ${m.keep.threshold}`,
  );
  $('about').textContent = `Backbone ${config.backbone.source}; test images: ${config.testImages.source}. BlockDrop: Wu et al., CVPR 2018.`;
  $('run-batch').textContent = `Run ${Math.min(config.batchImages, config.testImages.count)} test images`;
  buildPathStrip();
  buildGallery();
  wireInputs();
  // Show something at once: the first test image (keeping any notice about the engine).
  await selectTestImage(0, false);
  $<HTMLButtonElement>('run-batch').disabled = false;
  handle.state = 'ready';
  document.body.dataset.state = 'ready';
}

start().catch((e: unknown) => {
  handle.state = 'error';
  handle.error = (e as Error).message ?? String(e);
  document.body.dataset.state = 'error';
  setStatus('The demo could not start.');
  showMessage(e instanceof DemoError ? e.message : `The demo could not start: ${handle.error}`);
});
