/**
 * A minimal, strict zip reader for torch's checkpoint archives: central directory (with zip64),
 * stored and deflated entries, CRC checks. Written here rather than taken from a library so that
 * a truncated or damaged archive yields a specific message.
 */
import * as zlib from 'node:zlib';
import { BlockdropError } from '../errors.js';
import { oneLine, printable } from '../util/message.js';

export interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly crc: number;
  readonly localHeaderOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const U32_MAX = 0xffffffff;
/** Largest entry decompressed (torch stores entries uncompressed; this only bounds foreign deflated ones). */
const MAX_ENTRY_BYTES = 2 ** 31;

export function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

export class ZipArchive {
  readonly entries: ReadonlyMap<string, ZipEntry>;
  private readonly view: DataView;
  /**
   * Bytes that `read` may still produce: four times the file plus 32 MB. Records that overlap (many
   * central-directory entries pointing at one record) or decompress a thousandfold would otherwise
   * turn a small file into gigabytes and minutes of CRC work.
   */
  private readonly readLimit: number;
  private readLeft: number;

  constructor(private readonly bytes: Uint8Array, private readonly sourceName: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.readLimit = 4 * bytes.length + 32 * 2 ** 20;
    this.readLeft = this.readLimit;
    this.entries = this.readCentralDirectory();
  }

  private fail(detail: string): never {
    throw new BlockdropError(oneLine(`cannot read ${this.sourceName}: ${detail}`));
  }

  private u16(at: number): number {
    return this.view.getUint16(at, true);
  }
  private u32(at: number): number {
    return this.view.getUint32(at, true);
  }
  private u64(at: number): number {
    const v = this.view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail('zip field too large: file is corrupt');
    return Number(v);
  }

  private findEndOfCentralDirectory(): number {
    const { bytes } = this;
    const lowest = Math.max(0, bytes.length - 22 - 0xffff);
    for (let at = bytes.length - 22; at >= lowest; at--) {
      if (bytes[at] === 0x50 && bytes[at + 1] === 0x4b && this.u32(at) === SIG_EOCD) {
        // The comment must fit in the file, or this is a stray signature in data.
        if (at + 22 + this.u16(at + 20) <= bytes.length) return at;
      }
    }
    return this.fail('zip end-of-central-directory not found: file is truncated or not a zip');
  }

  private readCentralDirectory(): Map<string, ZipEntry> {
    const total = this.bytes.length;
    const eocd = this.findEndOfCentralDirectory();
    let count = this.u16(eocd + 10);
    let cdSize = this.u32(eocd + 12);
    let cdOffset = this.u32(eocd + 16);
    if (count === 0xffff || cdSize === U32_MAX || cdOffset === U32_MAX) {
      const locator = eocd - 20;
      if (locator < 0 || this.u32(locator) !== SIG_ZIP64_LOCATOR) this.fail('zip64 locator missing: file is corrupt');
      const record = this.u64(locator + 8);
      if (record + 56 > total || this.u32(record) !== SIG_ZIP64_EOCD) this.fail('zip64 end record missing: file is truncated or corrupt');
      count = this.u64(record + 32);
      cdSize = this.u64(record + 40);
      cdOffset = this.u64(record + 48);
    }
    if (cdOffset + cdSize > total) this.fail('zip central directory lies beyond the end of the file: file is truncated or corrupt');
    const entries = new Map<string, ZipEntry>();
    let at = cdOffset;
    const decoder = new TextDecoder('utf-8');
    for (let i = 0; i < count; i++) {
      if (at + 46 > cdOffset + cdSize || this.u32(at) !== SIG_CENTRAL) this.fail('zip central directory is damaged: file is corrupt');
      const method = this.u16(at + 10);
      const crc = this.u32(at + 16);
      let compressedSize = this.u32(at + 20);
      let size = this.u32(at + 24);
      const nameLen = this.u16(at + 28);
      const extraLen = this.u16(at + 30);
      const commentLen = this.u16(at + 32);
      let localHeaderOffset = this.u32(at + 42);
      const end = at + 46 + nameLen + extraLen + commentLen;
      if (end > cdOffset + cdSize) this.fail('zip central directory is damaged: file is corrupt');
      const name = decoder.decode(this.bytes.subarray(at + 46, at + 46 + nameLen));
      // zip64 extra field: the 64-bit values, in this order, for fields saturated at 0xffffffff.
      let extra = at + 46 + nameLen;
      const extraEnd = extra + extraLen;
      while (extra + 4 <= extraEnd) {
        const id = this.u16(extra);
        const len = this.u16(extra + 2);
        if (id === 0x0001) {
          let p = extra + 4;
          // The field's values must lie within both its own length and the entry's extra field.
          const fieldEnd = Math.min(extra + 4 + len, extraEnd);
          const take = (): number => {
            if (p + 8 > fieldEnd) this.fail(`zip64 field of ${printable(name)} is damaged: file is corrupt`);
            const v = this.u64(p);
            p += 8;
            return v;
          };
          if (size === U32_MAX) size = take();
          if (compressedSize === U32_MAX) compressedSize = take();
          if (localHeaderOffset === U32_MAX) localHeaderOffset = take();
        }
        extra += 4 + len;
      }
      entries.set(name, { name, method, compressedSize, size, crc, localHeaderOffset });
      at = end;
    }
    return entries;
  }

