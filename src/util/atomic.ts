/**
 * Crash-safe writes: a reader sees either the old file (or directory) or the complete new one,
 * never a partial write. Data goes to a temporary name in the same directory, is fsynced, renamed
 * over the target (atomic within one file system), and the directory entry is fsynced too.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { BlockdropError } from '../errors.js';

function reasonFor(e: unknown, target: string): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOENT': return `directory ${dirname(target)} does not exist`;
    case 'ENOTDIR': return `a part of the path ${dirname(target)} is not a directory`;
    case 'EACCES':
    case 'EPERM': return 'permission denied';
    case 'EROFS': return 'the file system is read-only';
    case 'ENOSPC': return 'no space left on the device';
    case 'EDQUOT': return 'disk quota exceeded';
    case 'EISDIR': return `${target} is a directory`;
    case 'ENAMETOOLONG': return 'the file name is too long';
    default: return err.message ?? String(e);
  }
}

/** The user-facing error for a failed write of `target`. */
export function writeError(target: string, e: unknown, option = '--out'): BlockdropError {
  if (e instanceof BlockdropError) return e;
  return new BlockdropError(`cannot write ${target}: ${reasonFor(e, target)}; choose a writable ${option} directory`, { cause: e });
}

/** fsync a directory so a rename in it survives a crash; some platforms cannot, which is harmless. */
async function syncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw e;
  } finally {
    await handle?.close();
  }
}

async function writeAndSync(path: string, data: Uint8Array | string): Promise<void> {
  const handle = await open(path, 'wx', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function tempSuffix(): string {
  return `${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Whether process `pid` is still running (a temp file of a live writer must not be touched). */
function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `.<name>.<pid>-<hex>.tmp`: what writeFileAtomic writes before its rename. */
const TEMP_FILE = /^\..+\.(\d+)-[0-9a-f]{8}\.tmp$/;

/** Whether `name` is a temporary file of writeFileAtomic (readers ignore these). */
export function isTempFileName(name: string): boolean {
  return TEMP_FILE.test(name);
}

/**
 * Deletes the temporary files that writers killed mid-write left in `dir` (those of live processes
 * stay). Returns the names removed. A missing directory has none.
 */
export async function removeStaleTempFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_FILE.exec(name);
    if (!m || isAlive(Number(m[1]))) continue;
    await rm(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Deletes `path` (if present) and makes the deletion durable before the caller writes anything else,
 * so that after a crash the file is either still there or gone, in order with later writes.
 */
export async function removeFileDurably(path: string): Promise<void> {
  try {
    await rm(path, { force: true });
    await syncDir(dirname(resolve(path)));
  } catch (e) {
    throw writeError(path, e);
  }
}

/** Writes `data` to `path` atomically (temp file in the same directory, fsync, rename, fsync dir). */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const target = resolve(path);
  const dir = dirname(target);
  const temp = join(dir, `.${basename(target)}.${tempSuffix()}.tmp`);
  try {
    await writeAndSync(temp, data);
    await rename(temp, target);
    await syncDir(dir);
  } catch (e) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw writeError(path, e);
  }
}

/** A relative path inside the directory being written, or an error. */
function safeRelative(name: string, dir: string): string {
  const norm = normalize(name);
  if (!name || isAbsolute(name) || norm === '.' || norm.split(/[\\/]/).some((part) => part === '..' || part === '')) {
    throw new BlockdropError(`cannot write ${dir}: invalid file name '${name}' (must be a relative path inside the directory)`);
  }
  return norm;
}

/** `<target>.tmp-<pid>` (being built) and `<target>.old-<pid>-<hex>` (set aside during the swap). */
function siblingOf(target: string, name: string): { kind: 'tmp' | 'old'; pid: number } | null {
  const base = basename(target);
  if (!name.startsWith(`${base}.`)) return null;
  const m = /^\.(tmp|old)-(\d+)(-[0-9a-f]{8})?$/.exec(name.slice(base.length));
  if (!m || (m[1] === 'old') !== (m[3] !== undefined)) return null;
  return { kind: m[1] as 'tmp' | 'old', pid: Number(m[2]) };
}

/**
 * Cleans up after a writeDirAtomic that was killed: when the kill came between setting the old
 * directory aside and renaming the new one in, the old (complete) directory is put back; every
 * leftover of a dead writer is then removed.
 */
export async function recoverInterruptedDir(dir: string): Promise<void> {
  const target = resolve(dir);
  const parent = dirname(target);
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return;
  }
  const stale = names.map((name) => ({ name, info: siblingOf(target, name) })).filter((s) => s.info && !isAlive(s.info.pid));
  if (stale.length === 0) return;
  let targetExists = true;
  try {
    await stat(target);
  } catch {
    targetExists = false;
  }
  for (const { name, info } of stale) {
    const path = join(parent, name);
    if (!targetExists && info!.kind === 'old') {
      await rename(path, target);
      targetExists = true;
      continue;
    }
    await rm(path, { recursive: true, force: true });
  }
  await syncDir(parent);
}

/**
 * Creates directory `dir` holding exactly `files` (relative names, subfolders allowed), atomically:
 * it is built as `<dir>.tmp-<pid>` and renamed into place. An existing `dir` is renamed aside
 * first, replaced, and then removed; if the swap fails the old directory is put back. Leftovers of a
 * writer that was killed (see recoverInterruptedDir) are cleaned up, restoring the previous directory
 * if the kill came in the middle of the swap.
 */
export async function writeDirAtomic(dir: string, files: Readonly<Record<string, Uint8Array | string>>): Promise<void> {
  const target = resolve(dir);
  const parent = dirname(target);
  const temp = `${target}.tmp-${process.pid}`;
  const names = Object.keys(files).map((name) => [name, safeRelative(name, dir)] as const);
  try {
    await recoverInterruptedDir(target);
    await rm(temp, { recursive: true, force: true }); // leftover of an earlier crashed run of this pid
    await mkdir(temp);
  } catch (e) {
    throw writeError(dir, e);
  }
  try {
    const dirs = new Set<string>([temp]);
    for (const [name, rel] of names) {
      const path = join(temp, rel);
      if (rel.includes(sep)) {
        await mkdir(dirname(path), { recursive: true });
        dirs.add(dirname(path));
      }
      await writeAndSync(path, files[name]!);
    }
    for (const d of dirs) await syncDir(d);
    let existing = false;
    try {
      const info = await stat(target);
      if (!info.isDirectory()) throw new BlockdropError(`cannot write ${dir}: it exists and is not a directory; choose another --out directory`);
      existing = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (!existing) {
      await rename(temp, target);
    } else {
      const old = `${target}.old-${tempSuffix()}`;
      await rename(target, old);
      try {
        await rename(temp, target);
      } catch (e) {
        await rename(old, target).catch(() => undefined);
        throw e;
      }
      await rm(old, { recursive: true, force: true });
    }
    await syncDir(parent);
    await recoverInterruptedDir(target).catch(() => undefined); // the new directory is in place: best effort
  } catch (e) {
    await rm(temp, { recursive: true, force: true }).catch(() => undefined);
    throw writeError(dir, e);
  }
}
