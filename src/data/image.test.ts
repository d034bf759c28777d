import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { deflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { BlockdropError } from '../errors.js';
import { decodeImageBytes, decodeImageFile, encodePng, resizeArea } from './image.js';

const dir = mkdtempSync(join(tmpdir(), 'blockdrop-image-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), 8 + data.length);
  return out;
}
/** A PNG written by hand (independent of fast-png's encoder): rows are already packed, filter 0 everywhere. */
function handPng(width: number, height: number, depth: number, colorType: number, rows: Uint8Array[], plte?: number[]): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = depth;
  ihdr[9] = colorType;
  const raw = Buffer.concat(rows.map((r) => Buffer.concat([Buffer.from([0]), r])));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...(plte ? [chunk('PLTE', Uint8Array.from(plte))] : []),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

function gradient(w: number, h: number): Uint8Array {
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      rgb[(y * w + x) * 3] = (x * 7) & 255;
      rgb[(y * w + x) * 3 + 1] = (y * 5) & 255;
      rgb[(y * w + x) * 3 + 2] = (x + y) & 255;
    }
  }
  return rgb;
}

test('PNG 32×32 RGB: encodePng → decodeImageFile round-trips exactly', () => {
  const rgb = gradient(32, 32);
  const file = join(dir, 'a.png');
  writeFileSync(file, encodePng(rgb, 32, 32));
  const img = decodeImageFile(file);
  assert.equal(img.originalWidth, 32);
  assert.equal(img.originalHeight, 32);
  assert.deepEqual(img.rgb, rgb);
});

test('PNG colour types and depths become RGB8 (grey 1-bit, palette 4-bit, grey+alpha, RGBA, RGB 16-bit)', () => {
  const w = 32;
  const h = 32;
  const expectAll = (bytes: Buffer, expected: (x: number, y: number) => [number, number, number], name: string) => {
    const { rgb } = decodeImageBytes(bytes, name);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        assert.deepEqual([...rgb.subarray((y * w + x) * 3, (y * w + x) * 3 + 3)], expected(x, y), `${name} (${x},${y})`);
      }
    }
  };
  // 1-bit grey: pixel on where (x + y) is odd. 4 bytes per row, MSB first.
  const grey1 = Array.from({ length: h }, (_, y) => {
    const row = new Uint8Array(4);
    for (let x = 0; x < w; x++) if ((x + y) & 1) row[x >> 3]! |= 0x80 >> (x & 7);
    return row;
  });
  expectAll(handPng(w, h, 1, 0, grey1), (x, y) => ((x + y) & 1 ? [255, 255, 255] : [0, 0, 0]), 'grey1');
  // 4-bit palette with 3 colours.
  const palette = [10, 20, 30, 200, 100, 50, 0, 255, 0];
  const pal4 = Array.from({ length: h }, (_, y) => {
    const row = new Uint8Array(16);
    for (let x = 0; x < w; x++) row[x >> 1]! |= ((x + 2 * y) % 3) << (x & 1 ? 0 : 4);
    return row;
  });
  expectAll(handPng(w, h, 4, 3, pal4, palette), (x, y) => {
    const k = (x + 2 * y) % 3;
    return [palette[3 * k]!, palette[3 * k + 1]!, palette[3 * k + 2]!];
  }, 'palette4');
  // 8-bit grey + alpha: alpha is dropped.
  const ga = Array.from({ length: h }, (_, y) => Uint8Array.from({ length: 2 * w }, (_, k) => (k & 1 ? 17 : (k >> 1) * 8 + y)));
  expectAll(handPng(w, h, 8, 4, ga), (x, y) => {
    const v = (x * 8 + y) & 255;
    return [v, v, v];
  }, 'grey+alpha');
  // 8-bit RGBA.
  const rgba = Array.from({ length: h }, (_, y) => Uint8Array.from({ length: 4 * w }, (_, k) => (k % 4 === 3 ? 0 : (k % 4) * 60 + y)));
  expectAll(handPng(w, h, 8, 6, rgba), (_x, y) => [y, 60 + y, 120 + y], 'rgba');
  // 16-bit RGB (big-endian samples): v16 = v8 × 257 maps back to v8.
  const rgb16 = Array.from({ length: h }, (_, y) => {
    const row = Buffer.alloc(6 * w);
    for (let x = 0; x < w; x++) {
      row.writeUInt16BE(x * 257, 6 * x);
      row.writeUInt16BE(y * 257, 6 * x + 2);
      row.writeUInt16BE(65535, 6 * x + 4);
    }
    return row;
  });
  expectAll(handPng(w, h, 16, 2, rgb16), (x, y) => [x, y, 255], 'rgb16');
});

