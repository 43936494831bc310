import { offerNext, type OfferOutcome } from '../handlers/index.ts';
import { sendError } from '../handlers/send-error.ts';
import type { Connection } from './connection.ts';
import type { ReplicaEvent } from './events.ts';
import type { ReplicaServices } from './services.ts';
import type { HandlerContext } from '../handlers/context.ts';
import { closeSpread, StateLossWatch } from './state-loss.ts';

/** Devices timed out per sweep call; a larger backlog is worked off over the following sweeps. */
const SWEEP_BATCH = 500;
const READY_CHECK_MS = 1000;
/**
 * Devices a fan-out offers to together, in one claim_offers call. At most FAN_OUT_CHUNKS_AT_ONCE chunks run
 * at a time, so the event loop still serves other devices and Redis gets a few script calls at a time
 * instead of one per device. Two overlap the replica's sends of one chunk with Redis' claims of the next.
 */
export const FAN_OUT_CHUNK = 256;
const FAN_OUT_CHUNKS_AT_ONCE = 2;
/**
 * Time a fan-out waits for a chunk before it starts the next one anyway, so that one device whose task
 * chain is busy (a slow handler, say) does not hold up the offers of all the devices after it.
 */
const FAN_OUT_CHUNK_WAIT_MS = 1000;

type ContextFactory = (connection: Connection) => HandlerContext;

