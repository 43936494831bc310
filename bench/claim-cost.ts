/**
 * Measures what claiming offers costs Redis per device: `npx tsx bench/claim-cost.ts [DEVICES] [ENTRIES]`.
 * It registers DEVICES devices (default 5000) that applied all but the last of ENTRIES catalog entries
 * (default 9). Then it claims an offer for every device in one event-loop turn, as a fan-out does, and prints
 * the time Redis spent in EVALSHA per device, read from INFO commandstats before and after. It uses the Redis at
 * REDIS_URL (default redis://127.0.0.1:6379) under a key prefix of its own, which it deletes at the end.
 * Other clients' EVALSHA calls on the same Redis count too, so run it on a Redis nobody else uses.
 */
import { Redis } from 'ioredis';
import { createKeys } from '../storage/keys.ts';
import { defineScripts } from '../storage/scripts.ts';
import { StateStore } from '../storage/state-store.ts';

const devices = Number(process.argv[2] ?? 5000);
const entries = Number(process.argv[3] ?? 9);
if (!Number.isInteger(devices) || devices < 1 || !Number.isInteger(entries) || entries < 1) {
  throw new Error(`usage: npx tsx bench/claim-cost.ts [DEVICES] [ENTRIES], both whole numbers from 1; got ${process.argv.slice(2).join(' ')}`);
}

const prefix = `claim-cost-${process.pid}:`;
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { enableAutoPipelining: true });
defineScripts(redis);
const state = new StateStore(redis, createKeys(prefix));

/** EVALSHA calls and microseconds so far, from INFO commandstats. */
async function evalshaStats(): Promise<{ calls: number; usec: number }> {
  const match = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(await redis.info('commandstats'));
  return { calls: Number(match?.[1] ?? 0), usec: Number(match?.[2] ?? 0) };
}

try {
  const ids = Array.from({ length: devices }, (_, i) => `cam_${i}`);
  const patches = Array.from({ length: entries }, (_, i) => `claim-cost-${i}.bin`);
  for (const id of patches) {
    const patch = { id, name: id, size: 1, sha256: 'a'.repeat(64), etag: 'e', version: id, signature: null };
    await state.addPatch({ ...patch, source: 'upload', state: 'ready' }, true);
  }
  const applied = patches.slice(0, -1);
  await Promise.all(
    ids.map((deviceId) =>
      state.registerDevice({
        deviceId,
        model: 'cam',
        firmware: '1.0',
        sessionId: `session-${deviceId}`,
        leaseMs: 60_000,
        replicaId: 'claim-cost',
        applied,
        newEnrollment: 'accepted',
      }),
    ),
  );

  const before = await evalshaStats();
  const started = performance.now();
  const results = await Promise.all(ids.map((deviceId) => state.claimOffer(deviceId, 60_000, 3)));
  const wallMs = performance.now() - started;
  const after = await evalshaStats();
  const offers = results.filter((result) => result.kind === 'offer').length;
  const redisMs = (after.usec - before.usec) / 1000;
  process.stdout.write(
    `${devices} claims over ${entries} catalog entries: ${offers} offers, ${wallMs.toFixed(1)} ms in all, ` +
      `Redis ${redisMs.toFixed(1)} ms in ${after.calls - before.calls} script calls, ` +
      `${((redisMs * 1000) / devices).toFixed(1)} µs per device\n`,
  );
} finally {
  const keys = await redis.keys(`${prefix}*`);
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
  redis.disconnect();
}
