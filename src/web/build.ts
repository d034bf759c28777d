/**
 * Builds the browser demo (web/) into one static folder:
 *   index.html, assets/     the page, bundled by Vite (onnxruntime-web inside)
 *   ort/                    onnxruntime-web's .wasm (+ .mjs), served locally: the page needs no network
 *   models/                 the ONNX export (src/export/onnx.ts) with its manifest
 *   data/test-images.bin    N CIFAR-10 test images, N×32×32×3 uint8 HWC (labels in demo.json)
 *   demo.json               what the page loads first: where everything is, which policy, build key
 * The folder is written atomically; `buildDemoIfNeeded` skips the build when demo.json's key matches.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadCifar10 } from '../data/cifar.js';
import { BlockdropError } from '../errors.js';
import { foldResNet } from '../export/folded.js';
import { buildExport } from '../export/onnx.js';
import { buildPolicyGraph } from '../export/networks.js';
import { toNchwInput } from '../executor/input.js';
import { policyArchFor, type Normalization, type ResNetConfig } from '../models/config.js';
import { loadBackbone } from '../models/load.js';
import { canonicalizeResNetKeys, initResNetWeights } from '../models/weights.js';
import type { TensorMap } from '../tensor.js';
import { loadPolicyWeights } from '../train/models.js';
import { writeDirAtomic } from '../util/atomic.js';
import { PACKAGE_ROOT } from '../util/package-root.js';

export const DEMO_FORMAT = 'blockdrop-demo';
export const DEMO_VERSION = 1;
export const DEMO_FILE = 'demo.json';
/** Images the page's batch button runs ("run 500 test images"). */
export const DEMO_BATCH_IMAGES = 500;
/** Keep rate the synthetic policy is calibrated to when no trained policy is given. */
export const DEFAULT_SYNTHETIC_KEEP_RATE = 0.8;
/** The wasm build the default onnxruntime-web bundle loads (wasm and WebGPU in one). */
const ORT_FILES = ['ort-wasm-simd-threaded.jsep.wasm', 'ort-wasm-simd-threaded.jsep.mjs'];
const SIDE = 32;
const IMAGE_BYTES = SIDE * SIDE * 3;

export interface DemoBuildOptions {
  readonly outDir: string;
  /** Backbone checkpoint (PyTorch or blockdrop safetensors). */
  readonly resnet: string;
  readonly arch?: string;
  /** A trained policy; without it a synthetic one (see `keepRate`). */
  readonly policy?: string;
  /**
   * Synthetic policy: a seeded, untrained ResNet-8 policy network whose output biases are set so that
   * each block is kept for about this fraction of (training) images. Default 0.8.
   */
  readonly keepRate?: number;
  readonly seed?: number;
  /** Test images written into the build (default 500). */
  readonly images?: number;
  /** CIFAR-10 location (--data); see locateCifar10. */
  readonly dataDir?: string;
  /** Rebuild even when the existing build matches. */
  readonly force?: boolean;
  readonly log?: (line: string) => void;
}

export interface DemoConfig {
  readonly format: typeof DEMO_FORMAT;
  readonly version: number;
  /** Folder of the ONNX export, relative to the page. */
  readonly models: string;
  readonly ortWasm: string;
  readonly testImages: { readonly file: string; readonly count: number; readonly side: number; readonly labels: number[]; readonly source: string };
  readonly policy: {
    readonly kind: 'trained' | 'synthetic';
    readonly description: string;
    readonly source: string | null;
    readonly keepRate: number | null;
    readonly seed: number | null;
  };
  readonly backbone: { readonly preset: string; readonly source: string };
  readonly batchImages: number;
  readonly build: { readonly key: string; readonly createdAt: string; readonly onnxruntimeWeb: string };
}

export interface DemoBuildResult {
  readonly dir: string;
  /** False when an up-to-date build was found and kept. */
  readonly built: boolean;
  readonly config: DemoConfig;
}

/** The page's sources: web/ of the blockdrop repository. */
export function webSourceDir(): string {
  return join(PACKAGE_ROOT, 'web');
}

function requireFromRoot(): NodeJS.Require {
  return createRequire(join(PACKAGE_ROOT, 'package.json'));
}

/** onnxruntime-web's dist folder and version. */
function ortWebDist(): { dir: string; version: string } {
  try {
    // Its exports map hides package.json; the entry point sits in dist/.
    const dist = dirname(requireFromRoot().resolve('onnxruntime-web'));
    const version = (JSON.parse(readFileSync(join(dist, '..', 'package.json'), 'utf8')) as { version: string }).version;
    return { dir: dist, version };
  } catch {
    throw new BlockdropError('onnxruntime-web is not installed; run `npm install` in the blockdrop repository (it is a dev dependency)');
  }
}

/** Files under `dir` (recursively), sorted, as paths relative to it. */
function listFiles(dir: string, skip: (name: string) => boolean = () => false): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      if (skip(entry.name)) continue;
      const p = join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile()) out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

