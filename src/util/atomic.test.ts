import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BlockdropError } from '../errors.js';
import {
  isTempFileName, recoverInterruptedDir, removeFileDurably, removeStaleTempFiles, writeDirAtomic, writeError, writeFileAtomic,
} from './atomic.js';

const root = mkdtempSync(join(tmpdir(), 'blockdrop-atomic-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => {
  const dir = join(root, `case${n++}`);
  mkdirSync(dir);
  return dir;
};

test('writeFileAtomic writes bytes or text, replaces an existing file, and leaves no temp files', async () => {
  const dir = fresh();
  const path = join(dir, 'a.bin');
  await writeFileAtomic(path, Uint8Array.from([1, 2, 3]));
  assert.deepEqual([...readFileSync(path)], [1, 2, 3]);
  await writeFileAtomic(path, 'hello ü');
  assert.equal(readFileSync(path, 'utf8'), 'hello ü');
  assert.deepEqual(readdirSync(dir), ['a.bin']);
});

test('writeFileAtomic: a missing directory or a file in the path gives the --out advice and no leftovers', async () => {
  const dir = fresh();
  await assert.rejects(writeFileAtomic(join(dir, 'nope', 'a.bin'), 'x'), (e: unknown) =>
    e instanceof BlockdropError &&
    /^cannot write .*a\.bin: directory .*nope does not exist; choose a writable --out directory$/.test(e.message));
  writeFileSync(join(dir, 'file'), 'x');
  await assert.rejects(writeFileAtomic(join(dir, 'file', 'a.bin'), 'x'), /is not a directory; choose a writable --out directory/);
});

test('writeFileAtomic: when the rename fails (target is a directory) the temp file is removed', async () => {
  const dir = fresh();
  mkdirSync(join(dir, 'target'));
  writeFileSync(join(dir, 'target', 'keep'), 'x');
  await assert.rejects(writeFileAtomic(join(dir, 'target'), 'data'), BlockdropError);
  assert.deepEqual(readdirSync(dir), ['target']);
});

test('writeFileAtomic: a read-only directory is reported (skipped when running as root, who can write anyway)', async (t) => {
  if (process.getuid?.() === 0) return t.skip('root ignores directory permissions');
  const { chmodSync } = await import('node:fs');
  const dir = fresh();
  chmodSync(dir, 0o555);
  try {
    await assert.rejects(writeFileAtomic(join(dir, 'a.bin'), 'x'), /permission denied; choose a writable --out directory/);
  } finally {
    chmodSync(dir, 0o755);
  }
});

test('write errors name the cause: read-only file system, full disk, permissions', () => {
  const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });
  assert.equal(writeError('/o/m.json', errno('EROFS')).message, 'cannot write /o/m.json: the file system is read-only; choose a writable --out directory');
  assert.equal(writeError('/o/m.json', errno('ENOSPC')).message, 'cannot write /o/m.json: no space left on the device; choose a writable --out directory');
  assert.equal(writeError('/o/m.json', errno('EACCES')).message, 'cannot write /o/m.json: permission denied; choose a writable --out directory');
  assert.equal(writeError('/o/m.json', errno('EDQUOT')).message, 'cannot write /o/m.json: disk quota exceeded; choose a writable --out directory');
});

test('writeDirAtomic creates a directory with files and subfolders', async () => {
  const dir = join(fresh(), 'out');
  await writeDirAtomic(dir, { 'model.json': '{"a":1}', 'weights/w.bin': Uint8Array.from([9, 8]) });
  assert.equal(readFileSync(join(dir, 'model.json'), 'utf8'), '{"a":1}');
  assert.deepEqual([...readFileSync(join(dir, 'weights', 'w.bin'))], [9, 8]);
});

test('writeDirAtomic replaces an existing directory completely and leaves no .tmp/.old siblings', async () => {
  const parent = fresh();
  const dir = join(parent, 'out');
  await writeDirAtomic(dir, { 'old.txt': 'old', 'shared.txt': 'v1' });
  await writeDirAtomic(dir, { 'shared.txt': 'v2', 'new.txt': 'new' });
  assert.deepEqual(readdirSync(dir).sort(), ['new.txt', 'shared.txt']);
  assert.equal(readFileSync(join(dir, 'shared.txt'), 'utf8'), 'v2');
  assert.deepEqual(readdirSync(parent), ['out']);
});

