/**
 * Exported ONNX graphs against PyTorch (resnet8 fixtures: DownsampleB and option A, full and masked)
 * and against the tfjs ResNet; manifest contents; atomic export.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { initBackend } from '../backend/index.js';
import { loadTorchCheckpoint, stateDict } from '../checkpoint/torch.js';
import { BlockdropError } from '../errors.js';
import { getPreset, NORMALIZATIONS, policyArchFor, type ResNetConfig } from '../models/config.js';
import { ResNet } from '../models/resnet.js';
import { initResNetWeights } from '../models/weights.js';
import type { TensorMap } from '../tensor.js';
import { fixturesDir } from '../testing/shared.js';
import { buildExport, exportBlockDrop, foldedFromOnnx } from './onnx.js';
import { buildPortableDynamicGraph } from './networks.js';

interface JsonArray { shape: number[]; dtype: string; data: number[] }
interface Reference {
  inputs: JsonArray;
  masks: { name: string; keep: JsonArray }[];
  nets: Record<'downsampleB' | 'optionA', { logits_full: JsonArray; logits_masked: { mask: string; logits: JsonArray }[] }>;
}

const ref = JSON.parse(readFileSync(join(fixturesDir, 'resnet8_reference.json'), 'utf8')) as Reference;
const N = ref.inputs.shape[0]!;
const K = 3;
const inputs = Float32Array.from(ref.inputs.data);
const maskOf = (name: string) => Uint8Array.from(ref.masks.find((m) => m.name === name)!.keep.data);

const VARIANTS: { variant: 'downsampleB' | 'optionA'; file: string; arch: ResNetConfig }[] = [
  { variant: 'downsampleB', file: 'resnet8_zip.pt', arch: getPreset('resnet8').arch },
  { variant: 'optionA', file: 'resnet8_optionA_zip.pt', arch: getPreset('resnet8a').arch },
];

const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', intraOpNumThreads: 1, logSeverityLevel: 3 };

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function run(model: Uint8Array, feeds: Record<string, ort.Tensor>, output: string): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(model, options);
  try {
    return (await s.run(feeds))[output]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

const image = (x: Float32Array, n: number) => new ort.Tensor('float32', x, [n, 3, 32, 32]);
const keepTensor = (k: Uint8Array, n: number) => new ort.Tensor('bool', k, [n, K]);

/** Stem → per image, block graph or shortcut graph → head: the exported pieces composed in JS. */
async function runPieces(files: Record<string, Uint8Array | string>, arch: ResNetConfig, keep: Uint8Array): Promise<Float32Array> {
  const manifest = JSON.parse(files['manifest.json'] as string) as ReturnType<typeof buildExport>['manifest'];
  const net = foldedFromOnnx(arch, files['full.onnx'] as Uint8Array);
  const per = 3 * 32 * 32;
  const out = new Float32Array(N * 10);
  for (let i = 0; i < N; i++) {
    let x = await run(files[manifest.graphs.stem] as Uint8Array, { input: image(inputs.slice(i * per, (i + 1) * per), 1) }, 'output');
    for (let t = 0; t < K; t++) {
      const b = net.blocks[t]!;
      const dims = [1, b.inC, b.inSize, b.inSize];
      const file = keep[i * K + t] ? manifest.graphs.blocks[t] : manifest.graphs.shortcuts[String(t)];
      if (file) x = await run(files[file] as Uint8Array, { input: new ort.Tensor('float32', x, dims) }, 'output');
    }
    out.set(await run(files[manifest.graphs.head] as Uint8Array, { input: new ort.Tensor('float32', x, [1, 64, 8, 8]) }, 'logits'), i * 10);
  }
  return out;
}

const weights = new Map<string, TensorMap>();
before(async () => {
  for (const { file } of VARIANTS) weights.set(file, stateDict(await loadTorchCheckpoint(join(fixturesDir, file))));
});

