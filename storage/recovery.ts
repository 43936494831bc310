import type { Redis } from 'ioredis';
import type { Keys } from './keys.ts';

/**
 * Detection of and recovery from a Redis that lost its data. Redis keeps no marker of its own that says "I
 * was emptied", so the replicas write one: a random epoch id, set only when none exists. A replica that saw
 * one epoch and later finds another (or none) knows that everything it saw before is gone.
 */
export class StateRecovery {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Writes `candidate` as the epoch when Redis holds none, and returns the epoch Redis holds afterwards. */
  async epoch(candidate: string): Promise<string> {
    // Two plain commands rather than MULTI: the GET returns whichever SET won, and a transaction queued
    // while the connection was down could hang past the reconnect.
    await this.redis.set(this.keys.stateEpoch, candidate, 'NX');
    return (await this.redis.get(this.keys.stateEpoch)) ?? candidate;
  }

  /**
   * Opens the re-admission window after a data loss, unless another replica opened it already. Returns
   * whether this call opened it. `detail` is stored as the key's value, for operators who look.
   */
  async openWindow(windowMs: number, detail: Record<string, unknown>): Promise<boolean> {
    return (await this.redis.set(this.keys.recovery, JSON.stringify(detail), 'PX', windowMs, 'NX')) === 'OK';
  }

  async windowOpen(): Promise<boolean> {
    return (await this.redis.exists(this.keys.recovery)) === 1;
  }

  /**
   * Provisions again a device whose record was lost, at the token generation its token carries. Every
   * field is written only when missing, so a device provisioned meanwhile keeps its record.
   */
  async readmit(deviceId: string, generation: number): Promise<void> {
    const device = this.keys.device(deviceId);
    await Promise.all([
      this.redis.zadd(this.keys.knownDevices, 'NX', 0, deviceId),
      this.redis.hsetnx(device, 'enrollment', 'accepted'),
      this.redis.hsetnx(device, 'provisioned_at', Date.now()),
      this.redis.hsetnx(device, 'token_generation', generation),
    ]);
  }
}
