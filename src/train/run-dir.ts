/**
 * A training run on disk:
 *   config.json                the full configuration (written once, at the start)
 *   metrics.jsonl              one EvalRecord per evaluation
 *   checkpoints/state-<it>.*   full training state (weights, Adam moments, RNG and sampler state), every evaluation
 *   checkpoints/best-<it>.*    weights of the best validation evaluation (policy.*, and resnet.* in stage 2)
 *   policy.safetensors/.json   the best policy alone (what `blockdrop eval --policy` and finetuning read)
 *   resnet.safetensors/.json   stage 2: the best checkpoint's finetuned ResNet alone (for `--resnet`)
 *   results.json               the best checkpoint's one test-split evaluation
 * Every file is written atomically (temporary file + rename). A checkpoint is a safetensors + JSON pair, written
 * one after the other; each save gets a new name and the previous one is deleted only afterwards, so a kill at
 * any moment leaves at least one complete pair. Temporary files of a killed writer (`.<name>.<pid>-<hex>.tmp`)
 * are ignored by readers and deleted when the run is resumed.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadAnyCheckpoint, saveModelCheckpoint } from '../checkpoint/store.js';
import type { JsonObject } from '../checkpoint/json.js';
import type { SamplerState } from '../data/batches.js';
import { BlockdropError } from '../errors.js';
import { tensorSection, type TensorMap } from '../tensor.js';
import { removeStaleTempFiles, writeError, writeFileAtomic } from '../util/atomic.js';

/** One line of metrics.jsonl. Train fields are means over the steps since the previous evaluation. */
export interface EvalRecord {
  readonly iteration: number;
  readonly epoch: number;
  readonly lr: number;
  /** Learnable blocks (curriculum) at this point. */
  readonly learnable: number;
  readonly trainLoss: number | null;
  readonly trainCrossEntropy: number | null;
  /** Greedy-policy accuracy on the training batches. */
  readonly trainAccuracy: number | null;
  readonly trainAccuracySampled: number | null;
  /** Sampled-policy reward (what is optimised). */
  readonly trainReward: number | null;
  readonly trainRewardGreedy: number | null;
  readonly trainBlocks: number | null;
  readonly trainBlocksStd: number | null;
  readonly trainBlocksSampled: number | null;
  readonly valImages: number;
  readonly valAccuracy: number;
  readonly valReward: number;
  readonly valBlocksMean: number;
  readonly valBlocksStd: number;
  readonly valFlopsMean: number;
  readonly valDistinctPolicies: number;
  readonly valBlockUsage: number[];
  readonly selectionScore: number;
  readonly best: boolean;
  /** Training throughput since the previous evaluation. */
  readonly imagesPerSecond: number | null;
  readonly evalImagesPerSecond: number;
  /** Wall time since the run started (training and evaluation), across resumes. */
  readonly elapsedSeconds: number;
}

/** The JSON half of checkpoints/last. */
export interface TrainingCheckpointMeta {
  readonly format: 'blockdrop-training-state';
  readonly version: 1;
  readonly stage: 1 | 2;
  readonly k: number;
  readonly iteration: number;
  readonly epoch: number;
  /** Optimiser updates so far (named for Adam, the first optimiser; kept so that older checkpoints resume). */
  readonly adamStep: number;
  readonly sampler: SamplerState;
  readonly augmentRng: number[];
  readonly sampleRng: number[];
  readonly elapsedSeconds: number;
  readonly best: EvalRecord | null;
  readonly last: EvalRecord | null;
  /** Step statistics accumulated since the last evaluation (so an aborted-and-resumed run logs the same means). */
  readonly stats?: Record<string, number>;
  readonly [extra: string]: unknown;
}

export class RunDirectory {
  readonly checkpoints: string;

  constructor(readonly dir: string) {
    this.checkpoints = join(dir, 'checkpoints');
  }

