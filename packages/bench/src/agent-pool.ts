import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AgentReply, Task } from './agent/protocol.js';

const AGENT = fileURLToPath(new URL('./agent/agent.js', import.meta.url));

/** The load-generating child processes of a run, driven over IPC. */
export class AgentPool {
  private readonly procs: ChildProcess[] = [];
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;

  /** Forks `count` agents. */
  constructor(readonly count: number) {
    for (let i = 0; i < count; i++) {
      const proc = fork(AGENT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
      proc.on('message', (reply: AgentReply) => {
        const p = this.pending.get(reply.id);
        if (!p) return;
        this.pending.delete(reply.id);
        if (reply.ok) p.resolve(reply.result);
        else p.reject(new Error(`agent ${i}: ${reply.error}`));
      });
      proc.on('exit', (code, signal) => {
        // An agent that dies fails whatever it was doing instead of hanging the run.
        for (const [id, p] of this.pending) {
          p.reject(new Error(`agent ${i} exited (${code ?? signal})`));
          this.pending.delete(id);
        }
      });
      this.procs.push(proc);
    }
  }

  /** Process ids of the agents (for CPU accounting). */
  pids(): number[] {
    return this.procs.map((p) => p.pid!).filter((p) => p !== undefined);
  }

  /** Runs `task` on agent `index`. */
  call<T>(index: number, task: Task): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.procs[index]!.send({ id, task });
    });
  }

  /** Runs a task on every agent (built per agent index) and returns the results in order. */
  all<T>(task: (index: number) => Task | undefined): Promise<Array<T | undefined>> {
    return Promise.all(this.procs.map((_, i) => {
      const t = task(i);
      return t ? this.call<T>(i, t) : Promise.resolve(undefined);
    }));
  }

  /** Disconnects every agent (they exit) and waits for the exits. */
  async close(): Promise<void> {
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
            p.once('exit', () => (clearTimeout(timer), resolve()));
            p.disconnect();
          }),
      ),
    );
  }
}

/** Splits `total` into `parts` near-equal integers (earlier parts get the remainder). */
export function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}