for (const { variant, file, arch } of VARIANTS) {
  describe(`ONNX export of ${file} (${variant}) vs PyTorch`, () => {
    let files: Record<string, Uint8Array | string>;
    before(() => {
      files = buildExport({ arch, normalization: NORMALIZATIONS.none, resnet: weights.get(file)! }).files;
    });

    it('full.onnx gives the reference logits within 1e-4', async () => {
      const got = await run(files['full.onnx'] as Uint8Array, { input: image(inputs, N) }, 'logits');
      const d = maxAbsDiff(got, ref.nets[variant].logits_full.data);
      assert.ok(d <= 1e-4, `full: max |diff| ${d}`);
    });

    it('blockdrop.onnx (gather/scatter inside the graph) gives the masked reference logits within 1e-4', async () => {
      for (const { mask, logits } of ref.nets[variant].logits_masked) {
        const got = await run(files['blockdrop.onnx'] as Uint8Array, { input: image(inputs, N), keep: keepTensor(maskOf(mask), N) }, 'logits');
        const d = maxAbsDiff(got, logits.data);
        assert.ok(d <= 1e-4, `${mask}: max |diff| ${d}`);
      }
    });

    it('the If-branch graph (batch 1) gives the masked reference logits within 1e-4', async () => {
      const net = foldedFromOnnx(arch, files['full.onnx'] as Uint8Array);
      const model = buildPortableDynamicGraph(net, undefined, { mode: 'branch', keepFrom: 'input' });
      const s = await ort.InferenceSession.create(model, options);
      const per = 3 * 32 * 32;
      for (const { mask, logits } of ref.nets[variant].logits_masked) {
        const keep = maskOf(mask);
        const got = new Float32Array(N * 10);
        for (let i = 0; i < N; i++) {
          const out = await s.run({ input: image(inputs.slice(i * per, (i + 1) * per), 1), keep: keepTensor(keep.slice(i * K, (i + 1) * K), 1) });
          got.set(out['logits']!.data as Float32Array, i * 10);
        }
        assert.ok(maxAbsDiff(got, logits.data) <= 1e-4, `${mask}: max |diff| ${maxAbsDiff(got, logits.data)}`);
      }
      await s.release();
    });

    it('stem / block / shortcut / head graphs composed per image give the masked reference logits', async () => {
      for (const { mask, logits } of ref.nets[variant].logits_masked) {
        const got = await runPieces(files, arch, maskOf(mask));
        assert.ok(maxAbsDiff(got, logits.data) <= 1e-4, `${mask}: max |diff| ${maxAbsDiff(got, logits.data)}`);
      }
    });
  });
}

describe('ONNX export vs the tfjs ResNet', () => {
  before(async () => {
    await initBackend('cpu');
  });
  for (const { file, arch } of VARIANTS) {
    it(`${file}: full and masked logits agree with ResNet.forward within 1e-4`, async () => {
      const files = buildExport({ arch, normalization: NORMALIZATIONS.none, resnet: weights.get(file)! }).files;
      const net = ResNet.fromWeights(arch, weights.get(file)!);
      const x = tf.tidy(() => tf.transpose(tf.tensor4d(inputs, [N, 3, 32, 32]), [0, 2, 3, 1]) as tf.Tensor4D);
      const expectFull = tf.tidy(() => net.forward(x).dataSync());
      const got = await run(files['full.onnx'] as Uint8Array, { input: image(inputs, N) }, 'logits');
      assert.ok(maxAbsDiff(got, expectFull) <= 1e-4, `full: ${maxAbsDiff(got, expectFull)}`);
      // A mask the fixtures do not have: image i keeps block t iff (i + t) is odd.
      const keep = Uint8Array.from({ length: N * K }, (_, j) => (Math.floor(j / K) + (j % K)) % 2);
      const keepT = tf.tensor2d(Float32Array.from(keep), [N, K]);
      const expectMasked = tf.tidy(() => net.forward(x, { keep: keepT }).dataSync());
      const gotMasked = await run(files['blockdrop.onnx'] as Uint8Array, { input: image(inputs, N), keep: keepTensor(keep, N) }, 'logits');
      assert.ok(maxAbsDiff(gotMasked, expectMasked) <= 1e-4, `masked: ${maxAbsDiff(gotMasked, expectMasked)}`);
      tf.dispose([x, keepT]);
      net.dispose();
    });
  }
});

