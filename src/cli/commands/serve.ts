/**
 * `blockdrop serve [DIR]`: the browser demo (web/). Builds it into DIR when DIR does not already hold
 * a build of the same inputs (models exported, test images written, page bundled with Vite), then
 * serves it on localhost. `--build-only` stops after the build (`npm run demo:build`).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { PACKAGE_ROOT } from '../../data/cifar.js';
import { BlockdropError } from '../../errors.js';
import { buildDemoIfNeeded, DEFAULT_SYNTHETIC_KEEP_RATE, DEMO_BATCH_IMAGES, readDemoConfig } from '../../web/build.js';
import { serveStatic } from '../../web/server.js';
import { defaultBackbone } from '../defaults.js';
import { logLine, positiveInt, probability } from '../output.js';
import { SHIPPED_POLICY } from './run.js';

interface ServeOptions {
  resnet?: string;
  arch?: string;
  policy?: string;
  synthetic?: boolean;
  keepRate: number;
  seed: number;
  images: number;
  data?: string;
  port: number;
  host: string;
  rebuild?: boolean;
  buildOnly?: boolean;
}

/** The project's trained policy when one is shipped in models/ (the stage-1 one first). */
function shippedPolicy(): string | undefined {
  if (existsSync(SHIPPED_POLICY)) return SHIPPED_POLICY;
  const dir = join(PACKAGE_ROOT, 'models');
  if (!existsSync(dir)) return undefined;
  const found = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
  return found.length > 0 ? join(dir, found[0]!) : undefined;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`must be a port number (0 = any free port), got '${value}'`);
  return n;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('the browser demo: build it if needed (ONNX models, test images, the page) and serve it on localhost')
    .argument('[dir]', 'build folder', 'runs/demo')
    .option('--resnet <checkpoint>', "backbone (default: BlockDrop's ResNet-32 in ../shared/data/weights)")
    .option('--arch <name>', 'architecture preset (detected when omitted)')
    .option('--policy <checkpoint>', 'trained policy (default: the one shipped in models/, if any)')
    .option('--synthetic', 'use a synthetic policy even if a trained one is available')
    .option('--keep-rate <p>', 'synthetic policy: fraction of blocks it keeps', probability('--keep-rate'), DEFAULT_SYNTHETIC_KEEP_RATE)
    .option('--seed <n>', 'seed of the synthetic policy', (v: string) => Number(v), 0)
    .option('--images <n>', 'CIFAR-10 test images in the build', positiveInt('--images'), DEMO_BATCH_IMAGES)
    .option('--data <dir>', 'CIFAR-10 directory')
    .option('--port <n>', 'port (0 = any free port)', port, 5180)
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--rebuild', 'build even if DIR holds an up-to-date build')
    .option('--build-only', 'build (if needed) and exit without serving')
    .action(async (dir: string, opts: ServeOptions) => {
      const resnet = opts.resnet ?? defaultBackbone();
      const policy = opts.synthetic ? undefined : (opts.policy ?? shippedPolicy());
      const existing = readDemoConfig(dir);
      if (existing && !opts.rebuild && !existsSync(resnet)) {
        logLine(`${dir} holds a demo build; the backbone ${resnet} is not here to check it against, so it is served as it is`);
      } else {
        if (!existsSync(resnet)) {
          throw new BlockdropError(`backbone ${resnet} not found; pass --resnet CHECKPOINT (e.g. blockdrop_R32_C10_pk_E_164_A_0.923.t7)`);
        }
        const result = await buildDemoIfNeeded({
          outDir: dir,
          resnet,
          ...(opts.arch ? { arch: opts.arch } : {}),
          ...(policy ? { policy } : { keepRate: opts.keepRate, seed: opts.seed }),
          images: opts.images,
          ...(opts.data ? { dataDir: opts.data } : {}),
          force: !!opts.rebuild,
          log: logLine,
        });
        logLine(result.built ? `built the demo in ${dir} (${result.config.policy.description})` : `${dir} is up to date (${result.config.policy.description})`);
      }
      if (opts.buildOnly) return;
      const server = await serveStatic(dir, { port: opts.port, host: opts.host });
      process.stdout.write(`BlockDrop demo: ${server.url}  (Ctrl-C stops it)\n`);
      await new Promise<void>((done) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void server.close().then(done);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
