/**
 * A backbone that answers "which class for this image with these blocks?" for many keep masks:
 * the ONNX Runtime block-skipping executor (real skipping, the fast path) or the TensorFlow.js masked
 * forward. Both fit the trainer's `RewardOracle` interface, so `evaluatePolicy` accepts either.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CifarSplit, ImageSet } from '../data/cifar.js';
import type { LoadedBackbone } from '../models/load.js';
import { blockCount } from '../models/config.js';
import type { RewardOracle } from '../train/models.js';

export type EngineChoice = 'auto' | 'onnx' | 'tfjs';

/** Which images a backbone evaluation reads and which engine runs it (shared by the baselines and the family table). */
export interface BackboneRunOptions {
  /** Default 'test'. */
  readonly split?: CifarSplit;
  readonly limit?: number;
  readonly dataDir?: string;
  /** Images already loaded (instead of `split`/`dataDir`). */
  readonly set?: ImageSet;
  readonly engine?: EngineChoice;
  readonly threads?: number;
  readonly batchSize?: number;
  readonly log?: (message: string) => void;
}

export interface BackboneEngineOptions {
  /** 'auto' (default): the ONNX Runtime executor, or the tfjs forward when the export or runtime fails. */
  readonly engine?: EngineChoice;
  /** ONNX Runtime intra-op threads (default 2). */
  readonly threads?: number;
  /** Why the engine choice fell back, for logs. */
  readonly log?: (message: string) => void;
}

export interface BackboneEngine {
  readonly oracle: RewardOracle;
  /** 'onnx' or 'tfjs'. */
  readonly kind: 'onnx' | 'tfjs';
  /** Releases sessions, tensors and the temporary export. */
  close(): Promise<void>;
}

async function openOnnx(backbone: LoadedBackbone, threads: number | undefined): Promise<BackboneEngine> {
  const { onnxOracle } = await import('../train/models.js');
  const root = mkdtempSync(join(tmpdir(), 'blockdrop-eval-'));
  try {
    const oracle = await onnxOracle({
      arch: backbone.arch,
      normalization: backbone.normalization,
      resnet: backbone.tensors,
      dir: join(root, 'export'),
      threads,
      batchSize: 256,
    });
    return {
      oracle,
      kind: 'onnx',
      async close() {
        oracle.dispose();
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(root, { recursive: true, force: true });
    throw e;
  }
}

async function openTfjs(backbone: LoadedBackbone): Promise<BackboneEngine> {
  const [{ initBackend }, { ResNet }, { tfjsOracle }] = await Promise.all([
    import('../backend/index.js'),
    import('../models/resnet.js'),
    import('../train/models.js'),
  ]);
  await initBackend('wasm');
  const resnet = ResNet.fromWeights(backbone.arch, backbone.tensors);
  const oracle = tfjsOracle(resnet, blockCount(backbone.arch), backbone.arch.inputSize, 256);
  return {
    oracle,
    kind: 'tfjs',
    async close() {
      oracle.dispose();
      resnet.dispose();
    },
  };
}

/** Opens the engine that runs `backbone` with explicit keep masks. */
export async function openBackboneEngine(backbone: LoadedBackbone, options: BackboneEngineOptions = {}): Promise<BackboneEngine> {
  const choice = options.engine ?? 'auto';
  if (choice !== 'tfjs') {
    try {
      return await openOnnx(backbone, options.threads);
    } catch (e) {
      if (choice === 'onnx') throw e;
      options.log?.(`ONNX Runtime executor unavailable (${(e as Error).message}); using the tfjs masked forward`);
    }
  }
  return openTfjs(backbone);
}
