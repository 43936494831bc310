import type { PatchStoreHealth } from '../handlers/context.ts';

/**
 * What this replica knows of the patch store's reachability: the result of the last readiness check, which
 * pings the bucket every second, and the last time the store was found unreachable.
 */
export class BucketHealth implements PatchStoreHealth {
  private down = false;
  private lastDownAt = Number.NEGATIVE_INFINITY;

  get reachable(): boolean {
    return !this.down;
  }

  unreachableWithin(ms: number): boolean {
    return this.down || performance.now() - this.lastDownAt <= ms;
  }

  /** Records one check; returns 'lost' or 'back' when the store's reachability changed, else null. */
  record(reachable: boolean): 'lost' | 'back' | null {
    const was = !this.down;
    this.down = !reachable;
    if (!reachable) this.lastDownAt = performance.now();
    if (was === reachable) return null;
    return reachable ? 'back' : 'lost';
  }
}
