import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BlockdropError } from '../errors.js';
import { Rng } from './rng.js';

test('xoshiro128** matches the reference C implementation from state [1, 2, 3, 4]', () => {
  // Reference values: Vigna's xoshiro128starstar.c next() with s = {1, 2, 3, 4}.
  const rng = Rng.fromState([1, 2, 3, 4]);
  const got = Array.from({ length: 6 }, () => rng.nextUint32());
  assert.deepEqual(got, [11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
});

test('same seed gives the same sequence; different seeds differ (also beyond 32 bits)', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const seqA = Array.from({ length: 20 }, () => a.next());
  assert.deepEqual(seqA, Array.from({ length: 20 }, () => b.next()));
  for (const other of [43, 42 + 2 ** 32, -42, 0]) {
    const c = new Rng(other);
    assert.notDeepEqual(seqA, Array.from({ length: 20 }, () => c.next()), `seed ${other}`);
  }
});

test('resume from state() continues the exact sequence, across all methods', () => {
  const rng = new Rng(7);
  for (let i = 0; i < 13; i++) rng.next();
  const saved = JSON.parse(JSON.stringify(rng.state())) as number[];
  const draw = (r: Rng) => [r.next(), r.nextInt(10), r.normal(), r.bernoulli(0.3) ? 1 : 0, ...r.shuffle([1, 2, 3, 4, 5])];
  const original = Array.from({ length: 10 }, () => draw(rng)).flat();
  const resumed = Rng.fromState(saved);
  assert.deepEqual(Array.from({ length: 10 }, () => draw(resumed)).flat(), original);
  const clone = Rng.fromState(saved).clone();
  assert.deepEqual(Array.from({ length: 10 }, () => draw(clone)).flat(), original);
});

test('next() is in [0, 1) and roughly uniform; nextInt stays in range and is unbiased', () => {
  const rng = new Rng(1);
  const bins = new Array<number>(10).fill(0);
  const n = 100_000;
  for (let i = 0; i < n; i++) {
    const x = rng.next();
    assert.ok(x >= 0 && x < 1);
    bins[Math.floor(x * 10)]!++;
  }
  for (const b of bins) assert.ok(Math.abs(b - n / 10) < 600, `bin ${b}`);
  const counts = new Array<number>(7).fill(0);
  for (let i = 0; i < 70_000; i++) counts[rng.nextInt(7)]!++;
  for (const c of counts) assert.ok(Math.abs(c - 10_000) < 500, `count ${c}`);
  assert.equal(rng.nextInt(1), 0);
  assert.ok(rng.nextInt(2 ** 32) < 2 ** 32);
  assert.throws(() => rng.nextInt(0), RangeError);
  assert.throws(() => rng.nextInt(2.5), RangeError);
});

test('normal() has mean 0 and variance 1; bernoulli(p) has rate p', () => {
  const rng = new Rng(3);
  const n = 50_000;
  let sum = 0;
  let sq = 0;
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const z = rng.normal();
    assert.ok(Number.isFinite(z));
    sum += z;
    sq += z * z;
    if (rng.bernoulli(0.25)) hits++;
  }
  assert.ok(Math.abs(sum / n) < 0.03);
  assert.ok(Math.abs(sq / n - 1) < 0.03);
  assert.ok(Math.abs(hits / n - 0.25) < 0.01);
  assert.equal(rng.bernoulli(0), false);
  assert.equal(rng.bernoulli(1), true);
});

test('shuffle is an in-place permutation, works on typed arrays, and visits all orders', () => {
  const rng = new Rng(5);
  const arr = Uint32Array.from({ length: 100 }, (_, i) => i);
  const same = rng.shuffle(arr);
  assert.equal(same, arr);
  assert.deepEqual([...arr].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
  assert.notDeepEqual([...arr], Array.from({ length: 100 }, (_, i) => i));
  const seen = new Map<string, number>();
  for (let i = 0; i < 6000; i++) {
    const key = rng.shuffle(['a', 'b', 'c']).join('');
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  assert.equal(seen.size, 6);
  for (const c of seen.values()) assert.ok(Math.abs(c - 1000) < 150, `order count ${c}`);
});

test('fromState rejects malformed or all-zero states', () => {
  for (const bad of [[], [1, 2, 3], [0, 0, 0, 0], [1, 2, 3, -1], [1, 2, 3, 2 ** 32], [1.5, 2, 3, 4]]) {
    assert.throws(() => Rng.fromState(bad), BlockdropError, JSON.stringify(bad));
  }
  assert.throws(() => new Rng(Number.NaN), BlockdropError);
});
