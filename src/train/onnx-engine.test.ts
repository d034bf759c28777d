import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/index.js';
import { blockCount, getPreset, policyArchFor, type ResNetConfig } from '../models/config.js';
import { ResNet } from '../models/resnet.js';
import { initResNetWeights } from '../models/weights.js';
import type { TensorMap } from '../tensor.js';
import { Rng } from '../util/rng.js';
import { SMALL_TEST_ARCH } from './synthetic.js';
import { tfjsBackboneModule, type TrainableModule } from './engine.js';
import { OnnxTrainableModule } from './onnx-engine.js';
import type { BlockExecution } from './onnx-graph.js';

before(async () => {
  await initBackend('cpu');
});

/** Random weights with non-trivial batch-norm parameters and running statistics. */
function randomWeights(arch: ResNetConfig, seed: number): TensorMap {
  const w = initResNetWeights(arch, seed);
  const rng = new Rng(seed + 1);
  for (const [key, t] of w) {
    const d = t.data as Float32Array;
    if (key.endsWith('.running_var')) for (let i = 0; i < d.length; i++) d[i] = 0.5 + rng.next();
    else if (key.endsWith('.running_mean') || (key.endsWith('.bias') && !key.startsWith('fc'))) for (let i = 0; i < d.length; i++) d[i] = 0.2 * rng.normal();
    else if (key.endsWith('.weight') && t.shape.length === 1) for (let i = 0; i < d.length; i++) d[i] = 1 + 0.3 * rng.normal();
  }
  return w;
}

function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => scale * rng.normal());
}

/** max |a − b| / (max |b| + tiny): one relative error per tensor, robust to entries near zero. */
function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  const e = relError(actual, expected);
  assert.ok(e <= tol, `${what}: relative error ${e.toExponential(2)} > ${tol}`);
}

const SMALL = SMALL_TEST_ARCH;

/**
 * The same network twice (one per engine): forward values, running statistics after the forward pass,
 * gradients, and that backward leaves the running statistics alone.
 */
async function compareEngines(
  arch: ResNetConfig,
  options: { batch: number; output: 'logits' | 'sigmoid'; keep?: Uint8Array; seed: number; blockExecution?: BlockExecution },
): Promise<void> {
  const { batch, seed } = options;
  const weights = randomWeights(arch, seed);
  const netRef = ResNet.fromWeights(arch, weights, { trainable: true });
  const netOrt = ResNet.fromWeights(arch, weights, { trainable: true });
  const k = blockCount(arch);
  const side = arch.inputSize;
  const backbone =
    options.output === 'sigmoid'
      ? {
          forward: (x: tf.Tensor4D, o?: { keep?: tf.Tensor2D; training?: boolean; blockExecution?: BlockExecution }) =>
            tf.sigmoid(netRef.forward(x, o)) as tf.Tensor2D,
          variables: () => netRef.variables(),
          toTensorMap: () => netRef.toTensorMap(),
          assignWeights: (t: TensorMap) => netRef.assignWeights(t),
        }
      : netRef;
  const ref: TrainableModule = tfjsBackboneModule(backbone, k, side, arch.numClasses, options.blockExecution);
  const ort = await OnnxTrainableModule.create(netOrt, {
    output: options.output,
    keep: options.keep !== undefined,
    threads: 2,
    ...(options.blockExecution ? { blockExecution: options.blockExecution } : {}),
  });
  try {
    const images = randomArray(batch * side * side * 3, seed + 2);
    const a = await ref.forward(images, batch, { keep: options.keep });
    const b = await ort.forward(images, batch, { keep: options.keep });
    assertClose(b.output, a.output, 1e-4, 'forward output');
    const statsAfterForward = netRef.toTensorMap();
    const ortStats = netOrt.toTensorMap();
    for (const [key, t] of statsAfterForward) {
      if (key.includes('running')) assertClose(ortStats.get(key)!.data as Float32Array, t.data as Float32Array, 1e-4, key);
    }
    const dOut = randomArray(batch * arch.numClasses, seed + 3, 1 / batch);
    const ga = await ref.backward(a.saved!, dOut);
    const gb = await ort.backward(b.saved!, dOut);
    const names = [...netRef.namedVariables().keys()];
    assert.equal(ga.length, names.length);
    assert.equal(gb.length, names.length);
    names.forEach((name, i) => {
      if (ga[i] === undefined) {
        assert.equal(gb[i], undefined, `${name}: tfjs gives no gradient, ONNX does`);
        return;
      }
      assert.ok(gb[i], `${name}: no ONNX gradient`);
      assert.deepEqual(gb[i]!.shape, ga[i]!.shape, `${name} shape`);
      assertClose(gb[i]!.dataSync(), ga[i]!.dataSync(), 1e-4, `gradient of ${name}`);
    });
    tf.dispose([...ga, ...gb].filter((g): g is tf.Tensor => g !== undefined));
    // Backward must not touch the running statistics (the tfjs engine puts them back after its re-run).
    const after = netOrt.toTensorMap();
    for (const [key, t] of ortStats) if (key.includes('running')) assert.deepEqual(after.get(key)!.data, t.data, key);
  } finally {
    ort.dispose();
    netRef.dispose();
    netOrt.dispose();
  }
}

