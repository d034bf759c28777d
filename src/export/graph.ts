/**
 * A minimal ONNX graph builder on top of `onnx-proto` (protobufjs static code for onnx.proto v1.10).
 * Only what the ResNet / BlockDrop graphs need: float32 initialisers, nodes with int / float / ints /
 * graph attributes, typed inputs and outputs with symbolic (dynamic) dimensions.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** Opset of the default domain used by every exported graph (Pad with tensor pads needs ≥ 11; ReduceMax axes-as-input 18). */
export const OPSET = 17;
/** IR version 8 = ONNX 1.10, the newest onnx-proto knows; ORT accepts it with opset 17. */
const IR_VERSION = 8;

export type ElemType = 'float32' | 'int64' | 'bool' | 'uint8';

const ELEM: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
  uint8: onnx.TensorProto.DataType.UINT8,
};

/** A dimension: a fixed size or a symbolic name such as 'batch'. */
export type Dim = number | string;

export type AttrValue =
  | number
  | number[]
  | { float: number }
  | { string: string }
  | { graph: onnxProto.onnx.IGraphProto }
  /** An attribute copied verbatim from another model. */
  | { proto: onnxProto.onnx.IAttributeProto };

/** ONNX Runtime's blocked-layout CPU kernels (ReorderInput, Conv with fused Sum/activation, pools). */
export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

function attribute(name: string, value: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: ${value} is not an integer; use { float }`);
    return { name, type: T.INT, i: value };
  }
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if ('float' in value) return { name, type: T.FLOAT, f: value.float };
  if ('string' in value) return { name, type: T.STRING, s: new TextEncoder().encode(value.string) };
  if ('proto' in value) return { ...value.proto, name };
  return { name, type: T.GRAPH, g: value.graph };
}

/** `dims` undefined = shape not declared (allowed for If-branch outputs). */
function valueInfo(name: string, elem: ElemType, dims: readonly Dim[] | undefined): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[elem],
        ...(dims ? { shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } : {}),
      },
    },
  };
}

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly used = new Set<string>();
  private readonly initializerNames = new Set<string>();
  /** Domains used by this graph's nodes and by subgraphs registered with `useDomains`. */
  readonly domains = new Set<string>();
  private counter = 0;

  /** `scope` prefixes every fresh name: subgraphs (If branches) must not reuse their parent's names. */
  constructor(
    readonly name: string,
    private readonly scope = '',
  ) {}

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    let n: string;
    do n = `${this.scope}${prefix}_${this.counter++}`;
    while (this.used.has(n));
    this.used.add(n);
    return n;
  }

  input(name: string, elem: ElemType, dims: readonly Dim[]): string {
    this.used.add(name);
    this.inputs.push(valueInfo(name, elem, dims));
    return name;
  }

  /** Declares `value` as a graph output, renaming it through Identity when the name differs. */
  output(value: string, name: string, elem: ElemType, dims: readonly Dim[] | undefined): void {
    if (value !== name) this.node('Identity', [value], [name]);
    this.used.add(name);
    this.outputs.push(valueInfo(name, elem, dims));
  }

  /**
   * Declares `value` itself as a graph output, under its own name: no Identity node (ONNX Runtime's Identity
   * copies). For If branches, whose outputs are matched by position, not by name.
   */
  outputValue(value: string, elem: ElemType, dims: readonly Dim[] | undefined): void {
    this.outputs.push(valueInfo(value, elem, dims));
  }

  /**
   * A float32 initialiser. With `exactName` the name is kept as given, and a second call with the same
   * name returns the existing initialiser (so a weight used twice is stored once).
   */
  floatConst(prefix: string, dims: readonly number[], data: Float32Array, exactName = false): string {
    if (exactName && this.initializerNames.has(prefix)) return prefix;
    if (exactName && this.used.has(prefix)) throw new Error(`GraphBuilder: name ${prefix} already used`);
    const name = exactName ? prefix : this.fresh(prefix);
    this.initializerNames.add(name);
    this.used.add(name);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    this.initializers.push({ name, dims: [...dims], dataType: ELEM.float32, rawData: bytes });
    return name;
  }

  int64Const(prefix: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = this.fresh(prefix);
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.initializers.push({ name, dims: [...dims], dataType: ELEM.int64, rawData: new Uint8Array(data.buffer) });
    return name;
  }

  /**
   * An initialiser taken verbatim from another model (e.g. weights ONNX Runtime already reordered);
   * a second call with the same name returns the existing one.
   */
  rawInitializerOnce(tensor: onnxProto.onnx.ITensorProto): string {
    const name = tensor.name!;
    if (this.initializerNames.has(name)) return name;
    if (this.used.has(name)) throw new Error(`GraphBuilder: name ${name} already used`);
    this.used.add(name);
    this.initializerNames.add(name);
    this.initializers.push(tensor);
    return name;
  }

  /** Adds a node; returns its first output (a fresh name unless `outputs` is given). */
  node(
    op: string,
    inputs: readonly string[],
    outputs?: readonly string[],
    attrs: Record<string, AttrValue> = {},
    domain = '',
  ): string {
    const outs = outputs ? [...outputs] : [this.fresh(op.toLowerCase())];
    for (const o of outs) this.used.add(o);
    if (domain) this.domains.add(domain);
    this.nodes.push({
      opType: op,
      domain,
      input: [...inputs],
      output: outs,
      name: `${this.scope}${op}_${this.nodes.length}`,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs[0]!;
  }

  useDomains(domains: Iterable<string>): void {
    for (const d of domains) this.domains.add(d);
  }

  /** The graph as a proto (for use as a subgraph, or wrapped by `toModel`). */
  graph(): onnxProto.onnx.IGraphProto {
    return {
      name: this.name,
      node: this.nodes,
      initializer: this.initializers,
      input: this.inputs,
      output: this.outputs,
    };
  }

  /** Serialised ModelProto bytes. */
  toModel(docString = ''): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      producerName: 'blockdrop',
      producerVersion: '0.1.0',
      docString,
      opsetImport: [{ domain: '', version: OPSET }, ...[...this.domains].map((domain) => ({ domain, version: 1 }))],
      graph: this.graph(),
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
