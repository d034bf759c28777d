/**
 * Export a BlockDrop model (backbone ResNet + optional policy network) to ONNX files plus a
 * `manifest.json`, written atomically: the directory appears complete or not at all.
 *
 * Every graph takes a normalised NCHW float32 image batch (dynamic batch dimension), has batch norm
 * folded into its convolutions and uses opset 17. Files:
 * - `full.onnx`       image → logits, every block executed (the baseline, one fused graph);
 * - `policy.onnx`     image → keep probabilities [B, K] (sigmoid), when a policy is given;
 * - `stem.onnx`, `block_{t}.onnx` (kept block: ReLU(shortcut + F(x))), `shortcut_{t}.onnx` (what a
 *   dropped downsampling block outputs; identity blocks have none), `head.onnx`: the pieces, for
 *   runtimes that schedule blocks themselves;
 * - `blockdrop.onnx`  a single-file BlockDrop model with per-image skipping inside the graph:
 *   image (+ keep [B, K] bool when there is no policy) → logits (+ probabilities, keep).
 * CIFAR basic-block nets and torchvision-layout ImageNet nets (Bottleneck, projection shortcuts) alike;
 * the ImageNet policy graph takes the 224×224 image and average-pools it to 112×112 itself.
 */
import { createHash } from 'node:crypto';
import onnxProto from 'onnx-proto';
import { BlockdropError } from '../errors.js';
import {
  blockCount,
  blockPositions,
  CIFAR10_CLASSES,
  blockExpansion,
  policyArchFor,
  policyInputPool,
  type Normalization,
  type ResNetConfig,
} from '../models/config.js';
import { blockFlops, policyFlops, stemAndHeadFlops } from '../models/flops.js';
import { assertFiniteTensors } from '../checkpoint/validate.js';
import { canonicalizeResNetKeys, validateResNetWeights } from '../models/weights.js';
import type { TensorMap } from '../tensor.js';
import { writeDirAtomic } from '../util/atomic.js';
import { oneLine, printable } from '../util/message.js';
import { buildFolded, foldResNet, type FoldedResNet } from './folded.js';
import { OPSET } from './graph.js';
import {
  buildBlockGraph,
  buildFullGraph,
  buildHeadGraph,
  buildPolicyGraph,
  buildPortableDynamicGraph,
  buildShortcutGraph,
  buildStemGraph,
  convName,
  POLICY_TAG,
  stemRole,
} from './networks.js';

const { onnx } = onnxProto;

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'blockdrop-onnx';
export const MANIFEST_VERSION = 1;

export interface ManifestFile {
  readonly sha256: string;
  readonly bytes: number;
  /** What the graph computes, e.g. 'block 3 kept: ReLU(shortcut + F(x))'. */
  readonly role: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

export interface BlockDropManifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly formatVersion: number;
  readonly producer: string;
  readonly opset: number;
  readonly architecture: ResNetConfig;
  /** Residual blocks = policy outputs. */
  readonly K: number;
  readonly normalization: Normalization;
  readonly classNames: readonly string[];
  /** How every graph's image input is laid out and scaled. */
  readonly input: {
    readonly name: 'input';
    readonly dtype: 'float32';
    readonly layout: 'NCHW';
    readonly shape: readonly (string | number)[];
    readonly channels: 'RGB';
    /** x = (pixel / 255 − mean[c]) / std[c] */
    readonly normalization: string;
  };
  readonly keep: {
    readonly name: 'keep';
    readonly dtype: 'bool';
    readonly shape: readonly (string | number)[];
    readonly order: string;
    readonly threshold: number;
  };
  /** FLOPs in BlockDrop's convention (2 × MACs of convs and linears; parameter-free shortcuts free, projections always paid, in stemAndHead). */
  readonly flops: {
    readonly perBlock: readonly number[];
    readonly stemAndHead: number;
    /** Policy network incl. BlockDrop's unused value head; null without a policy. */
    readonly policy: number | null;
    /** Backbone with every block, no policy. */
    readonly full: number;
  };
  readonly batchNorm: string;
  readonly policy: { readonly architecture: ResNetConfig } | null;
  readonly graphs: {
    readonly full: string;
    readonly policy: string | null;
    readonly stem: string;
    readonly blocks: readonly string[];
    /** Block index → graph of its shortcut, for blocks whose shortcut is not the identity. */
    readonly shortcuts: Readonly<Record<string, string>>;
    readonly head: string;
    readonly blockdrop: string;
  };
  readonly files: Readonly<Record<string, ManifestFile>>;
}

export interface ExportOptions {
  readonly arch: ResNetConfig;
  readonly normalization: Normalization;
  /** Backbone weights (any key layout `canonicalizeResNetKeys` understands). */
  readonly resnet: TensorMap;
  /** Policy network weights (ResNet-8 / ResNet-10 with K outputs, see policyArchFor), optional. */
  readonly policy?: TensorMap;
  readonly outDir: string;
  /** Defaults to the CIFAR-10 names for 10 classes, else class_0 … */
  readonly classNames?: readonly string[];
}

