/**
 * Exported model directories as hostile input: manifest.json is checked field by field (one clear
 * error per problem), file paths stay inside the directory, sizes are checked before reading and
 * checksums before parsing; corrupt or non-finite ONNX graphs, NaN images, a policy for another K
 * and the bounded path cache. The manifest reader is fuzzed like the checkpoint readers (fixed seed
 * here; random seeds in bench/fuzz.ts).
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import fc from 'fast-check';
import onnxProto from 'onnx-proto';
import { BlockdropError } from '../errors.js';
import { buildExport, exportBlockDrop, sha256Hex, type BlockDropManifest } from '../export/onnx.js';
import { getPreset, NORMALIZATIONS, policyArchFor } from '../models/config.js';
import { initResNetWeights } from '../models/weights.js';
import { manifestProperties } from '../testing/fuzz-targets.js';
import { parseManifest, readManifest, readVerifiedFiles, type ManifestLimits } from './manifest.js';
import { BlockDropModel } from './model.js';

const { onnx } = onnxProto;
const arch = getPreset('resnet8').arch;
const K = 3;
const resnet = initResNetWeights(arch, 1);
const policyWeights = initResNetWeights(policyArchFor(arch), 2);

let root: string;
let plainDir: string;
let policyDir: string;
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'blockdrop-manifest-test-'));
  plainDir = join(root, 'plain');
  policyDir = join(root, 'with-policy');
  await exportBlockDrop({ arch, normalization: NORMALIZATIONS.none, resnet, outDir: plainDir });
  await exportBlockDrop({ arch, normalization: NORMALIZATIONS.none, resnet, policy: policyWeights, outDir: policyDir });
});
after(() => rmSync(root, { recursive: true, force: true }));

/** One line, a BlockdropError, and matching `pattern`. */
function clear(pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof BlockdropError, `not a BlockdropError: ${String(e)}`);
    assert.doesNotMatch(e.message, /[\n\r]/);
    assert.match(e.message, pattern);
    return true;
  };
}

function manifestOf(dir: string): BlockDropManifest {
  return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as BlockDropManifest;
}

/** A copy of `from` whose manifest is edited (and whose files are edited first, checksums updated). */
function variant(name: string, from: string, edit: (m: Record<string, unknown>, dir: string) => void): string {
  const dir = join(root, name);
  cpSync(from, dir, { recursive: true });
  const m = manifestOf(dir) as unknown as Record<string, unknown>;
  edit(m, dir);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
  return dir;
}

/** Replaces a graph file and records its new size and checksum in the manifest. */
function replaceFile(m: Record<string, unknown>, dir: string, file: string, bytes: Uint8Array): void {
  writeFileSync(join(dir, file), bytes);
  const files = m['files'] as Record<string, { sha256: string; bytes: number }>;
  files[file] = { ...files[file]!, sha256: sha256Hex(bytes), bytes: bytes.length };
}