function fileStamp(path: string): string {
  const s = statSync(path);
  return `${resolve(path)}:${s.size}:${Math.round(s.mtimeMs)}`;
}

/** Everything the build depends on, hashed: sources of the page, the checkpoints, the options. */
function buildKey(o: DemoBuildOptions, ortVersion: string): string {
  const h = createHash('sha256');
  const web = webSourceDir();
  const shared = ['src/executor/path.ts', 'src/executor/input.ts', 'src/data/resize.ts', 'src/models/config.ts', 'src/errors.ts', 'src/web/build.ts'];
  for (const f of listFiles(web, (n) => n === 'node_modules' || n === 'dist')) h.update(f).update(readFileSync(join(web, f)));
  for (const f of shared) if (existsSync(join(PACKAGE_ROOT, f))) h.update(f).update(readFileSync(join(PACKAGE_ROOT, f)));
  h.update(
    JSON.stringify({
      version: DEMO_VERSION,
      ortVersion,
      resnet: fileStamp(o.resnet),
      arch: o.arch ?? null,
      policy: o.policy ? fileStamp(o.policy) : null,
      keepRate: o.policy ? null : (o.keepRate ?? DEFAULT_SYNTHETIC_KEEP_RATE),
      seed: o.seed ?? 0,
      images: o.images ?? DEMO_BATCH_IMAGES,
      dataDir: o.dataDir ? resolve(o.dataDir) : null,
    }),
  );
  return h.digest('hex').slice(0, 32);
}

/** demo.json of an existing build, or null. */
export function readDemoConfig(dir: string): DemoConfig | null {
  try {
    const config = JSON.parse(readFileSync(join(dir, DEMO_FILE), 'utf8')) as DemoConfig;
    return config.format === DEMO_FORMAT ? config : null;
  } catch {
    return null;
  }
}

/**
 * A synthetic policy for demos without a trained one: a seeded, untrained ResNet-8 policy network
 * whose output biases are shifted so that block t is kept (p ≥ 0.5) for a `keepRate` fraction of the
 * calibration images. Its decisions are those of a real policy network (they depend on the image);
 * they are not good ones.
 */
export async function syntheticPolicy(
  arch: ResNetConfig,
  normalization: Normalization,
  calibration: Uint8Array,
  keepRate: number,
  seed: number,
): Promise<TensorMap> {
  if (!(keepRate >= 0 && keepRate <= 1)) throw new BlockdropError(`keep rate ${keepRate} is not a probability; use a number from 0 to 1`);
  const policyArch = policyArchFor(arch);
  const tensors = canonicalizeResNetKeys(initResNetWeights(policyArch, seed + 1));
  const { data, count } = toNchwInput(calibration, arch.inputSize, normalization);
  const session = await ort.InferenceSession.create(buildPolicyGraph(foldResNet(policyArch, tensors)), { logSeverityLevel: 3, intraOpNumThreads: 1 });
  let probabilities: Float32Array;
  try {
    const out = await session.run({ input: new ort.Tensor('float32', data, [count, 3, arch.inputSize, arch.inputSize]) });
    probabilities = out['probabilities']!.data as Float32Array;
  } finally {
    await session.release();
  }
  const K = policyArch.numClasses;
  const bias = tensors.get('fc.bias');
  if (!bias) throw new Error('syntheticPolicy: the policy network has no fc.bias');
  const b = bias.data as Float32Array;
  for (let t = 0; t < K; t++) {
    const logits = Float64Array.from({ length: count }, (_, i) => {
      const p = Math.min(1 - 1e-7, Math.max(1e-7, probabilities[i * K + t]!));
      return Math.log(p / (1 - p));
    }).sort();
    // Threshold between the images that drop and those that keep; the kept ones end up at logit ≥ 0.
    const drop = Math.round((1 - keepRate) * count);
    let cut: number;
    if (drop <= 0) cut = logits[0]! - 10;
    else if (drop >= count) cut = logits[count - 1]! + 10;
    else cut = (logits[drop - 1]! + logits[drop]!) / 2;
    b[t] = b[t]! - cut;
  }
  return tensors;
}

async function viteBuild(outFiles: Record<string, Uint8Array | string>): Promise<void> {
  let vite: typeof import('vite');
  try {
    vite = await import('vite');
  } catch {
    throw new BlockdropError('Vite is not installed; the browser demo is built from the blockdrop repository: run `npm install` there first');
  }
  const root = webSourceDir();
  if (!existsSync(join(root, 'index.html'))) {
    throw new BlockdropError(`${root}/index.html is missing; the browser demo is built from the blockdrop repository (web/)`);
  }
  const result = await vite.build({
    configFile: false,
    root,
    base: './',
    logLevel: 'warn',
    clearScreen: false,
    build: {
      write: false,
      outDir: 'dist',
      target: 'es2022',
      assetsInlineLimit: 0,
      chunkSizeWarningLimit: 4096,
      reportCompressedSize: false,
      modulePreload: { polyfill: false },
    },
  });
  const outputs = Array.isArray(result) ? result : [result];
  for (const out of outputs) {
    if (!('output' in out)) throw new Error('vite build: unexpected watcher result');
    for (const item of out.output) {
      // onnxruntime-web's bundle points at its .wasm with new URL(…, import.meta.url); the page loads
      // it from ort/ instead (ort.env.wasm.wasmPaths), so Vite's copy is left out.
      if (item.type === 'asset' && item.fileName.endsWith('.wasm')) continue;
      outFiles[item.fileName] = item.type === 'chunk' ? item.code : typeof item.source === 'string' ? item.source : new Uint8Array(item.source);
    }
  }
}

