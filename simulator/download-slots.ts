/**
 * A counting semaphore that caps the HTTP downloads running at once across the cameras that share it.
 * Waiters get slots in arrival order.
 */
export class DownloadSlots {
  private active = 0;
  private readonly waiting: Array<{ grant: () => void }> = [];

  /** `limit` is the number of concurrent downloads. 0 means unlimited. */
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 0) {
      throw new RangeError(`invalid download slot limit ${limit}: expected a whole number of at least 0`);
    }
  }

  /** Downloads running now. */
  get inUse(): number {
    return this.active;
  }

  /**
   * Waits for a free slot and returns the function that gives it back, which may be called more than once.
   * Rejects with the abort reason when `signal` aborts first.
   */
  async acquire(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.limit === 0 || this.active < this.limit) {
      this.active += 1;
      return this.releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const entry = {
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        const index = this.waiting.indexOf(entry);
        if (index >= 0) this.waiting.splice(index, 1);
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      this.waiting.push(entry);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // A waiting download takes the slot over directly, so `active` stays the same.
      if (next) next.grant();
      else this.active -= 1;
    };
  }
}
