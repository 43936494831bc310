import uWS from 'uWebSockets.js';
import type { Logger } from 'pino';
import { PatchBucket } from '../storage/bucket.ts';
import { Catalog } from '../storage/catalog.ts';
import { createKeys } from '../storage/keys.ts';
import { PatchCache } from '../storage/patch-cache.ts';
import { connectRedis } from '../storage/redis.ts';
import { StateStore } from '../storage/state-store.ts';
import { BackgroundWork } from './background.ts';
import type { Config } from './config.ts';
import { deviceSocketBehavior } from './device-socket.ts';
import { ReplicaEvents } from './events.ts';
import { handlerContextFactory } from './handler-context.ts';
import { registerHttpRoutes } from './http-routes.ts';
import { ReplicaMetrics } from './metrics.ts';
import { ConnectionRegistry } from './registry.ts';
import { HeartbeatBatcher } from './heartbeats.ts';
import type { ReplicaServices } from './services.ts';
import { BucketHealth } from './bucket-health.ts';
import { ServerClock } from './clock.ts';
import { loadNativeUws } from './uws.ts';
import { DeviceTokens } from '../security/device-tokens.ts';
import { KeyedRateLimiter } from '../security/rate-limit.ts';
import { OperatorStore } from '../storage/operator-store.ts';
import { observeScripts } from '../storage/scripts.ts';
import { startOperatorApi, type OperatorApi } from './api/server.ts';

export interface Replica {
  readonly port: number;
  /** Port of the operator API, dashboard and /metrics. */
  readonly apiPort: number;
  readonly services: ReplicaServices;
  /** Stops accepting, closes every device with `going_away` and releases Redis; resolves when done. */
  stop(): Promise<void>;
}

export const DEVICE_PATH = '/device';
/** Reconnect attempts a command waits for before it fails: 200 ms, 400 ms, … 2 s, about 11 s in all. */
const REDIS_RETRIES_PER_COMMAND = 10;
/** A command without a reply after this long fails, so no device queue or background loop waits on Redis for good. */
const REDIS_COMMAND_TIMEOUT_MS = 15_000;

/**
 * Closes every connection with `going_away`, spread evenly over `drainMs` so that the devices of a
 * stopping replica do not all reconnect to the others in the same instant. Connections still waiting for
 * their `hello` go first. Resolves when every socket is closed or the window has passed.
 */
