import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/index.js';
import type { TensorMap } from '../tensor.js';
import { blockCount, getPreset, policyArchFor, type ResNetConfig } from './config.js';
import { PolicyNetwork } from './policy.js';
import { ResNet } from './resnet.js';
import { initResNetWeights } from './weights.js';

const resnet8 = getPreset('resnet8').arch;
const resnet8a = getPreset('resnet8a').arch;
/** Tiny torchvision-style nets: projection shortcuts, ImageNet stem, both block types. */
const tinyBasic: ResNetConfig = {
  name: 'tiny-resnet10', blockType: 'basic', blocksPerStage: [1, 2, 1, 1], widths: [8, 16, 32, 64], strides: [1, 2, 2, 2],
  shortcut: 'projection', numClasses: 10, inputSize: 64, stem: 'imagenet', stemWidth: 8,
};
const tinyBottleneck: ResNetConfig = { ...tinyBasic, name: 'tiny-bottleneck', blockType: 'bottleneck', blocksPerStage: [1, 1, 2, 1] };

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Non-trivial BN statistics so that eval-mode folding is actually exercised. */
function randomizedWeights(arch: ResNetConfig, seed: number): TensorMap {
  const w = initResNetWeights(arch, seed);
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (const [key, t] of w) {
    const d = t.data as Float32Array;
    if (key.endsWith('running_var')) d.forEach((_, i) => (d[i] = 0.5 + 1.5 * rand()));
    else if (key.endsWith('running_mean') || key.endsWith('bn1.bias') || key.endsWith('bn2.bias')) d.forEach((_, i) => (d[i] = 0.6 * rand() - 0.3));
    else if (/bn\d\.weight$/.test(key)) d.forEach((_, i) => (d[i] = 0.6 + 0.8 * rand()));
  }
  return w;
}

function input(arch: ResNetConfig, batch: number, seed: number): tf.Tensor4D {
  return tf.randomNormal([batch, arch.inputSize, arch.inputSize, 3], 0, 1, 'float32', seed);
}

function randomMask(batch: number, k: number, seed: number, forceColumnZero?: number): tf.Tensor2D {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const data = new Float32Array(batch * k);
  for (let i = 0; i < batch; i++) for (let t = 0; t < k; t++) data[i * k + t] = rand() < 0.5 ? 0 : 1;
  data.fill(1, 0, k); // image 0 keeps everything
  if (batch > 1) data.fill(0, k, 2 * k); // image 1 drops everything
  if (forceColumnZero !== undefined) for (let i = 0; i < batch; i++) data[i * k + forceColumnZero] = 0;
  return tf.tensor2d(data, [batch, k]);
}

/** Logits of each image run alone with its own row of the mask (true per-image skipping). */
function perImageLogits(net: ResNet, x: tf.Tensor4D, keep: tf.Tensor2D): Float32Array {
  const parts: number[] = [];
  for (let i = 0; i < x.shape[0]; i++) {
    const y = tf.tidy(() => net.forward(tf.slice(x, [i, 0, 0, 0], [1, -1, -1, -1]), { keep: tf.slice(keep, [i, 0], [1, -1]) }));
    parts.push(...y.dataSync());
    y.dispose();
  }
  return Float32Array.from(parts);
}

