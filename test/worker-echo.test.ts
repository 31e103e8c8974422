import { expect } from 'chai';
import { WebSocket } from 'ws';
import type { HeraldWorker } from '@herald/server';
import { startInProcess, waitFor } from './helpers/index.js';

describe('worker: /echo', () => {
  let worker: HeraldWorker;
  let base: string;
  const sockets: WebSocket[] = [];
  const open = async () => {
    const ws = new WebSocket(`${base}/echo`);
    ws.on('error', () => undefined);
    sockets.push(ws);
    await waitFor(ws, 'open');
    return ws;
  };
  const echo = async (ws: WebSocket, data: string | Buffer) => {
    const reply = waitFor<[Buffer, boolean]>(ws, 'message');
    ws.send(data);
    return reply;
  };

  beforeEach(async () => {
    ({ worker, ws: base } = await startInProcess({ maxMessageBytes: 65_536 }));
  });
  afterEach(async () => {
    for (const ws of sockets.splice(0)) ws.terminate();
    await worker.close();
  });

  it('echoes text as text and binary as binary', async () => {
    const ws = await open();
    const [text, textIsBinary] = await echo(ws, 'héllo');
    expect(textIsBinary).to.equal(false);
    expect(text.toString()).to.equal('héllo');
    const payload = Buffer.from([0, 1, 2, 255, 254]);
    const [bin, binIsBinary] = await echo(ws, payload);
    expect(binIsBinary).to.equal(true);
    expect(Buffer.compare(bin, payload)).to.equal(0);
  });

  it('echoes messages of every size up to the limit, and closes with 1009 above it', async () => {
    const ws = await open();
    for (const size of [0, 1, 125, 126, 65_535, 65_536]) {
      const payload = Buffer.alloc(size, size % 251);
      const [reply] = await echo(ws, payload);
      expect(reply.length, `size ${size}`).to.equal(size);
      expect(Buffer.compare(reply, payload)).to.equal(0);
    }
    const closed = waitFor<[number]>(ws, 'close');
    ws.send(Buffer.alloc(65_537));
    expect((await closed)[0]).to.equal(1009);
  });

  it('answers a close frame with the same code', async () => {
    const ws = await open();
    const closed = waitFor<[number, Buffer]>(ws, 'close');
    ws.close(4000, 'bye');
    const [code] = await closed;
    expect(code).to.equal(4000);
  });

  it('keeps serving other connections when one is reset mid-stream', async () => {
    const [a, b] = [await open(), await open()];
    a.send(Buffer.alloc(60_000));
    a.terminate();
    const [reply] = await echo(b, 'still here');
    expect(reply.toString()).to.equal('still here');
  });
});
