import { WebSocket } from 'ws';
import { Histogram } from '../histogram.js';
import type { EchoResult, EchoTask } from './protocol.js';

/** How long outstanding echoes get after the window before they count as lost. */
const DRAIN_MS = 3000;

/**
 * Closed-loop echo load: every connection keeps `inflight` messages outstanding and sends a
 * new one for each echo. Echoes come back in order, so the send times of one connection fit
 * in a ring of `inflight` slots and the payload needs no timestamp.
 */
export async function runEcho(task: EchoTask): Promise<EchoResult> {
  const hist = new Histogram();
  const payload = task.binary ? Buffer.alloc(task.size, 0x61) : 'a'.repeat(task.size);
  let sent = 0;
  let received = 0;
  let windowReceived = 0;
  let errors = 0;
  let measuring = false;
  let sending = true;
  let outstanding = 0;
  let onDrained: (() => void) | undefined;

  const sockets = await Promise.all(
    Array.from({ length: task.conns }, (_, i) => connect(task.urls[i % task.urls.length]!)),
  );
  for (const ws of sockets) {
    const ring = new Float64Array(task.inflight);
    let head = 0;
    let tail = 0;
    const send = () => {
      ring[head++ % task.inflight] = performance.now();
      ws.send(payload, { binary: task.binary });
      sent++;
      outstanding++;
    };
    ws.on('error', () => errors++);
    ws.on('message', () => {
      const t = ring[tail++ % task.inflight]!;
      received++;
      outstanding--;
      if (measuring) {
        windowReceived++;
        hist.record((performance.now() - t) * 1000);
      }
      if (sending && ws.readyState === WebSocket.OPEN) send();
      else if (outstanding === 0) onDrained?.();
    });
    for (let k = 0; k < task.inflight; k++) send();
  }
  await new Promise((r) => setTimeout(r, task.warmupMs));
  measuring = true;
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, task.durationMs));
  measuring = false;
  const windowMs = performance.now() - w0;
  sending = false;
  if (outstanding > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, DRAIN_MS);
      onDrained = () => (clearTimeout(timer), resolve());
    });
  }
  await Promise.all(sockets.map((ws) => closeSocket(ws)));
  return { sent, received, windowReceived, windowMs, lost: sent - received, errors, hist: hist.toJSON() };
}

function connect(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 15_000 });
    ws.once('open', () => (ws.off('error', reject), resolve(ws)));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`${url}: upgrade refused: ${res.statusCode}`)));
  });
}

function closeSocket(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => (ws.terminate(), resolve()), 2000);
    ws.once('close', () => (clearTimeout(timer), resolve()));
    ws.close();
  });
}
