import { expect } from 'chai';
import { WebSocketServer, WebSocket } from 'ws';
import type { Socket } from 'node:net';
import { BUSY_FROM, BUSY_FULL, DEFAULT_WRITE_BATCH, loadConfig, coalesceWrites, configureWriteBatching, currentWriteWindowMs, frameOnce, supportsFastWrite, windowFor, writeFramed } from '@herald/server';

// Fails when a ws release changes the one private field the fast path uses (WebSocket#_sender.sendFrame).
describe('ws fast write (unit, real ws sockets)', () => {
  it('writes pre-framed broadcasts through ws\'s sender, in order with ws.send', async () => {
    const wss = new WebSocketServer({ port: 0, perMessageDeflate: false });
    const port = (wss.address() as { port: number }).port;
    const got: string[] = [];
    const served = new Promise<void>((resolve) => {
      wss.on('connection', (ws, req) => {
        expect(supportsFastWrite(ws), 'ws exposes _sender.sendFrame').to.equal(true);
        const socket = req.socket as Socket;
        ws.send('a');
        expect(writeFramed(ws, socket, frameOnce(Buffer.from('b'), false))).to.equal(true);
        ws.send('c');
        expect(writeFramed(ws, socket, frameOnce(Buffer.alloc(70_000, 0x64), true))).to.equal(true);
        resolve();
      });
    });
    const client = new WebSocket(`ws://127.0.0.1:${port}`);
    const done = new Promise<void>((resolve) => {
      client.on('message', (data, binary) => {
        got.push(binary ? `bin:${(data as Buffer).length}` : String(data));
        if (got.length === 4) resolve();
      });
    });
    await served;
    await done;
    expect(got).to.deep.equal(['a', 'b', 'c', 'bin:70000']);
    client.terminate();
    await new Promise((r) => wss.close(r));
  });
});

