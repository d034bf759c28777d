/**
 * The training engine seam: what a training step needs from a network it trains, whoever computes it.
 *
 *   forward(images)          → output (policy: keep probabilities; ResNet: logits) + opaque saved state;
 *                              batch-norm batch statistics; running statistics updated once, as PyTorch
 *                              (momentum 0.1, unbiased variance)
 *   backward(saved, dOutput) → parameter gradients (the network's `variables()` order) for dLoss/dOutput
 *
 * The loss itself (REINFORCE on [B, K], cross-entropy on the logits) is a cheap function of the outputs, so the
 * step computes dLoss/dOutput on its own and only the network's passes go through the engine.
 * Two engines: TensorFlow.js (the reference; backward re-runs the forward under a gradient tape) and ONNX Runtime
 * (forward and backward graphs built in TypeScript, multi-threaded; src/train/onnx-engine.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { BlockdropError } from '../errors.js';
import type { ResNetConfig } from '../models/config.js';
import type { TensorMap } from '../tensor.js';
import type { BackboneModel, TrainableBackbone, TrainablePolicy } from './models.js';
import type { BlockExecution, TrainGraphOptions } from './onnx-graph.js';

export type TrainEngine = 'auto' | 'onnx' | 'tfjs';

/** Opaque state a forward pass keeps for its backward pass. Release it if the backward pass is not taken. */
export interface SavedState {
  release(): void;
}

export interface ModuleForward {
  /** [batch, outputs] row-major. */
  readonly output: Float32Array;
  /** Present when the forward pass was asked for gradients. */
  readonly saved?: SavedState;
}

export interface ForwardOptions {
  /** [batch, K] 0/1 block decisions (backbones only); default: every block runs. */
  readonly keep?: Uint8Array;
  /** Keep what backward needs (default true). */
  readonly grad?: boolean;
}

export interface TrainableModule {
  readonly engine: 'onnx' | 'tfjs';
  /** Output width (policy: K, ResNet: classes). */
  readonly outputs: number;
  /** Training-mode forward of `batch` normalised NHWC images. Updates the batch-norm running statistics once. */
  forward(images: Float32Array, batch: number, options?: ForwardOptions): Promise<ModuleForward>;
  /**
   * Gradients of the parameters (`variables()` order) given dLoss/dOutput [batch, outputs]. `undefined` marks a
   * parameter the forward pass did not use (a block every row dropped). Releases `saved`.
   */
  backward(saved: SavedState, dOutput: Float32Array): Promise<(tf.Tensor | undefined)[]>;
  dispose(): void;
}

/** What the ONNX engine needs of a network: its architecture and every variable by canonical name (tfjs layouts). */
export interface EngineNetwork {
  readonly arch: ResNetConfig;
  allVariables(): ReadonlyMap<string, tf.Variable>;
  variables(): tf.Variable[];
}

// ---------------------------------------------------------------------------------------------------
// TensorFlow.js

class TfjsSaved implements SavedState {
  constructor(
    readonly x: tf.Tensor4D,
    readonly keep: tf.Tensor2D | undefined,
    /** Every tensor after the forward pass: the backward pass re-runs the forward and must not update twice. */
    readonly after: TensorMap,
  ) {}

  release(): void {
    this.x.dispose();
    this.keep?.dispose();
  }
}

/**
 * The tfjs engine over any model that computes its output from a tensor: `run(x, keep)` is the training-mode
 * forward. Backward re-runs it under a gradient tape with loss Σ output·dOutput, then puts back the state after
 * the first forward so the running statistics are updated once per step.
 */
class TfjsModule implements TrainableModule {
  readonly engine = 'tfjs' as const;

  constructor(
    /** Output width (0 = not known before the first forward pass). */
    readonly outputs: number,
    private readonly side: number,
    private readonly k: number,
    private readonly run: (x: tf.Tensor4D, keep: tf.Tensor2D | undefined) => tf.Tensor2D,
    private readonly vars: () => tf.Variable[],
    private readonly snapshot: () => TensorMap,
    private readonly restore: (t: TensorMap) => void,
  ) {}

  async forward(images: Float32Array, batch: number, options: ForwardOptions = {}): Promise<ModuleForward> {
    const x = tf.tensor4d(images.subarray(0, batch * this.side * this.side * 3), [batch, this.side, this.side, 3]);
    const keep = options.keep ? tf.tensor2d(options.keep, [batch, this.k], 'float32') : undefined;
    const outT = tf.tidy(() => this.run(x, keep));
    const output = Float32Array.from((await outT.data()) as Float32Array);
    outT.dispose();
    if (options.grad === false) {
      x.dispose();
      keep?.dispose();
      return { output };
    }
    return { output, saved: new TfjsSaved(x, keep, this.snapshot()) };
  }

  async backward(saved: SavedState, dOutput: Float32Array): Promise<(tf.Tensor | undefined)[]> {
    if (!(saved instanceof TfjsSaved)) throw new Error('tfjs engine: backward of a state from another engine');
    const vars = this.vars();
    try {
      const batch = saved.x.shape[0];
      const dOut = tf.tensor2d(dOutput, [batch, dOutput.length / batch]);
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(this.run(saved.x, saved.keep), dOut)) as tf.Scalar, vars);
      value.dispose();
      dOut.dispose();
      this.restore(saved.after);
      return vars.map((v) => grads[v.name]);
    } finally {
      saved.release();
    }
  }

  dispose(): void {}
}

