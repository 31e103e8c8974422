// Herald demo chat. Loaded after /client.js, which defines globalThis.Herald (the browser
// bundle of @herald/client); only types are imported here, so nothing is bundled twice.
import type * as HeraldModule from '@herald/client';
import type { ChannelMessage, Client, PresenceEvent, StateChange, Subscription, TransportName } from '@herald/client';

declare const Herald: typeof HeraldModule;

/** Largest file sent as one binary frame; the worker's default frame limit is 64 KiB. */
const MAX_FILE_BYTES = 48 * 1024;
const DEFAULT_ROOMS = ['lobby', 'random', 'dev'];
const ROOM_RE = /^[A-Za-z0-9_\-.]{1,40}$/;

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

const query = new URLSearchParams(location.search);
const me = (query.get('user') || sessionStorage.getItem('herald.user') || `guest-${Math.random().toString(36).slice(2, 6)}`).slice(0, 40);
sessionStorage.setItem('herald.user', me);
// The balancer keeps a page on one worker by `sid`; one per tab, kept across reloads.
const sid = query.get('sid') || sessionStorage.getItem('herald.sid') || Math.random().toString(36).slice(2, 12);
sessionStorage.setItem('herald.sid', sid);
let room = ROOM_RE.test(query.get('room') ?? '') ? query.get('room')! : 'lobby';
const rooms = new Set([...DEFAULT_ROOMS, room]);

const badge = $<HTMLSpanElement>('badge');
const messages = $<HTMLOListElement>('messages');
const presenceList = $<HTMLUListElement>('presence');
const nameInput = $<HTMLInputElement>('name');
nameInput.value = me;
$('file-limit').textContent = `${MAX_FILE_BYTES / 1024} KiB`;

const client: Client = new Herald.Client('/ws', {
  params: { user: me, sid },
  minReconnectDelay: Number(query.get('minDelay')) || 1000,
  maxReconnectDelay: Number(query.get('maxDelay')) || 15000,
  pingInterval: Number(query.get('ping')) || 20000,
  pongTimeout: 8000,
  // `?transports=sse,long-polling` picks the transports (default: WebSocket, then SSE, then long-polling).
  ...(query.get('transports') ? { transports: query.get('transports')!.split(',') as TransportName[] } : {}),
});

// ---- connection badge --------------------------------------------------------------------

let countdown: ReturnType<typeof setInterval> | undefined;

function showState(change: StateChange | { newState: 'connecting' | 'disconnected' }): void {
  clearInterval(countdown);
  badge.dataset.state = change.newState;
  // Members shown while offline may have left meanwhile: grey them out until the refresh.
  presenceList.classList.toggle('stale', change.newState !== 'connected');
  switch (change.newState) {
    case 'connecting':
      badge.textContent = 'connecting…';
      break;
    case 'connected':
      badge.textContent = `connected to worker ${client.welcome?.node ?? '?'}`;
      badge.dataset.node = client.welcome?.node ?? '';
      badge.dataset.transport = client.transport;
      badge.title = `over ${client.transport}`;
      break;
    case 'reconnecting': {
      const until = Date.now() + ((change as StateChange).delay ?? 0);
      const tick = () => {
        badge.textContent = `reconnecting in ${Math.max(0, Math.ceil((until - Date.now()) / 1000))} s`;
      };
      tick();
      countdown = setInterval(tick, 250);
      break;
    }
    case 'disconnected': {
      const c = change as StateChange;
      badge.textContent = c.code ? `disconnected (${c.code}${c.reason ? ` ${c.reason}` : ''})` : 'disconnected';
      break;
    }
  }
}

client.on('state', showState);
client.on('error', (error) => notice(`error: ${error.code}: ${error.message}`));
client.on('direct', (d) => notice(`direct message from ${d.from ?? 'anonymous'}: ${JSON.stringify(d.data)}`));

// ---- rooms -------------------------------------------------------------------------------

let sub: Subscription | undefined;
/** Presence members of the current room, by connection id. */
const members = new Map<string, string | null>();

function renderRooms(): void {
  const list = $<HTMLUListElement>('rooms');
  list.replaceChildren(
    ...[...rooms].map((name) => {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = `#${name}`;
      button.dataset.room = name;
      button.setAttribute('aria-current', String(name === room));
      button.addEventListener('click', () => joinRoom(name));
      li.append(button);
      return li;
    }),
  );
}

function renderPresence(): void {
  const names = [...members.entries()].map(([conn, user]) => ({ conn, user: user ?? 'anonymous' }));
  names.sort((a, b) => a.user.localeCompare(b.user) || a.conn.localeCompare(b.conn));
  presenceList.replaceChildren(
    ...names.map(({ conn, user }) => {
      const li = document.createElement('li');
      li.textContent = user;
      li.dataset.user = user;
      li.dataset.conn = conn;
      if (conn === client.welcome?.conn) li.classList.add('me');
      return li;
    }),
  );
  $('presence-count').textContent = String(new Set(names.map((n) => n.user)).size);
}

async function refreshPresence(s: Subscription): Promise<void> {
  try {
    const list = await s.presence();
    if (s !== sub) return;
    members.clear();
    for (const m of list) members.set(m.conn, m.user);
    renderPresence();
  } catch (error) {
    notice(`presence failed: ${(error as Error).message}`);
  }
}

