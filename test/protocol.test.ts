import { expect } from 'chai';
import {
  decodeClientFrame,
  decodeServerFrame,
  decodeBinaryFrame,
  encodeBinaryFrame,
  isValidChannel,
  namespaceOf,
  reconnectAdvice,
  CloseCode,
} from '@herald/protocol';

const ok = (text: string) => {
  const r = decodeClientFrame(text);
  if (!r.ok) throw new Error(`expected ok, got ${JSON.stringify(r.error)}`);
  return r.frame;
};
const bad = (text: string) => {
  const r = decodeClientFrame(text);
  if (r.ok) throw new Error(`expected an error for ${text}`);
  expect(r.error.code).to.equal('bad_request');
  return r.error;
};

describe('protocol: client frame decoder', () => {
  it('decodes every client frame type', () => {
    expect(ok('{"type":"auth","token":"t"}')).to.deep.equal({ type: 'auth', token: 't' });
    expect(ok('{"type":"subscribe","channel":"room:1"}')).to.deep.equal({ type: 'subscribe', channel: 'room:1' });
    expect(ok('{"type":"subscribe","channel":"room:1","since":{"offset":41,"epoch":"e1"},"id":3}')).to.deep.equal({
      type: 'subscribe', channel: 'room:1', since: { offset: 41, epoch: 'e1' }, id: 3,
    });
    expect(ok('{"type":"unsubscribe","channel":"a"}')).to.deep.equal({ type: 'unsubscribe', channel: 'a' });
    expect(ok('{"type":"publish","channel":"a","data":null}')).to.deep.equal({ type: 'publish', channel: 'a', data: null });
    expect(ok('{"type":"publish","channel":"a","data":{"x":[1,2]},"id":9}')).to.deep.equal({ type: 'publish', channel: 'a', data: { x: [1, 2] }, id: 9 });
    expect(ok('{"type":"presence","channel":"a"}')).to.deep.equal({ type: 'presence', channel: 'a' });
    expect(ok('{"type":"send","user":"bob","data":"hi"}')).to.deep.equal({ type: 'send', user: 'bob', data: 'hi' });
    expect(ok('{"type":"ping","id":1}')).to.deep.equal({ type: 'ping', id: 1 });
  });

  it('ignores unknown fields', () => {
    expect(ok('{"type":"ping","extra":true,"more":{"a":1}}')).to.deep.equal({ type: 'ping' });
  });

  it('refuses invalid JSON and non-objects', () => {
    expect(bad('{').message).to.match(/invalid JSON/);
    bad('');
    bad('[]');
    bad('null');
    bad('42');
    bad('"ping"');
  });

  it('refuses a missing, non-string or unknown type', () => {
    expect(bad('{}').message).to.match(/"type"/);
    bad('{"type":5}');
    expect(bad('{"type":"nope","id":4}')).to.deep.include({ id: 4 });
  });

  it('refuses invalid ids without echoing them', () => {
    for (const id of ['0', '-1', '1.5', '"1"', 'true', '9007199254740993']) {
      const e = bad(`{"type":"ping","id":${id}}`);
      expect(e.id).to.equal(undefined);
    }
  });

  it('refuses wrong field types, keeping a valid id', () => {
    const cases = [
      '{"type":"subscribe","id":7}',
      '{"type":"subscribe","channel":5,"id":7}',
      '{"type":"subscribe","channel":"a","since":{"offset":-1,"epoch":"e"},"id":7}',
      '{"type":"subscribe","channel":"a","since":{"offset":1},"id":7}',
      '{"type":"subscribe","channel":"a","since":5,"id":7}',
      '{"type":"unsubscribe","channel":null,"id":7}',
      '{"type":"publish","channel":"a","id":7}',
      '{"type":"presence","id":7}',
      '{"type":"send","user":"","data":1,"id":7}',
      '{"type":"send","user":5,"data":1,"id":7}',
      '{"type":"send","user":"bob","id":7}',
      '{"type":"auth","token":"","id":7}',
      '{"type":"auth","id":7}',
    ];
    for (const c of cases) expect(bad(c).id, c).to.equal(7);
  });

  it('refuses bad channel names', () => {
    for (const channel of ['', 'a b', 'é', 'a'.repeat(201), 'room#1', 'x\n']) {
      bad(JSON.stringify({ type: 'subscribe', channel }));
    }
    ok(JSON.stringify({ type: 'subscribe', channel: 'a'.repeat(200) }));
    ok(JSON.stringify({ type: 'subscribe', channel: 'Az09_-:.@/=,' }));
  });
});

describe('protocol: channels and codes', () => {
  it('validates names and finds the namespace', () => {
    expect(isValidChannel('room:1')).to.equal(true);
    expect(isValidChannel(5)).to.equal(false);
    expect(namespaceOf('room:1:x')).to.equal('room');
    expect(namespaceOf('lobby')).to.equal('');
  });

  it('advises reconnects by close code', () => {
    expect(reconnectAdvice(CloseCode.Unauthorized)).to.equal('new-token');
    expect(reconnectAdvice(CloseCode.RateLimited)).to.equal('reconnect-later');
    expect(reconnectAdvice(CloseCode.GoingAway)).to.equal('reconnect');
    expect(reconnectAdvice(CloseCode.SlowConsumer)).to.equal('reconnect');
    expect(reconnectAdvice(1006)).to.equal('reconnect');
    expect(reconnectAdvice(CloseCode.Normal)).to.equal('stop');
  });
});

describe('protocol: binary channel frames', () => {
  it('round-trips channel and payload', () => {
    const frame = encodeBinaryFrame('room:1', new Uint8Array([0, 1, 255]));
    expect([...frame.subarray(0, 3)]).to.deep.equal([1, 0, 6]);
    const r = decodeBinaryFrame(frame);
    expect(r.ok && r.frame.channel).to.equal('room:1');
    expect(r.ok && [...r.frame.payload]).to.deep.equal([0, 1, 255]);
  });

  it('accepts an empty payload', () => {
    const r = decodeBinaryFrame(encodeBinaryFrame('a', new Uint8Array()));
    expect(r.ok && r.frame.payload.length).to.equal(0);
  });

  it('refuses unknown kinds, truncated headers and bad names', () => {
    const cases = [
      new Uint8Array([]),
      new Uint8Array([2, 0, 1, 97]),
      new Uint8Array([1]),
      new Uint8Array([1, 0]),
      new Uint8Array([1, 0, 5, 97]),
      new Uint8Array([1, 0, 0]),
      new Uint8Array([1, 1, 0, 97]),
      new Uint8Array([1, 0, 1, 32]),
    ];
    for (const c of cases) {
      const r = decodeBinaryFrame(c);
      expect(r.ok, String([...c])).to.equal(false);
      if (!r.ok) expect(r.error.code).to.equal('bad_request');
    }
  });

  it('refuses to encode an invalid channel', () => {
    expect(() => encodeBinaryFrame('a b', new Uint8Array())).to.throw(RangeError);
  });
});

describe('protocol: server frame decoder', () => {
  it('accepts known types and refuses the rest', () => {
    expect(decodeServerFrame('{"type":"pong"}')).to.deep.equal({ type: 'pong' });
    expect(decodeServerFrame('{"type":"bogus"}')).to.equal(undefined);
    expect(decodeServerFrame('nope')).to.equal(undefined);
    expect(decodeServerFrame('[1]')).to.equal(undefined);
  });
});