/** The policy (keep probabilities) on the tfjs engine. */
export function tfjsPolicyModule(policy: TrainablePolicy, k: number, side: number): TrainableModule {
  return new TfjsModule(
    k,
    side,
    k,
    (x) => policy.probabilities(x, { training: true }),
    () => policy.variables(),
    () => policy.toTensorMap(),
    (t) => policy.assignWeights(t),
  );
}

/** A backbone (logits, BlockDrop's masked or gathered blocks) on the tfjs engine. */
export function tfjsBackboneModule(
  resnet: TrainableBackbone,
  k: number,
  side: number,
  classes = 0,
  blockExecution: BlockExecution = 'masked',
): TrainableModule {
  return new TfjsModule(
    classes,
    side,
    k,
    (x, keep) => resnet.forward(x, { keep, training: true, blockExecution }),
    () => resnet.variables(),
    () => resnet.toTensorMap(),
    (t) => resnet.assignWeights(t),
  );
}

// ---------------------------------------------------------------------------------------------------
// choosing an engine

export interface TrainModules {
  readonly policy: TrainableModule;
  /** Stage 2 only. */
  readonly resnet?: TrainableModule;
  /** One line for the log, e.g. `training passes: ONNX Runtime (2 threads)`. */
  readonly description: string;
  dispose(): void;
}

export interface TrainModuleOptions {
  /** Number of blocks K of the backbone. */
  readonly k: number;
  readonly side: number;
  /** Classes of the backbone (informational for the tfjs engine). */
  readonly classes?: number;
  /** How the backbone's training passes run blocks some rows drop (default 'masked', the original's). */
  readonly blockExecution?: BlockExecution;
  /** ONNX Runtime intra-op threads (default: all cores); with `workers` > 1, one per worker. */
  readonly threads?: number;
  /**
   * ONNX engine: worker threads that split each batch (data-parallel, src/train/parallel-engine.ts). 1 = one
   * process with `threads` intra-op threads.
   */
  readonly workers?: number;
  readonly log?: (message: string) => void;
}

/** The policy's own ResNet, when it is one the ONNX engine can run (PolicyNetwork, the tests' TinyPolicy). */
function policyNetwork(policy: TrainablePolicy): EngineNetwork | undefined {
  const net = (policy as { resnet?: unknown }).resnet;
  return isEngineNetwork(net) ? net : undefined;
}

function isEngineNetwork(x: unknown): x is EngineNetwork {
  return typeof x === 'object' && x !== null && 'arch' in x && typeof (x as EngineNetwork).allVariables === 'function';
}

/**
 * The training passes of the policy (and in stage 2 the ResNet) on `engine`. 'auto' = ONNX Runtime when it loads
 * and supports the networks, else TensorFlow.js with one logged line; 'onnx' fails instead of falling back.
 */
export async function createTrainModules(
  engine: TrainEngine,
  policy: TrainablePolicy,
  resnet: TrainableBackbone | BackboneModel | undefined,
  options: TrainModuleOptions,
): Promise<TrainModules> {
  const log = options.log ?? (() => {});
  const tfjsModules = (): TrainModules => ({
    policy: tfjsPolicyModule(policy, options.k, options.side),
    resnet: resnet
      ? tfjsBackboneModule(resnet as TrainableBackbone, options.k, options.side, options.classes, options.blockExecution)
      : undefined,
    description: 'TensorFlow.js',
    dispose() {},
  });
  if (engine === 'tfjs') return tfjsModules();
  try {
    const policyNet = policyNetwork(policy);
    if (!policyNet) throw new BlockdropError('the policy is not a ResNet the ONNX engine can build');
    if (resnet && !isEngineNetwork(resnet)) throw new BlockdropError('the backbone is not a ResNet the ONNX engine can build');
    const { OnnxTrainableModule } = await import('./onnx-engine.js');
    const { ParallelTrainableModule } = await import('./parallel-engine.js');
    const workers = options.workers ?? 1;
    const create = (net: EngineNetwork, graph: TrainGraphOptions): Promise<TrainableModule> =>
      workers > 1 ? ParallelTrainableModule.create(net, { ...graph, workers }) : OnnxTrainableModule.create(net, { ...graph, threads: options.threads });
    const p = await create(policyNet, { output: 'sigmoid', keep: false });
    let r: TrainableModule | undefined;
    try {
      r = resnet
        ? await create(resnet as unknown as EngineNetwork, { output: 'logits', keep: true, blockExecution: options.blockExecution ?? 'masked' })
        : undefined;
    } catch (e) {
      p.dispose();
      throw e;
    }
    const described =
      p instanceof ParallelTrainableModule
        ? `ONNX Runtime (${p.workerCount} workers × 1 thread, batches split)`
        : `ONNX Runtime (${p instanceof OnnxTrainableModule ? p.threads : '?'} threads)`;
    return {
      policy: p,
      resnet: r,
      description: r && options.blockExecution === 'gathered' ? `${described}, gathered blocks` : described,
      dispose() {
        p.dispose();
        r?.dispose();
      },
    };
  } catch (e) {
    if (engine === 'onnx') throw e;
    log(`ONNX Runtime training engine unavailable (${(e as Error).message}); training passes run on TensorFlow.js`);
    return tfjsModules();
  }
}
