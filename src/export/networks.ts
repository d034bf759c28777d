/**
 * ONNX graphs of the pieces of a (BN-folded) ResNet — CIFAR basic-block nets and torchvision-layout
 * ImageNet nets (7×7 stem + max-pool, Bottleneck blocks, projection shortcuts) — with BlockDrop's block semantics:
 * the shortcut is always computed; a kept block gives ReLU(shortcut + F(x)), a dropped one the
 * shortcut alone (no ReLU). Every graph is NCHW float32 with a symbolic batch dimension 'batch'.
 *
 * Graph structure (which blocks, gather/scatter, branches) is written once against `LayerOps`; the
 * portable implementation here uses standard ONNX ops, the executor plugs in ONNX Runtime's blocked
 * NCHWc kernels (src/executor/nchwc.ts) for the same structures.
 */
import type { FoldedBlock, FoldedConv, FoldedResNet } from './folded.js';
import { GraphBuilder, type Dim } from './graph.js';

export const BATCH: Dim = 'batch';

/** How one network's layers are emitted into a graph. Activations may use any internal layout. */
export interface LayerOps {
  readonly net: FoldedResNet;
  /** Image (NCHW, normalised) → stem output. */
  stem(g: GraphBuilder, image: string): string;
  /** Shortcut of block t (returns `x` itself for identity shortcuts). */
  shortcut(g: GraphBuilder, t: number, x: string): string;
  /** Kept block output ReLU(sum + F(x)), where `sum` is the block's shortcut of `x`. */
  kept(g: GraphBuilder, t: number, x: string, sum: string): string;
  /** Last activation → logits [B, classes] (NCHW, standard ops). */
  head(g: GraphBuilder, x: string): string;
}

/**
 * Deterministic initialiser names: `{tag}stem`, `{tag}b{t}c1`, `{tag}b{t}c2`, `{tag}b{t}c3` (Bottleneck),
 * `{tag}sc{t}` (+ `.weight` / `.bias`), `{tag}fc`. The executor finds convolutions by these bias names
 * after ONNX Runtime has rewritten the graph.
 */
export function convName(tag: string, part: 'stem' | 'c1' | 'c2' | 'c3' | 'sc', t = 0): string {
  return part === 'stem' ? `${tag}stem` : part === 'sc' ? `${tag}sc${t}` : `${tag}b${t}${part}`;
}

function conv(g: GraphBuilder, x: string, c: FoldedConv, name: string): string {
  const w = g.floatConst(`${name}.weight`, [c.outC, c.inC, c.k, c.k], c.weight, true);
  const b = g.floatConst(`${name}.bias`, [c.outC], c.bias, true);
  const pad = (c.k - 1) >> 1;
  return g.node('Conv', [x, w, b], undefined, {
    kernel_shape: [c.k, c.k],
    pads: [pad, pad, pad, pad],
    strides: [c.stride, c.stride],
  });
}

/** The residual branch's convolutions of a block with their names, in order (2 or 3). */
export function blockConvs(block: FoldedBlock, tag: string, t: number): { conv: FoldedConv; name: string }[] {
  const convs = [
    { conv: block.conv1, name: convName(tag, 'c1', t) },
    { conv: block.conv2, name: convName(tag, 'c2', t) },
  ];
  if (block.conv3) convs.push({ conv: block.conv3, name: convName(tag, 'c3', t) });
  return convs;
}

/**
 * The shortcut of a downsampling block as a 1×1 convolution (`null` for identity shortcuts). A
 * projection shortcut is its own folded conv1x1(stride) + BN. For the parameter-free CIFAR shortcuts it
 * is the zero-channel part as a 0/1 selection matrix: DownsampleB = 2×2 average pool, then this conv
 * (stride 1, zeros appended); option A = this conv with stride 2 (x[:, :, ::2, ::2], zeros split before
 * and after).
 * Bit-identical to Pad (x·1 plus exact zeros), but ONNX Runtime keeps a convolution in its blocked
 * NCHWc layout, so the residual add and ReLU fuse into the block's last conv, which Pad prevents.
 * Costs 2·Cin·Cout·H·W FLOPs, ~0.4% of ResNet-32; not counted, as BlockDrop counts shortcuts as free.
 */
