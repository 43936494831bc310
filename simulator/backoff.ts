/**
 * Full-jitter exponential backoff: the n-th delay (n from 0) is drawn uniformly from
 * [0, min(capMs, baseMs × 2^n)). Spreading reconnects over the whole window keeps thousands of cameras that
 * lost the same replica from reconnecting in one burst.
 */
export class Backoff {
  private failures = 0;

  constructor(
    private readonly baseMs: number,
    private readonly capMs: number,
    private readonly random: () => number,
  ) {}

  /** Returns the next delay in milliseconds and widens the window for the one after. */
  next(): number {
    // 2^n passes any useful cap long before n reaches 40, and stopping there keeps the number finite.
    const bound = Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.failures, 40));
    this.failures += 1;
    return Math.floor(this.random() * bound);
  }

  /** Starts over from the smallest window, e.g. after a connection was accepted. */
  reset(): void {
    this.failures = 0;
  }
}
