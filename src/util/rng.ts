/**
 * A small seeded PRNG (xoshiro128**, seeded through splitmix32) whose whole state is four uint32
 * words, so a training run can save it in a checkpoint and continue the exact same sequence.
 * Not cryptographic. Plain 32-bit integer arithmetic: identical results on every platform.
 */
import { BlockdropError } from '../errors.js';

const TWO_POW_32 = 4294967296;

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Mixes an arbitrary number (any integer up to 2^53, negative, or fractional) into 32 bits. */
function seedWord(seed: number): number {
  if (!Number.isFinite(seed)) throw new BlockdropError(`invalid random seed ${seed}; use a finite number`);
  const whole = Math.trunc(seed);
  const lo = whole >>> 0;
  const hi = Math.floor(whole / TWO_POW_32) >>> 0;
  // Different seeds with equal low words (e.g. 1 and 2^32 + 1) must still differ.
  const mixed = { s: hi };
  return (lo ^ splitmix32(mixed)) >>> 0;
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  constructor(seed: number) {
    const sm = { s: seedWord(seed) };
    this.s0 = splitmix32(sm);
    this.s1 = splitmix32(sm);
    this.s2 = splitmix32(sm);
    this.s3 = splitmix32(sm);
    // splitmix32 output is a bijection of its counter, so four consecutive outputs are never all zero.
  }

  /** Next raw uint32 (xoshiro128**). */
  nextUint32(): number {
    const s0 = this.s0;
    const s1 = this.s1;
    const s2 = this.s2;
    const s3 = this.s3;
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    let n2 = s2 ^ s0;
    let n3 = s3 ^ s1;
    const n1 = s1 ^ n2;
    const n0 = s0 ^ n3;
    n2 ^= t;
    n3 = (n3 << 11) | (n3 >>> 21);
    this.s0 = n0 >>> 0;
    this.s1 = n1 >>> 0;
    this.s2 = n2 >>> 0;
    this.s3 = n3 >>> 0;
    return result;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling); 1 ≤ n ≤ 2^32. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) {
      throw new RangeError(`Rng.nextInt: n must be an integer in [1, 2^32], got ${n}`);
    }
    // Reject the top partial bucket so every value has the same probability.
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal N(0, 1) (Box–Muller; no cached spare, so the state stays four words). */
  normal(): number {
    const u1 = 1 - this.next(); // (0, 1]: log is finite
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** true with probability p. */
  bernoulli(p: number): boolean {
    return this.next() < p;
  }

  /** Fisher–Yates shuffle in place; returns the same array. */
  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /** The full state: four uint32 words. JSON-safe. */
  state(): number[] {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  /** A generator that continues exactly where the one that produced `state` was. */
  static fromState(state: readonly number[]): Rng {
    if (
      !Array.isArray(state) ||
      state.length !== 4 ||
      !state.every((w) => Number.isInteger(w) && w >= 0 && w < TWO_POW_32) ||
      state.every((w) => w === 0)
    ) {
      throw new BlockdropError(
        `invalid random generator state ${JSON.stringify(state)}; expected four uint32 words, not all zero (is the checkpoint corrupt?)`,
      );
    }
    const rng = new Rng(0);
    rng.s0 = state[0];
    rng.s1 = state[1];
    rng.s2 = state[2];
    rng.s3 = state[3];
    return rng;
  }

  /** An independent copy with the same state. */
  clone(): Rng {
    return Rng.fromState(this.state());
  }
}