export function shortcutConv(net: FoldedResNet, block: FoldedBlock): FoldedConv | null {
  if (!block.downsample) return null;
  if (block.projection) return block.projection;
  const extra = block.outC - block.inC;
  const before = net.arch.shortcut === 'optionA' ? extra >> 1 : 0;
  const weight = new Float32Array(block.outC * block.inC);
  for (let i = 0; i < block.inC; i++) weight[(i + before) * block.inC + i] = 1;
  return {
    weight,
    bias: new Float32Array(block.outC),
    outC: block.outC,
    inC: block.inC,
    k: 1,
    stride: net.arch.shortcut === 'optionA' ? block.stride : 1,
  };
}

/** PyTorch's MaxPool2d(3, stride 2, padding 1) of the ImageNet stem. */
export const STEM_MAX_POOL = { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] };

/** Standard-op implementation (any ONNX runtime). */
export function portableOps(net: FoldedResNet, tag = ''): LayerOps {
  return {
    net,
    stem(g, image) {
      const y = g.node('Relu', [conv(g, image, net.stem, convName(tag, 'stem'))]);
      return net.arch.stem === 'imagenet' ? g.node('MaxPool', [y], undefined, STEM_MAX_POOL) : y;
    },
    shortcut(g, t, x) {
      const block = net.blocks[t]!;
      const sel = shortcutConv(net, block);
      if (!sel) return x;
      const s = block.stride;
      const src =
        net.arch.shortcut === 'downsampleB' && s > 1
          ? g.node('AveragePool', [x], undefined, { kernel_shape: [s, s], strides: [s, s] })
          : x;
      return conv(g, src, sel, convName(tag, 'sc', t));
    },
    kept(g, t, x, sum) {
      const convs = blockConvs(net.blocks[t]!, tag, t);
      let h = x;
      convs.forEach(({ conv: c, name }, i) => {
        const y = conv(g, h, c, name);
        h = i < convs.length - 1 ? g.node('Relu', [y]) : y;
      });
      return g.node('Relu', [g.node('Add', [h, sum])]);
    },
    head(g, x) {
      const pooled = g.node('GlobalAveragePool', [x]);
      const flat = g.node('Flatten', [pooled], undefined, { axis: 1 });
      const w = g.floatConst(`${tag}fc.weight`, [net.classes, net.features], net.fcWeight, true);
      const b = g.floatConst(`${tag}fc.bias`, [net.classes], net.fcBias, true);
      return g.node('Gemm', [flat, w, b], undefined, { transB: 1 });
    },
  };
}

/** Activation shape entering block t (t = K means the head's input). */
export function activationDims(net: FoldedResNet, t: number): Dim[] {
  if (t >= net.blocks.length) {
    const last = net.blocks[net.blocks.length - 1]!;
    return [BATCH, last.outC, last.outSize, last.outSize];
  }
  const b = net.blocks[t]!;
  return [BATCH, b.inC, b.inSize, b.inSize];
}

/** Image input dims; `side` defaults to the network's own input side. */
export function imageDims(net: FoldedResNet, side = net.arch.inputSize): Dim[] {
  return [BATCH, 3, side, side];
}

/**
 * The policy network on the backbone's image (NCHW, side `imageSide`) → logits: BlockDrop's ImageNet
 * policy first average-pools the 224×224 image by 2 (`F.avg_pool2d(x, 2)`); the CIFAR one sees it as is.
 */
export function addPolicyNetwork(g: GraphBuilder, ops: LayerOps, image: string, imageSide: number): string {
  const side = ops.net.arch.inputSize;
  const factor = imageSide / side;
  if (!Number.isInteger(factor) || factor < 1) throw new Error(`addPolicyNetwork: image side ${imageSide} is not a multiple of ${side}`);
  const input = factor === 1 ? image : g.node('AveragePool', [image], undefined, { kernel_shape: [factor, factor], strides: [factor, factor] });
  return addNetwork(g, ops, input);
}

/** Block t under a keep decision fixed when the graph is built. */
export function addBlock(g: GraphBuilder, ops: LayerOps, t: number, x: string, keep: boolean): string {
  const sc = ops.shortcut(g, t, x);
  return keep ? ops.kept(g, t, x, sc) : sc;
}

