import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../backend/index.js';
import { saveSafetensors } from '../checkpoint/safetensors.js';
import { getPreset } from '../models/config.js';
import { PolicyNetwork } from '../models/policy.js';
import { defaultStage1Config, defaultStage2Config, RANDOM_POLICY } from './config.js';
import { startingConfig, startingPolicy } from './index.js';

const arch = getPreset('resnet20').arch;
const weights = (p: PolicyNetwork): Float32Array[] => [...p.toTensorMap().values()].map((t) => Float32Array.from(t.data as Float32Array));

test('the starting policy: --policy random is a fresh seeded one, a path is loaded, stage 2 without either is refused', async () => {
  await initBackend('cpu');
  const stage2 = { ...defaultStage2Config, resnet: 'r.t7', runDir: 'run' };
  const fresh = await startingPolicy(2, { ...stage2, policy: RANDOM_POLICY, seed: 3 }, arch);
  assert.equal(fresh.source, 'random init');
  assert.deepEqual(weights(fresh.policy), weights(PolicyNetwork.init(arch, 3)));
  const otherSeed = await startingPolicy(2, { ...stage2, policy: RANDOM_POLICY, seed: 4 }, arch);
  assert.notDeepEqual(weights(otherSeed.policy), weights(fresh.policy));

  const dir = await mkdtemp(join(tmpdir(), 'blockdrop-start-'));
  try {
    const file = join(dir, 'policy.safetensors');
    await saveSafetensors(file, otherSeed.policy.toTensorMap());
    const loaded = await startingPolicy(2, { ...stage2, policy: file }, arch);
    assert.equal(loaded.source, file);
    assert.deepEqual(weights(loaded.policy), weights(otherSeed.policy));
    const stage1 = await startingPolicy(1, { ...defaultStage1Config, resnet: 'r.t7', runDir: 'run', policyInit: file }, arch);
    assert.deepEqual(weights(stage1.policy), weights(otherSeed.policy));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await assert.rejects(startingPolicy(2, { ...stage2, policy: '' }, arch), /pass --policy CHECKPOINT \(or --policy random\)/);
});

test('a resumed run keeps the configuration it was started with, its time limit included, unless given a new limit', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'blockdrop-resume-'));
  try {
    const started = { ...defaultStage2Config, stage: 2, resnet: 'r.t7', runDir: dir, policy: 'random', lr: 3e-4, timeLimitMinutes: 25 };
    await writeFile(join(dir, 'config.json'), JSON.stringify(started));
    const resumed = startingConfig(defaultStage2Config, { runDir: dir, resume: true });
    assert.equal(resumed.timeLimitMinutes, 25);
    assert.equal(resumed.lr, 3e-4);
    assert.equal(resumed.policy, 'random');
    assert.equal(resumed.resume, true);
    assert.equal(startingConfig(defaultStage2Config, { runDir: dir, resume: true, timeLimitMinutes: 40 }).timeLimitMinutes, 40);
    assert.equal(startingConfig(defaultStage2Config, { runDir: dir, resume: true, timeLimitMinutes: 0 }).timeLimitMinutes, 0);
    // A new run: the defaults under what was given.
    const fresh = startingConfig(defaultStage2Config, { runDir: dir, resnet: 'r.t7', policy: 'p', lr: 1e-3 });
    assert.equal(fresh.lr, 1e-3);
    assert.equal(fresh.penalty, defaultStage2Config.penalty);
    assert.equal(fresh.timeLimitMinutes, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
