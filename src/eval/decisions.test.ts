/** Per-image decisions summarised for the report: histogram, class × block keep rates, extremes per class. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockdropError } from '../errors.js';
import { blocksPerImage, decisionsFromMasks, summarizeDecisions } from './decisions.js';

describe('summarizeDecisions', () => {
  // 6 images, 2 classes, K = 3
  const d = decisionsFromMasks({
    k: 3,
    classes: ['a', 'b'],
    labels: [0, 0, 0, 1, 1, 1],
    keep: Uint8Array.from([1, 1, 1, /**/ 1, 0, 0, /**/ 0, 0, 0, /**/ 1, 1, 0, /**/ 1, 1, 0, /**/ 0, 1, 1]),
    correct: [1, 0, 1, 1, 1, 0],
    source: 'hand-made',
  });

  it('counts blocks, histogram, keep rates, accuracy and distinct policies', () => {
    assert.deepEqual([...blocksPerImage(d)], [3, 1, 0, 2, 2, 2]);
    const s = summarizeDecisions(d, 1);
    assert.equal(s.images, 6);
    assert.equal(s.accuracy, 4 / 6);
    assert.deepEqual(s.histogram, [1, 1, 3, 1]);
    assert.equal(s.blocksMean, 10 / 6);
    assert.ok(Math.abs(s.blocksStd - Math.sqrt((9 + 1 + 0 + 4 + 4 + 4) / 6 - (10 / 6) ** 2)) < 1e-12);
    assert.deepEqual(s.classBlockKeepRate, [
      [2 / 3, 1 / 3, 1 / 3],
      [2 / 3, 1, 1 / 3],
    ]);
    assert.deepEqual(s.perClassAccuracy, [2 / 3, 2 / 3]);
    assert.deepEqual(s.perClassBlocks, [4 / 3, 2]);
    assert.equal(s.distinctPolicies, 5);
    // fewest / most per class; ties broken by row order
    assert.deepEqual(s.extremes, [
      { fewest: [2], most: [0] },
      { fewest: [3], most: [3] },
    ]);
  });

  it('rejects masks that do not match the labels', () => {
    assert.throws(
      () => decisionsFromMasks({ k: 3, classes: ['a'], labels: [0, 0], keep: new Uint8Array(5), correct: [1, 1], source: 'x' }),
      BlockdropError,
    );
  });
});
