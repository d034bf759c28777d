/**
 * From a checkpoint file to a ready backbone description: read any supported format, map its key
 * names to the canonical layout, pick the architecture (given or detected) and validate every shape.
 */
import { BlockdropError } from '../errors.js';
import { loadAnyCheckpoint } from '../checkpoint/store.js';
import type { TensorMap } from '../tensor.js';
import { getPreset, NORMALIZATIONS, type Normalization, type ResNetConfig } from './config.js';
import { canonicalizeResNetKeys, detectPreset, validateResNetWeights } from './weights.js';

export interface LoadedBackbone {
  /** Preset name from the architecture table, e.g. `resnet32` or `resnet56a`. */
  readonly preset: string;
  readonly arch: ResNetConfig;
  readonly normalization: Normalization;
  /** Canonical names (conv1.*, bn1.*, blocks.s.i.*, fc.*), float32. */
  readonly tensors: TensorMap;
  /** How the architecture was chosen, for `inspect` and logs. */
  readonly reason: string;
  readonly source: string;
}

export interface LoadBackboneOptions {
  /** Architecture preset; detected from the key names when omitted. */
  readonly arch?: string;
  /** Override the preset's input normalisation. */
  readonly normalization?: Normalization['name'];
  /** Which nested state dict to read from a multi-model checkpoint (e.g. 'resnet' of a finetuned run). */
  readonly prefer?: readonly string[];
}

export async function loadBackbone(path: string, options: LoadBackboneOptions = {}): Promise<LoadedBackbone> {
  const checkpoint = await loadAnyCheckpoint(path, { prefer: options.prefer ?? ['resnet', 'state_dict', 'net', 'model', ''] });
  const tensors = canonicalizeResNetKeys(checkpoint.tensors);
  let presetName = options.arch;
  let reason = 'given with --arch';
  let detectedArch: ResNetConfig | undefined;
  const metaPreset = typeof checkpoint.meta?.['preset'] === 'string' ? (checkpoint.meta['preset'] as string) : undefined;
  if (!presetName && metaPreset) {
    presetName = metaPreset;
    reason = 'recorded in the checkpoint metadata';
  }
  if (!presetName) {
    const detected = detectPreset(checkpoint.tensors);
    if (!detected) {
      throw new BlockdropError(
        `cannot tell which architecture ${path} holds; pass --arch (see \`blockdrop inspect ${path}\` for its tensors)`,
      );
    }
    presetName = detected.preset;
    reason = detected.reason;
    detectedArch = detected.arch; // carries the class count found in the head
  }
  const preset = getPreset(presetName);
  const arch = detectedArch ?? preset.arch;
  validateResNetWeights(arch, tensors);
  const normalization = options.normalization ? NORMALIZATIONS[options.normalization] : preset.normalization;
  return { preset: presetName, arch, normalization, tensors, reason, source: path };
}
