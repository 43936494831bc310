import type { Static } from '@sinclair/typebox';
import type { DeviceErrorCode } from '../protocol/errors.ts';
import type { FreshUrl } from '../protocol/messages.ts';

export type FreshUrlMessage = Static<typeof FreshUrl>;

/** A `url_request` that got no usable `url` reply. `code` is the server's error code, or `timeout`. */
export class UrlRequestError extends Error {
  constructor(
    readonly code: DeviceErrorCode | 'timeout',
    readonly retryable: boolean,
    message: string,
  ) {
    super(message);
    this.name = 'UrlRequestError';
  }
}

interface PendingRequest {
  patchId: string;
  attempt: number;
  resolve: (reply: FreshUrlMessage) => void;
  reject: (err: Error) => void;
  cleanup: () => void;
}

/** Error codes the server may send in reply to a `url_request`. Other codes concern other messages. */
const URL_REQUEST_ERRORS: readonly DeviceErrorCode[] = ['patch_unavailable', 'unknown_patch', 'internal'];

/**
 * `url_request` messages of one camera waiting for their `url` reply. A camera works on one update at a time,
 * so at most one request is normally pending.
 */
export class UrlRequests {
  private readonly pending = new Set<PendingRequest>();

  /**
   * Calls `send` and resolves with the matching `url` reply. Rejects with UrlRequestError on timeout or on a
   * server error that may be the reply, and with the abort reason when `signal` aborts.
   */
  request(
    patchId: string,
    attempt: number,
    send: () => void,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<FreshUrlMessage> {
    signal.throwIfAborted();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => entry.reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      const timer = setTimeout(() => {
        entry.reject(new UrlRequestError('timeout', true, `no url reply for ${patchId} within ${timeoutMs} ms`));
      }, timeoutMs);
      const entry: PendingRequest = {
        patchId,
        attempt,
        resolve: (reply) => {
          entry.cleanup();
          resolve(reply);
        },
        reject: (err) => {
          entry.cleanup();
          reject(err);
        },
        cleanup: () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          this.pending.delete(entry);
        },
      };
      this.pending.add(entry);
      signal.addEventListener('abort', onAbort, { once: true });
      send();
    });
  }

  /** Resolves the request that the `url` message replies to. Returns false when no request matches. */
  resolve(reply: FreshUrlMessage): boolean {
    for (const entry of this.pending) {
      if (entry.patchId === reply.patchId && entry.attempt === reply.attempt) {
        entry.resolve(reply);
        return true;
      }
    }
    return false;
  }

  /**
   * Fails the pending requests with a server error. NOTE: `error` messages carry no patch id, so the error is
   * matched to whatever request is pending. With one update at a time, that is usually the request that caused it,
   * but an `internal` error about another message fails it too and costs one retry.
   */
  rejectWithServerError(code: DeviceErrorCode, retryable: boolean, message: string): boolean {
    if (!URL_REQUEST_ERRORS.includes(code) || this.pending.size === 0) return false;
    for (const entry of [...this.pending]) {
      entry.reject(new UrlRequestError(code, retryable, `url_request for ${entry.patchId} failed: ${code}: ${message}`));
    }
    return true;
  }
}
