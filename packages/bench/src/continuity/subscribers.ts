import { WebSocket } from 'ws';
import { io, type Socket } from 'socket.io-client';
import { Client } from '@herald/client';

/** The payload of every message of the continuity scenarios: a sequence number and the publish time. */
export interface Stamp {
  seq: number;
  t: number;
}

/** A reconnecting subscriber of one channel, as the app of each product would write it. */
export interface ContinuitySubscriber {
  /** First arrival of each sequence number (the app's view after its de-duplication). */
  readonly got: Map<number, { at: number; t: number }>;
  /**
   * Messages the app would see twice: Herald — one publish at two offsets (copies of one offset
   * are dropped by the de-duplication by offset); Socket.IO — any repeated sequence number (its
   * messages carry no position to de-duplicate by).
   */
  duplicated(): number;
  /** Every (re)connection after the first: worker and time. */
  readonly reconnects: Array<{ node: string; at: number }>;
  /** Close codes of established connections that ended (Socket.IO: -1, it sends none). */
  readonly closes: number[];
  connected(): boolean;
  /** Resolves once subscribed. */
  ready(): Promise<void>;
  close(): void;
}

/** Publishes stamped messages; resolves whether the server acknowledged. */
export interface ContinuityPublisher {
  publish(stamp: Stamp): Promise<boolean>;
  close(): void;
}

/** One product under test: how to reach it and its client. */
export interface ContinuityTarget {
  name: string;
  /** The client URL of a server (or balancer) on `port`. */
  url(port: number): string;
  subscriber(url: string, channel: string, id: string): ContinuitySubscriber;
  publisher(url: string, channel: string): ContinuityPublisher;
}

/** Reconnect pacing of both clients: the same backoff range, so neither gets an edge. */
const MIN_DELAY_MS = 100;
const MAX_DELAY_MS = 2000;

/**
 * Both clients on WebSocket only (Socket.IO below: `transports: ['websocket']`): the scenarios
 * compare reconnection and recovery, not HTTP fallback. It also keeps Node 20's fetch out of the
 * cut links: it can hang on a connection closed before its request is written (packages/client/README.md).
 */
const HERALD_TRANSPORTS: ['websocket'] = ['websocket'];

/** Herald with @herald/client: history channel, resubscribe with `since` on every reconnect. */
export const heraldTarget: ContinuityTarget = {
  name: 'herald',
  url: (port) => `ws://127.0.0.1:${port}/ws`,
  subscriber(url, channel, id) {
    const c = new Client(url, { WebSocket, params: { sid: id }, minReconnectDelay: MIN_DELAY_MS, maxReconnectDelay: MAX_DELAY_MS, transports: HERALD_TRANSPORTS });
    c.on('error', () => undefined);
    const got = new Map<number, { at: number; t: number }>();
    const offsetsOf = new Map<number, Set<number>>();
    const reconnects: Array<{ node: string; at: number }> = [];
    const closes: number[] = [];
    let welcomed = false;
    c.on('welcome', (w: { node: string }) => {
      if (welcomed) reconnects.push({ node: w.node, at: Date.now() });
      welcomed = true;
    });
    c.on('state', (e: { oldState: string; newState: string; code?: number }) => {
      if (e.oldState === 'connected' && e.newState === 'reconnecting') closes.push(e.code ?? -1);
    });
    const sub = c.subscribe(channel, {
      onMessage: (m) => {
        const s = m.data as Stamp;
        if (!got.has(s.seq)) got.set(s.seq, { at: Date.now(), t: s.t });
        if (m.offset !== undefined) (offsetsOf.get(s.seq) ?? offsetsOf.set(s.seq, new Set()).get(s.seq)!).add(m.offset);
      },
    });
    c.connect();
    return {
      got,
      reconnects,
      closes,
      duplicated: () => [...offsetsOf.values()].filter((o) => o.size > 1).length,
      connected: () => c.state === 'connected',
      ready: async () => void (await sub.ready()),
      close: () => c.close(),
    };
  },
  publisher(url, channel) {
    const c = new Client(url, { WebSocket, params: { sid: 'publisher' }, minReconnectDelay: MIN_DELAY_MS, maxReconnectDelay: MAX_DELAY_MS, transports: HERALD_TRANSPORTS });
    c.on('error', () => undefined);
    c.connect();
    return {
      publish: (stamp) => c.publish(channel, stamp).then(() => true, () => false),
      close: () => c.close(),
    };
  },
};

/** Socket.IO with connection state recovery (`@socket.io/redis-streams-adapter`) and socket.io-client. */
export const socketIoCsrTarget: ContinuityTarget = {
  name: 'socket.io CSR',
  url: (port) => `http://127.0.0.1:${port}`,
  subscriber(url, channel, id) {
    // Not `sid`: engine.io reads that query parameter as its session id.
    const socket: Socket = io(url, { transports: ['websocket'], query: { cid: id }, reconnectionDelay: MIN_DELAY_MS, reconnectionDelayMax: MAX_DELAY_MS });
    const got = new Map<number, { at: number; t: number }>();
    const seen = new Map<number, number>();
    const reconnects: Array<{ node: string; at: number }> = [];
    const closes: number[] = [];
    let welcomed = false;
    let joined: () => void;
    const ready = new Promise<void>((resolve) => (joined = resolve));
    socket.on('hello', (h: { node: string; recovered: boolean }) => {
      if (welcomed) reconnects.push({ node: h.node, at: Date.now() });
      welcomed = true;
      // A recovered session is back in its rooms with the missed packets replayed; else join again.
      if (!h.recovered) socket.emit('join', channel, () => joined());
    });
    socket.on('disconnect', () => closes.push(-1));
    socket.on('m', (s: Stamp) => {
      seen.set(s.seq, (seen.get(s.seq) ?? 0) + 1);
      if (!got.has(s.seq)) got.set(s.seq, { at: Date.now(), t: s.t });
    });
    return {
      got,
      reconnects,
      closes,
      duplicated: () => [...seen.values()].filter((n) => n > 1).length,
      connected: () => socket.connected,
      ready: () => ready,
      close: () => void socket.disconnect(),
    };
  },
  publisher(url, channel) {
    const socket = io(url, { transports: ['websocket'], query: { cid: 'publisher' }, reconnectionDelay: MIN_DELAY_MS, reconnectionDelayMax: MAX_DELAY_MS });
    return {
      publish: (stamp) => socket.timeout(2000).emitWithAck('pub', channel, stamp).then(() => true, () => false),
      close: () => void socket.disconnect(),
    };
  },
};
