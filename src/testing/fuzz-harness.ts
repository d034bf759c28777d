/**
 * The fuzzers' contract, shared by the bounded tests (src/checkpoint/fuzz.test.ts,
 * src/data/image.fuzz.test.ts) and the long run (bench/fuzz.ts): a reader given hostile bytes either
 * returns a valid result or throws a BlockdropError with a one-line message, quickly, without a
 * large allocation.
 */
import fc from 'fast-check';
import { BlockdropError } from '../errors.js';

/** What the contract allows by default. */
export interface FuzzLimits {
  /** Longest time one input may take (ms). */
  readonly maxMs: number;
  /** Largest rise of the process's peak RSS during one input: `fixedMB` + `perInputByte` × input length. */
  readonly rssFixedMB: number;
  readonly rssPerInputByte: number;
  /** Longest error message accepted (one line). */
  readonly maxMessage: number;
}

// maxMs is a hang guard, not a speed target: generous, so a loaded CI machine does not trip it.
export const DEFAULT_LIMITS: FuzzLimits = { maxMs: 5000, rssFixedMB: 96, rssPerInputByte: 16, maxMessage: 800 };

/** A broken contract, with what the input did. */
export class FuzzViolation extends Error {
  override readonly name = 'FuzzViolation';
}

/** Peak resident set size of this process so far, in bytes (a high-water mark: it never falls). */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

export interface Outcome {
  readonly ok: boolean;
  readonly message?: string;
  readonly ms: number;
}

/**
 * Runs `parse` on `input` and enforces the contract; `validate` checks an accepted result. Throws a
 * FuzzViolation (or whatever non-BlockdropError the reader threw, wrapped) when it is broken.
 */
export function checkReader<T>(
  input: Uint8Array,
  parse: (bytes: Uint8Array) => T,
  validate?: (result: T, bytes: Uint8Array) => void,
  limits: FuzzLimits = DEFAULT_LIMITS,
): Outcome {
  const rssBefore = peakRss();
  const t0 = performance.now();
  let outcome: Outcome;
  try {
    const result = parse(input);
    const ms = performance.now() - t0;
    validate?.(result, input);
    outcome = { ok: true, ms };
  } catch (e) {
    const ms = performance.now() - t0;
    if (e instanceof FuzzViolation) throw e;
    checkError(e, limits);
    outcome = { ok: false, message: (e as BlockdropError).message, ms };
  }
  checkCost(outcome.ms, rssBefore, input.length, limits);
  return outcome;
}

/** The same for readers that work on files (the input is written to disk by the caller). */
export async function checkReaderAsync<T>(
  input: Uint8Array,
  parse: () => Promise<T>,
  validate?: (result: T, bytes: Uint8Array) => void,
  limits: FuzzLimits = DEFAULT_LIMITS,
): Promise<Outcome> {
  const rssBefore = peakRss();
  const t0 = performance.now();
  let outcome: Outcome;
  try {
    const result = await parse();
    const ms = performance.now() - t0;
    validate?.(result, input);
    outcome = { ok: true, ms };
  } catch (e) {
    const ms = performance.now() - t0;
    if (e instanceof FuzzViolation) throw e;
    checkError(e, limits);
    outcome = { ok: false, message: (e as BlockdropError).message, ms };
  }
  checkCost(outcome.ms, rssBefore, input.length, limits);
  return outcome;
}

export function checkError(e: unknown, limits: FuzzLimits = DEFAULT_LIMITS): asserts e is BlockdropError {
  if (!(e instanceof BlockdropError)) {
    const what = e instanceof Error ? `${e.name}: ${e.message.slice(0, 300)}` : String(e);
    throw new FuzzViolation(`reader threw ${what} instead of a BlockdropError`, { cause: e });
  }
  const m = e.message;
  if (m.length === 0) throw new FuzzViolation('BlockdropError with an empty message');
  if (/[\r\n\u2028\u2029\u0085]/.test(m)) throw new FuzzViolation(`BlockdropError message spans lines: ${JSON.stringify(m.slice(0, 300))}`);
  if (m.length > limits.maxMessage) throw new FuzzViolation(`BlockdropError message is ${m.length} characters long: ${JSON.stringify(m.slice(0, 200))}…`);
}

