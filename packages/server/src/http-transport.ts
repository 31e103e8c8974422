import type { ServerResponse } from 'node:http';
import { encodeHttpBinary, encodeHttpClose, formatEventId } from '@herald/protocol';
import type { Transport, TransportEvents } from './transport.js';

/** Timing and bounds of one HTTP session. */
export interface HttpTransportLimits {
  /** A `GET /poll` with nothing to deliver is answered empty after this long, in ms. @default 25000 */
  pollHoldMs: number;
  /** A session with no stream or poll attached for this long is gone, in ms. @default 30000 */
  idleMs: number;
  /** Comment lines on an idle SSE stream, so proxies keep it open and dead peers are noticed, in ms. @default 25000 */
  heartbeatMs: number;
  /** Time a closing session waits for its client to fetch the close frame, in ms. @default 5000 */
  closeGraceMs: number;
  /** Bytes of sent SSE frames kept for a resume with `Last-Event-ID` (per session: it is memory an idle session holds). @default 65536 */
  replayBytes: number;
}

/** One queued server frame: its sequence number and its JSON text (binary frames in base64 form). */
interface QueuedFrame {
  seq: number;
  text: string;
}

/** The answer to a poll, handed to whoever asked (a local response, or a node that forwarded it). */
export type PollReply = (body: string) => void;

/**
 * {@link Transport} of an HTTP fallback session (SPEC §9): server frames are numbered and queued;
 * an SSE stream gets them as events (id `<session>:<seq>`), a long-poll gets them as a batch.
 * Frames stay queued until the client has them: a poll acknowledges what the previous one got
 * (`?ack=<seq>`), so a lost response is sent again; an SSE stream keeps what it wrote (up to
 * `replayBytes`) for a reconnect with `Last-Event-ID`. What the client has not fetched counts as
 * `bufferedAmount`, so the session's send-buffer bound (4008) holds whatever the client does.
 */
export class HttpTransport implements Transport {
  private events?: TransportEvents;
  private readonly frames: QueuedFrame[] = [];
  /** Sequence number of the last queued frame. */
  private lastSeq = 0;
  /** Sequence number of the last frame written to an SSE stream. */
  private writtenSeq = 0;
  /** Bytes of queued frames the client may not have (poll: unacknowledged; SSE: unwritten). */
  private pendingBytes = 0;
  /** Bytes of written SSE frames kept for a resume. */
  private replayBytes = 0;
  private sse?: ServerResponse;
  private sseHeartbeat?: NodeJS.Timeout;
  private poll?: { reply: PollReply; timer: NodeJS.Timeout };
  private flushScheduled = false;
  private closing = false;
  private finished = false;
  private idleTimer?: NodeJS.Timeout;
  private graceTimer?: NodeJS.Timeout;

  /**
   * @param id the session id.
   * @param mode how the client reads: an SSE stream or long-polls.
   * @param limits timing and bounds.
   * @param onFinish called once when the session is gone (to forget it).
   */
  constructor(
    readonly id: string,
    readonly mode: 'sse' | 'poll',
    private readonly limits: HttpTransportLimits,
    private readonly onFinish: (t: HttpTransport) => void,
  ) {
    this.armIdle();
  }

  get open(): boolean {
    return !this.closing && !this.finished;
  }

  get bufferedAmount(): number {
    return this.pendingBytes + (this.sse?.writableLength ?? 0);
  }

  /** Whether the session is over (its close frame fetched, or given up on). */
  get done(): boolean {
    return this.finished;
  }

  send(data: Buffer | Uint8Array | string, binary: boolean): void {
    if (!this.open) return;
    const text = binary ? encodeHttpBinary(data as Uint8Array) : typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
    this.queue(text);
  }

  close(code: number, reason: string): void {
    if (!this.open) return;
    this.queue(encodeHttpClose(code, reason));
    this.closing = true;
    // A client that never comes back for the close frame does not hold the session.
    this.graceTimer = setTimeout(() => this.finish(), this.limits.closeGraceMs);
    this.graceTimer.unref();
  }

  bind(events: TransportEvents): void {
    this.events = events;
  }

  /** Hands one client frame (from `POST /emit`, maybe forwarded by another node) to the session. */
  receive(data: Buffer, binary: boolean): void {
    if (!this.finished) this.events?.onFrame(data, binary);
  }