  /** The entry's bytes (a view into the file for stored entries), CRC-checked. */
  read(entry: ZipEntry): Uint8Array {
    const at = entry.localHeaderOffset;
    if (at + 30 > this.bytes.length || this.u32(at) !== SIG_LOCAL) {
      this.fail(`zip record ${entry.name} is missing or damaged: file is truncated or corrupt`);
    }
    // The local header's name/extra lengths can differ from the central directory's (torch pads
    // the local extra field to align data to 64 bytes).
    const start = at + 30 + this.u16(at + 26) + this.u16(at + 28);
    const left = Math.max(0, this.bytes.length - start);
    if (entry.compressedSize > left) {
      this.fail(`zip record ${entry.name} needs ${entry.compressedSize} bytes, only ${left} left: file is truncated or corrupt`);
    }
    const raw = this.bytes.subarray(start, start + entry.compressedSize);
    if (entry.size > this.readLeft) {
      this.fail(
        `zip records ${entry.method === 8 ? 'decompress' : 'overlap'} to more than ${this.readLimit} bytes from a ${this.bytes.length}-byte file ` +
          `(at ${printable(entry.name)}): the file is corrupt or hostile`,
      );
    }
    this.readLeft -= entry.size;
    let data: Uint8Array;
    if (entry.method === 0) {
      if (entry.size !== entry.compressedSize) this.fail(`zip record ${entry.name} has inconsistent sizes: file is corrupt`);
      data = raw;
    } else if (entry.method === 8) {
      if (entry.size > MAX_ENTRY_BYTES) this.fail(`zip record ${entry.name} claims ${entry.size} bytes uncompressed, more than blockdrop loads`);
      try {
        const out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
        // A plain Uint8Array view: zlib's Buffer may be a window on a larger, uninitialised chunk,
        // and Buffer.slice() makes views where callers expect copies.
        data = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      } catch (e) {
        return this.fail(`zip record ${entry.name} does not decompress (${(e as Error).message}): file is corrupt`);
      }
      if (data.length !== entry.size) this.fail(`zip record ${entry.name} decompresses to the wrong size: file is corrupt`);
    } else {
      return this.fail(`zip record ${entry.name} uses compression method ${entry.method}, which is not supported`);
    }
    // zlib.crc32 exists from Node 20.15; older 20.x skip the check.
    if (typeof zlib.crc32 === 'function' && zlib.crc32(data) >>> 0 !== entry.crc >>> 0) {
      this.fail(`zip record ${entry.name} fails its CRC check: file is corrupt`);
    }
    return data;
  }
}
