/**
 * BlockDropModel: explicit keep masks reproduce PyTorch's masked logits and the fused masked graph
 * under every strategy and kernel set; policy and synthetic decisions; clear errors for corrupt
 * exports, a policy for the wrong backbone and wrongly shaped images.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { loadTorchCheckpoint, stateDict } from '../checkpoint/torch.js';
import { BlockdropError } from '../errors.js';
import { buildFullGraph } from '../export/networks.js';
import { exportBlockDrop, foldedFromOnnx, sha256Hex, type BlockDropManifest } from '../export/onnx.js';
import { getPreset, NORMALIZATIONS, policyArchFor } from '../models/config.js';
import { initResNetWeights } from '../models/weights.js';
import type { TensorMap } from '../tensor.js';
import { fixturesDir } from '../testing/shared.js';
import { BlockDropModel, type Strategy } from './model.js';

interface JsonArray { shape: number[]; data: number[] }
interface Reference {
  inputs: JsonArray;
  masks: { name: string; keep: JsonArray }[];
  nets: { downsampleB: { logits_full: JsonArray; logits_masked: { mask: string; logits: JsonArray }[] } };
}
const ref = JSON.parse(readFileSync(join(fixturesDir, 'resnet8_reference.json'), 'utf8')) as Reference;
const N = 8;
const K = 3;
const inputs = Float32Array.from(ref.inputs.data); // NCHW, fed as-is (normalisation 'none')
const arch = getPreset('resnet8').arch;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

let root: string;
let weights: TensorMap;
let plainDir: string;
let policyDir: string;
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'blockdrop-executor-test-'));
  weights = stateDict(await loadTorchCheckpoint(join(fixturesDir, 'resnet8_zip.pt')));
  plainDir = join(root, 'plain');
  policyDir = join(root, 'with-policy');
  await exportBlockDrop({ arch, normalization: NORMALIZATIONS.none, resnet: weights, outDir: plainDir });
  // An untrained policy whose decisions vary across images: seeded init, fc bias spread around 0.
  const policy = initResNetWeights(policyArchFor(arch), 5);
  await exportBlockDrop({ arch, normalization: NORMALIZATIONS.none, resnet: weights, policy, outDir: policyDir });
});
after(() => rmSync(root, { recursive: true, force: true }));

/** Logits of the fused graph of each image's own path (portable ops). */
async function fusedMasked(dir: string, keep: Uint8Array): Promise<Float32Array> {
  const net = foldedFromOnnx(arch, readFileSync(join(dir, 'full.onnx')));
  const out = new Float32Array(N * 10);
  const per = 3 * 32 * 32;
  for (let i = 0; i < N; i++) {
    const path = Array.from(keep.subarray(i * K, (i + 1) * K), (v) => v === 1);
    const s = await ort.InferenceSession.create(buildFullGraph(net, path), { logSeverityLevel: 3, intraOpNumThreads: 1 });
    const r = await s.run({ input: new ort.Tensor('float32', inputs.slice(i * per, (i + 1) * per), [1, 3, 32, 32]) });
    out.set(r['logits']!.data as Float32Array, i * 10);
    await s.release();
  }
  return out;
}

