import { verifyManifest } from '../security/patch-signing.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { FAILURE_REASONS, OfferMessage, ProgressMessage } from '../protocol/messages.ts';
import { Backoff } from './backoff.ts';
import { downloadInto, type DownloadOutcome, type PartialDownload, type PartialDownloads } from './download.ts';
import type { CameraBehaviour } from './options.ts';
import { UrlRequestError, type FreshUrlMessage } from './url-requests.ts';

export type FailureReason = (typeof FAILURE_REASONS)[number];

export type UpdateOutcome =
  | { outcome: 'applied' }
  | { outcome: 'failed'; reason: FailureReason; detail: string };

/** Camera services that the update steps use. */
export interface UpdateHost {
  readonly behaviour: CameraBehaviour;
  /** True for the `failureRate` share of cameras, whose every apply fails. */
  readonly alwaysFails: boolean;
  readonly partials: PartialDownloads;
  readonly log: Logger;
  sendProgress(message: Omit<ProgressMessage, 'type'>): void;
  requestUrl(patchId: string, attempt: number, signal: AbortSignal): Promise<FreshUrlMessage>;
  /** Tells whether a URL that expires at `expiresAt` (server clock, ms) is too close to expiry to start. */
  isExpired(expiresAt: number): boolean;
  /** Returns the byte count at which to drop the connection during this attempt, or null to stay connected. */
  planDisconnect(offer: OfferMessage, offset: number): number | null;
  dropConnection(): void;
  onResumed(offer: OfferMessage, offset: number): void;
}

export interface UpdateSignals {
  /** Aborts when the connection drops or the camera stops. The download stops and keeps its bytes. */
  download: AbortSignal;
  /** Aborts only when the camera stops. Verifying and applying run on through a dropped connection. */
  stop: AbortSignal;
}

/** Sends `downloading` progress at most every `intervalMs`, except that each 25% step is always sent. */
class DownloadProgress {
  private lastSentAt = 0;
  private lastQuarter = -1;

  constructor(
    private readonly offer: OfferMessage,
    private readonly intervalMs: number,
    private readonly host: UpdateHost,
  ) {}

  report(bytes: number, force = false): void {
    const quarter = this.offer.size === 0 ? 4 : Math.floor((bytes * 4) / this.offer.size);
    const now = performance.now();
    if (!force && quarter <= this.lastQuarter && now - this.lastSentAt < this.intervalMs) return;
    this.lastSentAt = now;
    this.lastQuarter = quarter;
    const { patchId, attempt } = this.offer;
    this.host.sendProgress({ patchId, attempt, state: 'downloading', bytes });
  }
}

function failed(reason: FailureReason, detail: string): UpdateOutcome {
  return { outcome: 'failed', reason, detail: detail.slice(0, 512) };
}

/**
 * Downloads the offered file into its partial download until it is complete. Returns null when it is, or the
 * failure to report. Throws when `signal` aborts, leaving the bytes received so far for a later resume.
 */
