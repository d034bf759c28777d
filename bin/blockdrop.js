#!/usr/bin/env node
// The CLI is compiled TypeScript; `npm ci` builds it (the `prepare` script).
import { existsSync } from 'node:fs';
const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('blockdrop: the compiled CLI is missing; run `npm run build` (or `npm ci`) in the blockdrop folder first');
  process.exit(1);
}
await import(entry.href);
