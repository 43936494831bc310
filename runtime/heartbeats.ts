import type { Logger } from 'pino';
import type { StateStore } from '../storage/state-store.ts';

/** Most leases renewed by one script call; a larger backlog goes out in several calls of one flush. */
const BATCH = 1000;

/**
 * Coalesces heartbeats: a heartbeat only marks its session, and every `flushMs` one script call per batch
 * renews the leases of all marked sessions. A lease lasts several heartbeat intervals, so renewing it up to
 * `flushMs` late changes nothing a device or operator can see, while Redis sees one call per batch instead
 * of one per heartbeat. `onLost` hears of sessions that another connection of the same device replaced.
 */
export class HeartbeatBatcher {
  private marked = new Map<string, string>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly state: StateStore,
    private readonly leaseMs: number,
    flushMs: number,
    private readonly onLost: (deviceId: string, sessionId: string) => void,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => {
      this.flushing = this.flush();
    }, flushMs);
    this.timer.unref();
  }

  mark(deviceId: string, sessionId: string): void {
    this.marked.set(deviceId, sessionId);
  }

  async flush(): Promise<void> {
    if (this.marked.size === 0) return;
    const batch = [...this.marked].map(([deviceId, sessionId]) => ({ deviceId, sessionId }));
    this.marked = new Map();
    for (let start = 0; start < batch.length; start += BATCH) {
      const slice = batch.slice(start, start + BATCH);
      try {
        const lost = new Set(await this.state.renewPresences(slice, this.leaseMs));
        for (const lease of slice) if (lost.has(lease.deviceId)) this.onLost(lease.deviceId, lease.sessionId);
      } catch (err) {
        // The leases run out by themselves if Redis stays away; the next heartbeats retry.
        this.log.error({ err, leases: slice.length }, 'failed to renew presence leases');
      }
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
  }
}