async function download(
  offer: OfferMessage,
  partial: PartialDownload,
  host: UpdateHost,
  signal: AbortSignal,
): Promise<UpdateOutcome | null> {
  const { behaviour } = host;
  const progress = new DownloadProgress(offer, behaviour.progressIntervalMs, host);
  const retryDelay = new Backoff(behaviour.backoffBaseMs, behaviour.backoffCapMs, behaviour.random);
  let url = offer.url;
  let expiresAt = offer.urlExpiresAt;
  let urlRequests = 0;
  let lastUrlError = '';
  let retries = 0;
  let disconnectAt = host.planDisconnect(offer, partial.bytes);

  progress.report(partial.bytes, true);
  for (;;) {
    if (host.isExpired(expiresAt)) {
      if (urlRequests >= behaviour.maxUrlRequests) {
        const cause = lastUrlError === '' ? 'the URL was rejected or expired' : lastUrlError;
        return failed('download_failed', `${cause} (after ${urlRequests} url requests)`);
      }
      urlRequests += 1;
      try {
        const fresh = await host.requestUrl(offer.patchId, offer.attempt, signal);
        url = fresh.url;
        expiresAt = fresh.urlExpiresAt;
        lastUrlError = '';
      } catch (err) {
        if (!(err instanceof UrlRequestError)) throw err;
        lastUrlError = err.message;
        host.log.warn({ err, patchId: offer.patchId, attempt: offer.attempt }, 'url request failed');
        if (!err.retryable) return failed('download_failed', err.message);
        await sleep(retryDelay.next(), undefined, { signal });
      }
      continue;
    }

    const release = behaviour.downloadSlots ? await behaviour.downloadSlots.acquire(signal) : undefined;
    let outcome: DownloadOutcome;
    try {
      outcome = await downloadInto(partial, {
        url,
        expectedSize: offer.size,
        signal,
        bytesPerSecond: behaviour.downloadBytesPerSecond,
        onStart: (offset) => {
          if (offset > 0) host.onResumed(offer, offset);
        },
        onBytes: (bytes) => {
          progress.report(bytes);
          if (disconnectAt !== null && bytes >= disconnectAt) {
            disconnectAt = null;
            host.dropConnection();
          }
        },
      });
    } finally {
      release?.();
    }

    switch (outcome.kind) {
      case 'complete':
        return null;
      case 'url_rejected':
        host.log.info({ patchId: offer.patchId, status: outcome.status }, 'download URL rejected, requesting a new one');
        expiresAt = 0;
        break;
      case 'not_found':
        host.partials.discard(partial);
        return failed('artifact_missing', `HTTP 404 for the patch file of ${offer.patchId}`);
      case 'too_large':
        host.partials.discard(partial);
        return failed('checksum_mismatch', `received more than the offered ${offer.size} bytes`);
      case 'retryable':
        retries += 1;
        host.log.info({ patchId: offer.patchId, retries, detail: outcome.detail }, 'download failed, retrying');
        if (retries > behaviour.downloadRetries) {
          return failed('download_failed', `${outcome.detail} (after ${behaviour.downloadRetries} retries)`);
        }
        await sleep(retryDelay.next(), undefined, { signal });
        break;
    }
  }
}

/** Returns the time one apply takes: applyMs spread uniformly by ±applyJitter. */
function applyDelayMs(behaviour: CameraBehaviour): number {
  const spread = behaviour.applyJitter * (2 * behaviour.random() - 1);
  return Math.max(0, Math.round(behaviour.applyMs * (1 + spread)));
}

/**
 * Runs one attempt of an offer: download (resuming from earlier bytes of the same file), verify size and
 * sha256, apply. Returns the outcome to report. Throws when a signal aborts: during the download when the
 * connection drops, so the server offers it again after the reconnect, and at any step when the camera stops.
 */
export async function runUpdate(offer: OfferMessage, host: UpdateHost, signals: UpdateSignals): Promise<UpdateOutcome> {
  const { patchId, attempt } = offer;
  const partial = host.partials.open(patchId, offer.sha256);

  const downloadFailure = await download(offer, partial, host, signals.download);
  if (downloadFailure) return downloadFailure;

  host.sendProgress({ patchId, attempt, state: 'verifying' });
  const size = partial.bytes;
  const sha256 = partial.hash.digest('hex');
  // A digested hash cannot take more bytes, and a later attempt after a failed apply downloads afresh.
  host.partials.discard(partial);
  if (size !== offer.size) {
    return failed('checksum_mismatch', `received ${size} bytes, the offer says ${offer.size}`);
  }
  if (sha256 !== offer.sha256) {
    return failed('checksum_mismatch', `sha256 of the received file is ${sha256}, the offer says ${offer.sha256}`);
  }

  const { signingPublicKey } = host.behaviour;
  if (signingPublicKey !== null) {
    const manifest = { id: patchId, name: offer.name, version: offer.version, size: offer.size, sha256: offer.sha256 };
    if (!offer.signature || !verifyManifest(signingPublicKey, manifest, offer.signature)) {
      return failed('signature_invalid', offer.signature ? 'signature does not verify with the fleet key' : 'offer has no signature');
    }
  }

  host.sendProgress({ patchId, attempt, state: 'applying' });
  await sleep(applyDelayMs(host.behaviour), undefined, { signal: signals.stop });
  if (host.alwaysFails) {
    return failed('apply_failed', 'this camera is one of the failureRate share that fails every apply');
  }
  if (host.behaviour.random() < host.behaviour.flakyRate) {
    return failed('apply_failed', 'simulated apply failure (flakyRate)');
  }
  return { outcome: 'applied' };
}
