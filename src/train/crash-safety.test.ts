/**
 * Crash safety: a child process (src/testing/crash-child.ts) trains, exports or saves checkpoints and is
 * killed with SIGKILL at random moments (seeded). After every kill the output on disk is checked:
 * - training: every checkpoint pair present loads and matches its checksum, the newest one is a valid
 *   training state, metrics.jsonl holds only whole records, nothing but known files and ignorable temp
 *   files exists; a resumed child continues from there and the run finally ends with every evaluation
 *   logged exactly once;
 * - export: the output directory is absent or a complete export whose files match their checksums
 *   (an interrupted swap is detected, and repaired by the next export);
 * - checkpoint writes: the checkpoint loads and is one whole save, never a mix of two.
 * A kill is a real SIGKILL: no handler runs, whatever the process had not written is lost.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadAnyCheckpoint, loadModelCheckpoint } from '../checkpoint/store.js';
import { BlockdropError } from '../errors.js';
import { readManifest, readVerifiedFiles } from '../executor/manifest.js';
import { isTempFileName, removeStaleTempFiles } from '../util/atomic.js';
import { Rng } from '../util/rng.js';
import { RunDirectory, type EvalRecord } from './run-dir.js';

const here = fileURLToPath(import.meta.url);
const childScript = join(dirname(here), '..', 'testing', `crash-child${extname(here)}`);
/** Under tsx the child needs the same loader; under plain node (dist/) nothing. */
const loaderArgs = extname(here) === '.ts'
  ? process.execArgv.flatMap((a, i, all) => (a === '--require' || a === '--import' || a === '--loader' ? [a, all[i + 1]!] : /^--(require|import|loader)=/.test(a) ? [a] : []))
  : [];

const root = mkdtempSync(join(tmpdir(), 'blockdrop-crash-'));
after(() => rmSync(root, { recursive: true, force: true }));
const rng = new Rng(20240611);

interface ChildRun {
  readonly lines: string[];
  readonly killed: boolean;
  readonly code: number | null;
  readonly stderr: string;
}

/**
 * Runs the child; `killWhen` sees each stdout line and returns a delay in ms after which to SIGKILL it
 * (or null to keep going). Without a kill the child must exit 0.
 */
function runChild(args: string[], killWhen: (line: string) => number | null = () => null): Promise<ChildRun> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [...loaderArgs, childScript, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let stderr = '';
    let pending = '';
    let armed = false;
    let killed = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      const parts = pending.split('\n');
      pending = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (armed) continue;
        const delay = killWhen(line);
        if (delay === null) continue;
        armed = true;
        setTimeout(() => {
          killed = child.kill('SIGKILL');
        }, delay);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolveRun({ lines, killed: killed && signal === 'SIGKILL', code, stderr }));
  });
}

/** Names a run directory may hold (besides temp files of a killed writer). */
const RUN_FILES = /^(config\.json|metrics\.jsonl|results\.json|policy\.(safetensors|json))$/;
const CHECKPOINT_FILES = /^(state|best)-\d{8}\.(safetensors|json)$/;

/** Everything a kill may leave in a run directory is whole; returns the newest training iteration saved (-1: none). */
async function checkRunDir(dir: string): Promise<number> {
  if (!existsSync(dir)) return -1;
  const run = new RunDirectory(dir);
  for (const name of readdirSync(dir)) {
    if (name === 'checkpoints' || isTempFileName(name)) continue;
    assert.match(name, RUN_FILES, `unexpected file ${name} in the run directory`);
  }
  if (existsSync(join(dir, 'config.json'))) JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const records = run.readMetrics(); // throws on a partial line
  const ckdir = join(dir, 'checkpoints');
  const stems = new Set<string>();
  for (const name of existsSync(ckdir) ? readdirSync(ckdir) : []) {
    if (isTempFileName(name)) continue;
    assert.match(name, CHECKPOINT_FILES, `unexpected file ${name} in checkpoints/`);
    stems.add(join(ckdir, name.replace(/\.(safetensors|json)$/, '')));
  }
  // Every pair present loads: a JSON always matches its weights' sha256; weights alone carry their metadata.
  for (const stem of stems) {
    assert.ok(existsSync(`${stem}.safetensors`), `${basename(stem)}.json without its weights`);
    const loaded = await loadModelCheckpoint(stem);
    assert.ok(loaded.tensors.size > 0);
  }
  if (existsSync(join(dir, 'policy.safetensors'))) await loadModelCheckpoint(join(dir, 'policy'));
  const last = await run.loadLast();
  if (!last) return -1;
  assert.equal(last.meta.format, 'blockdrop-training-state');
  for (const t of last.tensors.values()) assert.ok((t.data as Float32Array).every(Number.isFinite));
  // Metrics may run ahead of the checkpoint (resume truncates them), never behind it.
  assert.ok(records.some((r: EvalRecord) => r.iteration === last.meta.iteration) || last.meta.last === null);
  return last.meta.iteration;
}