/** Builds the demo into `outDir` (atomically, replacing what is there). */
export async function buildDemo(o: DemoBuildOptions): Promise<DemoBuildResult> {
  const log = o.log ?? (() => {});
  const count = o.images ?? DEMO_BATCH_IMAGES;
  if (!Number.isInteger(count) || count < 1 || count > 10_000) throw new BlockdropError(`--images ${count}: use an integer from 1 to 10000`);
  if (!existsSync(o.resnet)) throw new BlockdropError(`backbone checkpoint ${o.resnet} not found; pass --resnet FILE`);
  if (o.policy && !existsSync(o.policy)) throw new BlockdropError(`policy ${o.policy} not found; pass --policy FILE or leave it out for a synthetic policy`);
  const ortWeb = ortWebDist();
  const key = buildKey(o, ortWeb.version);
  const files: Record<string, Uint8Array | string> = {};

  log('bundling the page with Vite …');
  await viteBuild(files);
  for (const f of ORT_FILES) files[`ort/${f}`] = readFileSync(join(ortWeb.dir, f));

  const backbone = await loadBackbone(o.resnet, o.arch ? { arch: o.arch } : {});
  let policy: TensorMap;
  let policyInfo: DemoConfig['policy'];
  if (o.policy) {
    policy = await loadPolicyWeights(o.policy);
    policyInfo = { kind: 'trained', description: `trained policy (${basename(o.policy)})`, source: o.policy, keepRate: null, seed: null };
  } else {
    const keepRate = o.keepRate ?? DEFAULT_SYNTHETIC_KEEP_RATE;
    const seed = o.seed ?? 0;
    log(`no trained policy: a synthetic one (untrained ResNet-8, seed ${seed}, calibrated to keep ${keepRate} of blocks) …`);
    const train = loadCifar10({ split: 'train', dataDir: o.dataDir });
    const calibration = train.images.subarray(0, Math.min(512, train.count) * IMAGE_BYTES);
    policy = await syntheticPolicy(backbone.arch, backbone.normalization, calibration, keepRate, seed);
    policyInfo = {
      kind: 'synthetic',
      description: `synthetic policy (untrained, seeded; keeps ≈${Math.round(100 * keepRate)}% of blocks; not a trained BlockDrop policy)`,
      source: null,
      keepRate,
      seed,
    };
  }
  log(`exporting ${backbone.preset} and its policy to ONNX …`);
  const exported = buildExport({ arch: backbone.arch, normalization: backbone.normalization, resnet: backbone.tensors, policy });
  for (const [name, bytes] of Object.entries(exported.files)) files[`models/${name}`] = bytes;

  const test = loadCifar10({ split: 'test', dataDir: o.dataDir });
  const n = Math.min(count, test.count);
  files['data/test-images.bin'] = test.images.slice(0, n * IMAGE_BYTES);
  const config: DemoConfig = {
    format: DEMO_FORMAT,
    version: DEMO_VERSION,
    models: 'models/',
    ortWasm: 'ort/',
    testImages: {
      file: 'data/test-images.bin',
      count: n,
      side: SIDE,
      labels: Array.from(test.labels.subarray(0, n)),
      source: `the first ${n} CIFAR-10 test images`,
    },
    policy: policyInfo,
    backbone: { preset: backbone.preset, source: basename(o.resnet) },
    batchImages: Math.min(DEMO_BATCH_IMAGES, n),
    build: { key, createdAt: new Date().toISOString(), onnxruntimeWeb: ortWeb.version },
  };
  files[DEMO_FILE] = `${JSON.stringify(config, null, 2)}\n`;
  log(`writing ${Object.keys(files).length} files to ${o.outDir} …`);
  await writeDirAtomic(o.outDir, files);
  return { dir: o.outDir, built: true, config };
}

/** Builds unless `outDir` already holds a build of the same inputs (see buildKey). */
export async function buildDemoIfNeeded(o: DemoBuildOptions): Promise<DemoBuildResult> {
  if (!o.force) {
    const existing = readDemoConfig(o.outDir);
    if (existing && existsSync(o.resnet) && (!o.policy || existsSync(o.policy))) {
      const key = buildKey(o, ortWebDist().version);
      if (existing.build.key === key) return { dir: o.outDir, built: false, config: existing };
    }
  }
  return buildDemo(o);
}
