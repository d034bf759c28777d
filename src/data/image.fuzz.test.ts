/**
 * Hostile images: property-based fuzzing of the PNG / JPEG decoding for user images and of the
 * CIFAR readers (sprite PNGs, binary batches, label files), with a fixed seed, plus the specific
 * decompression bombs. Same contract as src/checkpoint/fuzz.test.ts; the long run is bench/fuzz.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { deflateSync } from 'node:zlib';
import fc from 'fast-check';
import jpeg from 'jpeg-js';
import { concatBytes, pngChunk, pngFile, pngIhdr } from '../testing/fuzz-formats.js';
import { checkReader, DEFAULT_LIMITS, type FuzzLimits } from '../testing/fuzz-harness.js';
import { imageProperties } from '../testing/fuzz-targets.js';
import { decodeCifarSpritePng, readLabelsJson } from './cifar.js';
import { decodeImageBytes, encodePng } from './image.js';

const SEED = 0x5eed;

const dir = mkdtempSync(join(tmpdir(), 'blockdrop-image-fuzz-'));
after(() => rmSync(dir, { recursive: true, force: true }));

for (const p of imageProperties()) {
  test(`fuzz ${p.name}: ${p.testRuns} inputs give an image or a one-line BlockdropError, fast and small`, async () => {
    await fc.assert(p.build('small'), { seed: SEED, numRuns: p.testRuns });
  });
}

const FAST: FuzzLimits = { ...DEFAULT_LIMITS, maxMs: 3000, rssFixedMB: 48 };

function refusedFast(bytes: Uint8Array, parse: (b: Uint8Array) => unknown, pattern: RegExp): void {
  const outcome = checkReader(bytes, parse, undefined, FAST);
  assert.equal(outcome.ok, false, `accepted; expected ${pattern}`);
  assert.match(outcome.message!, pattern);
}

const decode = (b: Uint8Array) => decodeImageBytes(b, 'bomb.png');
const zeros = (mb: number): Uint8Array => new Uint8Array(deflateSync(new Uint8Array(mb * 2 ** 20), { level: 9 }));
const end = pngChunk('IEND', new Uint8Array(0));

test('PNG decompression bombs are refused before the decoder inflates them', () => {
  // A 32×32 RGB header (3,104 bytes of image data) over 16 MB of zeros in a 16 KB IDAT.
  refusedFast(pngFile([pngChunk('IHDR', pngIhdr(32, 32, 8, 2)), pngChunk('IDAT', zeros(16)), end]), decode,
    /^bomb\.png: not a PNG or JPEG image \(corrupt PNG: its image data inflates to more than the 3104 bytes a 32×32 image needs\)$/);
  // Image data shorter than the header implies (a truncated download).
  refusedFast(pngFile([pngChunk('IHDR', pngIhdr(32, 32, 8, 2)), pngChunk('IDAT', new Uint8Array(deflateSync(new Uint8Array(100)))), end]), decode,
    /image data holds 100 bytes, a 32×32 image needs 3104 \(truncated\?\)/);
  // A second IHDR that would make the decoder allocate 60000×60000×8 bytes, and a header that is not first.
  const valid = encodePng(new Uint8Array(32 * 32 * 3), 32, 32);
  const chunks = valid.subarray(8);
  refusedFast(pngFile([chunks.subarray(0, 25), pngChunk('IHDR', pngIhdr(60_000, 60_000, 16, 6)), chunks.subarray(25)]), decode, /a second IHDR chunk/);
  refusedFast(pngFile([pngChunk('tEXt', new TextEncoder().encode('k\0v')), chunks]), decode, /the first chunk is 'tEXt', not IHDR/);
  refusedFast(pngFile([pngChunk('IHDR', pngIhdr(8000, 8000, 8, 2)), end]), decode, /image is too large \(8000×8000 = 64\.0 megapixels, limit 50\)/);
  refusedFast(pngFile([pngChunk('IHDR', pngIhdr(32, 32, 8, 2)), pngChunk('IDAT', new Uint8Array(4), { claimLength: 0x7fffffff })]), decode,
    /chunk 'IDAT' at byte 33 claims 2147483647 bytes, only \d+ left/);
});

test('a compressed ICC profile is never inflated: a 16 MB iCCP bomb in a valid PNG decodes at no cost', () => {
  const valid = encodePng(new Uint8Array(32 * 32 * 3).fill(200), 32, 32);
  const ihdrEnd = 8 + 25;
  const bomb = pngChunk('iCCP', concatBytes([new TextEncoder().encode('icc'), Uint8Array.of(0, 0), zeros(16)]));
  const file = concatBytes([valid.subarray(0, ihdrEnd), bomb, valid.subarray(ihdrEnd)]);
  const outcome = checkReader(file, decode, undefined, FAST);
  assert.equal(outcome.ok, true, outcome.message);
  assert.deepEqual(decode(file).rgb.slice(0, 3), Uint8Array.of(200, 200, 200));
});

test('a JPEG that claims 65535×65535 or 50 MP of memory is refused by its frame header', () => {
  const small = jpeg.encode({ width: 16, height: 16, data: new Uint8Array(16 * 16 * 4).fill(128) }, 80).data;
  const b = new Uint8Array(small);
  const sof = b.findIndex((v, i) => v === 0xff && b[i + 1] === 0xc0);
  new DataView(b.buffer).setUint16(sof + 5, 65535);
  new DataView(b.buffer).setUint16(sof + 7, 65535);
  refusedFast(b, (x) => decodeImageBytes(x, 'huge.jpg'), /^huge\.jpg: image is too large to decode \(maxResolutionInMP limit exceeded by \d+MP\); scale it down first$/);
});

test('CIFAR sprites: a short IHDR and an inflate bomb give a BlockdropError, quickly', () => {
  const sprite = (d: number) => (b: Uint8Array) => decodeCifarSpritePng(b, 'data_batch_1.png', d);
  refusedFast(pngFile([pngChunk('IHDR', new Uint8Array(0)), end]), sprite(2), /data_batch_1\.png: corrupt PNG \(IHDR chunk of 0 bytes\)/);
  refusedFast(pngFile([pngChunk('IHDR', pngIhdr(1024, 2, 8, 2)), pngChunk('IDAT', zeros(16)), end]), sprite(2), /corrupt PNG image data \(.*\); re-download data_batch_1\.png/);
});

test('CIFAR label files: JSON errors and odd labels are reported on one line', () => {
  const file = join(dir, 'labels.json');
  writeFileSync(file, '[0,\n1,\nx]');
  assert.throws(() => readLabelsJson(file, 3), (e: unknown) => e instanceof Error && /not valid JSON/.test(e.message) && !e.message.includes('\n'));
  writeFileSync(file, `[0, 1, ${'['.repeat(50_000)}${']'.repeat(50_000)}]`);
  assert.throws(() => readLabelsJson(file, 3), /label 2 is an array, expected an integer 0\.\.9/);
});
