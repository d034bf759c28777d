/** Starting a set of worker threads that each report ready (or a failure) with their first message. */
import { Worker } from 'node:worker_threads';

/** A worker's first message: ready with what it reports, or the reason it could not start. */
export type ReadyMessage<T> = ({ ready: true } & T) | { ready: false; message: string; blockdrop?: boolean };

/**
 * Starts `count` workers running `script` with `workerData` and waits for each one's first message. If any fails,
 * all are terminated and the first failure is thrown (`makeError` turns the worker's message into an error).
 */
export async function startWorkers<T>(
  script: URL,
  count: number,
  workerData: unknown,
  makeError: (failure: { message: string; blockdrop?: boolean }) => Error,
): Promise<{ workers: Worker[]; ready: ({ ready: true } & T)[] }> {
  const workers = Array.from({ length: count }, () => new Worker(script, { workerData }));
  const settled = await Promise.allSettled(
    workers.map(
      (w) =>
        new Promise<{ ready: true } & T>((resolve, reject) => {
          w.once('message', (m: ReadyMessage<T>) => (m.ready ? resolve(m) : reject(makeError(m))));
          w.once('error', reject);
        }),
    ),
  );
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw failed.reason;
  }
  return { workers, ready: settled.map((r) => (r as PromiseFulfilledResult<{ ready: true } & T>).value) };
}
