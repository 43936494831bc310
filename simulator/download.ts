import { createHash, type Hash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The bytes of one patch file received so far, as a count and a running SHA-256, so that a later request can
 * continue with `Range: bytes=<bytes>-` and the hash still covers the whole file. The bytes themselves are not
 * kept: a simulated camera only needs to prove that it received and hashed them.
 */
export class PartialDownload {
  hash: Hash = createHash('sha256');
  bytes = 0;

  constructor(
    readonly patchId: string,
    readonly sha256: string,
  ) {}

  reset(): void {
    this.hash = createHash('sha256');
    this.bytes = 0;
  }
}

/** Partial downloads of one camera, keyed by patch id and expected sha256, so any attempt at the same file can resume. */
export class PartialDownloads {
  private readonly entries = new Map<string, PartialDownload>();

  /** Returns the partial download of this file, creating an empty one when there is none. */
  open(patchId: string, sha256: string): PartialDownload {
    const key = `${patchId}:${sha256}`;
    let partial = this.entries.get(key);
    if (!partial) {
      partial = new PartialDownload(patchId, sha256);
      this.entries.set(key, partial);
    }
    return partial;
  }

  discard(partial: PartialDownload): void {
    this.entries.delete(`${partial.patchId}:${partial.sha256}`);
  }
}

export interface DownloadRequest {
  url: string;
  /** Size announced in the offer. A body that grows past it is cut off. */
  expectedSize: number;
  /** Aborting it stops the request. The bytes received until then stay in the partial download. */
  signal: AbortSignal;
  /** Speed limit in bytes per second. 0 means unlimited. */
  bytesPerSecond: number;
  /** Called once the body starts at `offset`. An offset above 0 means the download resumed. */
  onStart?: (offset: number) => void;
  /** Called after every chunk with the total bytes received. It may abort `signal`. */
  onBytes?: (bytes: number) => void;
}

export type DownloadOutcome =
  | { kind: 'complete' }
  /** 401 or 403: the signed URL expired or was rejected, so a fresh one is needed. */
  | { kind: 'url_rejected'; status: number }
  | { kind: 'not_found' }
  | { kind: 'too_large'; bytes: number }
  /** Network error, HTTP 5xx or a body that ended early: the same URL may work on the next try. */
  | { kind: 'retryable'; detail: string };

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;
/**
 * Throttled downloads count bytes in slices of this size, so that progress and a planned disconnect advance
 * smoothly instead of by whole network chunks, which can be 64 KiB or more.
 */
const THROTTLE_SLICE_BYTES = 16 * 1024;

async function discardBody(response: Response): Promise<void> {
  // Cancelling releases the connection to the pool. A failure here only means it is already gone.
  await response.body?.cancel().catch(() => undefined);
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

/**
 * Downloads the rest of a patch file into `partial` with one HTTP GET, resuming with a Range request when
 * bytes were received before. Returns how the request ended. Throws only when `request.signal` aborts.
 */
export async function downloadInto(partial: PartialDownload, request: DownloadRequest): Promise<DownloadOutcome> {
  const { expectedSize, signal } = request;
  if (partial.bytes > expectedSize) partial.reset();
  if (partial.bytes === expectedSize && expectedSize > 0) {
    request.onStart?.(partial.bytes);
    return { kind: 'complete' };
  }

  const offset = partial.bytes;
  const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
  let response: Response;
  try {
    response = await fetch(request.url, { headers, signal });
  } catch (err) {
    signal.throwIfAborted();
    return { kind: 'retryable', detail: `request failed: ${describeError(err)}` };
  }

  if (response.status === 401 || response.status === 403) {
    await discardBody(response);
    return { kind: 'url_rejected', status: response.status };
  }
  if (response.status === 404) {
    await discardBody(response);
    return { kind: 'not_found' };
  }
  if (response.status === 416) {
    // The server has fewer bytes than were received, so the partial download is stale and starts over.
    await discardBody(response);
    partial.reset();
    return { kind: 'retryable', detail: `HTTP 416 for Range bytes=${offset}-` };
  }
  if (response.status === 206) {
    const match = CONTENT_RANGE.exec(response.headers.get('content-range') ?? '');
    if (!match || Number(match[1]) !== offset) {
      await discardBody(response);
      partial.reset();
      return { kind: 'retryable', detail: `HTTP 206 with Content-Range ${response.headers.get('content-range')}` };
    }
  } else if (response.status === 200) {
    // The server ignored the Range header and sends the whole file, so the hash starts over.
    partial.reset();
  } else {
    await discardBody(response);
    return { kind: 'retryable', detail: `HTTP ${response.status}` };
  }

  request.onStart?.(partial.bytes);
  return receiveBody(partial, response, request);
}

async function receiveBody(
  partial: PartialDownload,
  response: Response,
  request: DownloadRequest,
): Promise<DownloadOutcome> {
  const { expectedSize, signal, bytesPerSecond } = request;
  const startedAt = performance.now();
  let receivedNow = 0;

  if (!response.body) {
    return expectedSize === partial.bytes
      ? { kind: 'complete' }
      : { kind: 'retryable', detail: `HTTP ${response.status} without a body` };
  }

  try {
    for await (const chunk of response.body) {
      if (partial.bytes + chunk.length > expectedSize) {
        return { kind: 'too_large', bytes: partial.bytes + chunk.length };
      }
      const sliceBytes = bytesPerSecond > 0 ? THROTTLE_SLICE_BYTES : chunk.length;
      for (let start = 0; start < chunk.length; start += sliceBytes) {
        const slice = chunk.subarray(start, start + sliceBytes);
        // The count and the hash change together, so an abort between slices leaves a consistent resume point.
        partial.hash.update(slice);
        partial.bytes += slice.length;
        receivedNow += slice.length;
        request.onBytes?.(partial.bytes);
        signal.throwIfAborted();

        if (bytesPerSecond > 0) {
          const dueAt = startedAt + (receivedNow / bytesPerSecond) * 1000;
          const waitMs = dueAt - performance.now();
          if (waitMs > 0) await sleep(waitMs, undefined, { signal });
        }
      }
    }
  } catch (err) {
    signal.throwIfAborted();
    return { kind: 'retryable', detail: `body failed after ${partial.bytes} bytes: ${describeError(err)}` };
  }

  if (partial.bytes < expectedSize) {
    return { kind: 'retryable', detail: `body ended after ${partial.bytes} of ${expectedSize} bytes` };
  }
  return { kind: 'complete' };
}
