/**
 * Where ONNX Runtime spends its kernel time: every session is created with `enableProfiling`, and the per-op
 * kernel times of each session are summed per run.
 *
 *   npm run bench -- profile executor [--keep-rate 0.5] [--json]   gather graph (policy inside) vs full fused graph,
 *                                                                  BlockDrop's ResNet-32, 10 batches of 128, 3 rounds
 *   npm run bench -- profile train [--json]                          ResNet-32 training forward / backward graphs of
 *                                                                  the ONNX engine at batch 256 (random images)
 *
 * Profiling slows the runs down: compare the shares and ratios inside one profile, not with other benchmarks.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { initBackend } from '../src/backend/index.js';
import { loadCifar10 } from '../src/data/cifar.js';
import { BlockdropError } from '../src/errors.js';
import { BlockDropModel } from '../src/executor/model.js';
import { exportBlockDrop } from '../src/export/onnx.js';
import { policyArchFor } from '../src/models/config.js';
import { loadBackbone } from '../src/models/load.js';
import { ResNet } from '../src/models/resnet.js';
import { initResNetWeights } from '../src/models/weights.js';
import { OnnxTrainableModule } from '../src/train/onnx-engine.js';
import { Rng } from '../src/util/rng.js';
import { DEFAULT_WEIGHTS } from './inference.js';
import { round, runIfScript } from './stats.js';

interface SessionProfile {
  readonly session: string;
  readonly runs: number;
  readonly kernelMsPerRun: number;
  /** Op type → kernel ms per run, largest first. */
  readonly ops: Record<string, number>;
}

interface ProfileEvent {
  readonly cat?: string;
  readonly name: string;
  readonly dur: number;
  readonly args?: { readonly op_name?: string };
}

type CreateFn = (model: Uint8Array | string, options?: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession>;

/** Turns profiling on for every session created while `body` runs; returns one summary per session that ran. */
async function profiled(body: () => Promise<void>): Promise<SessionProfile[]> {
  const dir = mkdtempSync(join(tmpdir(), 'blockdrop-profile-'));
  const Session = ort.InferenceSession as unknown as { create: CreateFn };
  const create = Session.create.bind(Session);
  let n = 0;
  Session.create = (model, options) => create(model, { ...options, enableProfiling: true, profileFilePrefix: join(dir, `s${String(n++).padStart(3, '0')}`) });
  try {
    await body(); // the body releases its sessions, which writes their profiles
  } finally {
    Session.create = create;
  }
  const out: SessionProfile[] = [];
  for (const file of readdirSync(dir).sort()) {
    const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as ProfileEvent[];
    const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').length;
    if (runs === 0) continue;
    const ops = new Map<string, number>();
    for (const e of events) {
      const op = e.args?.op_name;
      if (e.cat === 'Node' && e.name.endsWith('_kernel_time') && op) ops.set(op, (ops.get(op) ?? 0) + e.dur);
    }
    const sorted = [...ops].sort((a, b) => b[1] - a[1]);
    const total = sorted.reduce((s, [, us]) => s + us, 0);
    out.push({
      session: file.replace(/_.*$/, ''),
      runs,
      kernelMsPerRun: round(total / 1000 / runs, 2),
      ops: Object.fromEntries(sorted.map(([op, us]) => [op, round(us / 1000 / runs, 2)])),
    });
  }
  rmSync(dir, { recursive: true, force: true });
  return out;
}

async function profileExecutor(keepRate: number): Promise<Record<string, unknown>> {
  const backbone = await loadBackbone(DEFAULT_WEIGHTS);
  const dir = mkdtempSync(join(tmpdir(), 'blockdrop-profile-export-'));
  try {
    // An untrained policy runs inside the gather graph for its cost; the decisions are synthetic.
    const policy = initResNetWeights(policyArchFor(backbone.arch), 1);
    await exportBlockDrop({ arch: backbone.arch, normalization: backbone.normalization, resnet: backbone.tensors, policy, outDir: dir });
    const images = loadCifar10({ split: 'test' }).images.subarray(0, 1280 * 32 * 32 * 3);
    const sessions = await profiled(async () => {
      const model = await BlockDropModel.load(dir, { keepRate });
      try {
        for (let round = 0; round < 3; round++) {
          await model.predict(images, { batchSize: 128 });
          await model.predictFull(images, { batchSize: 128 });
        }
      } finally {
        await model.release();
      }
    });
    const labelled = sessions.map((s) => ({ graph: 'ScatterND' in s.ops ? 'gather (policy + skipping backbone)' : 'full fused', ...s }));
    // The load's self-check runs a few more sessions a few times: the two timed graphs are the most-run ones.
    const mostRun = (graph: string) => labelled.filter((s) => s.graph === graph).sort((a, b) => b.runs - a.runs)[0];
    const gather = mostRun('gather (policy + skipping backbone)');
    const full = mostRun('full fused');
    return {
      keepRate,
      batch: 128,
      sessions: labelled,
      kernelTimeSpeedup: gather && full ? round(full.kernelMsPerRun / gather.kernelMsPerRun, 3) : null,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function profileTrain(): Promise<Record<string, unknown>> {
  await initBackend('wasm');
  const backbone = await loadBackbone(DEFAULT_WEIGHTS);
  const resnet = ResNet.fromWeights(backbone.arch, backbone.tensors, { trainable: true });
  const batch = 256;
  const k = 15;
  const rng = new Rng(0);
  const x = Float32Array.from({ length: batch * 32 * 32 * 3 }, () => rng.next() - 0.5);
  const keep = Uint8Array.from({ length: batch * k }, () => (rng.next() < 0.87 ? 1 : 0));
  const sessions = await profiled(async () => {
    const module = await OnnxTrainableModule.create(resnet, { output: 'logits', keep: true });
    try {
      for (let step = 0; step < 4; step++) {
        await module.forward(x, batch, { keep, grad: false }); // the greedy pass
        const out = await module.forward(x, batch, { keep });
        const grads = await module.backward(out.saved!, new Float32Array(batch * backbone.arch.numClasses).fill(0.01));
        for (const g of grads) g?.dispose();
      }
    } finally {
      module.dispose();
      await new Promise((r) => setTimeout(r, 100)); // dispose releases the sessions asynchronously
    }
  });
  resnet.dispose();
  // Creation order: the forward graph, then the backward graph.
  return { batch, sessions: sessions.map((s, i) => ({ graph: i === 0 ? 'training forward' : 'backward', ...s })) };
}

export async function main(argv: readonly string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, 'keep-rate': { type: 'string', default: '0.5' } },
  });
  const what = positionals[0];
  if (what !== 'executor' && what !== 'train') throw new BlockdropError(`profile what? use 'npm run bench -- profile executor' or '… profile train'`);
  const result = what === 'executor' ? await profileExecutor(Number(values['keep-rate'])) : await profileTrain();
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ benchmark: `profile-${what}`, ...result }, null, 2)}\n`);
    return;
  }
  for (const s of result['sessions'] as (SessionProfile & { graph: string })[]) {
    const top = Object.entries(s.ops).slice(0, 8).map(([op, ms]) => `${op} ${ms}`).join(', ');
    process.stdout.write(`${s.graph}: ${s.kernelMsPerRun} ms kernel time per run (${s.runs} runs): ${top}\n`);
  }
  if (result['kernelTimeSpeedup']) process.stdout.write(`kernel-time speedup of the executor: ${String(result['kernelTimeSpeedup'])}×\n`);
}

runIfScript(import.meta.url, main);