/** Waits until every promise settled or `ms` passed, whichever comes first. */
async function settledOrTimeout(promises: Promise<unknown>[], ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  try {
    await Promise.race([Promise.allSettled(promises), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The periodic work of a replica: offering new patches to its devices, timing out silent updates and waking
 * devices that a rollout now has room for, finding objects put into the bucket and completing ids pushed
 * onto the catalog list. Every loop is safe to run on
 * every replica at once; the shared parts take a Redis lock or are atomic scripts.
 */
export class BackgroundWork {
  private timers: NodeJS.Timeout[] = [];
  private lastCatalogVersion = -1;
  private lastCatalogLength = -1;
  private fanOutRunning = false;
  private fanOutAgain = false;
  private stopped = false;
  private readonly stateLoss: StateLossWatch;

  constructor(
    private readonly services: ReplicaServices,
    private readonly contextFor: ContextFactory,
  ) {
    this.stateLoss = new StateLossWatch(services, () => this.onStateLoss());
  }

  start(): void {
    const { config } = this.services;
    this.every('catalog poll', config.catalogPollMs, () => this.pollCatalog());
    this.every('in-flight sweep', config.sweepIntervalMs, () => this.sweep());
    this.every('bucket scan', config.bucketScanMs, () => this.scanBucket());
    this.every('ready check', READY_CHECK_MS, () => this.checkReady());
    this.every('state epoch check', READY_CHECK_MS, () => this.stateLoss.check());
    void this.checkReady();
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
  }

  onEvent(event: ReplicaEvent): void {
    const { registry } = this.services;
    switch (event.kind) {
      case 'catalog':
        this.fanOut();
        break;
      case 'expired':
        for (const deviceId of event.devices) {
          const connection = registry.get(deviceId);
          if (!connection) continue;
          connection.session.offer = null;
          this.offerTo(connection);
        }
        break;
      case 'wake':
        // A slot of their rollout freed, their hold ended, the rollout resumed or it was cancelled.
        for (const deviceId of event.devices) {
          const connection = registry.get(deviceId);
          if (connection && connection.session.offer === null) this.offerTo(connection);
        }
        break;
      case 'kick': {
        const connection = registry.get(event.deviceId);
        if (connection?.session.sessionId === event.sessionId) connection.close('session_replaced');
        break;
      }
      case 'accepted': {
        // The device stays connected while pending; once accepted it gets its first offer.
        const connection = registry.get(event.deviceId);
        if (connection) this.offerTo(connection);
        break;
      }
      case 'revoked':
        registry.get(event.deviceId)?.close('unauthorized');
        break;
    }
  }

  /** Offers the next patch to every device of this replica that has no offer open. Runs one at a time. */
  fanOut(): void {
    if (this.fanOutRunning) {
      this.fanOutAgain = true;
      return;
    }
    this.fanOutRunning = true;
    void this.offerToAll().then(() => {
      this.fanOutRunning = false;
      if (this.fanOutAgain && !this.stopped) {
        this.fanOutAgain = false;
        this.fanOut();
      }
    });
  }

  /** Offers to the devices without an open offer, FAN_OUT_CHUNK at a time, and logs one line with the outcomes. */
  private async offerToAll(): Promise<void> {
    const started = performance.now();
    const waiting = [...this.services.registry.values()].filter((connection) => connection.session.offer === null);
    if (waiting.length === 0) return;
    const offers: Promise<OfferOutcome | 'failed'>[] = [];
    const running: Promise<void>[] = [];
    for (let start = 0; start < waiting.length && !this.stopped; start += FAN_OUT_CHUNK) {
      if (running.length >= FAN_OUT_CHUNKS_AT_ONCE) await running.shift();
      const chunk = waiting.slice(start, start + FAN_OUT_CHUNK).map((connection) => this.offerTo(connection, false));
      offers.push(...chunk);
      running.push(settledOrTimeout(chunk, FAN_OUT_CHUNK_WAIT_MS));
    }
    const outcomes: Partial<Record<OfferOutcome | 'failed', number>> = {};
    for (const outcome of await Promise.all(offers)) outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    const ms = Math.round(performance.now() - started);
    this.services.log.info({ devices: waiting.length, ms, ...outcomes }, 'fan-out finished');
  }

  /**
   * Queues an offer on the connection's task chain, skipped when an offer is open by the time it runs.
   * Resolves with the outcome and never rejects; a failure is logged and sent to the device as `internal`.
   */
  private offerTo(connection: Connection, logEach = true): Promise<OfferOutcome | 'failed'> {
    const ctx = this.contextFor(connection);
    let outcome: OfferOutcome | 'failed' = 'skipped';
    return connection
      .enqueue(async () => {
        if (connection.session.offer === null) outcome = await offerNext(ctx, logEach);
      })
      .then(() => outcome)
      .catch((err: unknown) => {
        connection.log.error({ err }, 'failed to offer next patch');
        sendError(ctx, 'internal');
        return 'failed' as const;
      });
  }

  /**
   * Runs `work` every `ms`, never two at once. A loop that keeps failing (Redis down, say) logs its first
   * failure, then one in every 60, and says when it recovers, so an outage does not flood the log.
   */
  private every(name: string, ms: number, work: () => Promise<void>): void {
    let busy = false;
    let failures = 0;
    const timer = setInterval(() => {
      if (busy || this.stopped) return;
      busy = true;
      work()
        .then(() => {
          if (failures > 0) this.services.log.info({ loop: name, failures }, 'background work recovered');
          failures = 0;
        })
        .catch((err: unknown) => {
          if (failures % 60 === 0) {
            this.services.log.error({ err, loop: name, failures: failures + 1 }, 'background work failed');
          }
          failures += 1;
        })
        .finally(() => {
          busy = false;
        });
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private async pollCatalog(): Promise<void> {
    const { state } = this.services;
    const [version, length] = await Promise.all([state.catalogVersion(), state.catalogLength()]);
    if (length !== this.lastCatalogLength) {
      // Recorded only after the inspection succeeded, so an entry whose inspection failed is retried.
      await this.services.catalog.inspectListed(this.services.config.replicaId);
      this.lastCatalogLength = length;
    }
    if (version !== this.lastCatalogVersion) {
      this.lastCatalogVersion = version;
      this.fanOut();
    }
  }

  private async sweep(): Promise<void> {
    const expired = await this.services.state.expireInFlight(SWEEP_BATCH, this.services.config.maxAttempts);
    if (expired.length === 0) return;
    this.services.log.info({ devices: expired.length }, 'updates timed out');
    this.services.events.publish({ kind: 'expired', devices: expired });
  }

  private async scanBucket(): Promise<void> {
    const { state, config, catalog } = this.services;
    if (!(await state.tryLock('bucket_scan', config.replicaId, config.bucketScanMs))) return;
    await catalog.scanBucket();
  }

  /**
   * Pings the bucket and records the result. Offers wait while the store is down (see offerNext), so when it
   * answers again every device without an open offer gets one.
   */
  private async checkBucket(): Promise<void> {
    const { bucket, patchStore, log } = this.services;
    let failure: unknown = null;
    try {
      await bucket.ping();
    } catch (err) {
      failure = err;
    }
    const change = patchStore.record(failure === null);
    if (change === 'lost') log.warn({ err: failure }, 'patch store unreachable, offers wait');
    if (change === 'back') {
      log.info('patch store reachable again, offering');
      this.fanOut();
    }
    if (failure !== null) throw failure;
  }

  /**
   * Redis lost its data: what this replica remembers of the catalog is stale, and its devices' sessions
   * refer to records that are gone, so every device is asked to reconnect and say hello again.
   */
  private onStateLoss(): void {
    this.lastCatalogVersion = -1;
    this.lastCatalogLength = -1;
    // Rebuild the catalog now rather than at the next scan, before the devices come back.
    this.scanBucket().catch((err: unknown) => this.services.log.error({ err }, 'catalog rebuild after data loss failed'));
    void closeSpread([...this.services.registry.open], this.services.config.drainMs);
  }

  private async checkReady(): Promise<void> {
    const { redis, log } = this.services;
    let ready = true;
    try {
      // Commands wait through a short outage instead of failing, so a ping would report it late.
      if (redis.status !== 'ready') throw new Error(`redis connection is ${redis.status}`);
      // TIME doubles as the ping and keeps the clock offset fresh.
      await Promise.all([this.services.clock.sync(redis), this.checkBucket()]);
      // Devices come only once the epoch is known, so a data loss after that is always noticed.
      if (!this.stateLoss.watching) await this.stateLoss.check();
    } catch (err) {
      ready = false;
      if (this.services.ready) log.error({ err }, 'dependency check failed, replica not ready');
    }
    if (ready && !this.services.ready && !this.services.draining) log.info('redis and bucket answer, replica ready');
    this.services.ready = ready && !this.services.draining;
  }
}
