import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NORMALIZATIONS } from '../models/config.js';
import { renormalizeBatch } from '../data/batches.js';
import { teacherOracle, type RewardOracle } from './models.js';

/** An oracle that records what it was asked and answers with logits equal to the first input value of each row. */
function recordingOracle(): { oracle: RewardOracle; calls: { images: Float32Array; policy: Uint8Array; rowImage: Int32Array }[]; disposed: () => boolean } {
  const calls: { images: Float32Array; policy: Uint8Array; rowImage: Int32Array }[] = [];
  let disposed = false;
  const oracle: RewardOracle = {
    name: 'recorder',
    async predict(images, _n, policy, rowImage) {
      calls.push({ images, policy, rowImage });
      return new Int32Array(rowImage.length);
    },
    async logits(images, n, policy, rowImage) {
      calls.push({ images, policy, rowImage });
      const per = images.length / n;
      return Float32Array.from(rowImage, (i) => images[i * per]!);
    },
    dispose() {
      disposed = true;
    },
  };
  return { oracle, calls, disposed: () => disposed };
}

test('a teacher runs every one of its own blocks, on images in its own normalisation', async () => {
  const { oracle, calls, disposed } = recordingOracle();
  const teacher = teacherOracle(oracle, 27, NORMALIZATIONS.cifar, NORMALIZATIONS.imagenet);
  const images = Float32Array.from({ length: 2 * 12 }, (_, i) => Math.cos(i));
  const studentPolicy = new Uint8Array(2 * 15); // all drops: the teacher must ignore it
  const logits = await teacher.logits!(images, 2, studentPolicy, Int32Array.from([1, 0]));
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.policy.length, 2 * 27);
  assert.ok(calls[0]!.policy.every((v) => v === 1));
  assert.deepEqual(calls[0]!.images, renormalizeBatch(images, NORMALIZATIONS.cifar, NORMALIZATIONS.imagenet));
  assert.notDeepEqual(calls[0]!.images, images);
  assert.deepEqual(calls[0]!.rowImage, Int32Array.from([1, 0]));
  assert.equal(logits.length, 2);
  await teacher.predict(images, 2, studentPolicy, Int32Array.from([0]));
  assert.equal(calls[1]!.policy.length, 27);
  assert.match(teacher.name, /every block, imagenet input/);
  teacher.dispose();
  assert.ok(disposed());
});

test('a teacher with the student normalisation gets the images unchanged; one without logits has none', async () => {
  const { oracle, calls } = recordingOracle();
  const images = Float32Array.from({ length: 12 }, (_, i) => i / 7);
  await teacherOracle(oracle, 15, NORMALIZATIONS.cifar, NORMALIZATIONS.cifar).logits!(images, 1, new Uint8Array(15), Int32Array.from([0]));
  assert.equal(calls[0]!.images, images);
  const { logits, ...withoutLogits } = oracle;
  void logits;
  assert.equal(teacherOracle(withoutLogits, 15, NORMALIZATIONS.cifar, NORMALIZATIONS.imagenet).logits, undefined);
});
