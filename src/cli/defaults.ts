/** Default locations the CLI offers (the library takes explicit paths). */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../data/cifar.js';

/** `../shared/data/weights` next to the current directory, else next to the package. */
export function weightsDirDefault(): string {
  const candidates = [resolve('..', 'shared', 'data', 'weights'), join(PACKAGE_ROOT, '..', 'shared', 'data', 'weights')];
  return candidates.find((dir) => existsSync(dir)) ?? candidates[0]!;
}

/** BlockDrop's own pretrained ResNet-32, the default backbone of `blockdrop run`. */
export function defaultBackbone(): string {
  return join(weightsDirDefault(), 'blockdrop_R32_C10_pk_E_164_A_0.923.t7');
}