/** All blocks kept (or as `keep` says), stem to logits. */
export function addNetwork(g: GraphBuilder, ops: LayerOps, image: string, keep?: readonly boolean[]): string {
  let x = ops.stem(g, image);
  ops.net.blocks.forEach((_, t) => {
    x = addBlock(g, ops, t, x, keep ? keep[t]! : true);
  });
  return ops.head(g, x);
}

/** Input 'input' (normalised NCHW image) → 'logits'. Every block kept unless `keep` says otherwise. */
export function buildFullGraph(net: FoldedResNet, keep?: readonly boolean[]): Uint8Array {
  const g = new GraphBuilder(keep ? 'path' : 'full');
  const logits = addNetwork(g, portableOps(net), g.input('input', 'float32', imageDims(net)), keep);
  g.output(logits, 'logits', 'float32', [BATCH, net.classes]);
  return g.toModel(keep ? `BlockDrop path ${keep.map((k) => (k ? 1 : 0)).join('')}` : 'full ResNet');
}

/** Image → stem activation. */
export function buildStemGraph(net: FoldedResNet): Uint8Array {
  const g = new GraphBuilder('stem');
  const x = portableOps(net).stem(g, g.input('input', 'float32', imageDims(net)));
  g.output(x, 'output', 'float32', activationDims(net, 0));
  return g.toModel(stemRole(net.arch.stem));
}

export function stemRole(stem: 'cifar' | 'imagenet'): string {
  return stem === 'imagenet' ? 'stem: conv7x7/2 + BN + ReLU + max-pool 3x3/2' : 'stem: conv3x3 + BN + ReLU';
}

/** Activation → ReLU(shortcut + F(x)) of block t. */
export function buildBlockGraph(net: FoldedResNet, t: number): Uint8Array {
  const g = new GraphBuilder(`block${t}`);
  const y = addBlock(g, portableOps(net), t, g.input('input', 'float32', activationDims(net, t)), true);
  g.output(y, 'output', 'float32', activationDims(net, t + 1));
  return g.toModel(`block ${t} kept: ReLU(shortcut + F(x))`);
}

/** Activation → shortcut of block t: what a dropped block outputs (meaningful for downsampling blocks). */
export function buildShortcutGraph(net: FoldedResNet, t: number): Uint8Array {
  const g = new GraphBuilder(`shortcut${t}`);
  const y = portableOps(net).shortcut(g, t, g.input('input', 'float32', activationDims(net, t)));
  g.output(y, 'output', 'float32', activationDims(net, t + 1));
  return g.toModel(`block ${t} dropped: shortcut only`);
}

/** Last activation → logits. */
export function buildHeadGraph(net: FoldedResNet): Uint8Array {
  const g = new GraphBuilder('head');
  const logits = portableOps(net).head(g, g.input('input', 'float32', activationDims(net, net.blocks.length)));
  g.output(logits, 'logits', 'float32', [BATCH, net.classes]);
  return g.toModel('head: global average pool + fc');
}

export const POLICY_TAG = 'policy_';

/** The policy network: backbone image (side `imageSide`) → sigmoid probabilities [B, K]. */
export function buildPolicyGraph(policy: FoldedResNet, imageSide = policy.arch.inputSize): Uint8Array {
  const g = new GraphBuilder('policy');
  const image = g.input('input', 'float32', imageDims(policy, imageSide));
  const probs = g.node('Sigmoid', [addPolicyNetwork(g, portableOps(policy, POLICY_TAG), image, imageSide)]);
  g.output(probs, 'probabilities', 'float32', [BATCH, policy.classes]);
  return g.toModel('policy network: sigmoid keep probabilities');
}

export type SkipMode = 'gather' | 'branch';

export interface DynamicGraphOptions {
  /**
   * 'gather': per block, the images that keep it are gathered (NonZero + Gather), run through F and
   * scattered back over the shortcut (ScatterND): any batch size.
   * 'branch': per block an If node runs F or only the shortcut: batch size 1 only.
   */
  readonly mode: SkipMode;
  /** Policy network ops; when given it runs in the same graph and its probabilities are an output. */
  readonly policy?: LayerOps;
  /**
   * 'policy': keep = probabilities ≥ 0.5 inside the graph (output 'keep').
   * 'input': keep comes from input 'keep' (bool [B, K]): explicit or synthetic masks.
   */
  readonly keepFrom: 'policy' | 'input';
}

