#!/usr/bin/env node
/**
 * A load-generating child process. The bench forks several so the load generator is not
 * the bottleneck; each takes tasks over IPC ({@link AgentRequest}) and answers
 * ({@link AgentReply}). It exits when the parent disconnects.
 */
import { runEcho } from './echo-load.js';
import { SubscriberPool } from './subscriber-pool.js';
import { PublisherSet } from './publish-load.js';
import type { AgentReply, AgentRequest, Task } from './protocol.js';

const pool = new SubscriberPool();
const publishers = new PublisherSet();

async function run(task: Task): Promise<unknown> {
  switch (task.cmd) {
    case 'echo':
      return runEcho(task);
    case 'open':
      return pool.open(task);
    case 'reset':
      return pool.reset();
    case 'collect':
      return pool.collect();
    case 'await':
      return pool.await(task.expectedPerConn, task.ms);
    case 'publish':
      return publishers.run(task);
    case 'close':
      pool.close();
      publishers.close();
      return undefined;
    default:
      throw new Error(`unknown task ${(task as { cmd: string }).cmd}`);
  }
}

process.on('message', (msg: AgentRequest) => {
  run(msg.task).then(
    (result) => process.send?.({ id: msg.id, ok: true, result } satisfies AgentReply),
    (err: unknown) => process.send?.({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies AgentReply),
  );
});
process.on('disconnect', () => process.exit(0));