export interface ExportResult {
  readonly dir: string;
  readonly manifest: BlockDropManifest;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function folded(arch: ResNetConfig, tensors: TensorMap, what: string): FoldedResNet {
  // NaN / Infinity would be folded into every graph and come out as NaN logits.
  assertFiniteTensors(tensors, what);
  const canonical = canonicalizeResNetKeys(tensors);
  try {
    validateResNetWeights(arch, canonical);
  } catch (e) {
    if (e instanceof BlockdropError) throw new BlockdropError(`${what}: ${e.message}`, { cause: e });
    throw e;
  }
  return foldResNet(arch, canonical);
}

function policyRole(backbone: ResNetConfig): string {
  const pool = policyInputPool(backbone);
  return pool === 1
    ? 'policy network: sigmoid keep probabilities'
    : `policy network on the image average-pooled by ${pool}: sigmoid keep probabilities`;
}

/** Builds every graph in memory (no files). */
export function buildExport(options: Omit<ExportOptions, 'outDir'>): {
  manifest: BlockDropManifest;
  files: Record<string, Uint8Array | string>;
} {
  const { arch, normalization } = options;
  const K = blockCount(arch);
  const net = folded(arch, options.resnet, 'backbone weights');
  const policyArch = options.policy ? policyArchFor(arch) : null;
  const policy = options.policy && policyArch ? folded(policyArch, options.policy, 'policy weights') : undefined;
  if (policy && policy.classes !== K) {
    throw new BlockdropError(`the policy has ${policy.classes} outputs but ${arch.name} has ${K} blocks; use a policy trained for this backbone`);
  }
  const classNames =
    options.classNames ?? (arch.numClasses === 10 ? CIFAR10_CLASSES : Array.from({ length: arch.numClasses }, (_, i) => `class_${i}`));
  if (classNames.length !== arch.numClasses) {
    throw new BlockdropError(`${classNames.length} class names given for ${arch.numClasses} classes`);
  }

  const graphs: Record<string, { bytes: Uint8Array; role: string; inputs: string[]; outputs: string[] }> = {};
  const add = (file: string, bytes: Uint8Array, role: string, inputs: string[], outputs: string[]) => {
    graphs[file] = { bytes, role, inputs, outputs };
    return file;
  };
  const full = add('full.onnx', buildFullGraph(net), 'full ResNet, every block executed', ['input'], ['logits']);
  const policyFile = policy
    ? add('policy.onnx', buildPolicyGraph(policy, arch.inputSize), policyRole(arch), ['input'], ['probabilities'])
    : null;
  const stem = add('stem.onnx', buildStemGraph(net), stemRole(arch.stem), ['input'], ['output']);
  const blocks = net.blocks.map((_, t) =>
    add(`block_${t}.onnx`, buildBlockGraph(net, t), `block ${t} kept: ReLU(shortcut + F(x))`, ['input'], ['output']),
  );
  const shortcuts: Record<string, string> = {};
  net.blocks.forEach((b, t) => {
    if (b.downsample) {
      shortcuts[String(t)] = add(`shortcut_${t}.onnx`, buildShortcutGraph(net, t), `block ${t} dropped: shortcut only`, ['input'], ['output']);
    }
  });
  const head = add('head.onnx', buildHeadGraph(net), 'head: global average pool + fc', ['input'], ['logits']);
  const blockdrop = add(
    'blockdrop.onnx',
    buildPortableDynamicGraph(net, policy, { mode: 'gather', keepFrom: policy ? 'policy' : 'input' }),
    policy
      ? 'BlockDrop in one graph: policy, keep = probabilities ≥ 0.5, per-image block skipping'
      : 'backbone with per-image block skipping for a given keep mask',
    policy ? ['input'] : ['input', 'keep'],
    policy ? ['probabilities', 'keep', 'logits'] : ['logits'],
  );

  const sh = stemAndHeadFlops(arch);
  const perBlock = blockFlops(arch);
  const manifest: BlockDropManifest = {
    format: MANIFEST_FORMAT,
    formatVersion: MANIFEST_VERSION,
    producer: 'blockdrop 0.1.0',
    opset: OPSET,
    architecture: arch,
    K,
    normalization,
    classNames: [...classNames],
    input: {
      name: 'input',
      dtype: 'float32',
      layout: 'NCHW',
      shape: ['batch', 3, arch.inputSize, arch.inputSize],
      channels: 'RGB',
      normalization: 'x = (pixel / 255 - mean[c]) / std[c]',
    },
    keep: {
      name: 'keep',
      dtype: 'bool',
      shape: ['batch', K],
      order: 'block t runs over stages, then blocks within a stage (BlockDrop order); true = execute',
      threshold: 0.5,
    },
    flops: {
      perBlock,
      stemAndHead: sh.total,
      policy: policy ? policyFlops(arch) : null,
      full: sh.total + perBlock.reduce((a, b) => a + b, 0),
    },
    batchNorm: 'folded into the convolutions (eval mode, eps 1e-5)',
    policy: policyArch ? { architecture: policyArch } : null,
    graphs: { full, policy: policyFile, stem, blocks, shortcuts, head, blockdrop },
    files: Object.fromEntries(
      Object.entries(graphs).map(([file, g]) => [
        file,
        { sha256: sha256Hex(g.bytes), bytes: g.bytes.length, role: g.role, inputs: g.inputs, outputs: g.outputs },
      ]),
    ),
  };
  const files: Record<string, Uint8Array | string> = {};
  for (const [file, g] of Object.entries(graphs)) files[file] = g.bytes;
  files[MANIFEST_FILE] = `${JSON.stringify(manifest, null, 2)}\n`;
  return { manifest, files };
}

/** Exports to `outDir` (created, or replaced as a whole), atomically. */
export async function exportBlockDrop(options: ExportOptions): Promise<ExportResult> {
  const { manifest, files } = buildExport(options);
  await writeDirAtomic(options.outDir, files);
  return { dir: options.outDir, manifest };
}

// ---------------------------------------------------------------------------------------------------
// reading exported graphs back

/**
 * Parses ONNX bytes as a model. Garbage gives a one-line BlockdropError naming `source`, not a
 * protobuf exception; float initialisers holding NaN or ±Infinity are refused, naming the weight.
 */
export function decodeOnnxModel(bytes: Uint8Array, source = 'model'): onnxProto.onnx.ModelProto {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new BlockdropError(oneLine(`${source} is not a valid ONNX model (${(e as Error).message}); export the model again`));
  }
  if (!model.graph) throw new BlockdropError(oneLine(`${source} is not a valid ONNX model (it has no graph); export the model again`));
  for (const [name, data] of initializerMap(model, source)) {
    for (let i = 0; i < data.length; i++) {
      const x = data[i]!;
      if (x - x !== 0) {
        throw new BlockdropError(
          oneLine(`${source}: weight '${printable(name)}' holds ${Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity'} at index ${i}; ` +
            'the export is damaged or was made from a diverged checkpoint: export the model again from finite weights'),
        );
      }
    }
  }
  return model;
}

