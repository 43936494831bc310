import { DevicePool, type IngestTotals } from '../lib/device-pool.ts';
import type { FigureSeries } from '../lib/figures.ts';
import { startRespWriter, startUwsHset } from '../lib/peers.ts';
import { placeFor } from '../lib/placement.ts';
import { startOne, startProduct, startTogether, type BenchContext, type ProductSystem } from '../lib/stack.ts';
import { cpuSeconds } from '../lib/processes.ts';
import { sleep, summarize } from '../lib/stats.ts';

/**
 * Patch id of the progress report that ends each batch of ingest messages. No patch has this id, so the
 * product replies `unknown_patch` after its script has run, and the HSET peer replies the same after its
 * HSET; either way every message sent before it on the connection has been handled by then.
 */
const BARRIER_PATCH_ID = 'bench-barrier';
const INGEST_PATCH_ID = 'ingest.bin';
const WARM_UP_MS = 1000;

interface ProductFleet {
  replicas: number;
  product: ProductSystem;
  pool: DevicePool;
}

function describe(totals: IngestTotals): string {
  const errors = Object.entries(totals.errors).map(([code, n]) => `${n} ${code}`);
  return `${Math.round(totals.rate)} messages/s${errors.length > 0 ? `, errors: ${errors.join(', ')}` : ''}`;
}

/**
 * Ingest: device messages per second handled with their state persisted in Redis. Every device holds an
 * offer and sends batches of [heartbeat, progress, heartbeat, barrier] as fast as the server replies to the
 * barriers. The same batches go to the bare uWebSockets.js server that does one HSET per message; the raw
 * RESP writer gives Redis' own write rate on one connection. After the last repeat every product device
 * reports `verifying` and `applying`, and the figure's details count the devices whose status or presence
 * lease Redis does not hold.
 */
