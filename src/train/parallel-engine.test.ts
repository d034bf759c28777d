/**
 * The data-parallel training engine equals the one-process ONNX engine run shard by shard: outputs, gradients
 * (the sum of the shards'), `undefined` for blocks no row ran; the running statistics are updated once with the
 * shards' statistics combined into the whole batch's; new weights reach the workers.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/index.js';
import { blockCount } from '../models/config.js';
import { ResNet } from '../models/resnet.js';
import { initResNetWeights } from '../models/weights.js';
import { Rng } from '../util/rng.js';
import { SMALL_TEST_ARCH } from './synthetic.js';
import { OnnxTrainableModule, updateRunningStatistics, type BatchStatistics } from './onnx-engine.js';
import type { BlockExecution } from './onnx-graph.js';
import { ParallelTrainableModule } from './parallel-engine.js';

before(async () => {
  await initBackend('cpu');
});

const ARCH = SMALL_TEST_ARCH;

function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => scale * rng.normal());
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function checkParallel(blockExecution: BlockExecution): Promise<void> {
  const weights = initResNetWeights(ARCH, 21);
  const netPar = ResNet.fromWeights(ARCH, weights, { trainable: true });
  const netShards = ResNet.fromWeights(ARCH, weights, { trainable: true });
  const netWhole = ResNet.fromWeights(ARCH, weights, { trainable: true });
  const k = blockCount(ARCH);
  const batch = 7; // shards of 3 and 4 rows
  const side = ARCH.inputSize;
  const per = side * side * 3;
  const rng = new Rng(4);
  const keep = Uint8Array.from({ length: batch * k }, () => (rng.next() < 0.6 ? 1 : 0));
  for (let r = 0; r < batch; r++) {
    keep[r * k + 2] = 0; // dropped by every row: no gradient, running statistics untouched
    keep[r * k + 1] = r < 3 ? 0 : 1; // dropped by the first shard only
  }
  const par = await ParallelTrainableModule.create(netPar, { output: 'logits', keep: true, workers: 2, blockExecution });
  const one = await OnnxTrainableModule.create(netShards, { output: 'logits', keep: true, threads: 1, blockExecution });
  const whole = await OnnxTrainableModule.create(netWhole, { output: 'logits', keep: true, threads: 1, blockExecution });
  try {
    assert.equal(par.workerCount, 2);
    const images = randomArray(batch * per, 5);
    const dOut = randomArray(batch * ARCH.numClasses, 6, 1 / batch);
    const p = await par.forward(images, batch, { keep });
    const gp = await par.backward(p.saved!, dOut);

    const shards: [number, number][] = [[0, 3], [3, 7]];
    const output = new Float32Array(batch * ARCH.numClasses);
    const sums: (Float32Array | undefined)[] = [];
    const shardStats: BatchStatistics[][] = [];
    for (const [a, b] of shards) {
      const f = await one.forwardWithStatistics(images.slice(a * per, b * per), b - a, { keep: keep.slice(a * k, b * k) });
      shardStats.push(f.statistics);
      output.set(f.forward.output, a * ARCH.numClasses);
      const g = await one.backward(f.forward.saved!, dOut.slice(a * ARCH.numClasses, b * ARCH.numClasses));
      g.forEach((t, i) => {
        if (!t) return;
        const v = t.dataSync() as Float32Array;
        if (!sums[i]) sums[i] = v.slice();
        else for (let j = 0; j < v.length; j++) sums[i]![j]! += v[j]!;
        t.dispose();
      });
    }
    assert.ok(maxDiff(p.output, output) <= 1e-5, 'outputs are the shards\' outputs');
    const names = [...netPar.namedVariables().keys()];
    assert.equal(gp.length, names.length);
    gp.forEach((g, i) => {
      if (!sums[i]) return assert.equal(g, undefined, `${names[i]}: no row ran it, no gradient`);
      assert.ok(g, `${names[i]}: gradient missing`);
      assert.ok(maxDiff(g.dataSync(), sums[i]!) <= 1e-5, `${names[i]}: gradient = sum of the shards'`);
    });
    assert.ok(names.some((n, i) => n.startsWith('blocks.') && gp[i] === undefined), 'the all-dropped block has no gradient');
    tf.dispose(gp.filter((g): g is tf.Tensor => g !== undefined));

    // Running statistics: the shards' statistics combined into the batch's (weighted mean; mean of variance +
    // squared mean, minus the squared mean), then PyTorch's update. The stem's batch norm sees the same input in
    // both arrangements, so there it is exactly the one-process update over the whole batch. Masked blocks weigh
    // each shard by its rows; gathered ones by the rows that ran the block (block 1: the second shard alone).
    const keptRows = (t: number, [a, b]: [number, number]): number => {
      let n = 0;
      for (let r = a; r < b; r++) n += keep[r * k + t]!;
      return n;
    };
    const blockRows = Array.from({ length: k }, (_, t) => keptRows(t, [0, batch]));
    const combined = one.batchNorms.map((bn, i) => {
      const [s0, s1] = [shardStats[0]![i]!, shardStats[1]![i]!];
      const [w0, w1] =
        blockExecution === 'gathered' && bn.block !== undefined ? shards.map((range) => keptRows(bn.block!, range)) : [3, 4];
      const n = w0! + w1! || 1;
      const mean = s0.mean.map((m0, c) => (w0! * m0 + w1! * s1.mean[c]!) / n);
      const variance = s0.variance.map((v0, c) => (w0! * (v0 + s0.mean[c]! ** 2) + w1! * (s1.variance[c]! + s1.mean[c]! ** 2)) / n - mean[c]! ** 2);
      return { mean, variance };
    });
    updateRunningStatistics(one.batchNorms, combined, batch, new Set([2]), netShards.allVariables(), blockExecution === 'gathered' ? blockRows : undefined);
    await whole.forward(images, batch, { keep, grad: false });
    const a = netPar.toTensorMap();
    const b = netShards.toTensorMap();
    let compared = 0;
    for (const [key, t] of b) {
      if (!key.includes('running')) continue;
      assert.ok(maxDiff(a.get(key)!.data as Float32Array, t.data as Float32Array) <= 1e-5, key);
      compared++;
    }
    assert.ok(compared > 10);
    const initial = weights.get('blocks.1.0.bn1.running_mean')!.data as Float32Array;
    assert.deepEqual(a.get('blocks.1.0.bn1.running_mean')!.data, initial, 'a block no row ran keeps its running statistics');
    const stem = [...b.keys()].find((key) => key.endsWith('running_mean') && !key.startsWith('blocks.'))!;
    const wholeStats = netWhole.toTensorMap();
    assert.ok(maxDiff(a.get(stem)!.data as Float32Array, wholeStats.get(stem)!.data as Float32Array) <= 1e-6, stem);

    // New weights reach the workers at the next forward pass.
    const fc = netPar.namedVariables().get('fc.bias')!;
    fc.assign(tf.add(fc, 1));
    const q = await par.forward(images, batch, { keep, grad: false });
    for (let i = 0; i < q.output.length; i++) assert.ok(Math.abs(q.output[i]! - p.output[i]! - 1) <= 1e-4, 'fc bias + 1 shifts every logit by 1');
  } finally {
    par.dispose();
    one.dispose();
    whole.dispose();
    netPar.dispose();
    netShards.dispose();
    netWhole.dispose();
  }
}

test('parallel engine (2 workers) = one-process engine shard by shard; running statistics combined over the batch', async () => {
  await checkParallel('masked');
});

test('parallel engine with gathered blocks: shards weighted by the rows that ran each block', async () => {
  await checkParallel('gathered');
});