describe('parseManifest', () => {
  const text = buildExport({ arch, normalization: NORMALIZATIONS.none, resnet, policy: policyWeights }).files['manifest.json'] as string;

  it("accepts the exporter's own manifest and returns exactly its content", () => {
    assert.deepEqual(parseManifest(text, 'm.json'), JSON.parse(text));
  });

  /** [what, edit of the parsed manifest, expected message] */
  const cases: [string, (m: any) => void, RegExp][] = [
    ['not an object', (m) => { for (const k of Object.keys(m)) delete m[k]; m.format = []; }, /format must be a string/],
    ['another format', (m) => { m.format = 'onnx'; }, /format is onnx, not "blockdrop-onnx": this is not a blockdrop ONNX manifest/],
    ['a newer version', (m) => { m.formatVersion = 7; }, /formatVersion is 7; this blockdrop reads up to 1; upgrade blockdrop$/],
    ['K off by one', (m) => { m.K = 4; }, /K is 4 but the architecture resnet8 has 3 residual blocks/],
    ['K a string', (m) => { m.K = '3'; }, /K must be an integer, not "3"/],
    ['missing field', (m) => { delete m.graphs; }, /graphs is missing/],
    ['absurd depth', (m) => { m.architecture.blocksPerStage = [1e9, 1, 1]; }, /architecture\.blocksPerStage\[0\] is 1000000000, outside 1…1000/],
    ['unknown shortcut', (m) => { m.architecture.shortcut = 'magic'; }, /architecture\.shortcut is "magic", expected one of/],
    ['class names', (m) => { m.classNames = ['a']; }, /classNames has 1 entries, expected 10/],
    ['std zero', (m) => { m.normalization.std = [1, 0, 1]; }, /normalization\.std\[1\] is 0, must be positive/],
    ['4 channels', (m) => { m.input.shape = ['batch', 4, 32, 32]; }, /input\.shape\[1\] is 4, expected 3/],
    ['wrong image size', (m) => { m.input.shape = ['batch', 3, 28, 28]; }, /input\.shape\[2\] is 28, expected 32/],
    ['NaN-like FLOPs', (m) => { m.flops.perBlock = [1, null, 3]; }, /flops\.perBlock\[1\] must be a finite number, not null/],
    ['policy for another K', (m) => { m.policy.architecture.numClasses = 9; },
      /policy\.architecture\.numClasses is 9: the policy has 9 outputs but the backbone has K = 3 blocks; export it with a policy trained for this backbone/],
    ['policy graph without policy', (m) => { m.policy = null; }, /graphs\.policy names a graph but "policy" is null/],
    ['path traversal', (m) => { m.graphs.full = '../plain/full.onnx'; m.files['../plain/full.onnx'] = m.files['full.onnx']; },
      /files: the name "\.\.\/plain\/full\.onnx" is not a plain relative path \(it has '\.\.'\); a manifest may only name files inside its own directory: do not load this model/],
    ['absolute path', (m) => { m.files['/etc/passwd'] = m.files['full.onnx']; }, /"\/etc\/passwd" is an absolute path/],
    ['backslash', (m) => { m.files['..\\x.onnx'] = m.files['full.onnx']; }, /holds a control character, '\\' or ':'/],
    ['a graph not listed', (m) => { m.graphs.blocks[1] = 'other.onnx'; }, /graphs\.blocks\[1\] names "other\.onnx", which "files" does not list \(so it has no checksum\)/],
    ['blocks count', (m) => { m.graphs.blocks.pop(); }, /graphs\.blocks has 2 entries, expected 3/],
    ['shortcut key', (m) => { m.graphs.shortcuts['7'] = 'full.onnx'; }, /graphs\.shortcuts has the key "7", which is not a block index 0…2/],
    ['bad checksum', (m) => { m.files['head.onnx'].sha256 = 'abc'; }, /files\["head\.onnx"\]\.sha256 is not 64 lowercase hex digits/],
    ['absurd size', (m) => { m.files['head.onnx'].bytes = 2 ** 40; }, /files\["head\.onnx"\]\.bytes is 1099511627776, more than the \d+-byte limit for one graph/],
  ];
  for (const [what, edit, pattern] of cases) {
    it(`refuses ${what} with one clear line`, () => {
      const m = JSON.parse(text) as unknown;
      edit(m);
      assert.throws(() => parseManifest(JSON.stringify(m), 'dir/manifest.json'), clear(new RegExp(`^dir/manifest\\.json: .*${pattern.source}`)));
    });
  }

  it('refuses text that is not JSON, and totals above the limit', () => {
    assert.throws(() => parseManifest('{"format": ', 'm.json'), clear(/^m\.json: is not valid JSON \(/));
    const deep = text.replace('"classNames":', `"x": ${'['.repeat(1e6)}${']'.repeat(1e6)}, "classNames":`);
    assert.throws(() => parseManifest(deep, 'm.json'), clear(/^m\.json: is nested more than 16 levels deep: it is damaged or hostile/));
    const limits: ManifestLimits = { maxManifestBytes: 1 << 20, maxFileBytes: 1 << 20, maxTotalBytes: 1 << 20, maxFiles: 100 };
    assert.throws(() => parseManifest(text, 'm.json', limits), clear(/files add up to \d+ bytes, more than the 1048576-byte limit/));
    assert.throws(() => parseManifest(text, 'm.json', { ...limits, maxTotalBytes: 2 ** 40, maxFiles: 3 }), clear(/files lists \d+ files \(at most 3\)/));
  });

  it('a "__proto__" file entry stays an own field and changes no prototype', () => {
    const m = JSON.parse(text) as Record<string, any>;
    const doc = JSON.stringify(m).replace('"files":{', `"files":{"__proto__":${JSON.stringify(m['files']['head.onnx'])},`);
    const parsed = parseManifest(doc, 'm.json');
    assert.ok(Object.prototype.hasOwnProperty.call(parsed.files, '__proto__'));
    assert.equal(Object.getPrototypeOf(parsed.files), Object.prototype);
  });
});

for (const p of manifestProperties()) {
  test(`fuzz ${p.name}: ${p.testRuns} inputs give a result or a one-line BlockdropError, fast and small`, async () => {
    await fc.assert(p.build('small'), { seed: 0x5eed, numRuns: p.testRuns });
  });
}

describe('reading an export directory', () => {
  it('a symlink to a file outside the directory is refused, even with the right checksum', async () => {
    const dir = variant('escape', plainDir, () => {});
    const outside = join(root, 'outside-block.onnx');
    cpSync(join(dir, 'block_0.onnx'), outside);
    rmSync(join(dir, 'block_0.onnx'));
    symlinkSync(outside, join(dir, 'block_0.onnx'));
    await assert.rejects(readVerifiedFiles(dir, await readManifest(dir)), clear(/block_0\.onnx is a link to .*outside-block\.onnx, outside the model directory; do not load this model/));
    // A link that stays inside is fine.
    const inside = variant('inside-link', plainDir, () => {});
    mkdirSync(join(inside, 'sub'));
    cpSync(join(inside, 'block_0.onnx'), join(inside, 'sub', 'b0.onnx'));
    rmSync(join(inside, 'block_0.onnx'));
    symlinkSync(join('sub', 'b0.onnx'), join(inside, 'block_0.onnx'));
    assert.equal((await readVerifiedFiles(inside, await readManifest(inside))).size, Object.keys(manifestOf(inside).files).length);
  });

  it('a manifest that is a symlink out of the directory, or too large, is refused', async () => {
    const dir = join(root, 'manifest-link');
    cpSync(plainDir, dir, { recursive: true });
    cpSync(join(dir, 'manifest.json'), join(root, 'elsewhere.json'));
    rmSync(join(dir, 'manifest.json'));
    symlinkSync(join(root, 'elsewhere.json'), join(dir, 'manifest.json'));
    await assert.rejects(readManifest(dir), clear(/manifest\.json is a link to .*, outside the model directory/));
    const big = join(root, 'big-manifest');
    mkdirSync(big);
    writeFileSync(join(big, 'manifest.json'), ' '.repeat(5 * 2 ** 20));
    await assert.rejects(readManifest(big), clear(/is 5242880 bytes, more than the 4194304-byte limit for a manifest/));
  });

  it('a file whose size differs from the manifest is refused before it is read', async () => {
    const dir = variant('size', plainDir, () => {});
    writeFileSync(join(dir, 'head.onnx'), new Uint8Array(10));
    await assert.rejects(readVerifiedFiles(dir, await readManifest(dir)), clear(/head\.onnx is 10 bytes but manifest\.json records \d+ \(file truncated, corrupt or replaced\)/));
  });

  it('a missing directory, and one whose export was interrupted, are told apart', async () => {
    await assert.rejects(readManifest(join(root, 'nowhere')), clear(/nowhere does not exist; point at a directory written by 'blockdrop export'/));
    mkdirSync(join(root, 'cut.old-123-abcd'));
    await assert.rejects(readManifest(join(root, 'cut')), clear(/cut does not exist: an export to it was interrupted \(cut\.old-123-abcd left beside it\); export the model again/));
  });
});

describe('BlockDropModel.load and predict on bad input', () => {
  const load = (dir: string) => BlockDropModel.load(dir, { kernels: 'portable', threads: 1 });

  it('a corrupt ONNX file with a matching checksum: a clear error at load', async () => {
    const garbage = variant('garbage', plainDir, (m, dir) => replaceFile(m, dir, 'block_1.onnx', Uint8Array.from({ length: 200 }, (_, i) => (i * 97) & 0xff)));
    await assert.rejects(load(garbage), clear(/block_1\.onnx is not a valid ONNX model \(.*\); export the model again/));
    const empty = variant('empty-full', plainDir, (m, dir) => replaceFile(m, dir, 'full.onnx', new Uint8Array(0)));
    await assert.rejects(load(empty), clear(/full\.onnx is not a valid ONNX model \(it has no graph\)/));
  });

  it('a valid protobuf that ONNX Runtime cannot run: a clear error when its session is built', async () => {
    // head.onnx with its nodes removed: parses, but its output is produced by nothing.
    const dir = variant('no-nodes', plainDir, (m, d) => {
      const model = onnx.ModelProto.decode(readFileSync(join(d, 'head.onnx')));
      model.graph!.node = [];
      replaceFile(m, d, 'head.onnx', onnx.ModelProto.encode(model).finish());
    });
    const model = await load(dir);
    try {
      await assert.rejects(
        model.predict(new Uint8Array(32 * 32 * 3), { keep: Uint8Array.of(1, 0, 1), strategy: 'per-block' }),
        clear(/ONNX Runtime cannot load graph file:head\.onnx \(.*\); export the model again/),
      );
    } finally {
      await model.release();
    }
  });

  it('NaN or Infinity in an exported weight is named at load', async () => {
    const dir = variant('nan-weight', plainDir, (m, d) => {
      const model = onnx.ModelProto.decode(readFileSync(join(d, 'block_2.onnx')));
      const init = model.graph!.initializer!.find((t) => t.dataType === onnx.TensorProto.DataType.FLOAT && (t.rawData?.length ?? 0) >= 8)!;
      const raw = new Uint8Array(init.rawData!);
      new DataView(raw.buffer).setFloat32(4, NaN, true);
      init.rawData = raw;
      replaceFile(m, d, 'block_2.onnx', onnx.ModelProto.encode(model).finish());
    });
    await assert.rejects(load(dir), clear(/block_2\.onnx: weight '.+' holds NaN at index 1; the export is damaged or was made from a diverged checkpoint/));
  });

  it('export refuses NaN weights and a policy trained for another K', async () => {
    const bad = new Map(resnet);
    const w = bad.get('fc.weight')!;
    const data = Float32Array.from(w.data as Float32Array);
    data[3] = Infinity;
    bad.set('fc.weight', { ...w, data });
    await assert.rejects(
      exportBlockDrop({ arch, normalization: NORMALIZATIONS.none, resnet: bad, outDir: join(root, 'nan-export') }),
      clear(/cannot use backbone weights: tensor 'fc\.weight' holds Infinity at index 3/),
    );
    const r20 = getPreset('resnet20').arch;
    await assert.rejects(
      exportBlockDrop({ arch, normalization: NORMALIZATIONS.none, resnet, policy: initResNetWeights(policyArchFor(r20), 2), outDir: join(root, 'k-export') }),
      (e: unknown) => e instanceof BlockdropError && /policy weights/.test(e.message),
    );
  });

  it('images holding NaN or Infinity are refused, naming the image', async () => {
    const model = await load(plainDir);
    try {
      const x = new Float32Array(2 * 3 * 32 * 32);
      x[3 * 32 * 32 + 5] = NaN;
      await assert.rejects(model.predict(x, { keep: new Uint8Array(2 * K).fill(1) }), clear(/^image 1 holds NaN \(value 5 of 3072\); pass finite pixel values/));
      x[3 * 32 * 32 + 5] = 0;
      x[7] = -Infinity;
      await assert.rejects(model.predictFull(x, { layout: 'nchw' }), clear(/^image 0 holds -Infinity/));
    } finally {
      await model.release();
    }
  });

  it("the 'path' cache holds at most pathCacheSize compiled paths, and results stay exact", async () => {
    const model = await BlockDropModel.load(plainDir, { kernels: 'portable', threads: 1, pathCacheSize: 2 });
    try {
      const n = 8;
      const pixels = Uint8Array.from({ length: n * 32 * 32 * 3 }, (_, i) => (i * 31 + (i >> 7)) & 0xff);
      // Every one of the 2^3 paths, once per image, then in another order.
      const keep = new Uint8Array(n * K);
      for (let i = 0; i < n; i++) for (let t = 0; t < K; t++) keep[i * K + t] = (i >> t) & 1;
      const reference = await model.predict(pixels, { keep, strategy: 'per-block' });
      for (const batchSize of [8, 3, 1]) {
        const out = await model.predict(pixels, { keep, strategy: 'path', batchSize });
        assert.ok(model.cachedPaths <= 2, `${model.cachedPaths} paths cached`);
        let diff = 0;
        for (let i = 0; i < out.logits.length; i++) diff = Math.max(diff, Math.abs(out.logits[i]! - reference.logits[i]!));
        assert.ok(diff <= 1e-5, `batch ${batchSize}: max |difference| ${diff}`);
      }
    } finally {
      await model.release();
    }
    assert.equal(model.cachedPaths, 0);
  });

  it('a policy whose K differs from the backbone is refused at load', async () => {
    const other = join(root, 'r20');
    const r20 = getPreset('resnet20').arch;
    await exportBlockDrop({ arch: r20, normalization: NORMALIZATIONS.none, resnet: initResNetWeights(r20, 1), policy: initResNetWeights(policyArchFor(r20), 2), outDir: other });
    const dir = variant('wrong-k', policyDir, (m, d) => replaceFile(m, d, 'policy.onnx', readFileSync(join(other, 'policy.onnx'))));
    await assert.rejects(load(dir), clear(/the policy network has 9 outputs but the backbone resnet8 has K = 3 blocks/));
  });
});