describe('ResNet (synthetic weights)', () => {
  before(() => initBackend('wasm'));

  for (const arch of [resnet8, resnet8a, tinyBasic, tinyBottleneck]) {
    it(`${arch.name}: batched masked forward equals per-image skipping (gather path and blend path)`, () => {
      const net = ResNet.fromWeights(arch, randomizedWeights(arch, 3));
      const x = input(arch, 6, 1);
      const keep = randomMask(6, blockCount(arch), 7);
      const reference = perImageLogits(net, x, keep);
      const batched = tf.tidy(() => net.forward(x, { keep }).dataSync());
      assert.ok(maxAbsDiff(batched, reference) < 1e-4, `gather path: ${maxAbsDiff(batched, reference)}`);
      // Under a gradient tape eval mode uses the blend x = m·relu(sc+F) + (1−m)·sc instead.
      let blended: Float32Array | undefined;
      tf.tidy(() => {
        tf.grad((xx: tf.Tensor) => {
          const y = net.forward(xx as tf.Tensor4D, { keep });
          blended = y.dataSync() as Float32Array;
          return tf.sum(y);
        })(x);
      });
      assert.ok(maxAbsDiff(blended!, reference) < 1e-4, `blend path: ${maxAbsDiff(blended!, reference)}`);
      // And the mask matters.
      const full = tf.tidy(() => net.forward(x).dataSync());
      assert.ok(maxAbsDiff(full, reference) > 1e-3);
      tf.dispose([x, keep]);
      net.dispose();
    });
  }

  it('a block every image drops is skipped outright (its weights are never touched), eval and training', () => {
    const weights = randomizedWeights(resnet8, 5);
    (weights.get('blocks.1.0.conv1.weight')!.data as Float32Array).fill(NaN);
    const net = ResNet.fromWeights(resnet8, weights);
    const x = input(resnet8, 4, 2);
    const keep = randomMask(4, 3, 11, 1);
    for (const training of [false, true]) {
      const y = tf.tidy(() => net.forward(x, { keep, training }).dataSync());
      assert.ok(y.every(Number.isFinite), `training=${training}: logits must not see the NaN weights`);
    }
    // The running stats of the skipped block did not move; those of a computed block did.
    const after = net.toTensorMap();
    assert.deepEqual([...after.get('blocks.1.0.bn1.running_var')!.data], [...weights.get('blocks.1.0.bn1.running_var')!.data]);
    assert.notDeepEqual([...after.get('blocks.2.0.bn1.running_var')!.data], [...weights.get('blocks.2.0.bn1.running_var')!.data]);
    // Sanity: with the block kept by one image the NaN does reach the output.
    const keepOne = tf.tensor2d([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], [4, 3]);
    const y = tf.tidy(() => net.forward(x, { keep: keepOne }).dataSync());
    assert.ok(y.some(Number.isNaN));
    tf.dispose([x, keep, keepOne]);
    net.dispose();
  });

  it('does not leak tensors (eval, masked, training, under a tape)', () => {
    const net = ResNet.fromWeights(resnet8, randomizedWeights(resnet8, 1), { trainable: true });
    const x = input(resnet8, 4, 3);
    const keep = randomMask(4, 3, 5);
    const keepInt = tf.cast(keep, 'int32') as tf.Tensor2D;
    net.forward(x).dispose(); // warm-up (backend-internal caches)
    const before = tf.memory().numTensors;
    net.forward(x).dispose();
    net.forward(x, { keep }).dispose();
    net.forward(x, { keep: keepInt }).dispose();
    net.forward(x, { keep, training: true }).dispose();
    const { value, grads } = tf.variableGrads(() => tf.sum(net.forward(x, { keep, training: true })) as tf.Scalar);
    value.dispose();
    tf.dispose(Object.values(grads));
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([x, keep, keepInt]);
    net.dispose();
  });

  it('eval forwards follow weight changes (folded-weight cache): assignWeights, train-mode BN stats, optimizer steps', () => {
    const a = randomizedWeights(resnet8, 21);
    const b = randomizedWeights(resnet8, 22);
    const net = ResNet.fromWeights(resnet8, a, { trainable: true });
    const x = input(resnet8, 4, 8);
    const logits = () => tf.tidy(() => net.forward(x).dataSync());
    const fresh = (w: TensorMap) => {
      const other = ResNet.fromWeights(resnet8, w);
      const y = tf.tidy(() => other.forward(x).dataSync());
      other.dispose();
      return y;
    };
    const first = logits();
    assert.ok(maxAbsDiff(first, fresh(a)) < 1e-6);
    net.assignWeights(b);
    assert.ok(maxAbsDiff(logits(), fresh(b)) < 1e-6, 'after assignWeights');
    net.forward(x, { training: true }).dispose(); // moves the BN running stats
    const afterStats = logits();
    assert.ok(maxAbsDiff(afterStats, fresh(b)) > 1e-4);
    assert.ok(maxAbsDiff(afterStats, fresh(net.toTensorMap())) < 1e-6, 'after a train-mode forward');
    const opt = tf.train.sgd(0.1);
    opt.minimize(() => tf.sum(net.forward(x, { training: true })) as tf.Scalar, false, net.variables());
    opt.dispose();
    assert.ok(maxAbsDiff(logits(), fresh(net.toTensorMap())) < 1e-6, 'after an optimizer step');
    x.dispose();
    net.dispose();
  });

  it('toTensorMap returns what fromWeights got (PyTorch layouts, running stats included)', () => {
    const weights = randomizedWeights(tinyBottleneck, 9);
    const net = ResNet.fromWeights(tinyBottleneck, weights);
    const back = net.toTensorMap();
    assert.deepEqual([...back.keys()], [...weights.keys()]);
    for (const [key, t] of weights) {
      assert.deepEqual(back.get(key)!.shape, t.shape, key);
      assert.deepEqual(back.get(key)!.data, t.data, key);
    }
    net.dispose();
  });

  it('variables(): parameters only, trainable flag follows the option', () => {
    const frozen = ResNet.fromWeights(resnet8, initResNetWeights(resnet8, 1));
    const trainable = ResNet.init(resnet8, 1);
    // 7 convs + 7 BNs × 2 + fc weight + bias
    assert.equal(frozen.variables().length, 7 + 14 + 2);
    assert.ok(frozen.variables().every((v) => !v.trainable));
    assert.ok(trainable.variables().every((v) => v.trainable));
    frozen.setTrainable(true);
    assert.ok(frozen.variables().every((v) => v.trainable));
    frozen.dispose();
    trainable.dispose();
  });

  it('training-mode gradients on wasm equal those on cpu (masked, every parameter)', async () => {
    const weights = randomizedWeights(resnet8a, 4);
    const run = () => {
      const net = ResNet.fromWeights(resnet8a, weights, { trainable: true });
      const x = tf.tensor4d(Float32Array.from({ length: 4 * 32 * 32 * 3 }, (_, i) => Math.sin(i * 0.37)), [4, 32, 32, 3]);
      const keep = tf.tensor2d([1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1], [4, 3]);
      const labels = tf.oneHot(tf.tensor1d([1, 3, 5, 7], 'int32'), 10);
      const { value, grads } = tf.variableGrads(() =>
        tf.losses.softmaxCrossEntropy(labels, net.forward(x, { keep, training: true })) as tf.Scalar);
      const out = { loss: value.dataSync()[0]!, grads: net.variables().map((v) => grads[v.name]!.dataSync() as Float32Array) };
      tf.dispose([value, x, keep, labels, ...Object.values(grads)]);
      net.dispose();
      return out;
    };
    const onWasm = run();
    await initBackend('cpu');
    const onCpu = run();
    await initBackend('wasm');
    assert.ok(Math.abs(onWasm.loss - onCpu.loss) < 1e-5);
    onCpu.grads.forEach((g, i) => {
      const scale = Math.max(...g.map(Math.abs));
      assert.ok(maxAbsDiff(onWasm.grads[i]!, g) <= 1e-4 * scale + 1e-9, `parameter ${i}`);
      assert.ok(scale > 0, `parameter ${i} gets a gradient`);
    });
  });

  it('rejects a wrong input or mask shape with a one-line message', () => {
    const net = ResNet.init(resnet8, 1);
    const x = input(resnet8, 2, 1);
    assert.throws(() => net.forward(tf.zeros([2, 3, 32, 32]) as tf.Tensor4D), /NHWC/);
    assert.throws(() => net.forward(x, { keep: tf.ones([2, 4]) as tf.Tensor2D }), /keep mask must be \[2, 3\]/);
    net.dispose();
    assert.throws(() => net.forward(x), /disposed/);
    x.dispose();
  });
});

