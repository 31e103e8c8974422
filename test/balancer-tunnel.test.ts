import { expect } from 'chai';
import { EventEmitter, once } from 'node:events';
import type { ClientRequest, IncomingMessage } from 'node:http';
import net from 'node:net';
import pino from 'pino';
import { Tunnel, type Relay, type RelayClosed, type TunnelContext, type Worker } from '@herald/balancer';
import { connectedPair, eventually } from './helpers/index.js';

/**
 * The hand-over of `Tunnel` to a relay, with a scripted relay behind the `Relay` interface: the
 * orders and failures checked here (a report that overtakes the socket's own `close` event, a
 * relay out of descriptors) cannot be caused on demand with the native one, whose own behaviour
 * is tested in balancer-relay.test.ts and, through real balancers, in balancer-robustness.
 */

interface Added {
  toClient: Buffer | undefined;
  toWorker: Buffer | undefined;
  onClosed: RelayClosed;
}

/** Opens a tunnel the way the balancer does, up to the worker's 101, with `relay` as data plane. */
async function openTunnel(relay: Relay, before?: (clientEnd: net.Socket, client: net.Socket) => Promise<void>) {
  const [clientEnd, client] = await connectedPair();
  const [upstream, workerEnd] = await connectedPair();
  const worker = { address: '127.0.0.1:1', connections: 0 } as Worker;
  let released = 0;
  const ctx: TunnelContext = {
    relay,
    proxyWs: () => undefined,
    markDown: () => undefined,
    checkSoon: () => undefined,
    closed: () => released++,
    handshakeTimeoutMs: 5000,
    tunnelIdleMs: 0,
    logger: pino({ level: 'silent' }),
  };
  await before?.(clientEnd, client);
  const tunnel = new Tunnel({} as IncomingMessage, client, Buffer.alloc(0), '203.0.113.9', [worker], ctx);
  tunnel.start();
  const proxyReq = new EventEmitter();
  tunnel.attach(proxyReq as ClientRequest);
  proxyReq.emit('upgrade', {}, upstream);
  return { tunnel, clientEnd, client, upstream, workerEnd, worker, released: () => released };
}

describe('balancer tunnel hand-over (scripted relay)', () => {
  const cleanup: net.Socket[] = [];
  afterEach(() => {
    for (const s of cleanup.splice(0)) s.destroy();
  });

  it('releases the tunnel once when the relay reports before the Node socket has closed', async () => {
    const added: Added[] = [];
    const relay: Relay = {
      add(_client, _worker, toClient, toWorker, onClosed) {
        added.push({ toClient, toWorker, onClosed });
        // Reported before the destroyed client socket's `close` event (check phase vs close phase).
        setImmediate(() => onClosed('client', 0));
        return 1;
      },
      close: () => undefined,
    };
    const t = await openTunnel(relay);
    cleanup.push(t.clientEnd, t.workerEnd);
    await once(t.client, 'close');
    await eventually(() => expect(t.released()).to.equal(1));
    await new Promise((resolve) => setImmediate(resolve));
    expect(t.released()).to.equal(1);
    expect(t.worker.connections).to.equal(0);
    expect(added).to.have.length(1);
  });

  it('takes bytes Node had already read along to the relay', async () => {
    const added: Added[] = [];
    const relay: Relay = {
      add(_client, _worker, toClient, toWorker, onClosed) {
        added.push({ toClient, toWorker, onClosed });
        return 7;
      },
      close: () => undefined,
    };
    const t = await openTunnel(relay, async (clientEnd, client) => {
      clientEnd.write('sent right after the request');
      await eventually(() => expect(client.readableLength).to.equal(28));
    });
    cleanup.push(t.clientEnd, t.workerEnd);
    await eventually(() => expect(added).to.have.length(1));
    expect(added[0]!.toWorker?.toString()).to.equal('sent right after the request');
    expect(added[0]!.toClient).to.equal(undefined);
    expect(t.tunnel.open).to.equal(true);
    added[0]!.onClosed('worker', 0);
    expect(t.released()).to.equal(1);
  });

  it('destroy() of a relayed tunnel asks the relay to close it', async () => {
    const closed: number[] = [];
    const relay: Relay = { add: () => 42, close: (id) => closed.push(id) };
    const t = await openTunnel(relay);
    cleanup.push(t.clientEnd, t.workerEnd);
    await once(t.client, 'close');
    t.tunnel.destroy();
    expect(closed).to.deep.equal([42]);
  });

  it('stays on stream pipes, bytes intact, when the relay cannot take the tunnel', async () => {
    const relay: Relay = {
      add() {
        throw new Error('too many open files');
      },
      close: () => undefined,
    };
    const t = await openTunnel(relay, async (clientEnd, client) => {
      clientEnd.write('early ');
      await eventually(() => expect(client.readableLength).to.equal(6));
    });
    cleanup.push(t.clientEnd, t.workerEnd);
    t.clientEnd.write('and later');
    let toWorker = '';
    t.workerEnd.on('data', (d: Buffer) => (toWorker += d.toString()));
    await eventually(() => expect(toWorker).to.equal('early and later'));
    t.workerEnd.write('back');
    const [back] = (await once(t.clientEnd, 'data')) as [Buffer];
    expect(back.toString()).to.equal('back');
    t.clientEnd.destroy();
    await eventually(() => expect(t.released()).to.equal(1));
  });
});
