import type { ResultMessage } from '../protocol/messages.ts';

/** Key of one attempt at one patch. Patch ids cannot contain `/`, so keys never collide. */
export function attemptKey(patchId: string, attempt: number): string {
  return `${patchId}/${attempt}`;
}

/**
 * Results of one camera. Results the server has not acknowledged yet are sent again after every `welcome`.
 * The latest result per patch lets an offer that repeats a finished attempt get the same result instead of
 * a second run.
 */
export class ResultOutbox {
  private readonly unacknowledged = new Map<string, ResultMessage>();
  private readonly latest = new Map<string, ResultMessage>();

  get size(): number {
    return this.unacknowledged.size;
  }

  add(result: ResultMessage): void {
    this.latest.set(result.patchId, result);
    this.unacknowledged.set(attemptKey(result.patchId, result.attempt), result);
  }

  /** Drops the result of this attempt. Returns false when it was not waiting for an acknowledgement. */
  acknowledge(patchId: string, attempt: number): boolean {
    return this.unacknowledged.delete(attemptKey(patchId, attempt));
  }

  latestFor(patchId: string): ResultMessage | undefined {
    return this.latest.get(patchId);
  }

  /** Results still waiting for `result_ack`, oldest first. */
  pending(): IterableIterator<ResultMessage> {
    return this.unacknowledged.values();
  }
}
