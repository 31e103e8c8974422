import type { AdminCommand, BrokerHandler, ChannelEvent, DirectMessage } from '@herald/server';

/** A {@link BrokerHandler} that records everything it is handed, for broker tests. */
export class BrokerRecorder implements BrokerHandler {
  readonly events: ChannelEvent[] = [];
  readonly directs: DirectMessage[] = [];
  readonly commands: AdminCommand[] = [];
  readonly availability: boolean[] = [];
  /** Set while a broker method runs, to catch handlers called from inside one. */
  inside = false;
  reentered = false;

  onChannelEvent(event: ChannelEvent): void {
    if (this.inside) this.reentered = true;
    this.events.push(event);
  }

  onDirect(message: DirectMessage): void {
    if (this.inside) this.reentered = true;
    this.directs.push(message);
  }

  onCommand(command: AdminCommand): void {
    if (this.inside) this.reentered = true;
    this.commands.push(command);
  }

  onAvailability(available: boolean): void {
    this.availability.push(available);
  }

  /** Recorded message events of `channel`. */
  messages(channel: string): ChannelEvent[] {
    return this.events.filter((e) => e.kind === 'message' && e.channel === channel);
  }
}
