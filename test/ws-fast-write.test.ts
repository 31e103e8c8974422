import { expect } from 'chai';
import { WebSocketServer, WebSocket } from 'ws';
import type { Socket } from 'node:net';
import { frameOnce, supportsFastWrite, writeFramed } from '@herald/server';

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