test('ONNX engine = tfjs cpu backend: small DownsampleB ResNet, values, running statistics and gradients', async () => {
  await compareEngines(SMALL, { batch: 6, output: 'logits', seed: 11 });
});

test('ONNX engine = tfjs: BlockDrop masked blocks (mixed, all kept, all dropped columns)', async () => {
  const k = blockCount(SMALL);
  const batch = 6;
  const rng = new Rng(5);
  const keep = Uint8Array.from({ length: batch * k }, () => (rng.next() < 0.5 ? 1 : 0));
  for (let r = 0; r < batch; r++) {
    keep[r * k + 1] = 0; // block 1 dropped by every row: skipped, no gradient, running stats untouched
    keep[r * k + 3] = 1; // block 3 kept by every row
  }
  await compareEngines(SMALL, { batch, output: 'logits', keep, seed: 12 });
});

test('gathered blocks: ONNX engine = tfjs, each block on the rows that keep it (values, running statistics, gradients)', async () => {
  const k = blockCount(SMALL);
  const batch = 7;
  const rng = new Rng(6);
  const keep = Uint8Array.from({ length: batch * k }, () => (rng.next() < 0.5 ? 1 : 0));
  for (let r = 0; r < batch; r++) {
    keep[r * k + 1] = 0; // no row runs block 1: empty tensors in the graph, no gradient, running stats untouched
    keep[r * k + 3] = 1; // every row runs block 3
  }
  keep[0 * k + 2] = 1; // block 2 (a stride-2 block) run by exactly one row: batch statistics of one image
  for (let r = 1; r < batch; r++) keep[r * k + 2] = 0;
  await compareEngines(SMALL, { batch, output: 'logits', keep, seed: 15, blockExecution: 'gathered' });
  const arch: ResNetConfig = { ...SMALL, name: 'small-a', shortcut: 'optionA', widths: [4, 8, 16] };
  const keepA = Uint8Array.from({ length: 5 * blockCount(arch) }, (_, i) => (i % 3 === 0 ? 0 : 1));
  await compareEngines(arch, { batch: 5, output: 'logits', keep: keepA, seed: 16, blockExecution: 'gathered' });
});

test('gathered blocks differ from masked ones only in the batch statistics of partly kept blocks', async () => {
  // With every row taking the same path, both ways normalise the same rows: outputs agree.
  const k = blockCount(SMALL);
  const batch = 4;
  const path = [1, 0, 1, 1, 0];
  const uniform = Uint8Array.from({ length: batch * k }, (_, i) => path[i % k]!);
  const mixed = uniform.slice();
  mixed[0 * k + 0] = 0; // one row drops block 0, which the others run
  const outputs: Float32Array[] = [];
  for (const keep of [uniform, mixed]) {
    for (const blockExecution of ['masked', 'gathered'] as const) {
      const net = ResNet.fromWeights(SMALL, randomWeights(SMALL, 17), { trainable: true });
      const module = await OnnxTrainableModule.create(net, { output: 'logits', keep: true, threads: 1, blockExecution });
      try {
        outputs.push((await module.forward(randomArray(batch * 16 * 16 * 3, 18), batch, { keep, grad: false })).output);
      } finally {
        module.dispose();
        net.dispose();
      }
    }
  }
  assertClose(outputs[1]!, outputs[0]!, 1e-5, 'same path for every row');
  assert.ok(relError(outputs[3]!, outputs[2]!) > 1e-3, 'a partly kept block: the batch statistics differ, so must the logits');
});

test('ONNX engine = tfjs: option-A shortcuts and a sigmoid output', async () => {
  const arch: ResNetConfig = { ...SMALL, name: 'small-a', shortcut: 'optionA', widths: [4, 8, 16] };
  const k = blockCount(arch);
  const keep = Uint8Array.from({ length: 4 * k }, (_, i) => (i % 3 === 0 ? 0 : 1));
  await compareEngines(arch, { batch: 4, output: 'logits', keep, seed: 13 });
  await compareEngines(arch, { batch: 4, output: 'sigmoid', seed: 14 });
});

test("ONNX engine = tfjs: BlockDrop's ResNet-8 policy (K = 15 sigmoid outputs)", async () => {
  const arch = policyArchFor(getPreset('resnet32').arch);
  await compareEngines(arch, { batch: 3, output: 'sigmoid', seed: 21 });
});

