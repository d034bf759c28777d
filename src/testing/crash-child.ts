/**
 * The process that src/train/crash-safety.test.ts kills with SIGKILL at random moments. It prints
 * "ready" once set up, then one line per unit of work, and "done" at the end.
 *
 *   crash-child train RUN_DIR ITERATIONS EVAL_EVERY   a small stage-1 run on the synthetic task (resumes when RUN_DIR has a checkpoint)
 *   crash-child export OUT_DIR COUNT                   COUNT exports of a ResNet-8 (+ policy) to OUT_DIR, alternating weights
 *   crash-child checkpoint STEM COUNT                  COUNT saves of a 4 MB checkpoint pair to STEM, alternating content
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { saveModelCheckpoint } from '../checkpoint/store.js';
import { exportBlockDrop } from '../export/onnx.js';
import { getPreset, NORMALIZATIONS, policyArchFor } from '../models/config.js';
import { initResNetWeights } from '../models/weights.js';
import type { TensorMap } from '../tensor.js';

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Saves of this checkpoint hold 2^20 float32 values, all equal to `i`, and meta { i }. */
export function checkpointContent(i: number): TensorMap {
  return new Map([
    ['a', { dtype: 'float32', shape: [1024, 1024], data: new Float32Array(1 << 20).fill(i) }],
    ['b', { dtype: 'float32', shape: [3], data: Float32Array.of(i, i, i) }],
  ]);
}

async function train(runDir: string, iterations: number, evalEvery: number): Promise<void> {
  const { initBackend } = await import('../backend/index.js');
  const { syntheticTrainingSetup } = await import('../train/synthetic.js');
  const { runTraining } = await import('../train/trainer.js');
  await initBackend('wasm');
  const checkpoints = join(runDir, 'checkpoints');
  const resume = existsSync(checkpoints) && readdirSync(checkpoints).some((f) => /^state-\d+\.safetensors$/.test(f));
  say(resume ? 'ready resume' : 'ready fresh');
  const result = await runTraining(
    syntheticTrainingSetup({ runDir, resume, batchSize: 16, iterations, evalEvery, samples: 2 }, { trainImages: 64, valImages: 32 }),
    { onProgress: (p) => p.phase === 'train' && say(`iteration ${p.iteration}`) },
  );
  say(`done ${result.iterations}`);
}

async function exportLoop(outDir: string, count: number): Promise<void> {
  const arch = getPreset('resnet8').arch;
  const weights = [1, 2].map((seed) => ({ resnet: initResNetWeights(arch, seed), policy: initResNetWeights(policyArchFor(arch), seed + 10) }));
  say('ready');
  for (let i = 0; i < count; i++) {
    const w = weights[i % 2]!;
    await exportBlockDrop({ arch, normalization: NORMALIZATIONS.none, resnet: w.resnet, policy: w.policy, outDir });
    say(`exported ${i}`);
  }
  say('done');
}

async function checkpointLoop(stem: string, count: number): Promise<void> {
  say('ready');
  for (let i = 0; i < count; i++) {
    await saveModelCheckpoint(stem, { tensors: checkpointContent(i), meta: { i } });
    say(`saved ${i}`);
  }
  say('done');
}

const [mode, path, a, b] = process.argv.slice(2);
const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain && mode && path) {
  const run = mode === 'train' ? train(path, Number(a), Number(b)) : mode === 'export' ? exportLoop(path, Number(a)) : checkpointLoop(path, Number(a));
  run.then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
}
