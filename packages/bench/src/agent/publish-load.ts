import { openPublisher, type Publisher } from './clients.js';
import { stampedPayload } from './payload.js';
import type { PublishResult, PublishTask } from './protocol.js';

/** Timer tick of the publisher schedule; each tick sends what is due. */
const TICK_MS = 5;

/** Open publishing connections of an agent, reused between rate steps. */
export class PublisherSet {
  private pubs: Publisher[] = [];
  private key = '';

  /**
   * Publishes `rate` messages/s for `durationMs`, round-robin over the publishers, following
   * a schedule (messages due = rate × elapsed) so a late timer is caught up, not skipped.
   */
  async run(task: PublishTask): Promise<PublishResult> {
    await this.connect(task);
    const start = performance.now();
    const end = start + task.durationMs;
    const total = Math.round((task.rate * task.durationMs) / 1000);
    let published = 0;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        const due = now >= end ? total : Math.min(total, Math.floor(((now - start) * task.rate) / 1000));
        while (published < due) this.pubs[published++ % this.pubs.length]!.publish(stampedPayload(task.size));
        if (now >= end || published >= total) {
          clearInterval(timer);
          resolve();
        }
      };
      const timer = setInterval(tick, TICK_MS);
    });
    const closedPublishers = this.pubs.filter((p) => p.closed).length;
    // Reconnected at the next run rather than reused: a closed publisher would lose every message.
    if (closedPublishers > 0) this.close();
    return { published, behind: total - published, closedPublishers };
  }

  private async connect(task: PublishTask): Promise<void> {
    const key = `${task.proto} ${task.urls.join(',')} ${task.publishers} ${task.channel}`;
    if (key === this.key && this.pubs.length > 0) return;
    this.close();
    this.pubs = await Promise.all(
      Array.from({ length: task.publishers }, (_, i) => openPublisher(task.proto, task.urls[i % task.urls.length]!, task.channel)),
    );
    this.key = key;
  }

  /** Closes the publishers. */
  close(): void {
    for (const p of this.pubs.splice(0)) p.close();
    this.key = '';
  }
}