function joinRoom(name: string): void {
  if (sub && name === room) return;
  sub?.unsubscribe();
  room = name;
  rooms.add(name);
  const url = new URL(location.href);
  url.searchParams.set('room', name);
  history.replaceState(null, '', url);
  $('room-title').textContent = `#${name}`;
  messages.replaceChildren();
  members.clear();
  renderPresence();
  renderRooms();
  const s = client.subscribe(`chat:${name}`, {
    onMessage: (m) => onMessage(m),
    onJoin: (e) => onPresence(e, true),
    onLeave: (e) => onPresence(e, false),
    onSubscribed: (e) => {
      if (e.recovering && !e.recovered) notice('reconnected, but some messages may be missing');
      else if (e.recovering) notice('reconnected; missed messages recovered');
      void refreshPresence(s);
    },
    onError: (error) => notice(`room error: ${error.code}: ${error.message}`),
  });
  sub = s;
}

function onPresence(event: PresenceEvent, joined: boolean): void {
  if (joined) members.set(event.conn, event.user);
  else members.delete(event.conn);
  renderPresence();
}

// ---- messages ----------------------------------------------------------------------------

function item(from: string | null | undefined, className = 'msg'): HTMLLIElement {
  const li = document.createElement('li');
  li.className = className;
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString();
  li.append(time);
  if (from !== undefined) {
    const who = document.createElement('span');
    who.className = 'from';
    who.textContent = from ?? 'anonymous';
    li.append(who);
    li.dataset.from = from ?? '';
  }
  return li;
}

function append(li: HTMLLIElement): void {
  const atBottom = messages.scrollTop + messages.clientHeight >= messages.scrollHeight - 4;
  messages.append(li);
  if (atBottom) messages.scrollTop = messages.scrollHeight;
}

function notice(text: string): void {
  const li = item(undefined, 'notice');
  li.append(text);
  append(li);
}

function onMessage(m: ChannelMessage): void {
  if (m.binary) return onFile(m.data as Uint8Array);
  const data = m.data as { text?: unknown; name?: unknown } | null;
  const text = typeof data?.text === 'string' ? data.text : JSON.stringify(m.data);
  const li = item(typeof data?.name === 'string' ? data.name : (m.from ?? null));
  li.append(text);
  if (m.offset !== undefined) li.dataset.offset = String(m.offset);
  append(li);
}

// A file travels as one binary frame: [u16 BE meta length][meta JSON {name, type, from}][bytes].
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function packFile(meta: { name: string; type: string; from: string }, bytes: Uint8Array): Uint8Array {
  const head = encoder.encode(JSON.stringify(meta));
  const out = new Uint8Array(2 + head.length + bytes.length);
  out[0] = head.length >> 8;
  out[1] = head.length & 0xff;
  out.set(head, 2);
  out.set(bytes, 2 + head.length);
  return out;
}

function onFile(payload: Uint8Array): void {
  if (payload.length < 2) return;
  const length = (payload[0]! << 8) | payload[1]!;
  let meta: { name?: string; type?: string; from?: string };
  try {
    meta = JSON.parse(decoder.decode(payload.subarray(2, 2 + length))) as typeof meta;
  } catch {
    return notice('received an unreadable binary frame');
  }
  const bytes = payload.slice(2 + length);
  const type = typeof meta.type === 'string' ? meta.type : 'application/octet-stream';
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const li = item(typeof meta.from === 'string' ? meta.from : null, 'msg attachment');
  const name = typeof meta.name === 'string' ? meta.name : 'file';
  if (type.startsWith('image/')) {
    const img = document.createElement('img');
    img.src = url;
    img.alt = name;
    li.append(img);
  }
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.textContent = `${name} (${bytes.length} bytes)`;
  li.append(link);
  append(li);
}

// ---- forms -------------------------------------------------------------------------------

$<HTMLFormElement>('send-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>('text');
  const text = input.value.trim();
  if (!text || !sub) return;
  input.value = '';
  sub.publish({ text, name: me }).catch((error: Error) => notice(`not sent: ${error.message}`));
});

$<HTMLInputElement>('file').addEventListener('change', async (event) => {
  const input = event.target as HTMLInputElement;
  const file = input.files?.[0];
  input.value = '';
  if (!file || !sub) return;
  if (file.size > MAX_FILE_BYTES) return notice(`${file.name} is larger than ${MAX_FILE_BYTES / 1024} KiB`);
  const bytes = new Uint8Array(await file.arrayBuffer());
  const frame = packFile({ name: file.name, type: file.type, from: me }, bytes);
  sub.publish(frame).catch((error: Error) => notice(`file not sent: ${error.message}`));
});

$<HTMLFormElement>('room-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>('new-room');
  const name = input.value.trim();
  if (!ROOM_RE.test(name)) return;
  input.value = '';
  joinRoom(name);
});

$<HTMLFormElement>('name-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = nameInput.value.trim();
  if (!name || name === me) return;
  sessionStorage.setItem('herald.user', name);
  const url = new URL(location.href);
  url.searchParams.set('user', name);
  location.assign(url);
});

// Exposed for the browser tests and for poking around in the console.
(globalThis as { heraldDemo?: unknown }).heraldDemo = { client, joinRoom, get room() { return room; } };

showState({ newState: 'connecting' });
renderRooms();
joinRoom(room);
client.connect();
