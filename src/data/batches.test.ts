import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BlockdropError } from '../errors.js';
import { CIFAR10_CLASSES, NORMALIZATIONS, type Normalization } from '../models/config.js';
import { Rng } from '../util/rng.js';
import { batchLabels, EpochSampler, normalizeBatch, renormalizeBatch } from './batches.js';
import type { ImageSet } from './cifar.js';

/** n hand-made 32×32 images whose every byte encodes (image, y, x, channel) distinctly enough to catch mix-ups. */
function makeSet(n: number): ImageSet {
  const images = new Uint8Array(n * 3072);
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        for (let c = 0; c < 3; c++) images[i * 3072 + (y * 32 + x) * 3 + c] = (1 + i * 7 + y * 5 + x * 3 + c * 50) % 256;
      }
    }
  }
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
  return { images, labels, count: n, height: 32, width: 32, classes: CIFAR10_CLASSES };
}

const pixel = (set: ImageSet, i: number, y: number, x: number, c: number) => set.images[i * 3072 + (y * 32 + x) * 3 + c]!;
const norm = (v: number, n: Normalization, c: number) => Math.fround((v / 255 - n.mean[c]!) / n.std[c]!);

/** torchvision reference, written the slow obvious way: pad to 40×40 with 0, crop at (top, left), then flip. */
function referenceAugment(set: ImageSet, i: number, top: number, left: number, flip: boolean, n: Normalization): Float32Array {
  const padded = new Uint8Array(40 * 40 * 3);
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      for (let c = 0; c < 3; c++) padded[((y + 4) * 40 + x + 4) * 3 + c] = pixel(set, i, y, x, c);
    }
  }
  const out = new Float32Array(3072);
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      const cx = flip ? 31 - x : x;
      for (let c = 0; c < 3; c++) out[(y * 32 + x) * 3 + c] = norm(padded[((y + top) * 40 + cx + left) * 3 + c]!, n, c);
    }
  }
  return out;
}

test('normalisation without augmentation is (x/255 − mean)/std, NHWC, in index order', () => {
  const set = makeSet(5);
  for (const n of Object.values(NORMALIZATIONS)) {
    const out = normalizeBatch(set, [3, 0], n);
    assert.equal(out.length, 2 * 3072);
    for (const [b, i] of [[0, 3], [1, 0]] as const) {
      for (const [y, x] of [[0, 0], [5, 17], [31, 31]] as const) {
        for (let c = 0; c < 3; c++) {
          assert.equal(out[b * 3072 + (y * 32 + x) * 3 + c], norm(pixel(set, i, y, x, c), n, c));
        }
      }
    }
  }
  // Known values: ImageNet normalisation of pixel 0 and 255 in the red channel.
  const white = { ...makeSet(1) };
  white.images.fill(255);
  const w = normalizeBatch(white, [0], NORMALIZATIONS.imagenet);
  assert.ok(Math.abs(w[0]! - (1 - 0.485) / 0.229) < 1e-6);
  white.images.fill(0);
  const z = normalizeBatch(white, [0], NORMALIZATIONS.imagenet);
  assert.ok(Math.abs(z[2]! - (0 - 0.406) / 0.225) < 1e-6);
  const none = normalizeBatch(makeSet(1), [0], NORMALIZATIONS.none);
  assert.equal(none[0], Math.fround(1 / 255));
});

test('out buffer is reused; bad indices and sizes are rejected', () => {
  const set = makeSet(3);
  const out = new Float32Array(2 * 3072);
  assert.equal(normalizeBatch(set, [1, 2], NORMALIZATIONS.cifar, undefined, out), out);
  assert.throws(() => normalizeBatch(set, [3], NORMALIZATIONS.cifar), RangeError);
  assert.throws(() => normalizeBatch(set, [-1], NORMALIZATIONS.cifar), RangeError);
  assert.throws(() => normalizeBatch(set, [0], NORMALIZATIONS.cifar, undefined, out), RangeError);
  assert.deepEqual([...batchLabels(set, [2, 0, 1])], [2, 0, 1]);
});

test('augmentation equals pad-4 crop + flip done the slow way, with the same rng draws', () => {
  const set = makeSet(64);
  const n = NORMALIZATIONS.cifar;
  const indices = Array.from({ length: 64 }, (_, i) => (i * 13) % 64);
  const rng = new Rng(123);
  const mirror = rng.clone();
  const out = normalizeBatch(set, indices, n, { rng });
  const seenTops = new Set<number>();
  let flips = 0;
  indices.forEach((i, b) => {
    const top = mirror.nextInt(9);
    const left = mirror.nextInt(9);
    const flip = mirror.bernoulli(0.5);
    seenTops.add(top);
    if (flip) flips++;
    assert.deepEqual(out.subarray(b * 3072, (b + 1) * 3072), referenceAugment(set, i, top, left, flip, n), `image ${b}`);
  });
  assert.deepEqual(rng.state(), mirror.state(), 'exactly three draws per image');
  assert.ok(seenTops.size >= 6, 'crop offsets vary');
  assert.ok(flips > 10 && flips < 54, `flips ${flips}`);
});

