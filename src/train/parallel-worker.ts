/** One worker of the data-parallel training engine: the network's training graphs on one ORT thread. */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { EngineNetwork, SavedState } from './engine.js';
import { OnnxTrainableModule } from './onnx-engine.js';
import type { ParallelReady, ParallelReply, ParallelRequest, ParallelWorkerData } from './parallel-engine.js';

const port = parentPort;
if (!port) throw new Error('parallel-worker.js runs as a worker thread of the data-parallel training engine');
const data = workerData as ParallelWorkerData;
const weights = new Float32Array(data.weights);

tf.env().set('PROD', true); // no "install tfjs-node" banner per worker
await tf.setBackend('cpu');

// The worker's copy of the network: variables the engine reads its parameters from, refreshed from shared memory.
const variables = new Map<string, tf.Variable>();
for (const v of data.variables) variables.set(v.name, tf.variable(tf.tensor(weights.slice(v.offset, v.offset + v.size), v.shape), false, `w/${v.name}`));
const net: EngineNetwork = { arch: data.arch, allVariables: () => variables, variables: () => [...variables.values()] };
let version = 0;
function refreshWeights(): void {
  // tidy: assign shares the new tensor's data, and the temporary tensor itself must not outlive the call
  tf.tidy(() => {
    for (const v of data.variables) variables.get(v.name)!.assign(tf.tensor(weights.slice(v.offset, v.offset + v.size), v.shape));
  });
}

let module: OnnxTrainableModule;
try {
  module = await OnnxTrainableModule.create(net, data.options);
  const ready: ParallelReady = {
    ready: true,
    batchNorms: [...module.batchNorms],
    gradShapes: module.parameterShapes.map((s) => [...s]),
  };
  port.postMessage(ready);
} catch (e) {
  port.postMessage({ ready: false, message: e instanceof Error ? e.message : String(e) } satisfies ParallelReady);
  process.exit(0);
}

const saved = new Map<number, SavedState>();
let queue: Promise<void> = Promise.resolve();
port.on('message', (request: ParallelRequest) => {
  queue = queue.then(async () => {
    let reply: ParallelReply;
    try {
      if (request.type === 'forward') {
        if (request.weightsVersion !== version) {
          refreshWeights();
          version = request.weightsVersion;
        }
        const { forward, statistics } = await module.forwardWithStatistics(request.images, request.batch, {
          ...(request.keep ? { keep: request.keep } : {}),
          grad: request.grad,
        });
        if (forward.saved) saved.set(request.id, forward.saved);
        reply = {
          id: request.id,
          ok: true,
          output: forward.output.slice(),
          statistics: statistics.map((s) => ({ mean: s.mean.slice(), variance: s.variance.slice() })),
          ...(forward.saved ? { saved: request.id } : {}),
        };
      } else if (request.type === 'backward') {
        const state = saved.get(request.saved);
        if (!state) throw new Error(`no saved forward pass ${request.saved}`);
        saved.delete(request.saved);
        const grads = await module.backward(state, request.dOutput);
        reply = {
          id: request.id,
          ok: true,
          grads: grads.map((g) => {
            if (!g) return null;
            const values = g.dataSync() as Float32Array;
            g.dispose();
            return values;
          }),
        };
      } else {
        saved.get(request.saved)?.release();
        saved.delete(request.saved);
        return;
      }
    } catch (e) {
      reply = { id: request.id, ok: false, message: e instanceof Error ? e.message : String(e) };
    }
    port.postMessage(reply);
  });
});