  /** Checkpoint stems `<kind>-<iteration>` present on disk, newest first. */
  private stems(kind: 'state' | 'best'): { stem: string; iteration: number }[] {
    if (!existsSync(this.checkpoints)) return [];
    const pattern = new RegExp(`^${kind}-(\\d+)\\.safetensors$`);
    return readdirSync(this.checkpoints)
      .map((f) => pattern.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ stem: join(this.checkpoints, `${kind}-${m[1]}`), iteration: Number(m[1]) }))
      .sort((a, b) => b.iteration - a.iteration);
  }

  /** Saves under a new stem, then deletes the older ones. */
  private async saveVersioned(kind: 'state' | 'best', iteration: number, tensors: TensorMap, meta: JsonObject): Promise<string> {
    const stem = join(this.checkpoints, `${kind}-${String(iteration).padStart(8, '0')}`);
    await saveModelCheckpoint(stem, { tensors, meta });
    for (const old of this.stems(kind)) {
      if (old.stem === stem) continue;
      rmSync(`${old.stem}.safetensors`, { force: true });
      rmSync(`${old.stem}.json`, { force: true });
    }
    return stem;
  }

  /** The newest complete checkpoint of a kind (a pair torn by a kill fails its hash check and is skipped). */
  private async loadNewest(kind: 'state' | 'best'): Promise<{ tensors: TensorMap; meta: JsonObject; path: string } | undefined> {
    for (const { stem } of this.stems(kind)) {
      try {
        const loaded = await loadAnyCheckpoint(`${stem}.safetensors`);
        return { tensors: loaded.tensors, meta: (loaded.meta ?? {}) as JsonObject, path: `${stem}.safetensors` };
      } catch {
        continue;
      }
    }
    return undefined;
  }

  get metricsPath(): string {
    return join(this.dir, 'metrics.jsonl');
  }

  /** Starts a fresh run; refuses to overwrite one that has checkpoints (one killed before its first is restarted). */
  async create(config: object): Promise<void> {
    if (existsSync(join(this.dir, 'config.json')) && this.stems('state').length > 0) {
      throw new BlockdropError(
        `${this.dir} already holds a run; continue it with --resume, or choose another --run-dir`,
      );
    }
    // The first writes of a run: an unwritable --run-dir fails here, before any training time is spent.
    try {
      mkdirSync(this.checkpoints, { recursive: true });
    } catch (e) {
      throw writeError(this.checkpoints, e, '--run-dir');
    }
    await this.removeLeftovers();
    await writeFileAtomic(join(this.dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    await writeFileAtomic(this.metricsPath, '');
  }

  /** The configuration a run was started with (for resuming). */
  static readConfig<C>(dir: string): C {
    const path = join(dir, 'config.json');
    if (!existsSync(path)) throw new BlockdropError(`${dir} is not a run directory (no config.json); check --run-dir`);
    return JSON.parse(readFileSync(path, 'utf8')) as C;
  }

  async saveLast(tensors: TensorMap, meta: TrainingCheckpointMeta): Promise<void> {
    await this.saveVersioned('state', meta.iteration, tensors, meta as unknown as JsonObject);
  }

  async saveBest(tensors: TensorMap, meta: JsonObject & { iteration: number }): Promise<void> {
    await this.saveVersioned('best', meta.iteration, tensors, { ...meta, kind: 'blockdrop-model' });
  }

  /** The policy alone (un-prefixed names), for `eval --policy`, finetuning and `models/`. */
  async savePolicy(tensors: TensorMap, meta: JsonObject): Promise<string> {
    const stem = join(this.dir, 'policy');
    await saveModelCheckpoint(stem, { tensors, meta: { ...meta, kind: 'blockdrop-policy' } });
    return `${stem}.safetensors`;
  }

  /** The finetuned ResNet alone (stage 2), with its preset in the metadata so `--resnet` can read it. */
  async saveResnet(tensors: TensorMap, meta: JsonObject): Promise<string> {
    const stem = join(this.dir, 'resnet');
    await saveModelCheckpoint(stem, { tensors, meta: { ...meta, kind: 'blockdrop-resnet' } });
    return `${stem}.safetensors`;
  }

  /** Temporary files of a process killed mid-write (readers skip them; a new run or a resume deletes them). */
  async removeLeftovers(): Promise<string[]> {
    return [...(await removeStaleTempFiles(this.dir)), ...(await removeStaleTempFiles(this.checkpoints))];
  }

  async loadLast(): Promise<{ tensors: TensorMap; meta: TrainingCheckpointMeta } | undefined> {
    await this.removeLeftovers();
    const loaded = await this.loadNewest('state');
    if (!loaded) return undefined;
    const meta = loaded.meta as unknown as TrainingCheckpointMeta;
    if (meta.format !== 'blockdrop-training-state') {
      throw new BlockdropError(`${loaded.path} is not a blockdrop training checkpoint; it cannot be resumed`);
    }
    return { tensors: loaded.tensors, meta };
  }

  async loadBest(): Promise<{ tensors: TensorMap; meta: JsonObject }> {
    const loaded = await this.loadNewest('best');
    if (!loaded) throw new BlockdropError(`${this.dir} has no best checkpoint; the run has not been evaluated yet`);
    return loaded;
  }

  async appendMetrics(record: EvalRecord): Promise<void> {
    const old = existsSync(this.metricsPath) ? readFileSync(this.metricsPath, 'utf8') : '';
    await writeFileAtomic(this.metricsPath, old + JSON.stringify(record) + '\n');
  }

  /**
   * After a resume from iteration `iteration`: drops records of later iterations (written before the kill, they
   * will be written again) and restores the checkpoint's own record if the kill came before it was appended.
   */
  async truncateMetrics(iteration: number, last: EvalRecord | undefined): Promise<void> {
    const lines = existsSync(this.metricsPath) ? readFileSync(this.metricsPath, 'utf8').split('\n').filter((l) => l.trim()) : [];
    const kept = lines.filter((l) => (JSON.parse(l) as EvalRecord).iteration <= iteration);
    if (last && !kept.some((l) => (JSON.parse(l) as EvalRecord).iteration === last.iteration)) kept.push(JSON.stringify(last));
    await writeFileAtomic(this.metricsPath, kept.map((l) => l + '\n').join(''));
  }

  readMetrics(): EvalRecord[] {
    if (!existsSync(this.metricsPath)) return [];
    return readFileSync(this.metricsPath, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as EvalRecord);
  }

  async writeResults(results: object): Promise<void> {
    await writeFileAtomic(join(this.dir, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  }

  /** `prefix.name` → `name` for the tensors under `prefix`. */
  static withoutPrefix(tensors: TensorMap, prefix: string): TensorMap {
    const out = tensorSection(tensors, prefix);
    if (out.size === 0) throw new BlockdropError(`the checkpoint holds no '${prefix}*' tensors`);
    return out;
  }
}