test('augmentation on a hand-made image: shift, zero padding after normalisation, and mirror', () => {
  const set = makeSet(1);
  const n = NORMALIZATIONS.imagenet;
  // Find seeds that give the extreme crop (top 0, left 0 → image moves down-right by 4) with and without flip.
  const draws = (seed: number) => {
    const r = new Rng(seed);
    return { top: r.nextInt(9), left: r.nextInt(9), flip: r.bernoulli(0.5) };
  };
  let seedPlain = -1;
  let seedFlip = -1;
  for (let s = 0; s < 100_000 && (seedPlain < 0 || seedFlip < 0); s++) {
    const d = draws(s);
    if (d.top === 0 && d.left === 0 && !d.flip && seedPlain < 0) seedPlain = s;
    if (d.top === 8 && d.left === 4 && d.flip && seedFlip < 0) seedFlip = s;
  }
  assert.ok(seedPlain >= 0 && seedFlip >= 0);
  const at = (o: Float32Array, y: number, x: number, c: number) => o[(y * 32 + x) * 3 + c]!;

  const plain = normalizeBatch(set, [0], n, { rng: new Rng(seedPlain) });
  // Output (y, x) shows source (y − 4, x − 4): rows/cols 0..3 are padding = (0 − mean)/std.
  for (let c = 0; c < 3; c++) {
    assert.equal(at(plain, 0, 0, c), Math.fround((0 - n.mean[c]!) / n.std[c]!));
    assert.equal(at(plain, 3, 20, c), Math.fround((0 - n.mean[c]!) / n.std[c]!));
    assert.equal(at(plain, 20, 3, c), Math.fround((0 - n.mean[c]!) / n.std[c]!));
    assert.equal(at(plain, 4, 4, c), norm(pixel(set, 0, 0, 0, c), n, c));
    assert.equal(at(plain, 31, 31, c), norm(pixel(set, 0, 27, 27, c), n, c));
  }

  const flipped = normalizeBatch(set, [0], n, { rng: new Rng(seedFlip) });
  // top 8: output row y shows source row y + 4 (rows 28..31 padding); left 4 then flip: column x shows source 31 − x.
  for (let c = 0; c < 3; c++) {
    assert.equal(at(flipped, 0, 0, c), norm(pixel(set, 0, 4, 31, c), n, c));
    assert.equal(at(flipped, 10, 31, c), norm(pixel(set, 0, 14, 0, c), n, c));
    assert.equal(at(flipped, 27, 5, c), norm(pixel(set, 0, 31, 26, c), n, c));
    assert.equal(at(flipped, 28, 5, c), Math.fround((0 - n.mean[c]!) / n.std[c]!));
  }
});

test('augmentation is deterministic for a seed and differs between seeds', () => {
  const set = makeSet(16);
  const idx = Array.from({ length: 16 }, (_, i) => i);
  const a = normalizeBatch(set, idx, NORMALIZATIONS.cifar, { rng: new Rng(9) });
  const b = normalizeBatch(set, idx, NORMALIZATIONS.cifar, { rng: new Rng(9) });
  const c = normalizeBatch(set, idx, NORMALIZATIONS.cifar, { rng: new Rng(10) });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('cutout blanks a side×side square (clipped at the borders) after crop and flip, and nothing else', () => {
  const set = makeSet(40);
  const n = NORMALIZATIONS.cifar;
  const side = 12;
  const rng = new Rng(3);
  let clipped = 0;
  for (let i = 0; i < set.count; i++) {
    const before = rng.state();
    const withCutout = normalizeBatch(set, [i], n, { rng, cutout: side });
    const plain = normalizeBatch(set, [i], n, { rng: Rng.fromState(before) });
    // Replay the draws: crop top, crop left, flip, then the square's centre row and column.
    const mirror = Rng.fromState(before);
    mirror.nextInt(9);
    mirror.nextInt(9);
    mirror.bernoulli(0.5);
    const cy = mirror.nextInt(32);
    const cx = mirror.nextInt(32);
    assert.deepEqual(rng.state(), mirror.state(), 'five draws per image with cutout');
    const inside = (y: number, x: number) => y >= cy - side / 2 && y < cy + side / 2 && x >= cx - side / 2 && x < cx + side / 2;
    let blanked = 0;
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        for (let c = 0; c < 3; c++) {
          const o = (y * 32 + x) * 3 + c;
          if (inside(y, x)) assert.equal(withCutout[o], 0, `image ${i} (${y}, ${x}) is inside the square`);
          else assert.equal(withCutout[o], plain[o], `image ${i} (${y}, ${x}) is outside the square`);
        }
        if (inside(y, x)) blanked++;
      }
    }
    const rows = Math.min(32, cy + side / 2) - Math.max(0, cy - side / 2);
    const cols = Math.min(32, cx + side / 2) - Math.max(0, cx - side / 2);
    assert.equal(blanked, rows * cols);
    if (rows * cols < side * side) clipped++;
  }
  assert.ok(clipped > 0 && clipped < set.count, `some squares are clipped at a border (${clipped} of ${set.count})`);
  // cutout 0 is the plain augmentation, draw for draw.
  assert.deepEqual(
    normalizeBatch(set, [0, 1, 2], n, { rng: new Rng(5), cutout: 0 }),
    normalizeBatch(set, [0, 1, 2], n, { rng: new Rng(5) }),
  );
});