describe('manifest', () => {
  it('ResNet-32 with a policy: K, FLOPs, normalisation, classes, checksums, layouts', () => {
    const arch = getPreset('resnet32').arch;
    const { manifest, files } = buildExport({
      arch,
      normalization: NORMALIZATIONS.cifar,
      resnet: initResNetWeights(arch, 1),
      policy: initResNetWeights(policyArchFor(arch), 2),
    });
    assert.equal(manifest.K, 15);
    assert.deepEqual(manifest.architecture, arch);
    assert.equal(manifest.normalization.name, 'cifar');
    assert.equal(manifest.classNames.length, 10);
    assert.equal(manifest.flops.perBlock.length, 15);
    assert.equal(manifest.flops.perBlock[0], 9437184);
    assert.equal(manifest.flops.perBlock[5], 7077888);
    assert.ok(Math.abs(manifest.flops.full - 1.3773e8) / 1.3773e8 < 1e-3, `full FLOPs ${manifest.flops.full}`);
    assert.ok(Math.abs(manifest.flops.policy! - 2.448e7) / 2.448e7 < 1e-3, `policy FLOPs ${manifest.flops.policy}`);
    assert.equal(manifest.input.layout, 'NCHW');
    assert.deepEqual(manifest.input.shape, ['batch', 3, 32, 32]);
    assert.equal(manifest.graphs.blocks.length, 15);
    assert.deepEqual(Object.keys(manifest.graphs.shortcuts).sort(), ['10', '5']);
    assert.equal(manifest.graphs.policy, 'policy.onnx');
    for (const [name, entry] of Object.entries(manifest.files)) {
      const bytes = files[name] as Uint8Array;
      assert.equal(entry.bytes, bytes.length, name);
      assert.equal(entry.sha256, createHash('sha256').update(bytes).digest('hex'), name);
    }
    assert.deepEqual(JSON.parse(files['manifest.json'] as string), JSON.parse(JSON.stringify(manifest)));
  });

  it('a policy for another backbone is refused with a clear error', () => {
    const arch = getPreset('resnet8').arch;
    assert.throws(
      () => buildExport({ arch, normalization: NORMALIZATIONS.none, resnet: weights.get('resnet8_zip.pt')!, policy: initResNetWeights(policyArchFor(getPreset('resnet32').arch), 2) }),
      (e: unknown) => e instanceof BlockdropError && /policy weights/.test(e.message) && /fc\.weight/.test(e.message),
    );
  });
});

describe('exportBlockDrop writes atomically', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'blockdrop-export-test-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));
  const arch = getPreset('resnet8').arch;

  it('writes every graph and a manifest whose checksums match the files', async () => {
    const out = join(root, 'ok');
    const { manifest } = await exportBlockDrop({ arch, normalization: NORMALIZATIONS.none, resnet: weights.get('resnet8_zip.pt')!, outDir: out });
    const names = readdirSync(out).sort();
    assert.deepEqual(names, [...Object.keys(manifest.files), 'manifest.json'].sort());
    for (const [name, entry] of Object.entries(manifest.files)) {
      assert.equal(createHash('sha256').update(readFileSync(join(out, name))).digest('hex'), entry.sha256);
    }
    assert.deepEqual(readdirSync(root).filter((n) => n.includes('.tmp')), []);
  });

  it('bad weights: fails before anything is written', async () => {
    const out = join(root, 'bad-weights');
    const broken = new Map(weights.get('resnet8_zip.pt')!);
    broken.delete('layer2.0.conv1.weight');
    await assert.rejects(exportBlockDrop({ arch, normalization: NORMALIZATIONS.none, resnet: broken, outDir: out }), BlockdropError);
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('bad-weights')), []);
  });

  it('a failure while writing leaves no partial directory and the old contents untouched', async () => {
    const out = join(root, 'occupied');
    writeFileSync(out, 'not a directory');
    await assert.rejects(
      exportBlockDrop({ arch, normalization: NORMALIZATIONS.none, resnet: weights.get('resnet8_zip.pt')!, outDir: out }),
      BlockdropError,
    );
    assert.equal(readFileSync(out, 'utf8'), 'not a directory');
    assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('occupied')), ['occupied']);
  });
});
