/** Where tests find `../shared` (real data and PyTorch-written fixtures). Never committed into the repo. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return start;
    dir = parent;
  }
}

export const repoRoot: string = findRepoRoot(dirname(fileURLToPath(import.meta.url)));

/** `BLOCKDROP_SHARED`, else `../shared` next to the repository. */
export const sharedDir: string = process.env.BLOCKDROP_SHARED
  ? resolve(process.env.BLOCKDROP_SHARED)
  : resolve(repoRoot, '..', 'shared');

export const fixturesDir: string = join(sharedDir, 'data', 'fixtures');
export const weightsDir: string = join(sharedDir, 'data', 'weights');
export const cifarDir: string = join(sharedDir, 'data', 'cifar10');
