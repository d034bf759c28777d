import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BlockdropError } from '../errors.js';
import type { TensorMap } from '../tensor.js';
import { fixturesDir, weightsDir } from '../testing/shared.js';
import type { JsonObject } from './json.js';
import { readSafetensors, serializeSafetensors } from './safetensors.js';
import {
  describeAnyCheckpoint, loadAnyCheckpoint, loadModelCheckpoint, saveModelCheckpoint, sniffCheckpointFormat,
  type ModelCheckpointJson,
} from './store.js';

const root = mkdtempSync(join(tmpdir(), 'blockdrop-store-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshStem = (): { dir: string; stem: string } => {
  const dir = mkdtempSync(join(root, `c${n++}-`));
  return { dir, stem: join(dir, 'model') };
};

function tensors(): TensorMap {
  return new Map([
    ['conv1.weight', { dtype: 'float32', shape: [2, 1, 1, 1], data: new Float32Array([0.25, -1.5]) }],
    ['bn1.num_batches_tracked', { dtype: 'int64', shape: [], data: new BigInt64Array([1173n]) }],
    ['fc.weight', { dtype: 'float16', shape: [1, 2], data: new Uint16Array([0x3c00, 0xbc00]) }],
  ] as const);
}
const meta: JsonObject = { preset: 'resnet32', epoch: 3, acc: 0.5, args: { lr: 0.1, tags: ['a', null] } };

test('saveModelCheckpoint writes <stem>.safetensors and <stem>.json; loadModelCheckpoint reads both ways', async () => {
  const { dir, stem } = freshStem();
  const saved = await saveModelCheckpoint(stem, { tensors: tensors(), meta });
  assert.deepEqual(readdirSync(dir).sort(), ['model.json', 'model.safetensors']);
  const stBytes = readFileSync(`${stem}.safetensors`);
  assert.equal(saved.sha256, createHash('sha256').update(stBytes).digest('hex'));

  const embedded = readSafetensors(stBytes, 'x');
  assert.equal(embedded.metadata!['format'], 'blockdrop');
  assert.equal(embedded.metadata!['version'], '1');
  assert.deepEqual(JSON.parse(embedded.metadata!['blockdrop']!), meta);

  const doc = JSON.parse(readFileSync(`${stem}.json`, 'utf8')) as ModelCheckpointJson;
  assert.ok(readFileSync(`${stem}.json`, 'utf8').includes('\n  "meta": {'), 'pretty-printed');
  assert.deepEqual(doc.meta, meta);
  assert.equal(doc.weights.sha256, saved.sha256);
  assert.equal(doc.weights.file, 'model.safetensors');
  assert.deepEqual(doc.weights.tensors.map((t) => t.name), ['conv1.weight', 'bn1.num_batches_tracked', 'fc.weight']);

  for (const path of [stem, `${stem}.safetensors`, `${stem}.json`]) {
    const loaded = await loadModelCheckpoint(path);
    assert.deepEqual(loaded.meta, meta);
    assert.deepEqual(loaded.tensors, tensors());
    assert.equal(loaded.jsonPath, `${stem}.json`);
    assert.equal(loaded.sha256, saved.sha256);
  }
});

test('a weights file that does not match the JSON is refused: the pair is inconsistent', async () => {
  const { stem } = freshStem();
  await saveModelCheckpoint(stem, { tensors: tensors(), meta });
  const other = tensors();
  (other.get('conv1.weight')!.data as Float32Array)[0] = 9;
  writeFileSync(`${stem}.safetensors`, serializeSafetensors(other, { format: 'blockdrop', version: '1', blockdrop: '{}' }));
  await assert.rejects(loadModelCheckpoint(stem), (e: unknown) =>
    e instanceof BlockdropError && /model\.json and .*model\.safetensors do not belong together: .*the pair is inconsistent/.test(e.message));
  await assert.rejects(loadAnyCheckpoint(`${stem}.safetensors`), /the pair is inconsistent/);
});

test('without the JSON the meta comes from the safetensors metadata; without the weights it is an error', async () => {
  const { stem } = freshStem();
  await saveModelCheckpoint(stem, { tensors: tensors(), meta });
  rmSync(`${stem}.json`);
  const loaded = await loadModelCheckpoint(stem);
  assert.deepEqual(loaded.meta, meta);
  assert.equal(loaded.jsonPath, null);

  const { stem: stem2 } = freshStem();
  await saveModelCheckpoint(stem2, { tensors: tensors(), meta });
  rmSync(`${stem2}.safetensors`);
  await assert.rejects(loadModelCheckpoint(stem2), /model\.safetensors \(the weights described by .*model\.json\) is missing/);
  await assert.rejects(loadModelCheckpoint(join(root, 'nothing')), /neither .*nothing\.safetensors nor .*nothing\.json exists/);
});

test('saving over an existing checkpoint replaces both files and leaves no temp files', async () => {
  const { dir, stem } = freshStem();
  await saveModelCheckpoint(stem, { tensors: tensors(), meta });
  await saveModelCheckpoint(`${stem}.safetensors`, { tensors: tensors(), meta: { epoch: 4 } });
  assert.deepEqual(readdirSync(dir).sort(), ['model.json', 'model.safetensors']);
  assert.deepEqual((await loadModelCheckpoint(stem)).meta, { epoch: 4 });
  await assert.rejects(saveModelCheckpoint(join(dir, 'missing', 'm'), { tensors: tensors(), meta }), /choose a writable --out directory/);
});

test('sniffCheckpointFormat tells formats apart by their first bytes, not the name', () => {
  assert.equal(sniffCheckpointFormat(readFileSync(join(fixturesDir, 'resnet8_zip.pt'))), 'torch-zip');
  assert.equal(sniffCheckpointFormat(readFileSync(join(weightsDir, 'akamaster_resnet20-12fca82f.th'))), 'torch-legacy');
  assert.equal(sniffCheckpointFormat(serializeSafetensors(tensors())), 'safetensors');
  assert.equal(sniffCheckpointFormat(Buffer.from('<!DOCTYPE html>')), null);
});

test('loadAnyCheckpoint: torch legacy, torch zip (with prefer), blockdrop safetensors by stem, renamed files', async () => {
  const r32 = await loadAnyCheckpoint(join(weightsDir, 'blockdrop_R32_C10_pk_E_164_A_0.923.t7'));
  assert.equal(r32.kind, 'torch-legacy');
  assert.equal(r32.tensors.size, 157);
  assert.ok(r32.tensors.has('fc.weight'));
  assert.equal(r32.meta['epoch'], 132);

  const wrapped = await loadAnyCheckpoint(join(fixturesDir, 'resnet8_wrapped.pt'), { prefer: ['resnet', 'state_dict', ''] });
  assert.equal(wrapped.kind, 'torch-zip');
  assert.equal(wrapped.tensors.size, 44);
  assert.deepEqual(wrapped.meta, { epoch: 3, acc: 0.5 });
  await assert.rejects(loadAnyCheckpoint(join(fixturesDir, 'tensor_zoo_zip.pt'), { prefer: ['state_dict'] }), /it has 'tensors' \(19 tensors\)/);

  const { dir, stem } = freshStem();
  await saveModelCheckpoint(stem, { tensors: tensors(), meta });
  for (const path of [stem, `${stem}.safetensors`, `${stem}.json`]) {
    const any = await loadAnyCheckpoint(path);
    assert.equal(any.kind, 'safetensors');
    assert.deepEqual(any.meta, meta);
    assert.deepEqual(any.tensors, tensors());
  }
  // The format is sniffed: a torch file named .safetensors still loads as torch.
  copyFileSync(join(fixturesDir, 'resnet8_legacy.pt'), join(dir, 'odd.safetensors'));
  assert.equal((await loadAnyCheckpoint(join(dir, 'odd.safetensors'))).kind, 'torch-legacy');
  // A foreign safetensors file: its string metadata is the meta.
  writeFileSync(join(dir, 'hf.safetensors'), serializeSafetensors(tensors(), { format: 'pt' }));
  assert.deepEqual((await loadAnyCheckpoint(join(dir, 'hf.safetensors'))).meta, { format: 'pt' });
});

test('loadAnyCheckpoint: prefer picks one model out of a training-state safetensors file (resnet.*, policy.*, optimizer.*)', async () => {
  const { stem } = freshStem();
  const state: TensorMap = new Map();
  for (const section of ['resnet', 'policy', 'optimizer']) for (const [name, t] of tensors()) state.set(`${section}.${name}`, t);
  await saveModelCheckpoint(stem, { tensors: state, meta });
  assert.deepEqual((await loadAnyCheckpoint(stem, { prefer: ['resnet', 'state_dict', ''] })).tensors, tensors());
  assert.deepEqual((await loadAnyCheckpoint(stem, { prefer: ['agent', 'policy', ''] })).tensors, tensors());
  assert.equal((await loadAnyCheckpoint(stem, { prefer: ['agent', ''] })).tensors.size, 9, "'' keeps the whole file");
  assert.equal((await loadAnyCheckpoint(stem)).tensors.size, 9, 'no prefer: the whole file');
});

test('loadAnyCheckpoint: unknown, empty, missing, truncated and malicious files give clear errors', async () => {
  const { dir } = freshStem();
  writeFileSync(join(dir, 'page.pt'), '<!DOCTYPE html><html>');
  await assert.rejects(loadAnyCheckpoint(join(dir, 'page.pt')), (e: unknown) =>
    e instanceof BlockdropError &&
    /page\.pt is not a PyTorch checkpoint or safetensors file \(first bytes: 3c 21 44 4f 43 54 59 50 "<!DOCTYP"\)$/.test(e.message));
  writeFileSync(join(dir, 'empty.pt'), '');
  await assert.rejects(loadAnyCheckpoint(join(dir, 'empty.pt')), /empty\.pt is empty/);
  await assert.rejects(loadAnyCheckpoint(join(dir, 'absent.pt')), /absent\.pt: no such file/);
  await assert.rejects(loadAnyCheckpoint(join(fixturesDir, 'resnet8_zip_truncated.pt')), /end-of-central-directory not found/);
  await assert.rejects(loadAnyCheckpoint(join(fixturesDir, 'resnet8_legacy_truncated.pt')), /truncated or corrupt/);
  await assert.rejects(loadAnyCheckpoint(join(fixturesDir, 'malicious_global_zip.pt')), /global 'os\.system'/);
});

test('describeAnyCheckpoint: JSON summary, state dicts and text for torch and blockdrop files', async () => {
  const d = await describeAnyCheckpoint(join(weightsDir, 'blockdrop_R32_C10_pk_E_164_A_0.923.t7'));
  assert.equal(d.summary['kind'], 'torch-legacy');
  assert.deepEqual(d.stateDicts.map((s) => [s.name, s.tensors.size]), [['state_dict', 157]]);
  const dicts = d.summary['stateDicts'] as JsonObject[];
  assert.equal(dicts[0]!['parameterCount'], 464154);
  assert.equal((d.summary['meta'] as JsonObject)['best_err1'], 6.28);
  assert.deepEqual(JSON.parse(JSON.stringify(d.summary)), d.summary);
  assert.match(d.text, /state dict 'state_dict': 157 tensors, 464,154 parameters/);
  assert.match(d.text, /conv1\.weight +float32 +\[16, 3, 3, 3\]/);

  const { stem } = freshStem();
  await saveModelCheckpoint(stem, { tensors: tensors(), meta });
  const b = await describeAnyCheckpoint(stem);
  assert.equal(b.summary['blockdrop'], true);
  assert.match(b.text, /format: blockdrop checkpoint \(safetensors\)/);
  assert.match(b.text, /preset: "resnet32"/);
});