function checkCost(ms: number, rssBefore: number, inputLength: number, limits: FuzzLimits): void {
  if (ms > limits.maxMs) throw new FuzzViolation(`one input took ${ms.toFixed(0)} ms (limit ${limits.maxMs} ms)`);
  const rise = peakRss() - rssBefore;
  const allowed = limits.rssFixedMB * 2 ** 20 + limits.rssPerInputByte * inputLength;
  if (rise > allowed) {
    throw new FuzzViolation(`one input of ${inputLength} bytes raised peak memory by ${(rise / 2 ** 20).toFixed(0)} MB (limit ${(allowed / 2 ** 20).toFixed(0)} MB)`);
  }
}

// ---------------------------------------------------------------------------------------------
// Mutations

/** Values that break length and offset arithmetic. */
const INTERESTING: readonly bigint[] = [
  0n, 1n, 2n, 7n, 8n, 0x7fn, 0x80n, 0xffn, 0x100n, 0x7fffn, 0x8000n, 0xffffn, 0x10000n, 0x7fffffffn, 0x80000000n,
  0xfffffff0n, 0xffffffffn, 0x100000000n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n,
];

export type Mutation =
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'set'; readonly at: number; readonly value: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'delete'; readonly at: number; readonly length: number }
  | { readonly kind: 'int'; readonly at: number; readonly width: 1 | 2 | 4 | 8; readonly littleEndian: boolean; readonly value: bigint; readonly relative: number }
  | { readonly kind: 'copy'; readonly from: number; readonly to: number; readonly length: number };

const position = fc.nat({ max: 2 ** 31 - 1 });

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: position }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.nat(7) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('set' as const), at: position, value: fc.nat(255) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: position, length: fc.integer({ min: 1, max: 64 }) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('int' as const),
      at: position,
      width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
      littleEndian: fc.boolean(),
      value: fc.oneof(fc.constantFrom(...INTERESTING), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
      // Small values relative to the input's length (length ± k) also break bounds checks.
      relative: fc.integer({ min: -3, max: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('copy' as const), from: position, to: position, length: fc.integer({ min: 1, max: 256 }) }) },
);

/** Applies mutations in order to a copy of `seed`. */
export function applyMutations(seed: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let b = seed.slice();
  for (const m of mutations) {
    const n = b.length;
    switch (m.kind) {
      case 'truncate':
        b = b.slice(0, n === 0 ? 0 : m.at % n);
        break;
      case 'flip':
        if (n) b[m.at % n]! ^= 1 << m.bit;
        break;
      case 'set':
        if (n) b[m.at % n] = m.value;
        break;
      case 'insert': {
        const at = m.at % (n + 1);
        const out = new Uint8Array(n + m.bytes.length);
        out.set(b.subarray(0, at), 0);
        out.set(m.bytes, at);
        out.set(b.subarray(at), at + m.bytes.length);
        b = out;
        break;
      }
      case 'delete': {
        if (!n) break;
        const at = m.at % n;
        const out = new Uint8Array(n - Math.min(m.length, n - at));
        out.set(b.subarray(0, at), 0);
        out.set(b.subarray(at + m.length), at);
        b = out;
        break;
      }
      case 'int': {
        if (n < m.width) break;
        const at = m.at % (n - m.width + 1);
        const value = m.relative !== 0 ? BigInt(Math.max(0, n + m.relative)) : m.value;
        const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
        const v = BigInt.asUintN(8 * m.width, value);
        if (m.width === 1) view.setUint8(at, Number(v));
        else if (m.width === 2) view.setUint16(at, Number(v), m.littleEndian);
        else if (m.width === 4) view.setUint32(at, Number(v), m.littleEndian);
        else view.setBigUint64(at, v, m.littleEndian);
        break;
      }
      case 'copy': {
        if (!n) break;
        const from = m.from % n;
        const to = m.to % n;
        const len = Math.min(m.length, n - from, n - to);
        b.copyWithin(to, from, from + len);
        break;
      }
    }
  }
  return b;
}

/** A seed (chosen among `seeds`) with 1–`max` mutations applied. */
export function mutatedArb(seeds: readonly Uint8Array[], max = 4): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.nat(seeds.length - 1), fc.array(mutationArb, { minLength: 1, maxLength: max }))
    .map(([i, ms]) => applyMutations(seeds[i]!, ms));
}

/** A seed cut at a random length (every length is equally likely). */
export function truncatedArb(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.nat(seeds.length - 1), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }))
    .map(([i, f]) => seeds[i]!.subarray(0, Math.floor(f * seeds[i]!.length)));
}
