/**
 * FLOPs in the paper's convention (BlockDrop `test.py`): 2·Cin·Cout·kh·kw·Hout·Wout per conv and
 * 2·in·out per linear layer; BN, ReLU, pooling, additions and the parameter-free shortcuts
 * (DownsampleB, option A) count 0. Projection shortcuts are counted and always paid, since BlockDrop
 * computes a stage's shortcut even when its first block is dropped.
 */
import { BlockdropError } from '../errors.js';
import { blockExpansion, blockLayouts, policyArchFor, type BlockLayout, type ResNetConfig } from './config.js';

const convFlops = (cin: number, cout: number, k: number, outSize: number) => 2 * cin * cout * k * k * outSize * outSize;

function residualFlops(arch: ResNetConfig, b: BlockLayout): number {
  if (arch.blockType === 'basic') {
    return convFlops(b.inChannels, b.planes, 3, b.outSize) + convFlops(b.planes, b.planes, 3, b.outSize);
  }
  return (
    convFlops(b.inChannels, b.planes, 1, b.inSize) +
    convFlops(b.planes, b.planes, 3, b.outSize) +
    convFlops(b.planes, b.outChannels, 1, b.outSize)
  );
}

/** FLOPs of each block's residual branch F (what dropping the block saves), in policy order. */
export function blockFlops(arch: ResNetConfig): number[] {
  return blockLayouts(arch).map((b) => residualFlops(arch, b));
}

/** FLOPs paid whatever the policy: stem conv, projection shortcuts and the fc head. */
export function stemAndHeadFlops(arch: ResNetConfig): { stem: number; shortcuts: number; head: number; total: number } {
  const stemSize = arch.stem === 'cifar' ? arch.inputSize : Math.floor((arch.inputSize + 6 - 7) / 2) + 1;
  const stem = convFlops(3, arch.stemWidth, arch.stem === 'cifar' ? 3 : 7, stemSize);
  const shortcuts = blockLayouts(arch)
    .filter((b) => b.shortcut === 'projection')
    .reduce((sum, b) => sum + convFlops(b.inChannels, b.outChannels, 1, b.outSize), 0);
  const features = arch.widths[arch.widths.length - 1]! * blockExpansion(arch);
  const head = 2 * features * arch.numClasses;
  return { stem, shortcuts, head, total: stem + shortcuts + head };
}

/** FLOPs of one image through the ResNet with policy `keep` (K values, nonzero = execute; all blocks if omitted). */
export function resnetFlops(arch: ResNetConfig, keep?: ArrayLike<number>): number {
  const perBlock = blockFlops(arch);
  if (keep && keep.length !== perBlock.length) {
    throw new BlockdropError(`a policy for ${arch.name} has ${perBlock.length} entries, got ${keep.length}`);
  }
  let total = stemAndHeadFlops(arch).total;
  perBlock.forEach((f, t) => {
    if (!keep || keep[t]) total += f;
  });
  return total;
}

/**
 * FLOPs of BlockDrop's policy network for `backbone`: the ResNet-8 with its K-way head plus the
 * original's unused 64→1 value head, which the paper's counter included.
 */
export function policyFlops(backbone: ResNetConfig): number {
  const arch = policyArchFor(backbone);
  const features = arch.widths[arch.widths.length - 1]! * blockExpansion(arch);
  const valueHead = 2 * features * 1;
  return resnetFlops(arch) + valueHead;
}

/** Mean FLOPs per image (policy included) for a batch of policies, as BlockDrop's test.py reports. */
export function meanBlockDropFlops(backbone: ResNetConfig, policies: readonly ArrayLike<number>[]): number {
  if (policies.length === 0) return 0;
  const policy = policyFlops(backbone);
  const sum = policies.reduce((s, keep) => s + resnetFlops(backbone, keep), 0);
  return sum / policies.length + policy;
}
