import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { childPids } from '../proc-stats.js';

const GC_HOOK = fileURLToPath(new URL('../gc-hook.js', import.meta.url));

/** Memory of a server process after a forced GC. */
export interface MemorySample {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** Whether a GC really ran (`--expose-gc` was honoured). */
  gc: boolean;
}

/** A process started by the bench (server, baseline, redis, nginx), with its output kept for errors. */
export class ServerProcess {
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly waiters = new Set<{ test: (l: string) => boolean; resolve: (l: string) => void }>();

  private constructor(readonly name: string, readonly proc: ChildProcess, private readonly withChildren: boolean) {
    this.exited = once(proc, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
    proc.on('error', (err) => this.lines.push(`spawn error: ${err.message}`));
    for (const stream of [proc.stdout, proc.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => {
        if (this.lines.length > 500) this.lines.splice(0, 250);
        this.lines.push(line);
        if (process.env.HERALD_BENCH_VERBOSE) process.stderr.write(`[${name}] ${line}\n`);
        for (const w of [...this.waiters]) if (w.test(line)) {
          this.waiters.delete(w);
          w.resolve(line);
        }
      });
    }
  }

  /**
   * Starts a Node script with an IPC channel, `--expose-gc` and the GC hook preloaded.
   */
  static node(name: string, script: string, env: NodeJS.ProcessEnv = {}, args: string[] = []): ServerProcess {
    const proc = fork(script, args, {
      env: { ...process.env, ...env },
      // HERALD_BENCH_NODE_ARGS: extra node flags for every server, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
      execArgv: ['--expose-gc', '--import', GC_HOOK, ...(process.env.HERALD_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [])],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    return new ServerProcess(name, proc, false);
  }

  /** Starts any program; `withChildren` adds its children's CPU (nginx workers). */
  static program(name: string, command: string, args: string[], withChildren = false): ServerProcess {
    const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    return new ServerProcess(name, proc, withChildren);
  }

  /** The process ids whose CPU counts for this server. */
  pids(): number[] {
    const pid = this.proc.pid;
    if (pid === undefined) return [];
    return this.withChildren ? [pid, ...childPids(pid)] : [pid];
  }

  /** Resolves with the first line (past or future) matching `test`; rejects on exit or after `ms`. */
  waitForLine(test: (line: string) => boolean, ms = 15_000): Promise<string> {
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        this.waiters.delete(w);
        clearTimeout(timer);
        reject(new Error(`${this.name}: ${why}; last output:\n  ${this.lines.slice(-15).join('\n  ')}`));
      };
      const w = { test, resolve: (l: string) => (clearTimeout(timer), resolve(l)) };
      const timer = setTimeout(() => fail(`no matching line after ${ms} ms`), ms);
      this.waiters.add(w);
      void this.exited.then(({ code, signal }) => {
        if (this.waiters.has(w)) fail(`exited (${code ?? signal}) before it was ready`);
      });
    });
  }

  /** Forces a GC in a process started by {@link ServerProcess.node} and returns its memory. */
  async gcAndMeasure(ms = 10_000): Promise<MemorySample> {
    const proc = this.proc;
    if (!proc.send) throw new Error(`${this.name} has no IPC channel`);
    const reply = new Promise<MemorySample>((resolve, reject) => {
      const timer = setTimeout(() => (proc.off('message', on), reject(new Error(`${this.name}: no GC reply after ${ms} ms`))), ms);
      const on = (msg: unknown) => {
        if ((msg as { type?: string })?.type !== 'bench:mem') return;
        clearTimeout(timer);
        proc.off('message', on);
        resolve(msg as MemorySample);
      };
      proc.on('message', on);
    });
    proc.send({ type: 'bench:gc' });
    return reply;
  }

  /** Sends `signal` and waits for the exit; SIGKILL after `ms`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', ms = 15_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), ms);
    await this.exited;
    clearTimeout(timer);
  }
}
