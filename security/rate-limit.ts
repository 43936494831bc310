/**
 * A token bucket: `burst` tokens at most, refilled at `perSecond`. Uses the monotonic clock, so changes
 * of the wall clock do not open or close it.
 */
export class TokenBucket {
  private tokens: number;
  private updated = performance.now();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updated) / 1000) * this.perSecond);
    this.updated = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** True when the bucket is full again, so a keyed limiter can forget it. */
  idle(): boolean {
    return this.tokens + ((performance.now() - this.updated) / 1000) * this.perSecond >= this.burst;
  }
}

/** How often a keyed limiter drops the buckets that are full again. */
const SWEEP_MS = 10_000;

/**
 * Token buckets by key (e.g. a source address), with the full ones dropped every SWEEP_MS so that the map
 * stays as small as the set of recently active keys. A full bucket behaves exactly like a missing one, and
 * after a reconnect storm of a large fleet each kept bucket takes an estimated 150 bytes until it is dropped.
 */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.sweeper = setInterval(() => {
      for (const [key, bucket] of this.buckets) if (bucket.idle()) this.buckets.delete(key);
    }, SWEEP_MS);
    this.sweeper.unref();
  }

  take(key: string): boolean {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket(this.perSecond, this.burst);
      this.buckets.set(key, bucket);
    }
    return bucket.take();
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}
