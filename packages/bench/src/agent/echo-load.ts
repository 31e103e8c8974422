import { Histogram } from '../histogram.js';
import type { EchoResult, EchoTask } from './protocol.js';
import { RawWs, frame } from './raw-ws.js';

/** How long outstanding echoes get after the window before they count as lost. */
const DRAIN_MS = 3000;

/**
 * Closed-loop echo load: every connection keeps `inflight` messages outstanding and sends a
 * new one for each echo. Echoes come back in order, so the send times of one connection fit
 * in a ring of `inflight` slots and the payload needs no timestamp. The message is framed once
 * and the same bytes are written each time.
 */
export async function runEcho(task: EchoTask): Promise<EchoResult> {
  const hist = new Histogram();
  const bytes = frame(task.binary ? Buffer.alloc(task.size, 0x61) : 'a'.repeat(task.size), task.binary ? 2 : 1);
  let sent = 0;
  let received = 0;
  let windowReceived = 0;
  let errors = 0;
  let measuring = false;
  let sending = true;
  let outstanding = 0;
  let onDrained: (() => void) | undefined;

  const conns = await Promise.all(
    Array.from({ length: task.conns }, async (_, i) => {
      const ring = new Float64Array(task.inflight);
      let head = 0;
      let tail = 0;
      const state = { ws: undefined as RawWs | undefined };
      const send = () => {
        ring[head++ % task.inflight] = performance.now();
        state.ws!.sendFramed(bytes);
        sent++;
        outstanding++;
      };
      state.ws = await RawWs.connect(
        task.urls[i % task.urls.length]!,
        () => {
          const t = ring[tail++ % task.inflight]!;
          received++;
          outstanding--;
          if (measuring) {
            windowReceived++;
            hist.record((performance.now() - t) * 1000);
          }
          if (sending && state.ws!.open) send();
          else if (outstanding === 0) onDrained?.();
        },
        () => errors++,
        15_000,
        undefined,
        task.ca,
      );
      return { ws: state.ws, start: () => { for (let k = 0; k < task.inflight; k++) send(); } };
    }),
  );
  for (const c of conns) c.start();
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
  for (const c of conns) c.ws.close();
  return { sent, received, windowReceived, windowMs, lost: sent - received, errors, hist: hist.toJSON() };
}
