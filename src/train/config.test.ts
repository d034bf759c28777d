import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alphaAt, configFromOptions, defaultStage1Config, defaultStage2Config, learningRate, stage1Flags, stage2Flags, validateConfig } from './config.js';

const base = { ...defaultStage1Config, resnet: 'r.t7', runDir: 'run' };

test("defaults are the reference's: stage 1 lr 1e-3, β 0.1, γ 1, α 0.8, curriculum per epoch; stage 2 lr 1e-4, γ 5, decay at 1600", () => {
  assert.equal(defaultStage1Config.lr, 1e-3);
  assert.equal(defaultStage1Config.entropyWeight, 0.1);
  assert.equal(defaultStage1Config.penalty, 1);
  assert.equal(defaultStage1Config.alpha, 0.8);
  assert.equal(defaultStage1Config.curriculumEvery, 1);
  assert.equal(defaultStage1Config.curriculumUnit, 'epoch');
  assert.equal(defaultStage2Config.lr, 1e-4);
  assert.equal(defaultStage2Config.penalty, 5);
  assert.equal(defaultStage2Config.entropyWeight, 0);
  assert.equal(defaultStage2Config.lrDecayEvery, 1600);
  // Every flag names a config field, once.
  for (const flags of [stage1Flags, stage2Flags]) {
    const keys = flags.map((f) => f.key);
    assert.equal(new Set(keys).size, keys.length);
  }
  // --resnet and --policy are checked after --resume has had its chance to fill them from the run directory.
  assert.ok(stage2Flags.some((f) => f.key === 'policy' && !f.required));
  assert.ok(stage1Flags.some((f) => f.key === 'runDir' && f.required));
});

test('validation explains bad values in one line', () => {
  assert.throws(() => validateConfig({ ...base, penalty: -5 }), /--penalty 5 here/);
  assert.throws(() => validateConfig({ ...base, resnet: '' }), /--resnet/);
  assert.throws(() => validateConfig({ ...base, alpha: 0.3 }), /alpha/);
  assert.throws(() => validateConfig({ ...base, baseline: 'samples', samples: 1 }), /--samples 2/);
  assert.throws(() => validateConfig({ ...base, sampleFloor: 0.9 }), /--sample-floor between 0 and α/);
  assert.equal(validateConfig({ ...base, sampleFloor: 0.05 }).sampleFloor, 0.05);
  assert.throws(() => validateConfig({ ...base, cutout: 40 }), /cutout 40 is invalid; pass --cutout/);
  assert.throws(() => validateConfig({ ...base, cutout: 2.5 }), /cutout 2.5 is invalid/);
  assert.equal(validateConfig({ ...base, cutout: 16 }).cutout, 16);
  assert.throws(() => validateConfig({ ...base, momentum: 1 }), /momentum 1 is outside \[0, 1\); pass --momentum/);
  assert.throws(() => validateConfig({ ...base, weightDecay: -1e-4 }), /weight decay -0.0001 is invalid/);
  assert.equal(validateConfig({ ...base, optimizer: 'sgd', momentum: 0.9, weightDecay: 5e-4 }).optimizer, 'sgd');
  const stage2 = { ...defaultStage2Config, resnet: 'r.t7', runDir: 'run', policy: 'p.safetensors' };
  assert.throws(() => validateConfig({ ...stage2, distillWeight: 1.5 }), /--distill between 0 \(off\) and 1/);
  assert.throws(() => validateConfig({ ...stage2, distillTemperature: 0 }), /distill temperature 0 is invalid/);
  assert.equal(validateConfig({ ...stage2, distillWeight: 0.9, teacher: 't.th' }).distillWeight, 0.9);
  assert.equal(validateConfig(base), base);
});

test('learning-rate schedules and α annealing', () => {
  assert.equal(learningRate({ ...base, lrSchedule: 'step', lrDecayEvery: 10 }, 0, 9.9, 100), 1e-3);
  assert.ok(Math.abs(learningRate({ ...base, lrSchedule: 'step', lrDecayEvery: 10 }, 0, 10, 100) - 1e-4) < 1e-12);
  const cosine = { ...base, lrSchedule: 'cosine' as const, lrMin: 1e-5 };
  assert.equal(learningRate(cosine, 0, 0, 100), 1e-3);
  assert.ok(Math.abs(learningRate(cosine, 50, 0, 100) - (1e-5 + 0.5 * (1e-3 - 1e-5))) < 1e-12);
  assert.equal(learningRate(cosine, 100, 0, 100), 1e-5);
  assert.equal(alphaAt(base, 50, 100), 0.8);
  assert.ok(Math.abs(alphaAt({ ...base, alphaFinal: 0.9 }, 50, 100) - 0.85) < 1e-12);
});

test('CLI options map onto config fields with types checked', () => {
  const parsed = configFromOptions(stage1Flags, { lr: '0.003', beta: '0.2', samples: '4', curriculumUnit: 'iteration', test: false, resume: true });
  assert.deepEqual(parsed, { lr: 0.003, entropyWeight: 0.2, samples: 4, curriculumUnit: 'iteration', testAtEnd: false, resume: true });
  assert.throws(() => configFromOptions(stage1Flags, { samples: '2.5' }), /--samples expects an integer/);
  assert.deepEqual(configFromOptions(stage2Flags, { distill: '0.9', distillTemperature: '4', teacher: 't.th' }), {
    distillWeight: 0.9,
    distillTemperature: 4,
    teacher: 't.th',
  });
  assert.throws(() => configFromOptions(stage1Flags, { entropy: 'shannon' }), /--entropy must be one of original, bernoulli/);
});
