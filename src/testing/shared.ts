/** Where tests find `../shared` (real data and PyTorch-written fixtures). Never committed into the repo. */
import { join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../util/package-root.js';

export const repoRoot: string = PACKAGE_ROOT;

/** `BLOCKDROP_SHARED`, else `../shared` next to the repository. */
export const sharedDir: string = process.env.BLOCKDROP_SHARED
  ? resolve(process.env.BLOCKDROP_SHARED)
  : resolve(repoRoot, '..', 'shared');

export const fixturesDir: string = join(sharedDir, 'data', 'fixtures');
export const weightsDir: string = join(sharedDir, 'data', 'weights');
export const cifarDir: string = join(sharedDir, 'data', 'cifar10');