test('writeDirAtomic refuses unsafe names and a target that is a file, and cleans up', async () => {
  const parent = fresh();
  for (const name of ['../escape.txt', '/abs.txt', 'a/../../b', '']) {
    await assert.rejects(writeDirAtomic(join(parent, 'out'), { [name]: 'x' }), /invalid file name/);
  }
  writeFileSync(join(parent, 'plain'), 'x');
  await assert.rejects(writeDirAtomic(join(parent, 'plain'), { 'a.txt': 'x' }), /exists and is not a directory/);
  assert.equal(readFileSync(join(parent, 'plain'), 'utf8'), 'x');
  await assert.rejects(writeDirAtomic(join(parent, 'missing', 'out'), { 'a.txt': 'x' }), /does not exist; choose a writable --out directory/);
  assert.deepEqual(readdirSync(parent), ['plain']);
});

/** A pid no process has (above Linux's largest pid_max). */
const DEAD_PID = 99_999_999;

test('recoverInterruptedDir: a kill mid-swap is undone (the old directory put back), other leftovers of dead writers removed', async () => {
  const dir = fresh();
  const target = join(dir, 'out');
  // Killed between "rename target aside" and "rename new into place": only the set-aside copy exists.
  mkdirSync(`${target}.old-${DEAD_PID}-0123abcd`);
  writeFileSync(join(`${target}.old-${DEAD_PID}-0123abcd`, 'manifest.json'), 'old');
  mkdirSync(`${target}.tmp-${DEAD_PID}`);
  writeFileSync(join(`${target}.tmp-${DEAD_PID}`, 'half'), 'x');
  mkdirSync(join(dir, 'out.tmp-other')); // not a writer's name: left alone
  await recoverInterruptedDir(target);
  assert.deepEqual(readdirSync(dir).sort(), ['out', 'out.tmp-other']);
  assert.equal(readFileSync(join(target, 'manifest.json'), 'utf8'), 'old');
  // With the target present, a set-aside copy is simply stale; a live writer's temp directory stays.
  mkdirSync(`${target}.old-${DEAD_PID}-0123abcd`);
  mkdirSync(`${target}.tmp-${process.pid}`);
  await recoverInterruptedDir(target);
  assert.deepEqual(readdirSync(dir).sort(), ['out', `out.tmp-${process.pid}`, 'out.tmp-other']);
  // The next writeDirAtomic cleans up the same way.
  mkdirSync(`${target}.old-${DEAD_PID}-0123abcd`);
  await writeDirAtomic(target, { 'manifest.json': 'new' });
  assert.deepEqual(readdirSync(dir).sort(), ['out', 'out.tmp-other']);
  assert.equal(readFileSync(join(target, 'manifest.json'), 'utf8'), 'new');
});

test('removeStaleTempFiles deletes only temp files of dead writers; removeFileDurably deletes a file or nothing', async () => {
  const dir = fresh();
  const dead = `.model.safetensors.${DEAD_PID}-89abcdef.tmp`;
  const live = `.model.safetensors.${process.pid}-89abcdef.tmp`;
  for (const name of [dead, live, 'model.safetensors', '.hidden.tmp']) writeFileSync(join(dir, name), 'x');
  assert.ok(isTempFileName(dead) && isTempFileName(live) && !isTempFileName('model.safetensors') && !isTempFileName('.hidden.tmp'));
  assert.deepEqual(await removeStaleTempFiles(dir), [dead]);
  assert.deepEqual(readdirSync(dir).sort(), ['.hidden.tmp', live, 'model.safetensors'].sort());
  assert.deepEqual(await removeStaleTempFiles(join(dir, 'missing')), []);
  await removeFileDurably(join(dir, 'model.safetensors'));
  await removeFileDurably(join(dir, 'model.safetensors'));
  assert.ok(!existsSync(join(dir, 'model.safetensors')));
});