export async function runIngest(context: BenchContext): Promise<FigureSeries[]> {
  const { plan } = context;
  const devices = plan.ingestDevices;
  const results = new Map<string, number[]>();
  const lost = new Map<number, number>();
  const record = (key: string, value: number) => results.set(key, [...(results.get(key) ?? []), value]);

  context.progress(`ingest: starting the servers, ${devices} devices each`);
  const stoppers: (() => Promise<void>)[] = [];
  try {
    const hset = await startOne(startUwsHset(context, 'ingest-uws-hset', plan.heartbeatS), stoppers);
    const writer = await startOne(startRespWriter(context), stoppers);
    const products = await startTogether(
      plan.replicaCounts.map((replicas) => startProduct(context, `ingest-r${replicas}`, replicas, plan.heartbeatS)),
      stoppers,
    );
    const [hsetPool, ...pools] = (await startTogether(
      ['uws-hset', ...plan.replicaCounts.map((r) => `r${r}`)].map((name) => DevicePool.start(context, `ingest-${name}`, devices)),
      stoppers,
    )) as [DevicePool, ...DevicePool[]];
    const fleets: ProductFleet[] = plan.replicaCounts.map((replicas, i) => ({
      replicas,
      product: products[i] as ProductSystem,
      pool: pools[i] as DevicePool,
    }));

    placeFor(hset.pids);
    await hsetPool.grow(devices, { urls: [hset.url], heartbeatS: 0 });
    for (const fleet of fleets) {
      // Each device gets an offer of this patch in reply to its hello, so its progress reports are valid.
      await fleet.product.release(INGEST_PATCH_ID, 1024 * 1024, 'b'.repeat(64));
      await fleet.pool.arm();
      placeFor(fleet.product.pids);
      await fleet.pool.grow(devices, { urls: fleet.product.urls, heartbeatS: 0, tokens: (ids) => fleet.product.deviceTokens(ids) });
      await fleet.pool.waitOffers();
    }

    for (let repeat = 0; repeat < plan.repeats; repeat++) {
      context.progress(`ingest, repeat ${repeat + 1} of ${plan.repeats}`);
      placeFor(hset.pids);
      if (repeat === 0) await hsetPool.ingest(WARM_UP_MS, BARRIER_PATCH_ID);
      const peerBefore = cpuOf(hset.pids, context.redis.pid);
      const peer = await hsetPool.ingest(plan.ingestMs, BARRIER_PATCH_ID);
      const peerAfter = cpuOf(hset.pids, context.redis.pid);
      record('uws-hset-server-us', ((peerAfter.server - peerBefore.server) * 1e6) / peer.messages);
      record('uws-hset-redis-us', ((peerAfter.redis - peerBefore.redis) * 1e6) / peer.messages);
      record('uws-hset', peer.rate);
      context.progress(`  uWS + HSET: ${describe(peer)}`);

      placeFor([writer.worker.pid]);
      const raw = await writer.worker.request('run', { durationMs: plan.ingestMs, batch: 256, depth: 8, keys: devices });
      record('resp', raw.commands / (raw.elapsedMs / 1000));
      context.progress(`  raw RESP writer: ${Math.round(raw.commands / (raw.elapsedMs / 1000))} HSET/s`);

      for (const fleet of fleets) {
        placeFor(fleet.product.pids);
        if (repeat === 0) await fleet.pool.ingest(WARM_UP_MS, BARRIER_PATCH_ID);
        await fleet.product.profileStart();
        const cpuBefore = cpuOf(fleet.product.pids, context.redis.pid);
        const totals = await fleet.pool.ingest(plan.ingestMs, BARRIER_PATCH_ID);
        const cpuAfter = cpuOf(fleet.product.pids, context.redis.pid);
        await fleet.product.profileEnd(`ingest-r${fleet.replicas}-${repeat + 1}`);
        record(`r${fleet.replicas}-server-us`, ((cpuAfter.server - cpuBefore.server) * 1e6) / totals.messages);
        record(`r${fleet.replicas}-redis-us`, ((cpuAfter.redis - cpuBefore.redis) * 1e6) / totals.messages);
        if (Object.keys(totals.errors).length > 0) throw new Error(`ingest-r${fleet.replicas}: ${describe(totals)}`);
        record(`r${fleet.replicas}`, totals.rate);
        context.progress(`  r${fleet.replicas}: ${describe(totals)}`);
      }
    }

    for (const fleet of fleets) {
      await fleet.pool.finishUpdates(BARRIER_PATCH_ID);
      // Heartbeats renew leases in batches flushed every FLEET_HEARTBEAT_FLUSH_MS (1 s by default).
      await sleep(2500);
      lost.set(fleet.replicas, await countLost(fleet, devices));
      await fleet.pool.checkHealthy();
    }
    await hsetPool.checkHealthy();
  } finally {
    for (const stop of stoppers.reverse()) await stop();
  }

  return plan.replicaCounts.map((replicas) => ({
    id: `ingest.r${replicas}`,
    title: 'ingest, state persisted',
    unit: 'messages/s',
    better: 'higher' as const,
    devices,
    replicas,
    values: results.get(`r${replicas}`) ?? [],
    yardsticks: [
      { name: 'uWS + HSET per message', values: results.get('uws-hset') ?? [] },
      { name: 'raw pipelined RESP', values: results.get('resp') ?? [] },
    ],
    details: {
      lostStatuses: lost.get(replicas) ?? -1,
      // CPU time per message, medians over the repeats: the server process(es) and Redis.
      serverCpuUsPerMessage: median(results.get(`r${replicas}-server-us`)),
      redisCpuUsPerMessage: median(results.get(`r${replicas}-redis-us`)),
      hsetPeerCpuUsPerMessage: median(results.get('uws-hset-server-us')),
      hsetPeerRedisCpuUsPerMessage: median(results.get('uws-hset-redis-us')),
    },
  }));
}

/** CPU seconds used so far by the server processes and by Redis. */
function cpuOf(serverPids: number[], redisPid: number): { server: number; redis: number } {
  return { server: serverPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0), redis: cpuSeconds(redisPid) };
}

function median(values: number[] | undefined): number {
  return values && values.length > 0 ? Math.round(summarize(values).median * 10) / 10 : -1;
}

/**
 * Devices whose patch status in Redis is not `applying` of attempt 1, or whose presence lease is gone,
 * although the server replied to every batch. Reads the keys the product's storage/keys.ts defines.
 */
async function countLost(fleet: ProductFleet, devices: number): Promise<number> {
  const { keys, state } = fleet.product;
  const redis = state.redis;
  const ids = fleet.pool.deviceIds();
  if (ids.length !== devices) throw new Error(`ingest-r${fleet.replicas}: expected ${devices} devices, found ${ids.length} in the pool`);
  const pipeline = redis.pipeline();
  for (const id of ids) {
    pipeline.hget(keys.patchStatus(INGEST_PATCH_ID), id);
    pipeline.pttl(keys.presence(id));
  }
  const replies = (await pipeline.exec()) ?? [];
  let lost = 0;
  for (let i = 0; i < ids.length; i++) {
    const status = replies[2 * i]?.[1];
    const ttl = replies[2 * i + 1]?.[1];
    if (typeof status !== 'string' || !status.startsWith('applying|1|') || typeof ttl !== 'number' || ttl <= 0) lost += 1;
  }
  return lost;
}