describe('BlockDropModel with explicit keep masks', () => {
  for (const kernels of ['auto', 'portable'] as const) {
    it(`${kernels} kernels: every strategy matches PyTorch's masked logits and the fused masked graph`, async () => {
      const model = await BlockDropModel.load(plainDir, { kernels, threads: 1 });
      if (kernels === 'portable') assert.equal(model.info.kernels, 'portable');
      const full = await model.predictFull(inputs, { layout: 'nchw' });
      assert.ok(maxAbsDiff(full.logits, ref.nets.downsampleB.logits_full.data) <= 1e-4);
      for (const { mask, logits } of ref.nets.downsampleB.logits_masked) {
        const keep = Uint8Array.from(ref.masks.find((m) => m.name === mask)!.keep.data);
        const fused = await fusedMasked(plainDir, keep);
        assert.ok(maxAbsDiff(fused, logits.data) <= 1e-4);
        for (const strategy of ['auto', 'gather', 'branch', 'per-block', 'path'] as Strategy[]) {
          for (const batchSize of [8, 3, 1]) {
            const p = await model.predict(inputs, { layout: 'nchw', keep, strategy, batchSize });
            const what = `${kernels} ${strategy} batch ${batchSize} mask ${mask}`;
            assert.ok(maxAbsDiff(p.logits, logits.data) <= 1e-4, `${what}: vs PyTorch ${maxAbsDiff(p.logits, logits.data)}`);
            assert.ok(maxAbsDiff(p.logits, fused) <= 1e-5, `${what}: vs fused ${maxAbsDiff(p.logits, fused)}`);
            assert.deepEqual([...p.keep], [...keep]);
          }
        }
      }
      await model.release();
    });
  }

  it('reports classes, probabilities, blocks used and FLOPs per image', async () => {
    const model = await BlockDropModel.load(plainDir, { threads: 1 });
    const keep = Uint8Array.from(ref.masks.find((m) => m.name === 'all_patterns')!.keep.data);
    const p = await model.predict(inputs, { layout: 'nchw', keep });
    const m = model.manifest;
    for (let i = 0; i < N; i++) {
      const row = p.logits.subarray(i * 10, (i + 1) * 10);
      assert.equal(p.classes[i], row.indexOf(Math.max(...row)));
      const probs = p.probabilities.subarray(i * 10, (i + 1) * 10);
      assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-5);
      const kept = [0, 1, 2].filter((t) => keep[i * K + t]);
      assert.equal(p.blocksUsed[i], kept.length);
      assert.equal(p.flops[i], m.flops.stemAndHead + kept.reduce((s, t) => s + m.flops.perBlock[t]!, 0));
    }
    assert.equal(p.policyProbabilities, null);
    await model.release();
  });

  it('uint8 HWC pixels are normalised like the float path', async () => {
    const model = await BlockDropModel.load(plainDir, { threads: 1 });
    const pixels = Uint8Array.from({ length: 2 * 32 * 32 * 3 }, (_, i) => (i * 37) % 256);
    const nhwc = Float32Array.from(pixels, (v) => v / 255); // normalisation 'none'
    const keep = Uint8Array.of(1, 0, 1, 0, 1, 1);
    const a = await model.predict(pixels, { keep });
    const b = await model.predict(nhwc, { keep, layout: 'nhwc' });
    assert.ok(maxAbsDiff(a.logits, b.logits) <= 1e-6);
    await model.release();
  });
});

describe('BlockDropModel decisions', () => {
  it('policy: keep = probabilities ≥ 0.5; logits equal the fused graph of each path; FLOPs include the policy', async () => {
    const model = await BlockDropModel.load(policyDir, { threads: 1 });
    assert.equal(model.info.decisions, 'policy');
    for (const strategy of ['auto', 'per-block', 'path'] as Strategy[]) {
      for (const batchSize of [8, 1]) {
        const p = await model.predict(inputs, { layout: 'nchw', strategy, batchSize });
        const probs = p.policyProbabilities!;
        assert.deepEqual([...p.keep], [...probs].map((v) => (v >= 0.5 ? 1 : 0)));
        const alone = await model.policyProbabilities(inputs, { layout: 'nchw' });
        assert.ok(maxAbsDiff(probs, alone) <= 1e-5);
        assert.ok(maxAbsDiff(p.logits, await fusedMasked(policyDir, p.keep)) <= 1e-5, `${strategy} ${batchSize}`);
        assert.equal(p.flops[0], model.manifest.flops.stemAndHead + model.manifest.flops.policy! +
          [0, 1, 2].filter((t) => p.keep[t]).reduce((s, t) => s + model.manifest.flops.perBlock[t]!, 0));
      }
    }
    await model.release();
  });

  it('synthetic policy: seeded, keep rate respected, the policy network still charged', async () => {
    const a = await BlockDropModel.load(policyDir, { keepRate: 0.5, seed: 7, threads: 1 });
    const b = await BlockDropModel.load(policyDir, { keepRate: 0.5, seed: 7, threads: 1 });
    const pa = await a.predict(inputs, { layout: 'nchw' });
    const pb = await b.predict(inputs, { layout: 'nchw', strategy: 'per-block' });
    assert.deepEqual([...pa.keep], [...pb.keep]);
    assert.ok(maxAbsDiff(pa.logits, pb.logits) <= 1e-5);
    assert.ok(pa.policyProbabilities !== null);
    assert.ok(maxAbsDiff(pa.logits, await fusedMasked(policyDir, pa.keep)) <= 1e-5);
    const none = await BlockDropModel.load(plainDir, { keepRate: 0, threads: 1 });
    const pn = await none.predict(inputs, { layout: 'nchw' });
    assert.deepEqual([...pn.blocksUsed], new Array(N).fill(0));
    assert.equal(pn.flops[0], none.manifest.flops.stemAndHead);
    const all = await BlockDropModel.load(plainDir, { keepRate: 1, threads: 1 });
    const pf = await all.predict(inputs, { layout: 'nchw' });
    assert.ok(maxAbsDiff(pf.logits, ref.nets.downsampleB.logits_full.data) <= 1e-4);
    for (const m of [a, b, none, all]) await m.release();
  });

  it('no policy and no keep rate: a clear error', async () => {
    const model = await BlockDropModel.load(plainDir, { threads: 1 });
    await assert.rejects(model.predict(inputs, { layout: 'nchw' }), (e: unknown) => e instanceof BlockdropError && /no policy/.test(e.message));
    await model.release();
  });
});

