import { HeraldWorker, type WorkerOptions } from '@herald/server';
import { createLogger } from '@herald/shared';

/** Starts an in-process worker on port 0 with a silent logger; stop it with `worker.close()`. */
export async function startInProcess(options: WorkerOptions = {}): Promise<{ worker: HeraldWorker; port: number; ws: string; http: string }> {
  const worker = new HeraldWorker({ log: createLogger(process.env.HERALD_TEST_VERBOSE ? 'debug' : 'silent'), ...options });
  const port = await worker.listen(0, '127.0.0.1');
  return { worker, port, ws: `ws://127.0.0.1:${port}`, http: `http://127.0.0.1:${port}` };
}
