/** Every chart compiles from Vega-Lite and renders headless to SVG (and PNG) with its data in it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decode } from 'fast-png';
import { decisionsFromMasks, summarizeDecisions } from '../eval/decisions.js';
import { tradeoffPoints } from '../eval/tradeoff.js';
import { blocksHistogramSpec, keepRateHeatmapSpec, prefixIds, renderSvg, svgToPng, tradeoffSpec, trainingCurvesSpec } from './charts.js';

const metrics = Array.from({ length: 12 }, (_, i) => ({
  iteration: (i + 1) * 100,
  trainReward: -0.5 + i * 0.05,
  valReward: -0.4 + i * 0.05,
  trainAccuracy: 0.5 + i * 0.03,
  valAccuracy: 0.55 + i * 0.03,
  trainBlocks: 15 - i * 0.4,
  valBlocksMean: 15 - i * 0.45,
  valDistinctPolicies: 1 + i * 3,
}));

describe('charts', () => {
  it('training curves: four panels, both series, rendered to SVG', async () => {
    const svg = await renderSvg(trainingCurvesSpec(metrics), 'curves-');
    assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    for (const text of ['reward', 'accuracy (%)', 'blocks used', 'distinct policies', 'validation (greedy)', 'iteration']) {
      assert.ok(svg.includes(text), `missing '${text}'`);
    }
  });

  it('trade-off: ours and the paper\'s points, with the zoomed view dropping low-accuracy points', async () => {
    const points = tradeoffPoints({ blockdrop: [{ label: 'a', accuracy: 0.2, flopsMean: 0.9e8 }, { label: 'b', accuracy: 0.9, flopsMean: 1.1e8, flopsStd: 1e7 }] });
    const svg = await renderSvg(tradeoffSpec(points), 't-');
    assert.ok(svg.includes('ours (measured)') && svg.includes('paper (read off Fig. 3)'));
    assert.ok(svg.includes('SACT') && svg.includes('FLOPs per image'));
    const spec = tradeoffSpec(points, { minAccuracy: 0.88 }) as unknown as { data: { values: { accuracy: number }[] } };
    assert.ok(spec.data.values.every((v) => v.accuracy >= 88));
    assert.equal(spec.data.values.length, points.length - 1);
  });

  it('heatmap and histogram from decisions', async () => {
    const n = 50;
    const K = 15;
    const keep = Uint8Array.from({ length: n * K }, (_, j) => ((j * 7) % 5 < 3 ? 1 : 0));
    const d = decisionsFromMasks({ k: K, classes: ['a', 'b', 'c'], labels: Array.from({ length: n }, (_, i) => i % 3), keep, correct: new Array(n).fill(1), source: 't' });
    const s = summarizeDecisions(d);
    const heat = await renderSvg(keepRateHeatmapSpec(s, d.classes), 'h-');
    assert.ok(heat.includes('keep rate') && heat.includes('residual block'));
    assert.ok((heat.match(/<path/g) ?? []).length >= 1);
    const hist = await renderSvg(blocksHistogramSpec(s), 'b-');
    assert.ok(hist.includes('blocks executed'));
  });

  it('prefixes ids and their references so several charts can share a page', () => {
    const svg = '<svg><defs><clipPath id="clip1"><rect/></clipPath></defs><g clip-path="url(#clip1)"></g><use href="#clip1"/></svg>';
    assert.equal(
      prefixIds(svg, 'x-'),
      '<svg><defs><clipPath id="x-clip1"><rect/></clipPath></defs><g clip-path="url(#x-clip1)"></g><use href="#x-clip1"/></svg>',
    );
  });

  it('exports PNG with resvg: a real, non-blank image', async () => {
    const svg = await renderSvg(trainingCurvesSpec(metrics));
    const png = await svgToPng(svg, 1);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const img = decode(png);
    assert.ok(img.width > 300 && img.height > 200);
    let dark = 0;
    const ch = img.channels;
    for (let i = 0; i < img.width * img.height; i++) if (Number(img.data[i * ch]) < 200) dark++;
    assert.ok(dark > 500, `only ${dark} non-white pixels`);
  });
});