async function drainConnections(services: ReplicaServices, drainMs: number): Promise<void> {
  const connections = [...services.registry.open].sort(
    (a, b) => Number(a.session.deviceId !== null) - Number(b.session.deviceId !== null),
  );
  services.log.info({ connections: connections.length, drainMs }, 'draining connections');
  const step = connections.length > 0 ? drainMs / connections.length : 0;
  const started = performance.now();
  for (const [index, connection] of connections.entries()) {
    const due = started + index * step - performance.now();
    if (due > 1) await new Promise((resolve) => setTimeout(resolve, due));
    connection.close('going_away');
  }
  while (services.registry.open.size > 0 && performance.now() - started < drainMs + 1000) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Starts one replica: the device WebSocket endpoint, the probes and the background work. */
export async function startReplica(config: Config, log: Logger): Promise<Replica> {
  const native = loadNativeUws();
  let lastRedisError = 0;
  const onRedisError = (err: Error) => {
    // One line per 10 s at most: a Redis outage makes ioredis report every reconnect attempt.
    if (Date.now() - lastRedisError < 10_000) return;
    lastRedisError = Date.now();
    log.warn({ err: err.message }, 'redis connection error, retrying');
  };
  // Commands wait through a Redis restart of a few seconds (about 11 s of reconnect attempts, see
  // connectRedis) instead of failing, so a device's report during the restart is not answered `internal`.
  const redis = connectRedis(
    config.redisUrl,
    `fleet:${config.replicaId}`,
    { maxRetriesPerRequest: REDIS_RETRIES_PER_COMMAND, commandTimeout: REDIS_COMMAND_TIMEOUT_MS },
    onRedisError,
  );
  // The subscription waits for Redis however long an outage lasts, instead of failing after a few retries.
  const subscriber = connectRedis(
    config.redisUrl,
    `fleet:${config.replicaId}:events`,
    { maxRetriesPerRequest: null },
    onRedisError,
  );
  const keys = createKeys(config.keyPrefix);
  const state = new StateStore(redis, keys);
  const bucket = new PatchBucket(config.s3);
  const clock = new ServerClock(log);
  bucket.useClock(() => clock.now());
  const registry = new ConnectionRegistry();
  const heartbeats = new HeartbeatBatcher(
    state,
    { leaseMs: config.presenceLeaseMs, flushMs: config.heartbeatFlushMs, updateTimeoutMs: config.updateTimeoutMs },
    (deviceId, sessionId) => {
      const connection = registry.get(deviceId);
      if (connection?.session.sessionId === sessionId) {
        connection.log.info('heartbeat from a replaced session');
        connection.close('session_replaced');
      }
    },
    log,
  );
  const services: ReplicaServices = {
    config,
    log,
    redis,
    state,
    bucket,
    patchStore: new BucketHealth(),
    clock,
    catalog: new Catalog(state, bucket, log.child({ component: 'catalog' }), {
      publicKey: config.security.signingPublicKey,
      requireSignatures: config.security.requireSignatures,
    }),
    patches: new PatchCache(state),
    registry,
    heartbeats,
    events: new ReplicaEvents(redis, subscriber, keys.events, log.child({ component: 'events' })),
    metrics: new ReplicaMetrics(),
    deviceTokens: new DeviceTokens(config.security.deviceTokenSecret),
    operators: new OperatorStore(redis, keys),
    upgradeLimiter: new KeyedRateLimiter(config.security.upgradesPerSPerAddress, config.security.upgradeBurst),
    accepting: true,
    draining: false,
    ready: false,
  };

  observeScripts(redis, (name, seconds, ok) => services.metrics.redisCall(name, seconds, ok));
  bucket.observe((operation, seconds, ok) => services.metrics.bucketCall(operation, seconds, ok));
  const background = new BackgroundWork(services, handlerContextFactory(services));
  const app = native.App();
  app.ws(DEVICE_PATH, deviceSocketBehavior(services));
  registerHttpRoutes(app, services);

  // Listen before Redis answers, so the probes can report "alive but not ready" during an outage.
  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(config.host, config.port, (socket) => {
      if (socket) resolve(socket);
      else reject(new Error(`cannot listen on ${config.host}:${config.port}: the port is taken or not allowed`));
    });
  });
  const port = native.us_socket_local_port(listenSocket as unknown as uWS.us_socket);
  let api: OperatorApi;
  try {
    api = await startOperatorApi(native, services, log);
  } catch (err) {
    native.us_listen_socket_close(listenSocket);
    throw err;
  }
  background.start();
  services.events
    .subscribe(
      (event) => background.onEvent(event),
      () => background.fanOut(),
    )
    .catch((err: unknown) => log.error({ err }, 'cannot subscribe to replica events'));
  log.info({ host: config.host, port, replica: config.replicaId }, 'replica listening');

  let stopping: Promise<void> | null = null;
  return {
    port,
    apiPort: api.port,
    services,
    stop() {
      stopping ??= (async () => {
        // Not ready first, while still accepting: load balancers stop sending devices here before the port
        // closes, so no device sees a refused upgrade.
        services.ready = false;
        services.draining = true;
        if (config.unreadyDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, config.unreadyDelayMs));
        services.accepting = false;
        native.us_listen_socket_close(listenSocket);
        api.close();
        await drainConnections(services, config.drainMs);
        background.stop();
        await heartbeats.stop();
        // Let the close frames and the presence releases reach their peers before Redis goes.
        await new Promise((resolve) => setTimeout(resolve, 100));
        await Promise.allSettled([redis.quit(), subscriber.quit()]);
        bucket.destroy();
        services.upgradeLimiter.close();
        log.info('replica stopped');
      })();
      return stopping;
    },
  };
}
