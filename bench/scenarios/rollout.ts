import { randomBytes } from 'node:crypto';
import { DevicePool } from '../lib/device-pool.ts';
import { deviceLabel, type FigureSeries } from '../lib/figures.ts';
import { placeFor } from '../lib/placement.ts';
import { putObject, startProduct, startTogether, type BenchContext, type ProductSystem } from '../lib/stack.ts';
import { cpuSeconds } from '../lib/processes.ts';
import { epochMs } from '../lib/stats.ts';

const ROLLOUT_TIMEOUT_MS = 300_000;

interface ProductFleet {
  replicas: number;
  product: ProductSystem;
  pool: DevicePool;
}

/**
 * A whole rollout: from a patch entering the catalog until the last device has downloaded it and its
 * `result` is acknowledged. Each device reports `downloading`, fetches the signed URL from the store,
 * checks the length, and reports `verifying`, `applying` and `applied`. The yardstick: the same load
 * generators fetch the same bytes from the same store once per device, with the same number of downloads
 * at once, and no backend. Devices do not hash the bytes, in either case: on this machine the hashing
 * would compete with the backend for the CPU, while real cameras hash on their own.
 */
export async function runRollout(context: BenchContext): Promise<FigureSeries[]> {
  const { plan } = context;
  const devices = plan.rolloutDevices;
  const patch = randomBytes(plan.patchBytes);
  const results = new Map<string, number[]>();
  const record = (key: string, value: number) => results.set(key, [...(results.get(key) ?? []), value]);

  context.progress(`rollout: starting the servers, ${devices} devices each, ${plan.patchBytes} byte patch`);
  const fleets: ProductFleet[] = [];
  const stoppers: (() => Promise<void>)[] = [];
  try {
    const products = await startTogether(
      plan.replicaCounts.map((replicas) => startProduct(context, `rollout-r${replicas}`, replicas, plan.heartbeatS)),
      stoppers,
    );
    const pools = await startTogether(
      plan.replicaCounts.map((replicas) => DevicePool.start(context, `rollout-r${replicas}`, devices)),
      stoppers,
    );
    for (const [i, replicas] of plan.replicaCounts.entries()) {
      const fleet = { replicas, product: products[i] as ProductSystem, pool: pools[i] as DevicePool };
      placeFor(fleet.product.pids);
      await fleet.pool.grow(devices, { urls: fleet.product.urls, heartbeatS: 0, tokens: (ids) => fleet.product.deviceTokens(ids) });
      fleets.push(fleet);
    }
    const baselineKey = 'rollout-direct.bin';
    await putObject(context, baselineKey, patch);
    const baselineUrl = context.bucket.signDownload(baselineKey, 3600).url;

    for (let repeat = 0; repeat < plan.slowRepeats; repeat++) {
      context.progress(`rollout, repeat ${repeat + 1} of ${plan.slowRepeats}`);
      // The store and the generators get the cores they get in the one-replica run: the backend's core idles.
      placeFor([]);
      let storeCpu = cpuSeconds(context.store.pid);
      const direct = await (fleets[0] as ProductFleet).pool.download(baselineUrl, plan.patchBytes, plan.downloadSlots, ROLLOUT_TIMEOUT_MS);
      if (direct.failed > 0 || direct.done !== devices) throw new Error(`direct download: ${direct.failed} of ${devices} failed`);
      const directS = (direct.finishedAt - direct.startedAt) / 1000;
      record('direct', directS);
      storeCpu = cpuSeconds(context.store.pid) - storeCpu;
      context.progress(
        `  direct download: ${directS.toFixed(2)} s, ${(direct.bytes / directS / 1048576).toFixed(0)} MiB/s, store CPU ${storeCpu.toFixed(1)} s`,
      );

      for (const fleet of fleets) {
        const patchId = `rollout-r${fleet.replicas}-${repeat + 1}.bin`;
        const sha256 = await putObject(context, patchId, patch);
        await fleet.pool.arm(true, plan.downloadSlots);
        placeFor(fleet.product.pids);
        await fleet.product.profileStart();
        const storeBefore = cpuSeconds(context.store.pid);
        const t0 = epochMs();
        await fleet.product.release(patchId, plan.patchBytes, sha256);
        const done = await fleet.pool.waitRollout(ROLLOUT_TIMEOUT_MS);
        await fleet.product.profileEnd(`rollout-r${fleet.replicas}-${repeat + 1}`);
        if (done.failed > 0) throw new Error(`rollout-r${fleet.replicas}: ${done.failed} of ${devices} devices failed`);
        const seconds = (done.last - t0) / 1000;
        record(`r${fleet.replicas}`, seconds);
        context.progress(`  r${fleet.replicas}: ${seconds.toFixed(2)} s, store CPU ${(cpuSeconds(context.store.pid) - storeBefore).toFixed(1)} s`);
      }
    }
    for (const fleet of fleets) await fleet.pool.checkHealthy();
  } finally {
    for (const stop of stoppers.reverse()) await stop();
  }

  return plan.replicaCounts.map((replicas) => ({
    id: `rollout.${deviceLabel(devices)}.r${replicas}`,
    title: 'whole rollout',
    unit: 's',
    better: 'lower' as const,
    devices,
    replicas,
    values: results.get(`r${replicas}`) ?? [],
    yardsticks: [{ name: 'direct download', values: results.get('direct') ?? [] }],
    details: { patchBytes: plan.patchBytes, downloadSlots: plan.downloadSlots * 2 },
  }));
}