test('training killed with SIGKILL at random moments: a valid last checkpoint each time, resume continues, the run finishes', async (t) => {
  const dir = join(root, 'run');
  const [iterations, evalEvery] = [24, 3];
  let saved = -1;
  let kills = 0;
  for (let attempt = 0; attempt < 4; attempt++) {
    // Odd attempts: right after a step that triggers an evaluation, i.e. while checkpoints are being written.
    const atSave = attempt % 2 === 1;
    const delay = atSave ? rng.nextInt(40) : 100 + rng.nextInt(1400);
    const out = await runChild(['train', dir, String(iterations), String(evalEvery)], (line) => {
      if (!atSave) return line.startsWith('ready') ? delay : null;
      const m = /^iteration (\d+)$/.exec(line);
      return m && Number(m[1]) % evalEvery === 0 && Number(m[1]) > saved ? delay : null;
    });
    if (!out.killed) {
      assert.equal(out.code, 0, out.stderr);
      break; // finished before the kill came
    }
    kills++;
    if (saved >= 0) assert.ok(out.lines[0] === 'ready resume', `a run with a checkpoint was not resumed: ${out.lines[0]}`);
    const temps = [dir, join(dir, 'checkpoints')].flatMap((d) => (existsSync(d) ? readdirSync(d).filter(isTempFileName) : []));
    const now = await checkRunDir(dir);
    t.diagnostic(`kill ${kills} at ${out.lines.at(-1)}: last checkpoint at iteration ${now}, ${temps.length} temp file(s) left`);
    assert.ok(now >= saved, `the last checkpoint went back from iteration ${saved} to ${now}`);
    saved = now;
  }
  assert.ok(kills >= 3, `only ${kills} kills landed`);
  const final = await runChild(['train', dir, String(iterations), String(evalEvery)]);
  assert.equal(final.code, 0, final.stderr);
  assert.equal(final.lines.at(-1), `done ${iterations}`);
  assert.equal(await checkRunDir(dir), iterations);
  const run = new RunDirectory(dir);
  assert.deepEqual(run.readMetrics().map((r) => r.iteration), Array.from({ length: iterations / evalEvery + 1 }, (_, i) => i * evalEvery));
  assert.ok(existsSync(join(dir, 'results.json')) && existsSync(join(dir, 'policy.safetensors')));
  // The resume removed what killed writers left behind.
  for (const d of [dir, join(dir, 'checkpoints')]) assert.deepEqual(readdirSync(d).filter(isTempFileName), [], `temp files left in ${d}`);
});

test('export killed with SIGKILL at random moments: the directory is absent or a complete, verified export', async (t) => {
  const out = join(root, 'export');
  for (let attempt = 0; attempt < 4; attempt++) {
    const delay = rng.nextInt(attempt === 0 ? 300 : 600);
    const r = await runChild(['export', out, '50'], (line) => (line === 'ready' || line === 'exported 0' ? delay : null));
    assert.ok(r.killed, `the export child was not killed (exit ${r.code}): ${r.stderr}`);
    const siblings = readdirSync(root).filter((n) => n.startsWith('export.'));
    t.diagnostic(`kill ${attempt} after ${r.lines.length - 1} exports: ${existsSync(out) ? 'export present' : 'no export'}; beside it: ${siblings.join(', ') || 'nothing'}`);
    if (existsSync(out)) {
      const manifest = await readManifest(out);
      const files = await readVerifiedFiles(out, manifest);
      assert.deepEqual([...files.keys()].sort(), Object.keys(manifest.files).sort());
      assert.deepEqual(readdirSync(out).sort(), ['manifest.json', ...Object.keys(manifest.files)].sort());
    } else {
      // Either nothing was exported yet, or the kill came mid-swap: the reader says so instead of failing obscurely.
      await assert.rejects(readManifest(out), (e: unknown) => e instanceof BlockdropError && /does not exist/.test(e.message));
    }
  }
  const done = await runChild(['export', out, '1']);
  assert.equal(done.code, 0, done.stderr);
  await readVerifiedFiles(out, await readManifest(out));
  assert.deepEqual(readdirSync(dirname(out)).filter((n) => n.startsWith('export.')), [], 'leftovers of killed exports remain');
});

test('checkpoint saves killed with SIGKILL at random moments: the checkpoint is always one whole save', async (t) => {
  const dir = join(root, 'ckpt');
  const stem = join(dir, 'model');
  rmSync(dir, { recursive: true, force: true });
  await import('node:fs/promises').then((fs) => fs.mkdir(dir));
  for (let attempt = 0; attempt < 5; attempt++) {
    const delay = rng.nextInt(250);
    const r = await runChild(['checkpoint', stem, '200'], (line) => (line.startsWith('saved') ? delay : null));
    assert.ok(r.killed, `the checkpoint child was not killed (exit ${r.code}): ${r.stderr}`);
    for (const name of readdirSync(dir)) {
      if (!isTempFileName(name)) assert.match(name, /^model\.(safetensors|json)$/);
    }
    const loaded = await loadAnyCheckpoint(`${stem}.safetensors`);
    const i = loaded.meta['i'];
    assert.equal(typeof i, 'number');
    const a = loaded.tensors.get('a')!.data as Float32Array;
    assert.ok(a.length === 1 << 20 && a.every((v) => v === i), `weights are not all from save ${String(i)}`);
    assert.deepEqual([...(loaded.tensors.get('b')!.data as Float32Array)], [i, i, i]);
    const temps = readdirSync(dir).filter(isTempFileName).length;
    t.diagnostic(`kill ${attempt}: save ${String(i)} on disk, ${existsSync(`${stem}.json`) ? 'with' : 'without'} its JSON, ${temps} temp file(s)`);
  }
  await removeStaleTempFiles(dir);
  assert.deepEqual(readdirSync(dir).filter(isTempFileName), []);
});