  private queue(text: string): void {
    const seq = ++this.lastSeq;
    this.frames.push({ seq, text });
    this.pendingBytes += text.length;
    // Frames written in one event-loop turn leave in one write (SSE) or one poll answer.
    if (!this.flushScheduled && (this.sse || this.poll)) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.sse) this.writeSse();
    else if (this.poll && this.lastSeq > this.ackedBefore()) this.answerPoll();
  }

  // ---- long-polling ------------------------------------------------------

  /** Sequence number before the first queued frame (everything up to it was acknowledged). */
  private ackedBefore(): number {
    return this.frames.length > 0 ? this.frames[0]!.seq - 1 : this.lastSeq;
  }

  /**
   * A poll: drops the frames up to `ack` (the client has them), then answers at once with what is
   * queued, or holds until a frame is queued or `pollHoldMs` passes. A newer poll answers a held
   * one empty (one poll at a time per session). `hold` false answers at once even when empty
   * (the first poll of a session awaiting its `auth` frame: the client needs the session id).
   */
  attachPoll(ack: number | undefined, reply: PollReply, hold = true): void {
    if (this.finished) return reply(this.body([]));
    if (!hold && this.frames.length === 0) return reply(this.body([]));
    if (ack !== undefined) this.acknowledge(ack);
    this.detachPoll();
    this.detachSse();
    clearTimeout(this.idleTimer);
    const timer = setTimeout(() => this.answerPoll(), this.limits.pollHoldMs);
    timer.unref();
    this.poll = { reply, timer };
    if (this.frames.length > 0) this.answerPoll();
  }

  /** The client went away before its poll was answered (frames stay queued: unacknowledged). */
  abandonPoll(reply: PollReply): void {
    if (this.poll?.reply !== reply) return;
    clearTimeout(this.poll.timer);
    this.poll = undefined;
    this.armIdle();
  }

  private acknowledge(ack: number): void {
    let i = 0;
    while (i < this.frames.length && this.frames[i]!.seq <= ack) this.pendingBytes -= this.frames[i++]!.text.length;
    this.frames.splice(0, i);
  }

  private detachPoll(): void {
    if (!this.poll) return;
    const { reply, timer } = this.poll;
    clearTimeout(timer);
    this.poll = undefined;
    reply(this.body([]));
  }

  private answerPoll(): void {
    const poll = this.poll;
    if (!poll) return;
    clearTimeout(poll.timer);
    this.poll = undefined;
    poll.reply(this.body(this.frames));
    // The close frame was fetched: the session is over. Otherwise the next poll acknowledges.
    if (this.closing && this.frames.length > 0 && this.frames.at(-1)!.seq === this.lastSeq) this.finish();
    else this.armIdle();
  }

  /** A poll answer: `{"session":…,"last":<seq of the last frame>,"frames":[…]}`. */
  private body(frames: QueuedFrame[]): string {
    const last = frames.length > 0 ? frames.at(-1)!.seq : this.ackedBefore();
    return `{"session":${JSON.stringify(this.id)},"last":${last},"frames":[${frames.map((f) => f.text).join(',')}]}`;
  }

  // ---- SSE ---------------------------------------------------------------

  /**
   * Attaches an SSE stream (a new one replaces an older one). `lastSeq` resumes after that
   * frame; frames no longer kept make the resume fail (false: the caller answers with a close).
   */
  attachSse(res: ServerResponse, lastSeq: number | undefined): boolean {
    if (this.finished) return false;
    const from = lastSeq ?? this.writtenSeq;
    if (from < this.ackedBefore() || from > this.lastSeq) return false;
    this.detachPoll();
    this.detachSse();
    clearTimeout(this.idleTimer);
    // Frames after `from` go (again) to this stream; the ones before stay for another resume.
    for (const f of this.frames) if (f.seq > from && f.seq <= this.writtenSeq) this.unwrite(f);
    this.writtenSeq = from;
    this.sse = res;
    res.write(`retry: 1000\nevent: session\ndata: ${JSON.stringify({ session: this.id })}\n\n`);
    this.sseHeartbeat = setInterval(() => res.write(':\n\n'), this.limits.heartbeatMs);
    this.sseHeartbeat.unref();
    const onGone = () => {
      if (this.sse !== res) return;
      this.detachSse();
      this.armIdle();
    };
    res.once('close', onGone);
    res.once('error', onGone);
    this.writeSse();
    return true;
  }

  /** Moves a written frame back to the unwritten ones (a resume sends it again). */
  private unwrite(f: QueuedFrame): void {
    this.replayBytes -= f.text.length;
    this.pendingBytes += f.text.length;
  }

  private writeSse(): void {
    const res = this.sse;
    if (!res) return;
    let out = '';
    for (const f of this.frames) {
      if (f.seq <= this.writtenSeq) continue;
      // JSON.stringify never writes a raw line break; a frame from elsewhere might: one data line each.
      const data = /[\r\n]/.test(f.text) ? f.text.split(/\r\n|\r|\n/).join('\ndata: ') : f.text;
      out += `id: ${formatEventId(this.id, f.seq)}\ndata: ${data}\n\n`;
      this.writtenSeq = f.seq;
      this.pendingBytes -= f.text.length;
      this.replayBytes += f.text.length;
    }
    if (out) res.write(out);
    // Keep at most replayBytes of written frames for a resume.
    while (this.replayBytes > this.limits.replayBytes && this.frames.length > 0 && this.frames[0]!.seq <= this.writtenSeq) {
      this.replayBytes -= this.frames.shift()!.text.length;
    }
    if (this.closing && this.writtenSeq === this.lastSeq) {
      res.end();
      this.finish();
    }
  }

  private detachSse(): void {
    if (!this.sse) return;
    const res = this.sse;
    this.sse = undefined;
    clearInterval(this.sseHeartbeat);
    if (!res.writableEnded) res.end();
  }

  // ---- life --------------------------------------------------------------

  private armIdle(): void {
    clearTimeout(this.idleTimer);
    if (this.finished) return;
    this.idleTimer = setTimeout(() => this.finish(), this.limits.idleMs);
    this.idleTimer.unref();
  }

  /** Ends the session: whatever is attached is ended, the queue dropped, the session told. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.closing = true;
    clearTimeout(this.idleTimer);
    clearTimeout(this.graceTimer);
    this.detachPoll();
    this.detachSse();
    this.frames.length = 0;
    this.pendingBytes = 0;
    this.replayBytes = 0;
    this.onFinish(this);
    this.events?.onClose();
  }
}
