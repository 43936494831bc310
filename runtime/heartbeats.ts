import type { Logger } from 'pino';
import type { DeadlineExtension, StateStore } from '../storage/state-store.ts';

/** Most leases or deadlines written by one script call; a larger backlog goes out in several calls of one flush. */
const BATCH = 1000;

/** Lease and deadline settings of the batcher. */
export interface HeartbeatSettings {
  leaseMs: number;
  flushMs: number;
  /** Update timeout for patches whose rollout sets none. */
  updateTimeoutMs: number;
}

/**
 * Coalesces heartbeats and repeated progress reports. A heartbeat only marks its session, and every
 * `flushMs` one script call per batch renews the leases of all marked sessions. A lease lasts several
 * heartbeat intervals, so renewing it up to `flushMs` late changes nothing a device or operator can see,
 * while Redis gets one call per batch instead of one per heartbeat. `onLost` hears of sessions that another
 * connection of the same device replaced.
 *
 * A progress report that repeats the stage Redis already holds changes no state and only pushes the
 * attempt's deadline out. Those are kept here too, the latest per device, and written in the same tick, so
 * a deadline moves up to `flushMs` later than the report. An update timeout is minutes long, far longer than
 * a flush. A device that disconnects keeps its entry until the next flush, so its report is not lost.
 */
export class HeartbeatBatcher {
  private marked = new Map<string, string>();
  private progress = new Map<string, DeadlineExtension>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly state: StateStore,
    private readonly settings: HeartbeatSettings,
    private readonly onLost: (deviceId: string, sessionId: string) => void,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => {
      this.flushing = this.flush();
    }, settings.flushMs);
    this.timer.unref();
  }

  mark(deviceId: string, sessionId: string): void {
    this.marked.set(deviceId, sessionId);
  }

  /** Records a repeated progress report of one attempt; the deadline is pushed out on the next flush. */
  markProgress(deviceId: string, patchId: string, attempt: number): void {
    const marked = this.progress.get(deviceId);
    if (marked?.patchId === patchId && marked.attempt === attempt) return;
    this.progress.set(deviceId, { deviceId, patchId, attempt });
  }

  async flush(): Promise<void> {
    await Promise.all([this.flushLeases(), this.flushDeadlines()]);
  }

  private async flushLeases(): Promise<void> {
    if (this.marked.size === 0) return;
    const batch = [...this.marked].map(([deviceId, sessionId]) => ({ deviceId, sessionId }));
    this.marked = new Map();
    for (let start = 0; start < batch.length; start += BATCH) {
      const slice = batch.slice(start, start + BATCH);
      try {
        const lost = new Set(await this.state.renewPresences(slice, this.settings.leaseMs));
        for (const lease of slice) if (lost.has(lease.deviceId)) this.onLost(lease.deviceId, lease.sessionId);
      } catch (err) {
        // The leases run out by themselves if Redis stays away; the next heartbeats retry.
        this.log.error({ err, leases: slice.length }, 'failed to renew presence leases');
      }
    }
  }

  private async flushDeadlines(): Promise<void> {
    if (this.progress.size === 0) return;
    const batch = [...this.progress.values()];
    this.progress = new Map();
    for (let start = 0; start < batch.length; start += BATCH) {
      const slice = batch.slice(start, start + BATCH);
      try {
        await this.state.extendDeadlines(slice, this.settings.updateTimeoutMs);
      } catch (err) {
        // A deadline that is not pushed out may time the attempt out early, and the device then gets the
        // next attempt as after any timeout.
        this.log.error({ err, deadlines: slice.length }, 'failed to push update deadlines out');
      }
    }
  }

  /**
   * Stops the timer and writes the deadlines still marked, so a replica that stops loses no report. Marked
   * leases are dropped: their connections are closed by now, and renewing them would show the devices
   * online after they left.
   */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
    await this.flushDeadlines();
  }
}