describe('PolicyNetwork', () => {
  before(() => initBackend('wasm'));

  it('gives K probabilities in (0, 1) from a ResNet-8 with a K-way head', () => {
    const backbone = getPreset('resnet110').arch;
    const policy = PolicyNetwork.init(backbone, 42);
    assert.equal(policy.numBlocks, 54);
    assert.equal(policy.arch.numClasses, 54);
    assert.equal(policy.arch.blocksPerStage.join(','), '1,1,1');
    const x = input(resnet8, 3, 1);
    const p = policy.probabilities(x);
    assert.deepEqual(p.shape, [3, 54]);
    assert.ok(p.dataSync().every((v) => v > 0 && v < 1));
    tf.dispose([x, p]);
    policy.dispose();
  });

  it('loads an original agent state dict (features.*, logit.*, unused vnet.* dropped)', () => {
    const backbone = getPreset('resnet32').arch;
    const canonical = initResNetWeights(policyArchFor(backbone), 3);
    const agent: TensorMap = new Map();
    for (const [k, t] of canonical) agent.set(k.startsWith('fc.') ? k.replace('fc.', 'logit.') : `features.${k}`, t);
    agent.set('vnet.weight', { dtype: 'float32', shape: [1, 64], data: new Float32Array(64) });
    agent.set('vnet.bias', { dtype: 'float32', shape: [1], data: new Float32Array(1) });
    const policy = PolicyNetwork.fromWeights(backbone, agent);
    const init = PolicyNetwork.init(backbone, 3);
    const x = input(resnet8, 2, 5);
    const a = policy.probabilities(x);
    const b = init.probabilities(x);
    assert.deepEqual(a.dataSync(), b.dataSync());
    tf.dispose([x, a, b]);
    policy.dispose();
    init.dispose();
  });
});