describe('write coalescing (unit, real sockets)', () => {
  afterEach(() => configureWriteBatching(DEFAULT_WRITE_BATCH));

  /** A ws server whose first connection runs `serve`; resolves with the client's messages once `count` arrived. */
  async function exchange(count: number, serve: (ws: WebSocket, socket: Socket) => void): Promise<string[]> {
    const wss = new WebSocketServer({ port: 0, perMessageDeflate: false });
    const port = (wss.address() as { port: number }).port;
    wss.on('connection', (ws, req) => serve(ws, req.socket as Socket));
    const client = new WebSocket(`ws://127.0.0.1:${port}`);
    const got: string[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        client.on('error', reject);
        client.on('message', (data) => {
          got.push(String(data));
          if (got.length === count) resolve();
        });
      });
    } finally {
      client.terminate();
      await new Promise((r) => wss.close(r));
    }
    return got;
  }

  const immediate = () => new Promise((r) => setImmediate(r));

  it('flushes broadcasts at the end of the iteration while the fan-out rate is below the threshold', async () => {
    configureWriteBatching({ windowMs: 50, minFramesPerSec: Number.MAX_SAFE_INTEGER });
    let afterIteration = -1;
    const got = await exchange(2, (ws, socket) => {
      writeFramed(ws, socket, frameOnce(Buffer.from('x'), false));
      writeFramed(ws, socket, frameOnce(Buffer.from('y'), false));
      expect(socket.writableCorked, 'corked until the end of the iteration').to.equal(1);
      void immediate().then(() => (afterIteration = socket.writableCorked));
    });
    expect(got).to.deep.equal(['x', 'y']);
    expect(afterIteration).to.equal(0);
  });

  it('holds broadcasts for the batch window under load, replies joining them in order', async () => {
    configureWriteBatching({ windowMs: 30, minFramesPerSec: 0 });
    const corkedAfterIteration: number[] = [];
    const got = await exchange(3, (ws, socket) => {
      writeFramed(ws, socket, frameOnce(Buffer.from('m1'), false));
      void immediate().then(() => {
        corkedAfterIteration.push(socket.writableCorked);
        coalesceWrites(socket); // a reply written while the window is open waits behind m1
        ws.send('ack');
        writeFramed(ws, socket, frameOnce(Buffer.from('m2'), false));
      });
    });
    expect(corkedAfterIteration).to.deep.equal([1]);
    expect(got).to.deep.equal(['m1', 'ack', 'm2']);
  });

  it('never batches with a window of 0', async () => {
    configureWriteBatching({ windowMs: 0, minFramesPerSec: 0 });
    let afterIteration = -1;
    await exchange(1, (ws, socket) => {
      writeFramed(ws, socket, frameOnce(Buffer.from('z'), false));
      void immediate().then(() => (afterIteration = socket.writableCorked));
    });
    expect(afterIteration).to.equal(0);
  });

  it('grows the window with event-loop utilisation, from windowMs to maxWindowMs', () => {
    configureWriteBatching({ windowMs: 8, maxWindowMs: 24, minFramesPerSec: 0 });
    const between = (BUSY_FROM + BUSY_FULL) / 2;
    expect([0, BUSY_FROM, between, BUSY_FULL, 1].map(windowFor)).to.deep.equal([8, 8, 16, 24, 24]);
    configureWriteBatching({ windowMs: 8, maxWindowMs: 4, minFramesPerSec: 0 });
    expect(windowFor(1), 'a max at or below the window keeps it fixed').to.equal(8);
    configureWriteBatching({ windowMs: 8, minFramesPerSec: 0 });
    expect(windowFor(1), 'no max keeps it fixed').to.equal(8);
  });

  it('reads the windows from the environment: the busy window defaults to 4 × HERALD_WRITE_BATCH_MS', () => {
    expect(loadConfig({}).writeBatch).to.deep.equal({ windowMs: 8, maxWindowMs: 32, minFramesPerSec: 10_000 });
    expect(loadConfig({ HERALD_WRITE_BATCH_MS: '5' }).writeBatch).to.include({ windowMs: 5, maxWindowMs: 20 });
    // The derived busy window stays within the range an explicit one may take.
    expect(loadConfig({ HERALD_WRITE_BATCH_MS: '50' }).writeBatch).to.include({ windowMs: 50, maxWindowMs: 100 });
    expect(loadConfig({ HERALD_WRITE_BATCH_MS: '5', HERALD_WRITE_BATCH_MAX_MS: '5' }).writeBatch).to.include({ windowMs: 5, maxWindowMs: 5 });
    expect(loadConfig({ HERALD_WRITE_BATCH_MS: '0' }).writeBatch).to.include({ windowMs: 0, maxWindowMs: 0 });
    expect(() => loadConfig({ HERALD_WRITE_BATCH_MAX_MS: '500' })).to.throw(/HERALD_WRITE_BATCH_MAX_MS/);
  });

  it('waits the longer window after a sample of a busy event loop', async () => {
    let before = -1;
    let window = -1;
    await exchange(1, (ws, socket) => {
      // Configured here, so the sample starts now: the set-up of the sockets is not in it.
      configureWriteBatching({ windowMs: 5, maxWindowMs: 40, minFramesPerSec: 0 });
      before = currentWriteWindowMs();
      // Keep the loop fully busy for longer than one 100 ms sample, then broadcast: the sample taken
      // by that broadcast sees utilisation near 1.
      const until = performance.now() + 150;
      while (performance.now() < until);
      writeFramed(ws, socket, frameOnce(Buffer.from('w'), false));
      window = currentWriteWindowMs();
    });
    expect([before, window]).to.deep.equal([5, 40]);
  });

  it('lets a corked socket go early once 16 KiB wait', async () => {
    configureWriteBatching({ windowMs: 100, minFramesPerSec: 0 });
    let waiting = -1;
    const big = Buffer.alloc(10_000, 0x61).toString();
    await exchange(3, (ws, socket) => {
      for (let i = 0; i < 3; i++) writeFramed(ws, socket, frameOnce(Buffer.from(big), false));
      // The third write found 20 KB corked and flushed it: what waits is at most one frame.
      waiting = socket.writableCorked === 1 ? socket.writableLength : -1;
    });
    expect(waiting).to.be.within(0, 10_010);
  });
});
