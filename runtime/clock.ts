import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** An offset change smaller than this is network jitter, not worth a log line. */
const LOG_STEP_MS = 1000;

/**
 * The fleet's clock: the Redis server's time, as seen from this replica. Deadlines and leases already run on
 * it inside the Lua scripts. The replica also uses it for what devices and the patch store judge by time:
 * `welcome.serverTime`, `urlExpiresAt` and the signing time of download URLs, so a replica whose own clock
 * is off by minutes still hands out URLs that the store accepts.
 */
export class ServerClock {
  private offsetMs = 0;
  private loggedOffsetMs = 0;
  synced = false;

  constructor(private readonly log: Logger) {}

  /** Milliseconds since the epoch on the Redis clock; the replica's clock until the first sync. */
  now(): number {
    return Date.now() + this.offsetMs;
  }

  /** Measures the offset to the Redis clock with TIME, taking the middle of the round trip. */
  async sync(redis: Redis): Promise<void> {
    const sent = Date.now();
    const [seconds, micros] = await redis.time();
    const received = Date.now();
    const redisMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    this.offsetMs = Math.round(redisMs - (sent + received) / 2);
    this.synced = true;
    if (Math.abs(this.offsetMs - this.loggedOffsetMs) >= LOG_STEP_MS) {
      this.loggedOffsetMs = this.offsetMs;
      this.log.warn({ offsetMs: this.offsetMs }, 'replica clock differs from the redis clock; using the redis clock');
    }
  }
}