test('resize: area averaging of 2×2 blocks, and odd sizes keep a uniform colour', () => {
  const w = 64;
  const h = 64;
  const rgb = gradient(w, h);
  const { rgb: small, originalWidth, originalHeight } = decodeImageBytes(encodePng(rgb, w, h), 'big.png');
  assert.deepEqual([originalWidth, originalHeight], [64, 64]);
  for (const [oy, ox] of [[0, 0], [7, 30], [31, 31]] as const) {
    for (let c = 0; c < 3; c++) {
      let sum = 0;
      for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) sum += rgb[((2 * oy + dy) * w + 2 * ox + dx) * 3 + c]!;
      assert.equal(small[(oy * 32 + ox) * 3 + c], Math.round(sum / 4), `(${oy},${ox},${c})`);
    }
  }
  // 50×45 uniform and 20×10 (enlarging) uniform stay uniform.
  for (const [ww, hh] of [[50, 45], [20, 10]] as const) {
    const flat = new Uint8Array(ww * hh * 3);
    for (let i = 0; i < flat.length; i += 3) flat.set([12, 130, 250], i);
    const out = resizeArea(flat, ww, hh, 32, 32);
    for (let i = 0; i < out.length; i += 3) assert.deepEqual([...out.subarray(i, i + 3)], [12, 130, 250]);
  }
  // 96 → 32 averages 3×3 blocks: black for x < 32, white after; output 10 covers source 30, 31 (black) and 32.
  const bars = new Uint8Array(96 * 96 * 3);
  for (let y = 0; y < 96; y++) for (let x = 32; x < 96; x++) bars.fill(255, (y * 96 + x) * 3, (y * 96 + x) * 3 + 3);
  const barsOut = resizeArea(bars, 96, 96, 32, 32);
  assert.equal(barsOut[(5 * 32 + 9) * 3], 0);
  assert.equal(barsOut[(5 * 32 + 10) * 3], 85);
  assert.equal(barsOut[(5 * 32 + 11) * 3], 255);
  // 48 → 32: output pixel 1 covers source [1.5, 3): half of pixel 1 and all of pixel 2.
  const line = new Uint8Array(48 * 1 * 3);
  line.fill(90, 3 * 1, 3 * 2);
  line.fill(30, 3 * 2, 3 * 3);
  const lineOut = resizeArea(line, 48, 1, 32, 1);
  assert.equal(lineOut[3], Math.round((0.5 * 90 + 30) / 1.5));
});

test('JPEG: decoded (lossy, close) and resized; too-large JPEG and PNG refused cleanly', () => {
  const w = 64;
  const h = 48;
  const rgba = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) rgba.set([200, 40, 90, 255], i * 4);
  const jpg = jpeg.encode({ width: w, height: h, data: rgba }, 95).data;
  const file = join(dir, 'photo.jpg');
  writeFileSync(file, jpg);
  const img = decodeImageFile(file);
  assert.deepEqual([img.originalWidth, img.originalHeight], [64, 48]);
  assert.equal(img.rgb.length, 32 * 32 * 3);
  for (let i = 0; i < img.rgb.length; i += 3) {
    assert.ok(Math.abs(img.rgb[i]! - 200) <= 4 && Math.abs(img.rgb[i + 1]! - 40) <= 4 && Math.abs(img.rgb[i + 2]! - 90) <= 4);
  }
  assert.throws(() => decodeImageFile(file, { maxMegapixels: 0.001 }), (e: unknown) => {
    assert.ok(e instanceof BlockdropError);
    assert.match(e.message, /photo\.jpg: image is too large/);
    return true;
  });
  // A PNG that claims 100000×100000 in its header: refused before inflating anything.
  const huge = Buffer.from(encodePng(gradient(32, 32), 32, 32));
  huge.writeUInt32BE(100_000, 16);
  huge.writeUInt32BE(100_000, 20);
  assert.throws(() => decodeImageBytes(huge, 'huge.png'), /huge\.png: image is too large \(100000×100000/);
});

test('non-images, corrupt images and missing files give one clear BlockdropError', () => {
  const text = join(dir, 'notes.txt');
  writeFileSync(text, 'hello, not an image');
  const check = (f: () => unknown, pattern: RegExp) =>
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof BlockdropError, String(e));
      assert.match(e.message, pattern);
      return true;
    });
  check(() => decodeImageFile(text), /notes\.txt: not a PNG or JPEG image \(starts with bytes 68 65 6c/);
  const empty = join(dir, 'empty.png');
  writeFileSync(empty, '');
  check(() => decodeImageFile(empty), /empty\.png: not a PNG or JPEG image \(empty file\)/);
  const png = Buffer.from(encodePng(gradient(32, 32), 32, 32));
  check(() => decodeImageBytes(png.subarray(0, 60), 'cut.png'), /cut\.png: not a PNG or JPEG image \(corrupt PNG/);
  const badJpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6]);
  check(() => decodeImageBytes(badJpeg, 'bad.jpg'), /bad\.jpg: not a PNG or JPEG image \(corrupt JPEG/);
  check(() => decodeImageFile(join(dir, 'missing.png')), /missing\.png: cannot read the file \(ENOENT\)/);
});
