/** One `BlockDropPool` worker: a single-threaded `BlockDropModel` answering requests in order. */
import { parentPort, workerData } from 'node:worker_threads';
import { isBlockdropError } from '../errors.js';
import { BlockDropModel, type LoadOptions } from './model.js';
import type { PoolReady, PoolReply, PoolRequest } from './pool.js';

const port = parentPort;
if (!port) throw new Error('pool-worker.js runs as a worker thread of BlockDropPool');
const { dir, options } = workerData as { dir: string; options: LoadOptions };

function failure(e: unknown): { message: string; blockdrop: boolean } {
  return { message: e instanceof Error ? e.message : String(e), blockdrop: isBlockdropError(e) };
}

let model: BlockDropModel;
try {
  model = await BlockDropModel.load(dir, options);
  const ready: PoolReady = { ready: true, manifest: model.manifest, info: model.info, K: model.K, numClasses: model.numClasses };
  port.postMessage(ready);
} catch (e) {
  const notReady: PoolReady = { ready: false, ...failure(e) };
  port.postMessage(notReady);
  process.exit(0);
}

// Requests are answered one at a time, in arrival order (ORT runs one batch at a time per session anyway).
let queue: Promise<void> = Promise.resolve();
port.on('message', (request: PoolRequest) => {
  queue = queue.then(async () => {
    let reply: PoolReply;
    try {
      const result =
        request.method === 'predict'
          ? await model.predict(request.images, request.options)
          : request.method === 'predictFull'
            ? await model.predictFull(request.images, request.options)
            : request.method === 'policyProbabilities'
              ? await model.policyProbabilities(request.images, request.options)
              : (await model.release(), null);
      reply = { id: request.id, ok: true, result };
    } catch (e) {
      reply = { id: request.id, ok: false, ...failure(e) };
    }
    port.postMessage(reply);
  });
});
