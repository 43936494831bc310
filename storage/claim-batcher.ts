import type { ScriptReply } from './scripts.ts';
import type { ClaimResult, WaitReason } from './state-store.ts';

/**
 * Devices per claim_offers.lua call. Redis serves nothing else while a script runs. A claim took 15 to 40 µs
 * per device with 1 to 9 catalog entries on a 2-core VM (bench/claim-cost.ts), so a full batch blocks Redis
 * for up to about 10 ms.
 */
export const CLAIM_BATCH_LIMIT = 256;

/** Runs one claim script: claim_offer for one device, claim_offers for several. */
export interface ClaimScripts {
  claimOne(deviceId: string, timeoutMs: number, maxAttempts: number): Promise<ScriptReply>;
  claimMany(deviceIds: string[], timeoutMs: number, maxAttempts: number): Promise<ScriptReply>;
}

interface Waiter {
  deviceId: string;
  resolve(result: ClaimResult): void;
  reject(err: unknown): void;
}

/** Turns one reply of claim_offer.lua (or one element of claim_offers.lua's reply) into a ClaimResult. */
export function parseClaimReply(reply: ScriptReply): ClaimResult {
  const fields = Array.isArray(reply) ? reply : [];
  if (fields[0] === 'offer') {
    return { kind: 'offer', patchId: String(fields[1]), attempt: Number(fields[2]), resumed: fields[3] === 1 };
  }
  if (fields[0] === 'wait') return { kind: 'wait', patchId: String(fields[1]), reason: String(fields[2]) as WaitReason };
  if (fields[0] === 'error') throw new Error(`claim failed inside claim_offers: ${String(fields[1])}`);
  return { kind: 'none' };
}

/**
 * Gathers the claims requested in one turn of the event loop and runs them as claim_offers.lua calls of up to
 * CLAIM_BATCH_LIMIT devices, the way ioredis' auto-pipelining gathers commands. A fan-out claims for hundreds
 * of devices at once, and one script call per device cost Redis and ioredis more than the claims themselves.
 * A claim requested alone still runs claim_offer.lua.
 */
export class ClaimBatcher {
  /** Claims waiting for the flush, by `timeoutMs:maxAttempts`, because one script call takes one pair. */
  private readonly pending = new Map<string, Waiter[]>();
  private flushQueued = false;

  constructor(private readonly scripts: ClaimScripts) {}

  claim(deviceId: string, timeoutMs: number, maxAttempts: number): Promise<ClaimResult> {
    return new Promise((resolve, reject) => {
      const key = `${timeoutMs}:${maxAttempts}`;
      let waiters = this.pending.get(key);
      if (!waiters) {
        waiters = [];
        this.pending.set(key, waiters);
      }
      waiters.push({ deviceId, resolve, reject });
      if (!this.flushQueued) {
        this.flushQueued = true;
        // After the promise jobs of this turn, so the claims that a fan-out queues together share a call.
        process.nextTick(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushQueued = false;
    const groups = [...this.pending];
    this.pending.clear();
    for (const [key, waiters] of groups) {
      const [timeoutMs, maxAttempts] = key.split(':').map(Number) as [number, number];
      for (let start = 0; start < waiters.length; start += CLAIM_BATCH_LIMIT) {
        void this.run(waiters.slice(start, start + CLAIM_BATCH_LIMIT), timeoutMs, maxAttempts);
      }
    }
  }

  private async run(waiters: Waiter[], timeoutMs: number, maxAttempts: number): Promise<void> {
    try {
      if (waiters.length === 1) {
        const only = waiters[0] as Waiter;
        only.resolve(parseClaimReply(await this.scripts.claimOne(only.deviceId, timeoutMs, maxAttempts)));
        return;
      }
      const ids = waiters.map((waiter) => waiter.deviceId);
      const replies = await this.scripts.claimMany(ids, timeoutMs, maxAttempts);
      if (!Array.isArray(replies) || replies.length !== waiters.length) {
        throw new Error(`claim_offers returned ${Array.isArray(replies) ? replies.length : 'no'} replies for ${waiters.length} devices`);
      }
      waiters.forEach((waiter, i) => {
        try {
          waiter.resolve(parseClaimReply(replies[i] as ScriptReply));
        } catch (err) {
          waiter.reject(new Error(`claim for device ${waiter.deviceId} failed`, { cause: err }));
        }
      });
    } catch (err) {
      for (const waiter of waiters) waiter.reject(err);
    }
  }
}
