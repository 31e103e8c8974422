import type { StreamPosition } from '@herald/protocol';
import type { AdminCommand, BrokerHandler, ChannelEvent, ChannelMessage, DirectMessage } from '@herald/server';

/**
 * A message as the tests compare it: a JSON value that travelled as text (`json`, the Redis
 * broker's parse-once path) is turned back into `data`, so assertions compare the value itself.
 */
export function plainMessage(m: ChannelMessage): ChannelMessage {
  if (!m.json) return m;
  const { json, ...rest } = m;
  return { ...rest, data: JSON.parse(Buffer.from(json).toString('utf8')) };
}

/** {@link plainMessage} for any channel event. */
export function plainEvent(e: ChannelEvent): ChannelEvent {
  return e.kind === 'message' ? plainMessage(e) : e;
}

/** A {@link BrokerHandler} that records everything it is handed, for broker tests. */
export class BrokerRecorder implements BrokerHandler {
  readonly events: ChannelEvent[] = [];
  readonly directs: DirectMessage[] = [];
  readonly commands: AdminCommand[] = [];
  readonly availability: boolean[] = [];
  /** `onLost` calls, in order. */
  readonly lost: Array<{ channel: string; position?: StreamPosition }> = [];
  /** Set while a broker method runs, to catch handlers called from inside one. */
  inside = false;
  reentered = false;

  onChannelEvent(event: ChannelEvent): void {
    if (this.inside) this.reentered = true;
    this.events.push(plainEvent(event));
  }

  onDirect(message: DirectMessage): void {
    if (this.inside) this.reentered = true;
    this.directs.push(message);
  }

  onCommand(command: AdminCommand): void {
    if (this.inside) this.reentered = true;
    this.commands.push(command);
  }

  onLost(channel: string, position?: StreamPosition): void {
    this.lost.push(position ? { channel, position } : { channel });
  }

  onAvailability(available: boolean): void {
    this.availability.push(available);
  }

  /** Recorded message events of `channel`. */
  messages(channel: string): ChannelEvent[] {
    return this.events.filter((e) => e.kind === 'message' && e.channel === channel);
  }
}
