import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Child, TestClient, deadline, eventually, freePort, startWorker, waitFor } from './helpers/index.js';
import { BALANCER_BIN, startBalancer } from './helpers/balancer.js';
import { WORKER_BIN } from './helpers/worker.js';

/**
 * What the bins do when their stdout goes away (the reader exits: EPIPE) or stops reading
 * (the pipe fills: EAGAIN on the non-blocking fd). Before the fix a SIGTERM'd worker piped into
 * `head -1` never exited: pino's exit hook (`SonicBoom.flushSync`) retried the write every
 * 100 ms forever, on EPIPE as on EAGAIN. docs/deploy.md "Log output" has the chosen behaviour.
 */
describe('log output (worker and balancer process): stdout gone or full', () => {
  /** Longer than a drain with no connections takes, shorter than the worker's backstop (drainMs + 1 s). */
  const EXIT_MS = 5000;
  const children: Child[] = [];
  const cleanups: Array<() => void> = [];
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => c.stop('SIGKILL')));
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  const exitsWithin = (child: Child, ms: number) => Promise.race([child.exited, deadline(ms, `${child.name} to exit after SIGTERM`)]);

  /** A named pipe nobody reads from: the test keeps the read end open (a reader that stalled) and fills the buffer itself. */
  const stalledPipe = () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-stdout-'));
    const path = join(dir, 'stdout');
    execFileSync('mkfifo', [path]);
    const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    // The child's end is a description of its own, so its O_NONBLOCK (set by Node for a pipe stdout) is not the filler's.
    const childEnd = openSync(path, constants.O_WRONLY);
    const filler = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    cleanups.push(() => {
      closeSync(reader);
      rmSync(dir, { recursive: true });
    });
    const writeUntilFull = (chunk: Buffer) => {
      for (;;) {
        try {
          writeSync(filler, chunk);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return;
          throw error;
        }
      }
    };
    return {
      childEnd,
      /** Fills the pipe to the last byte: big chunks, then single bytes (a write of ≤ PIPE_BUF bytes is all or nothing). */
      fill() {
        writeUntilFull(Buffer.alloc(4096, 'x'));
        writeUntilFull(Buffer.from('x'));
        closeSync(filler);
      },
      /** Everything in the pipe now, read without blocking. */
      drain(): string {
        const chunks: Buffer[] = [];
        const buf = Buffer.alloc(65536);
        for (;;) {
          try {
            const n = readSync(reader, buf);
            if (n === 0) break;
            chunks.push(Buffer.from(buf.subarray(0, n)));
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'EAGAIN') break;
            throw error;
          }
        }
        return Buffer.concat(chunks).toString('utf8');
      },
    };
  };

  /** Starts a bin with its stdout on `stdout` and waits for its `ready` IPC message (pm2's wait_ready signal). */
  const startOnPipe = async (name: string, bin: string, stdout: number, env: NodeJS.ProcessEnv) => {
    const proc = spawn(process.execPath, [bin], { env: { ...process.env, HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env }, stdio: ['ignore', stdout, 'pipe', 'ipc'] });
    closeSync(stdout);
    const child = new Child(proc, name);
    children.push(child);
    const [message] = await Promise.race([waitFor<[unknown]>(proc, 'message', 10_000), child.exited.then(({ code }) => Promise.reject(new Error(`${name} exited ${code}: ${child.lines.join('\n')}`)))]);
    expect(message).to.equal('ready');
    return child;
  };

  const bins = [
    { name: 'worker', bin: WORKER_BIN, alive: '/healthz', env: async () => ({}) },
    // Static discovery of a port nobody listens on: the balancer starts without a worker (its /healthz is then 503).
    { name: 'balancer', bin: BALANCER_BIN, alive: '/balancer/status', env: async () => ({ HERALD_WORKERS: `127.0.0.1:${await freePort()}`, HERALD_DRAIN_MS: '1000' }) },
  ];

  for (const { name, bin, alive, env } of bins) {
    it(`${name}: exits 0 on SIGTERM after the reader of its stdout went away (EPIPE)`, async () => {
      const child = name === 'worker' ? (await startWorker()).child : (await startBalancer(await env())).child;
      children.push(child);
      // What `| head -1` does: read the first line, then close the pipe.
      child.proc.stdout!.destroy();
      await waitFor(child.proc.stdout!, 'close');
      child.proc.kill('SIGTERM');
      expect(await exitsWithin(child, EXIT_MS)).to.deep.equal({ code: 0, signal: null });
    });

    it(`${name}: keeps serving while its stdout pipe is full, and exits 0 on SIGTERM without waiting for a reader`, async () => {
      const pipe = stalledPipe();
      const port = await freePort();
      const child = await startOnPipe(name, bin, pipe.childEnd, { PORT: String(port), ...(await env()) });
      pipe.fill();
      // A log line into the full pipe (SIGHUP: "ignored, no certificate"), then a request: a write
      // that waited for a reader would hold the event loop and the request would time out.
      child.proc.kill('SIGHUP');
      expect((await fetch(`http://127.0.0.1:${port}${alive}`, { signal: AbortSignal.timeout(EXIT_MS) })).status).to.equal(200);
      child.proc.kill('SIGTERM');
      expect(await exitsWithin(child, EXIT_MS)).to.deep.equal({ code: 0, signal: null });
    });
  }

  it('worker: a line that met a full pipe goes out, in order, once the reader catches up', async () => {
    const pipe = stalledPipe();
    const port = await freePort();
    const child = await startOnPipe('worker', WORKER_BIN, pipe.childEnd, { PORT: String(port) });
    expect(pipe.drain()).to.include('"msg":"listening"');
    pipe.fill();
    // A too-deep frame is logged (once per connection) before its error answer is queued: the answer means the write was tried.
    const deep = `{"type":"publish","id":1,"channel":"room:1","data":${'['.repeat(100)}${']'.repeat(100)}}`;
    const refuse = async () => {
      const c = await TestClient.open(`ws://127.0.0.1:${port}/ws`);
      c.send(deep);
      expect(await c.waitFrame((f) => f.id === 1)).to.deep.include({ type: 'error', code: 'bad_request' });
      await c.close();
      return c.welcome!.conn as string;
    };
    const first = await refuse();
    expect(pipe.drain().replaceAll('x', ''), 'nothing fitted into the full pipe').to.equal('');
    const second = await refuse();
    let out = '';
    await eventually(() => {
      out += pipe.drain();
      expect(out).to.include(second);
    });
    const lines = out.split('\n').filter((l) => l.includes('nested too deep'));
    expect(lines.map((l) => (JSON.parse(l) as { conn: string }).conn)).to.deep.equal([first, second]);
    child.proc.kill('SIGTERM');
    expect(await exitsWithin(child, EXIT_MS)).to.deep.equal({ code: 0, signal: null });
  });

  it('worker: lines dropped while the pipe was full are counted in a warning once the reader catches up', async () => {
    const LINES = 150;
    const pipe = stalledPipe();
    const port = await freePort();
    // The smallest backlog, 16 KiB, holds about 90 of these lines; the rest of the 150 are dropped.
    const child = await startOnPipe('worker', WORKER_BIN, pipe.childEnd, { PORT: String(port), HERALD_LOG_BACKLOG_BYTES: '16384' });
    expect(pipe.drain()).to.include('"msg":"listening"');
    pipe.fill();
    // Each connection logs one "nested too deep" line before its error answer: 150 answers, 150 lines logged.
    const deep = `{"type":"publish","id":1,"channel":"room:1","data":${'['.repeat(100)}${']'.repeat(100)}}`;
    const conns: string[] = [];
    for (let i = 0; i < LINES; i++) {
      const c = await TestClient.open(`ws://127.0.0.1:${port}/ws`);
      c.send(deep);
      expect(await c.waitFrame((f) => f.id === 1)).to.deep.include({ type: 'error', code: 'bad_request' });
      await c.close();
      conns.push(c.welcome!.conn as string);
    }
    type Line = { msg: string; conn?: string; dropped?: number; level: number };
    let out = '';
    // The filler's bytes have no newline: the first line after them starts with its `x`s.
    const parse = () => out.split('\n').map((l) => l.replace(/^x+/, '')).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
    const deepLines = () => parse().filter((l) => l.msg.includes('nested too deep'));
    const reports = () => parse().filter((l) => l.msg.startsWith('log lines dropped'));
    // Every line ends up either in the output or in a count (the backlog and the counts go out
    // within a second or so of the reader catching up, with no new line to carry them).
    await eventually(
      () => {
        out += pipe.drain();
        expect(deepLines().length + reports().reduce((n, r) => n + r.dropped!, 0)).to.equal(LINES);
      },
      { timeout: 10_000 },
    );
    const written = deepLines().map((l) => l.conn);
    expect(written.length, 'some lines fitted into the backlog').to.be.above(0);
    expect(reports().length, 'some were dropped and counted').to.be.above(0);
    expect(reports().every((r) => r.level === 40)).to.equal(true);
    // In logging order (the backlog may have gone out between two drops, so not only a prefix).
    const at = written.map((c) => conns.indexOf(c!));
    expect(at.every((i, k) => i >= 0 && (k === 0 || i > at[k - 1]!))).to.equal(true);
    child.proc.kill('SIGTERM');
    expect(await exitsWithin(child, EXIT_MS)).to.deep.equal({ code: 0, signal: null });
  });

  it('a normal exit still writes the last lines: the worker\'s "drained", the balancer\'s "stopped"', async () => {
    const w = await startWorker();
    children.push(w.child);
    const b = await startBalancer({ HERALD_WORKERS: `127.0.0.1:${w.port}` });
    children.push(b.child);
    expect(await b.stop('SIGTERM')).to.deep.equal({ code: 0, signal: null });
    expect(await w.stop('SIGTERM')).to.deep.equal({ code: 0, signal: null });
    // Child keeps stderr lines too: only the JSON ones are log lines.
    const messages = (c: Child) => c.lines.filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(messages(w.child).slice(-3)).to.deep.equal(['shutting down', 'draining', 'drained']);
    expect(messages(b.child).slice(-2)).to.deep.equal(['draining', 'stopped']);
  });
});