test('EpochSampler: each epoch is a permutation, batch sizes, new order per epoch', () => {
  const sampler = new EpochSampler(10, 4, new Rng(1));
  assert.equal(sampler.batchesPerEpoch, 3);
  const epochs: number[][] = [];
  for (let e = 0; e < 3; e++) {
    assert.equal(sampler.epoch, e);
    const batches = [...sampler.epochBatches()];
    assert.deepEqual(batches.map((b) => b.length), [4, 4, 2]);
    const all = batches.flatMap((b) => [...b]);
    assert.deepEqual([...all].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    epochs.push(all);
  }
  assert.equal(sampler.epoch, 3);
  assert.notDeepEqual(epochs[0], epochs[1]);
  assert.notDeepEqual(epochs[1], epochs[2]);

  const dropping = new EpochSampler(10, 4, new Rng(1), { dropLast: true });
  assert.equal(dropping.batchesPerEpoch, 2);
  const e0 = [...dropping.epochBatches()];
  assert.deepEqual(e0.map((b) => b.length), [4, 4]);
  assert.equal(dropping.epoch, 1);

  const ordered = new EpochSampler(5, 2, new Rng(1), { shuffle: false });
  assert.deepEqual([ordered.nextBatch(), ordered.nextBatch(), ordered.nextBatch(), ordered.nextBatch()].map((b) => [...b]), [
    [0, 1],
    [2, 3],
    [4],
    [0, 1],
  ]);
  assert.throws(() => new EpochSampler(3, 4, new Rng(1), { dropLast: true }), BlockdropError);
  assert.throws(() => new EpochSampler(3, 0, new Rng(1)), BlockdropError);
});

test('EpochSampler resumes exactly from a saved state, mid-epoch and at an epoch boundary', () => {
  const original = new EpochSampler(1000, 64, new Rng(77), { dropLast: true });
  for (let i = 0; i < 20; i++) original.nextBatch(); // 15 per epoch: now mid epoch 1
  assert.equal(original.epoch, 1);
  const saved = JSON.parse(JSON.stringify(original.state()));
  const resumed = EpochSampler.fromState(saved);
  for (let i = 0; i < 40; i++) assert.deepEqual(resumed.nextBatch(), original.nextBatch(), `batch ${i}`);
  assert.deepEqual(resumed.state(), original.state());
  // Boundary: 15 batches = exactly one epoch with dropLast, so the state already points at the next epoch.
  const fresh = new EpochSampler(1000, 64, new Rng(78), { dropLast: true });
  for (let i = 0; i < 15; i++) fresh.nextBatch();
  assert.deepEqual([fresh.state().epoch, fresh.state().position], [1, 0]);
  const atBoundary = EpochSampler.fromState(fresh.state());
  for (let i = 0; i < 20; i++) assert.deepEqual(atBoundary.nextBatch(), fresh.nextBatch());
  // Same seed from the same rng → same batches; the sampler's seed does not depend on later rng use.
  const a = new EpochSampler(100, 10, new Rng(5));
  const b = new EpochSampler(100, 10, new Rng(5));
  assert.deepEqual([...a.epochBatches()], [...b.epochBatches()]);
  assert.throws(() => EpochSampler.fromState({ ...saved, position: -1 }), BlockdropError);
  assert.throws(() => EpochSampler.fromState({ ...saved, seed: 2 ** 32 }), BlockdropError);
});

test('renormalizeBatch re-expresses one normalisation in another, as if the pixels had been normalised that way', () => {
  const set = makeSet(3);
  const names = Object.keys(NORMALIZATIONS) as Normalization['name'][];
  for (const from of names) {
    for (const to of names) {
      const direct = normalizeBatch(set, [2, 0], NORMALIZATIONS[to]);
      const converted = renormalizeBatch(normalizeBatch(set, [2, 0], NORMALIZATIONS[from]), NORMALIZATIONS[from], NORMALIZATIONS[to]);
      let worst = 0;
      for (let i = 0; i < direct.length; i++) worst = Math.max(worst, Math.abs(direct[i]! - converted[i]!));
      assert.ok(worst < 1e-5, `${from} → ${to}: off by ${worst}`);
    }
  }
  assert.throws(() => renormalizeBatch(new Float32Array(4), NORMALIZATIONS.cifar, NORMALIZATIONS.none), /whole number of RGB pixels/);
});