/**
 * One graph for a BlockDrop forward pass with real per-image block skipping inside ONNX Runtime.
 * Inputs 'input' (normalised NCHW image) and, with keepFrom 'input', 'keep' (bool [B, K]).
 * Outputs 'logits', 'probabilities' (with a policy) and 'keep' (with keepFrom 'policy').
 */
export function buildDynamicGraph(g: GraphBuilder, ops: LayerOps, options: DynamicGraphOptions): void {
  const net = ops.net;
  const K = net.blocks.length;
  const image = g.input('input', 'float32', imageDims(net));
  let keep: string;
  if (options.policy) {
    const probs = g.node('Sigmoid', [addPolicyNetwork(g, options.policy, image, net.arch.inputSize)]);
    g.output(probs, 'probabilities', 'float32', [BATCH, K]);
    if (options.keepFrom === 'policy') {
      keep = g.node('GreaterOrEqual', [probs, g.floatConst('half', [], Float32Array.of(0.5))]);
      g.output(keep, 'keep', 'bool', [BATCH, K]);
    } else keep = g.input('keep', 'bool', [BATCH, K]);
  } else {
    if (options.keepFrom === 'policy') throw new Error('buildDynamicGraph: keepFrom policy needs a policy network');
    keep = g.input('keep', 'bool', [BATCH, K]);
  }
  let x = ops.stem(g, image);
  if (options.mode === 'gather') {
    const axis1 = g.int64Const('axis1', [1]);
    const flat = g.int64Const('flat', [-1]);
    for (let t = 0; t < K; t++) {
      const column = g.node('Gather', [keep, g.int64Const(`t${t}`, [t], [])], undefined, { axis: 1 }); // [B]
      const idx = g.node('Reshape', [g.node('NonZero', [column]), flat]); // [m]
      const xs = g.node('Gather', [x, idx], undefined, { axis: 0 });
      // The shortcut is computed for the whole batch (dropped images need it) and gathered for the
      // kept ones; an empty sub-batch then only meets Gather, Conv and ScatterND, which accept it.
      const sc = ops.shortcut(g, t, x);
      const scs = sc === x ? xs : g.node('Gather', [sc, idx], undefined, { axis: 0 });
      const y = ops.kept(g, t, xs, scs);
      x = g.node('ScatterND', [sc, g.node('Unsqueeze', [idx, axis1]), y]);
    }
  } else {
    // Batch 1: one Split gives each If its [1, 1] condition (a single element is all If asks for).
    const conds = Array.from({ length: K }, (_, t) => g.fresh(`keep${t}`));
    g.node('Split', [keep], conds, { axis: 1 });
    for (let t = 0; t < K; t++) {
      const then = new GraphBuilder(`keep${t}`, `k${t}_`);
      // Branch outputs keep their own names: an Identity renaming them would copy the activation.
      then.outputValue(ops.kept(then, t, x, ops.shortcut(then, t, x)), 'float32', undefined);
      const other = new GraphBuilder(`drop${t}`, `d${t}_`);
      // ONNX Runtime rejects an outer-scope value as a branch output: an identity shortcut copies once.
      const sc = ops.shortcut(other, t, x);
      other.outputValue(sc === x ? other.node('Identity', [x]) : sc, 'float32', undefined);
      g.useDomains([...then.domains, ...other.domains]);
      x = g.node('If', [conds[t]!], [`if${t}_out`], { then_branch: { graph: then.graph() }, else_branch: { graph: other.graph() } });
    }
  }
  g.output(ops.head(g, x), 'logits', 'float32', [BATCH, net.classes]);
}

/** Portable single-file BlockDrop model (standard ONNX ops). */
export function buildPortableDynamicGraph(
  net: FoldedResNet,
  policy: FoldedResNet | undefined,
  options: Omit<DynamicGraphOptions, 'policy'>,
): Uint8Array {
  const g = new GraphBuilder(`blockdrop_${options.mode}`);
  buildDynamicGraph(g, portableOps(net), { ...options, ...(policy ? { policy: portableOps(policy, POLICY_TAG) } : {}) });
  return g.toModel('BlockDrop: policy network and backbone with per-image block skipping');
}