function initializerMap(model: onnxProto.onnx.IModelProto, source = 'model'): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataType !== onnx.TensorProto.DataType.FLOAT) continue;
    let data: Float32Array;
    if (t.rawData && t.rawData.length > 0) {
      // A fresh copy: protobufjs hands out Buffer views at arbitrary (unaligned) offsets.
      const copy = new Uint8Array(t.rawData);
      if (copy.byteLength % 4 !== 0) {
        throw new BlockdropError(oneLine(`${source}: weight '${printable(t.name ?? '')}' has ${copy.byteLength} bytes, not whole float32 values; export the model again`));
      }
      data = new Float32Array(copy.buffer, 0, copy.byteLength / 4);
    } else data = Float32Array.from(t.floatData ?? []);
    out.set(t.name!, data);
  }
  return out;
}

/**
 * The folded network stored in an exported graph (`full.onnx` with tag '', `policy.onnx` with the
 * policy tag), so that a runtime can rebuild graphs without the original checkpoint.
 */
export function foldedFromOnnx(arch: ResNetConfig, bytes: Uint8Array, tag = '', source = 'model'): FoldedResNet {
  const model = decodeOnnxModel(bytes, source);
  const inits = initializerMap(model, source);
  const positions = blockPositions(arch);
  const blockIndex = new Map(positions.map(({ stage, index }, t) => [`blocks.${stage}.${index}`, t]));
  const stageFirst = new Map(positions.flatMap(({ stage, index }, t) => (index === 0 ? [[stage, t] as const] : [])));
  const get = (name: string, length: number): Float32Array => {
    const v = inits.get(name);
    if (!v || v.length !== length) {
      throw new BlockdropError(`${source} has no tensor ${name} of ${length} values; re-export the model with this version of blockdrop`);
    }
    return v;
  };
  return buildFolded(
    arch,
    (name, outC, inC, k, stride) => {
      let base: string;
      const ds = /^ds\.(\d+)\.0$/.exec(name);
      if (name === 'conv1') base = convName(tag, 'stem');
      else if (ds) base = convName(tag, 'sc', stageFirst.get(Number(ds[1]))!);
      else {
        const m = /^(blocks\.\d+\.\d+)\.conv([123])$/.exec(name);
        const t = m ? blockIndex.get(m[1]!) : undefined;
        if (!m || t === undefined) throw new Error(`foldedFromOnnx: unexpected conv ${name}`);
        base = convName(tag, `c${m[2]}` as 'c1' | 'c2' | 'c3', t);
      }
      return { weight: get(`${base}.weight`, outC * inC * k * k), bias: get(`${base}.bias`, outC), outC, inC, k, stride };
    },
    {
      weight: get(`${tag}fc.weight`, arch.numClasses * arch.widths[arch.widths.length - 1]! * blockExpansion(arch)),
      bias: get(`${tag}fc.bias`, arch.numClasses),
    },
  );
}

export { POLICY_TAG };