describe('BlockDropModel errors', () => {
  it('a modified file fails the checksum, naming the file', async () => {
    const dir = join(root, 'tampered');
    cpSync(plainDir, dir, { recursive: true });
    const file = join(dir, 'block_1.onnx');
    const bytes = readFileSync(file);
    bytes[bytes.length - 10]! ^= 1;
    writeFileSync(file, bytes);
    await assert.rejects(
      BlockDropModel.load(dir),
      (e: unknown) => e instanceof BlockdropError && e.message.includes('block_1.onnx') && /checksum/.test(e.message),
    );
  });

  it('a policy with K different from the backbone is refused', async () => {
    const dir = join(root, 'wrong-k');
    cpSync(policyDir, dir, { recursive: true });
    const other = join(root, 'resnet20-policy');
    const r20 = getPreset('resnet20').arch;
    await exportBlockDrop({ arch: r20, normalization: NORMALIZATIONS.none, resnet: initResNetWeights(r20, 1), policy: initResNetWeights(policyArchFor(r20), 2), outDir: other });
    const policyBytes = readFileSync(join(other, 'policy.onnx'));
    writeFileSync(join(dir, 'policy.onnx'), policyBytes);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as BlockDropManifest;
    const files = { ...manifest.files, 'policy.onnx': { ...manifest.files['policy.onnx']!, sha256: sha256Hex(policyBytes), bytes: policyBytes.length } };
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, files }));
    await assert.rejects(
      BlockDropModel.load(dir),
      (e: unknown) => e instanceof BlockdropError && /9 outputs/.test(e.message) && /K = 3/.test(e.message),
    );
  });

  it('wrong image size, channel count or data length give clear errors', async () => {
    const model = await BlockDropModel.load(plainDir, { keepRate: 1, threads: 1 });
    const bad = (e: unknown, re: RegExp) => e instanceof BlockdropError && re.test(e.message);
    await assert.rejects(model.predict(new Uint8Array(28 * 28 * 3), { shape: [1, 28, 28, 3] }), (e) => bad(e, /32×32, got 28×28/));
    await assert.rejects(model.predict(new Uint8Array(32 * 32 * 4), { shape: [1, 32, 32, 4] }), (e) => bad(e, /3 channels/));
    await assert.rejects(model.predict(new Uint8Array(32 * 32 * 3 + 5)), (e) => bad(e, /whole number of 32×32×3 images/));
    await assert.rejects(model.predict(new Uint8Array(32 * 32 * 3), { keep: new Uint8Array(5) }), (e) => bad(e, /K = 3/));
    await model.release();
  });

  it('a directory without a manifest', async () => {
    await assert.rejects(BlockDropModel.load(root), (e: unknown) => e instanceof BlockdropError && /manifest\.json/.test(e.message));
  });
});
