import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  advantages,
  blocksUsed,
  boundProbabilities,
  boundProbabilitiesTf,
  correctPredictions,
  curriculumMask,
  forceLeadingBlocks,
  greedyPolicy,
  learnableBlocks,
  reinforceLoss,
  reinforceLossHost,
  repeatRows,
  rewards,
  samplePolicy,
} from './reinforce.js';
import { Rng } from '../util/rng.js';

await tf.setBackend('cpu');

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected} (tol ${tol})`);
}

test('greedy policy thresholds the unbounded probabilities at 0.5 inclusive', () => {
  assert.deepEqual([...greedyPolicy([0.5, 0.4999, 0.9, 0.1])], [1, 0, 1, 0]);
});

test('bounded probabilities map [0, 1] onto [1 − α, α], or onto [floor, α]', () => {
  const b = boundProbabilities([0, 1, 0.5, 0.25], 0.8);
  close(b[0]!, 0.2, 1e-7, 's=0');
  close(b[1]!, 0.8, 1e-7, 's=1');
  close(b[2]!, 0.5, 1e-7, 's=0.5');
  close(b[3]!, 0.8 * 0.25 + 0.2 * 0.75, 1e-7, 's=0.25');
  const t = boundProbabilitiesTf(tf.tensor2d([[0, 1, 0.5, 0.25]]), 0.8).dataSync();
  for (let i = 0; i < 4; i++) close(t[i]!, b[i]!, 1e-6, `tf ${i}`);
  // A lower floor: dropped blocks (s = 0) are rarely sampled, kept ones still dropped with probability 1 − α.
  const leaning = boundProbabilities([0, 1, 0.5], 0.8, 0.05);
  close(leaning[0]!, 0.05, 1e-7, 'floor at s=0');
  close(leaning[1]!, 0.8, 1e-7, 'α at s=1');
  close(leaning[2]!, 0.425, 1e-7, 'midpoint');
  const lt = boundProbabilitiesTf(tf.tensor2d([[0, 1, 0.5]]), 0.8, 0.05).dataSync();
  for (let i = 0; i < 3; i++) close(lt[i]!, leaning[i]!, 1e-6, `tf floor ${i}`);
});

test('rewards: 1 − (used/K)² when correct, −γ when wrong; forced blocks count as used', () => {
  const k = 4;
  const policy = Uint8Array.from([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]);
  const r = rewards(policy, [1, 1, 1, 0], k, 5);
  close(r[0]!, 0, 1e-7, 'all blocks');
  close(r[1]!, 1 - 1 / 16, 1e-7, 'one block');
  close(r[2]!, 1, 1e-7, 'no block');
  close(r[3]!, -5, 1e-7, 'wrong');
  assert.deepEqual([...blocksUsed(policy, k)], [4, 1, 0, 2]);
});

test('advantage is the sampled reward minus the greedy reward of the same image', () => {
  const k = 2;
  // image 0: greedy keeps both and is right (0); sample keeps one and is right (0.75) -> +0.75
  // image 1: greedy keeps one and is right (0.75); sample keeps none and is wrong (−1) -> −1.75
  const greedy = rewards(Uint8Array.from([1, 1, 1, 0]), [1, 1], k, 1);
  const sampled = rewards(Uint8Array.from([0, 1, 0, 0]), [1, 0], k, 1);
  const a = advantages(sampled, greedy);
  close(a[0]!, 0.75, 1e-7, 'image 0');
  close(a[1]!, -1.75, 1e-7, 'image 1');
  // Two samples per image share their image's greedy baseline.
  const a2 = advantages([0.5, -1, 0.25, 0], [0.25, 0.75], 2);
  assert.deepEqual([...a2].map((x) => Math.round(x * 100) / 100), [0.25, -1.25, -0.5, -0.75]);
  assert.deepEqual([...correctPredictions([3, 1, 2, 2], [3, 2], 2)], [1, 0, 1, 1]);
});

test('curriculum: the original learns the last e+1 blocks in epoch e; per-iteration pacing; off = all', () => {
  const original = { every: 1, unit: 'epoch', start: 1 } as const;
  assert.equal(learnableBlocks(original, 15, 0, 999), 1);
  assert.equal(learnableBlocks(original, 15, 4, 0), 5);
  assert.equal(learnableBlocks(original, 15, 14, 0), 15);
  assert.equal(learnableBlocks(original, 15, 400, 0), 15);
  const fast = { every: 30, unit: 'iteration', start: 1 } as const;
  assert.equal(learnableBlocks(fast, 15, 3, 29), 1);
  assert.equal(learnableBlocks(fast, 15, 3, 30), 2);
  assert.equal(learnableBlocks(fast, 15, 0, 30 * 20), 15);
  assert.equal(learnableBlocks({ every: 0, unit: 'epoch', start: 1 }, 15, 0, 0), 15);
});

test('curriculum masks zero the forced leading blocks, which are forced on in the policy', () => {
  const k = 5;
  const mask = curriculumMask(2, k, 2);
  assert.deepEqual([...mask], [0, 0, 0, 1, 1, 0, 0, 0, 1, 1]);
  const policy = forceLeadingBlocks(Uint8Array.from([0, 0, 0, 0, 1, 0, 1, 0, 1, 0]), k, 2);
  assert.deepEqual([...policy], [1, 1, 1, 0, 1, 1, 1, 1, 1, 0]);
  assert.deepEqual([...curriculumMask(1, k, 5)], [1, 1, 1, 1, 1]);
  assert.deepEqual([...curriculumMask(1, k, 9)], [1, 1, 1, 1, 1]);
});

test('sampling follows the bounded probabilities and repeats rows for several samples per image', () => {
  const rng = new Rng(3);
  const p = Float32Array.from([0.2, 0.8]);
  const n = 20000;
  let ones0 = 0;
  let ones1 = 0;
  for (let i = 0; i < n; i++) {
    const u = samplePolicy(p, 2, () => rng.next());
    ones0 += u[0]!;
    ones1 += u[1]!;
  }
  close(ones0 / n, 0.2, 0.015, 'p=0.2');
  close(ones1 / n, 0.8, 0.015, 'p=0.8');
  const many = samplePolicy(Float32Array.from([1, 0, 0, 1]), 2, () => rng.next(), 3);
  assert.deepEqual([...many], [1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1]);
  assert.deepEqual([...repeatRows(Float32Array.from([1, 2, 3, 4]), 2, 2)], [1, 2, 1, 2, 3, 4, 3, 4]);
});

test('the tfjs REINFORCE loss equals the double-precision reference, both entropy kinds', () => {
  const k = 3;
  const bounded = [0.3, 0.7, 0.5, 0.25, 0.6, 0.8];
  const policy = [1, 0, 1, 0, 0, 1];
  const adv = [0.5, -1.25];
  const mask = [0, 1, 1, 0, 1, 1];
  for (const entropy of ['original', 'bernoulli'] as const) {
    const expected = reinforceLossHost(bounded, policy, adv, k, { mask, entropyWeight: 0.1, entropy });
    const actual = reinforceLoss({
      bounded: tf.tensor2d(bounded, [2, k]),
      policy: tf.tensor2d(policy, [2, k]),
      advantage: tf.tensor1d(adv),
      mask: tf.tensor2d(mask, [2, k]),
      entropyWeight: 0.1,
      entropy,
    }).dataSync()[0]!;
    close(actual, expected, 1e-6, entropy);
  }
  // Hand value: one row, one block, u=1, s'=0.5, A=2, β=0: −log(0.5)·2 = 1.386.
  close(reinforceLossHost([0.5], [1], [2], 1, { entropyWeight: 0 }), 2 * Math.log(2), 1e-12, 'hand');
});

/** A tiny policy: s = sigmoid(x·W + b) with x [rows, d], W [d, K]. */
function tinyPolicyLoss(w: number[], b: number[], x: number[], d: number, k: number, policy: number[], adv: number[], mask: number[], alpha: number, beta: number): number {
  const rows = x.length / d;
  const bounded: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < k; j++) {
      let z = b[j]!;
      for (let i = 0; i < d; i++) z += x[r * d + i]! * w[i * k + j]!;
      const s = 1 / (1 + Math.exp(-z));
      bounded.push(alpha * s + (1 - alpha) * (1 - s));
    }
  }
  return reinforceLossHost(bounded, policy, adv, k, { mask, entropyWeight: beta });
}

test('REINFORCE gradient through a tiny network matches a numeric gradient', () => {
  const rng = new Rng(11);
  const d = 4;
  const k = 3;
  const rows = 5;
  const alpha = 0.8;
  const beta = 0.1;
  const x = Array.from({ length: rows * d }, () => rng.normal());
  const w = Array.from({ length: d * k }, () => 0.5 * rng.normal());
  const b = Array.from({ length: k }, () => 0.5 * rng.normal());
  const policy = Array.from({ length: rows * k }, () => (rng.next() < 0.5 ? 1 : 0));
  const adv = Array.from({ length: rows }, () => rng.normal());
  const mask = Array.from(curriculumMask(rows, k, 2));

  const wVar = tf.variable(tf.tensor2d(w, [d, k]));
  const bVar = tf.variable(tf.tensor1d(b));
  const { grads } = tf.variableGrads(() => {
    const s = tf.sigmoid(tf.tensor2d(x, [rows, d]).matMul(wVar).add(bVar)) as tf.Tensor2D;
    return reinforceLoss({
      bounded: boundProbabilitiesTf(s, alpha),
      policy: tf.tensor2d(policy, [rows, k]),
      advantage: tf.tensor1d(adv),
      mask: tf.tensor2d(mask, [rows, k]),
      entropyWeight: beta,
    });
  }, [wVar, bVar]);
  const gw = grads[wVar.name]!.dataSync();
  const gb = grads[bVar.name]!.dataSync();
  const h = 1e-6;
  const f = (ww: number[], bb: number[]): number => tinyPolicyLoss(ww, bb, x, d, k, policy, adv, mask, alpha, beta);
  for (let i = 0; i < w.length; i++) {
    const plus = [...w];
    const minus = [...w];
    plus[i]! += h;
    minus[i]! -= h;
    const numeric = (f(plus, b) - f(minus, b)) / (2 * h);
    close(gw[i]!, numeric, 1e-4 + 1e-3 * Math.abs(numeric), `dW[${i}]`);
  }
  for (let j = 0; j < k; j++) {
    const plus = [...b];
    const minus = [...b];
    plus[j]! += h;
    minus[j]! -= h;
    const numeric = (f(w, plus) - f(w, minus)) / (2 * h);
    close(gb[j]!, numeric, 1e-4 + 1e-3 * Math.abs(numeric), `db[${j}]`);
  }
  // The masked first block gets no policy gradient, only the entropy's.
  const onlyEntropy = (ww: number[], bb: number[]): number => {
    const zeroAdv = adv.map(() => 0);
    return tinyPolicyLoss(ww, bb, x, d, k, policy, zeroAdv, mask, alpha, beta);
  };
  const plus = [...b];
  const minus = [...b];
  plus[0]! += h;
  minus[0]! -= h;
  close(gb[0]!, (onlyEntropy(w, plus) - onlyEntropy(w, minus)) / (2 * h), 1e-5, 'masked block');
});

test('the averaged REINFORCE estimate points along the exact gradient of the expected reward', () => {
  // K = 3 blocks, logits θ; s = sigmoid(θ), u ~ Bernoulli(s') with α = 0.8; reward is a fixed table R(u).
  // Exact J(θ) = Σ_u P(u; s') R(u); the estimator's mean over many samples (greedy baseline, β = 0) must match ∇J.
  const k = 3;
  const alpha = 0.8;
  const theta = [0.7, -0.4, 1.5];
  const table = new Map<number, number>();
  const rngTable = new Rng(5);
  for (let code = 0; code < 8; code++) table.set(code, rngTable.normal());
  const rewardOf = (u: ArrayLike<number>): number => table.get(u[0]! * 4 + u[1]! * 2 + u[2]!)!;
  const expected = (th: number[]): number => {
    const sb = th.map((t) => boundProbabilities([1 / (1 + Math.exp(-t))], alpha)[0]!);
    let j = 0;
    for (let code = 0; code < 8; code++) {
      const u = [(code >> 2) & 1, (code >> 1) & 1, code & 1];
      let p = 1;
      for (let i = 0; i < k; i++) p *= u[i] ? sb[i]! : 1 - sb[i]!;
      j += p * rewardOf(u);
    }
    return j;
  };
  const h = 1e-6;
  const exact = theta.map((_, i) => {
    const plus = [...theta];
    const minus = [...theta];
    plus[i]! += h;
    minus[i]! -= h;
    return (expected(plus) - expected(minus)) / (2 * h);
  });

  const rows = 40000;
  const rng = new Rng(9);
  const s = theta.map((t) => 1 / (1 + Math.exp(-t)));
  const sRows = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) sRows.set(s, r * k);
  const policy = samplePolicy(boundProbabilities(sRows, alpha), k, () => rng.next());
  const greedyReward = rewardOf(greedyPolicy(s));
  const adv = new Float32Array(rows);
  for (let r = 0; r < rows; r++) adv[r] = rewardOf(policy.subarray(r * k, r * k + k)) - greedyReward;
  const thetaVar = tf.variable(tf.tensor1d(theta));
  const { grads } = tf.variableGrads(() => {
    const probs = tf.sigmoid(thetaVar).expandDims(0).tile([rows, 1]) as tf.Tensor2D;
    return reinforceLoss({
      bounded: boundProbabilitiesTf(probs, alpha),
      policy: tf.tensor2d(policy, [rows, k]),
      advantage: tf.tensor1d(adv),
      entropyWeight: 0,
    });
  }, [thetaVar]);
  // The loss is −(estimate of J), so its gradient is −∇J.
  const estimate = [...grads[thetaVar.name]!.dataSync()].map((g) => -g);
  for (let i = 0; i < k; i++) close(estimate[i]!, exact[i]!, 0.02, `∂J/∂θ${i}`);
});

test('leave-one-out advantages subtract the mean of the other samples of the same image', async () => {
  const { leaveOneOutAdvantages } = await import('./reinforce.js');
  const a = leaveOneOutAdvantages([1, 0, -1, 0.5, 0.5, 0.5], 3);
  const expected = [1 - -0.5, 0 - 0, -1 - 0.5, 0, 0, 0];
  a.forEach((v, i) => close(v, expected[i]!, 1e-7, `row ${i}`));
  assert.throws(() => leaveOneOutAdvantages([1, 2], 1));
});
