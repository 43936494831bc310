import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { PatchBucket } from '../storage/bucket.ts';
import type { BucketHealth } from './bucket-health.ts';
import type { ServerClock } from './clock.ts';
import type { Catalog } from '../storage/catalog.ts';
import type { PatchCache } from '../storage/patch-cache.ts';
import type { StateStore } from '../storage/state-store.ts';
import type { Config } from './config.ts';
import type { ReplicaEvents } from './events.ts';
import type { ReplicaMetrics } from './metrics.ts';
import type { ConnectionRegistry } from './registry.ts';
import type { HeartbeatBatcher } from './heartbeats.ts';
import type { DeviceTokens } from '../security/device-tokens.ts';
import type { KeyedRateLimiter } from '../security/rate-limit.ts';
import type { OperatorStore } from '../storage/operator-store.ts';

/** What the parts of one replica share. Built once in replica.ts. */
export interface ReplicaServices {
  config: Config;
  log: Logger;
  redis: Redis;
  state: StateStore;
  bucket: PatchBucket;
  /** Reachability of the patch store, from the readiness checks. */
  patchStore: BucketHealth;
  /** The Redis clock, for times sent to devices and the signing time of download URLs. */
  clock: ServerClock;
  catalog: Catalog;
  patches: PatchCache;
  registry: ConnectionRegistry;
  events: ReplicaEvents;
  metrics: ReplicaMetrics;
  heartbeats: HeartbeatBatcher;
  deviceTokens: DeviceTokens;
  operators: OperatorStore;
  upgradeLimiter: KeyedRateLimiter;
  /** False once shutdown has waited FLEET_UNREADY_DELAY_MS: new upgrades then get 503. */
  accepting: boolean;
  /** True from the start of shutdown: /readyz answers 503 from then on. */
  draining: boolean;
  /** Last result of the dependency check behind /readyz. */
  ready: boolean;
}
