import type { PresenceMember } from '@herald/protocol';
import type { Presence } from './presence.js';

/** Presence kept in this process; used with the in-memory broker. */
export class MemoryPresence implements Presence {
  private readonly channels = new Map<string, Map<string, PresenceMember>>();

  async add(channel: string, member: PresenceMember): Promise<void> {
    let members = this.channels.get(channel);
    if (!members) this.channels.set(channel, (members = new Map()));
    members.set(member.conn, { user: member.user, conn: member.conn });
  }

  async remove(channel: string, member: PresenceMember): Promise<void> {
    const members = this.channels.get(channel);
    if (!members) return;
    members.delete(member.conn);
    if (members.size === 0) this.channels.delete(channel);
  }

  async members(channel: string): Promise<PresenceMember[]> {
    return [...(this.channels.get(channel)?.values() ?? [])];
  }

  async close(): Promise<void> {
    this.channels.clear();
  }
}