/**
 * A few steps through `blockDropStep` on each engine from the same state. Returns, per tensor, the relative L2 error
 * of the ONNX run's total update against the tfjs run's (Adam divides by |g|, so elementwise differences of weights
 * whose gradient is near zero say little; the update as a whole must agree).
 */
async function stepsOnBothEngines(stage: 1 | 2): Promise<{ worst: number; worstName: string; losses: number[][] }> {
  const { SYNTHETIC_BACKBONE, syntheticBackboneWeights, syntheticImages, TinyPolicy, syntheticK } = await import('./synthetic.js');
  const { blockDropStep } = await import('./step.js');
  const { Adam } = await import('./adam.js');
  const { tfjsOracle } = await import('./models.js');
  const { createTrainModules } = await import('./engine.js');
  const { normalizeBatch } = await import('../data/batches.js');
  const { NORMALIZATIONS } = await import('../models/config.js');
  const K = syntheticK();
  const batch = 8;
  const snapshot = (policy: { toTensorMap(): TensorMap }, resnet: ResNet): TensorMap => {
    const out: TensorMap = new Map();
    for (const [n, t] of policy.toTensorMap()) out.set(`policy.${n}`, t);
    if (stage === 2) for (const [n, t] of resnet.toTensorMap()) out.set(`resnet.${n}`, t);
    return out;
  };
  const updates: Map<string, Float32Array>[] = [];
  const losses: number[][] = [];
  await initBackend('wasm'); // the engine-level checks above use the cpu reference; these only compare whole steps
  try {
    for (const engine of ['tfjs', 'onnx'] as const) {
      const resnet = ResNet.fromWeights(SYNTHETIC_BACKBONE, randomWeights(SYNTHETIC_BACKBONE, 3), { trainable: stage === 2 });
      const labeller = ResNet.fromWeights(SYNTHETIC_BACKBONE, syntheticBackboneWeights(1));
      const data = syntheticImages(labeller, batch, 3);
      labeller.dispose();
      const policy = new TinyPolicy(K, 7);
      const params = [...policy.variables(), ...(stage === 2 ? resnet.variables() : [])];
      const optimizer = new Adam(params, { lr: 1e-3 });
      const modules = await createTrainModules(engine, policy, stage === 2 ? resnet : undefined, { k: K, side: 32 });
      assert.equal(modules.policy.engine, engine);
      const before = snapshot(policy, resnet);
      const rng = new Rng(99);
      const x = normalizeBatch(data, Array.from({ length: batch }, (_, i) => i), NORMALIZATIONS.none);
      const run: number[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await blockDropStep(
          { policy, resnet, oracle: tfjsOracle(resnet, K, 32), optimizer, params, rng, modules },
          { images: x, labels: Int32Array.from(data.labels), size: batch, side: 32 },
          {
            k: K, learnable: K - 1, entropyWeight: 0.1, entropy: 'original', penalty: 1, alpha: 0.8, trainResNet: stage === 2,
            samples: 2, baseline: 'greedy', advantage: 'signed', lossLimit: 1e6,
          },
        );
        run.push(r.loss);
      }
      losses.push(run);
      const after = snapshot(policy, resnet);
      updates.push(new Map([...after].map(([n, t]) => {
        const a = t.data as Float32Array;
        const b = before.get(n)!.data as Float32Array;
        return [n, a.map((v, i) => v - b[i]!)];
      })));
      modules.dispose();
      optimizer.dispose();
      policy.dispose();
      resnet.dispose();
    }
  } finally {
    await initBackend('cpu');
  }
  let worst = 0;
  let worstName = '';
  for (const [name, ref] of updates[0]!) {
    const got = updates[1]!.get(name)!;
    let d = 0;
    let n = 0;
    for (let i = 0; i < ref.length; i++) {
      d += (got[i]! - ref[i]!) ** 2;
      n += ref[i]! ** 2;
    }
    if (n === 0) {
      assert.equal(d, 0, `${name} moved on one engine only`);
      continue;
    }
    const e = Math.sqrt(d / n);
    if (e > worst) [worst, worstName] = [e, name];
  }
  return { worst, worstName, losses };
}

for (const stage of [1, 2] as const) {
  test(`three stage-${stage} steps${stage === 2 ? ' (ResNet trained too)' : ''}: the ONNX engine makes the tfjs engine's updates`, async () => {
    const { worst, worstName, losses } = await stepsOnBothEngines(stage);
    assert.ok(worst < 1e-3, `update of ${worstName} differs by ${worst} (relative L2)`);
    losses[0]!.forEach((l, i) => assert.ok(Math.abs(l - losses[1]![i]!) < 1e-4 * Math.max(1, Math.abs(l)), `loss ${i}: ${l} vs ${losses[1]![i]}`));
  });
}
