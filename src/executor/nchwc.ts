/**
 * ONNX Runtime's CPU provider runs convolutions fastest in its blocked "NCHWc" layout, but only
 * rewrites a graph into it around ops it understands: Gather / ScatterND / If (the ops that make
 * per-image block skipping possible) force a layout round trip (ReorderInput + ReorderOutput) and
 * keep the residual add + ReLU out of the fused conv, ~30% extra time per kept block.
 *
 * So the executor lets ONNX Runtime optimise the plain full networks once, takes the convolutions
 * it produced (weights already in the blocked layout this CPU uses, attributes as ORT wrote them),
 * and composes its skipping graphs directly from those kernels: activations stay blocked end to end,
 * batch-axis Gather / ScatterND work on the blocked tensors unchanged (the batch is the outermost
 * axis in both layouts), and the shortcut add + ReLU ride in the conv's fused Sum input.
 *
 * This depends on ORT internals (the com.microsoft.nchwc contrib domain), so it is checked: when the
 * optimised graph does not look as expected, `harvestNchwc` returns null and the executor uses the
 * portable graphs; and the executor compares the composed graph with the portable one at load time.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import type { FoldedResNet } from '../export/folded.js';
import { GraphBuilder, NCHWC_DOMAIN } from '../export/graph.js';
import {
  addPolicyNetwork, blockConvs, convName, imageDims, portableOps, POLICY_TAG, STEM_MAX_POOL, type LayerOps,
} from '../export/networks.js';

const { onnx } = onnxProto;

interface HarvestedConv {
  readonly weight: onnxProto.onnx.ITensorProto;
  readonly bias: onnxProto.onnx.ITensorProto;
  /** Attributes as ORT wrote them, minus the fused activation (set per use). */
  readonly attributes: onnxProto.onnx.IAttributeProto[];
}

/** Blocked-layout convolutions of one or more networks, keyed by bias initialiser name. */
export type NchwcHarvest = ReadonlyMap<string, HarvestedConv>;

/**
 * Optimises the full networks with ONNX Runtime and collects their NCHWc convolutions. Returns null
 * when ORT did not convert every convolution (e.g. a CPU without a blocked kernel).
 */
export async function harvestNchwc(nets: readonly { net: FoldedResNet; tag: string }[]): Promise<NchwcHarvest | null> {
  const g = new GraphBuilder('harvest');
  // The first network is the backbone; a policy sees the same image, average-pooled when smaller (ImageNet).
  const side = nets[0]!.net.arch.inputSize;
  const image = g.input('input', 'float32', imageDims(nets[0]!.net));
  const expected: string[] = [];
  nets.forEach(({ net, tag }, i) => {
    const ops = portableOps(net, tag);
    g.output(addPolicyNetwork(g, ops, image, side), `logits${i}`, 'float32', undefined);
    expected.push(`${convName(tag, 'stem')}.bias`);
    net.blocks.forEach((b, t) => {
      for (const { name } of blockConvs(b, tag, t)) expected.push(`${name}.bias`);
      if (b.downsample) expected.push(`${convName(tag, 'sc', t)}.bias`);
    });
  });
  const dir = mkdtempSync(join(tmpdir(), 'blockdrop-nchwc-'));
  try {
    const path = join(dir, 'optimized.onnx');
    const session = await ort.InferenceSession.create(g.toModel(), {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 1,
      optimizedModelFilePath: path,
      logSeverityLevel: 3,
    });
    await session.release();
    const model = onnx.ModelProto.decode(readFileSync(path));
    const graph = model.graph!;
    const inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
    const found = new Map<string, HarvestedConv>();
    for (const node of graph.node ?? []) {
      if (node.opType !== 'Conv' || node.domain !== NCHWC_DOMAIN) continue;
      const [, w, b] = node.input ?? [];
      const weight = w ? inits.get(w) : undefined;
      const bias = b ? inits.get(b) : undefined;
      if (!weight || !bias) return null;
      const attributes = (node.attribute ?? []).filter((a) => a.name !== 'activation' && a.name !== 'activation_params');
      found.set(b!, { weight, bias, attributes });
    }
    return expected.every((k) => found.has(k)) ? found : null;
  } catch {
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** LayerOps over harvested blocked-layout kernels. Activations between ops are NCHWc tensors. */
export function nchwcOps(net: FoldedResNet, harvest: NchwcHarvest, tag = ''): LayerOps {
  const conv = (g: GraphBuilder, x: string, name: string, relu: boolean, sum?: string): string => {
    const h = harvest.get(`${name}.bias`);
    if (!h) throw new Error(`nchwcOps: no harvested convolution ${name}`);
    // Rename so that several networks / branches can hold their own copy without clashes.
    const w = g.rawInitializerOnce({ ...h.weight, name: `${name}.nchwc_weight` });
    const b = g.rawInitializerOnce({ ...h.bias, name: `${name}.bias` });
    const attrs: Record<string, { proto: onnxProto.onnx.IAttributeProto } | { string: string }> = {};
    for (const a of h.attributes) attrs[a.name!] = { proto: a };
    if (relu) attrs['activation'] = { string: 'Relu' };
    return g.node('Conv', sum ? [x, w, b, sum] : [x, w, b], undefined, attrs, NCHWC_DOMAIN);
  };
  return {
    net,
    stem(g, image) {
      const y = conv(g, image, convName(tag, 'stem'), true);
      return net.arch.stem === 'imagenet' ? g.node('MaxPool', [y], undefined, STEM_MAX_POOL, NCHWC_DOMAIN) : y;
    },
    shortcut(g, t, x) {
      const block = net.blocks[t]!;
      if (!block.downsample) return x;
      if (block.projection) return conv(g, x, convName(tag, 'sc', t), false);
      const s = block.stride;
      const src =
        net.arch.shortcut === 'downsampleB' && s > 1
          ? g.node('AveragePool', [x], undefined, { kernel_shape: [s, s], strides: [s, s] }, NCHWC_DOMAIN)
          : x;
      return conv(g, src, convName(tag, 'sc', t), false);
    },
    kept(g, t, x, sum) {
      const convs = blockConvs(net.blocks[t]!, tag, t);
      let h = x;
      // Inner convs with ReLU; the last one adds the shortcut (fused Sum input), then ReLU.
      convs.forEach(({ name }, i) => (h = i < convs.length - 1 ? conv(g, h, name, true) : conv(g, h, name, true, sum)));
      return h;
    },
    head(g, x) {
      const nchw = g.node('ReorderOutput', [x], undefined, { channels: net.features, channels_last: 0 }, NCHWC_DOMAIN);
      const pooled = g.node('GlobalAveragePool', [nchw]);
      const flat = g.node('Flatten', [pooled], undefined, { axis: 1 });
      const w = g.floatConst(`${tag}fc.weight`, [net.classes, net.features], net.fcWeight, true);
      const b = g.floatConst(`${tag}fc.bias`, [net.classes], net.fcBias, true);
      return g.node('Gemm', [flat, w, b], undefined, { transB: 1 });
    },
  };
}

export { POLICY_TAG };
