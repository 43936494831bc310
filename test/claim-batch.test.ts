import test, { type ExecutionContext } from 'ava';
import { Redis } from 'ioredis';
import { CLAIM_BATCH_LIMIT } from '../storage/claim-batcher.ts';
import { createKeys } from '../storage/keys.ts';
import { parseRolloutSpec, RolloutStore } from '../storage/rollouts.ts';
import { defineScripts, observeScripts, type ScriptName } from '../storage/scripts.ts';
import { StateStore, type ClaimResult } from '../storage/state-store.ts';
import { REDIS_URL, uniqueName } from './helpers/backend.ts';

const TIMEOUT_MS = 60_000;
const MAX_ATTEMPTS = 3;

/** Creates a StateStore that counts script calls by name and deletes its keys when the test ends. */
async function store(t: ExecutionContext): Promise<{ state: StateStore; calls: Map<ScriptName, number> }> {
  const redis = new Redis(REDIS_URL, { enableAutoPipelining: true });
  defineScripts(redis);
  const calls = new Map<ScriptName, number>();
  observeScripts(redis, (name) => calls.set(name, (calls.get(name) ?? 0) + 1));
  const state = new StateStore(redis, createKeys(`${uniqueName('claims')}:`));
  t.teardown(async () => {
    const keys = await redis.keys(`${state.keys.prefix}*`);
    for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
    redis.disconnect();
  });
  return { state, calls };
}

async function addDevices(state: StateStore, count: number, prefix: string): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
  await Promise.all(
    ids.map((deviceId) =>
      state.registerDevice({
        deviceId,
        model: 'cam',
        firmware: '1.0',
        sessionId: `session-${deviceId}`,
        leaseMs: 60_000,
        replicaId: 'replica-test',
        applied: [],
        newEnrollment: 'accepted',
      }),
    ),
  );
  return ids;
}

async function addPatch(state: StateStore, id: string): Promise<void> {
  const added = await state.addPatch(
    { id, name: id, size: 10, sha256: 'a'.repeat(64), etag: 'e', source: 'upload', version: id, signature: null, state: 'ready' },
    true,
  );
  if (added.kind !== 'added') throw new Error(`patch ${id} was not added: ${added.kind}`);
}

const kinds = (results: ClaimResult[]) => results.map((result) => result.kind);

test('batch claim offers each device once', async (t) => {
  const { state } = await store(t);
  const ids = await addDevices(state, 40, 'cam_batch_');
  await addPatch(state, 'p-1.bin');

  const first = await state.claimOffers(ids, TIMEOUT_MS, MAX_ATTEMPTS);
  t.deepEqual(first, ids.map(() => ({ kind: 'offer', patchId: 'p-1.bin', attempt: 1, resumed: false })));
  const again = await state.claimOffers(ids, TIMEOUT_MS, MAX_ATTEMPTS);
  t.deepEqual(again, ids.map(() => ({ kind: 'offer', patchId: 'p-1.bin', attempt: 1, resumed: true })));

  t.is(await state.inFlightCount(), ids.length);
  t.deepEqual(await state.patchCounts('p-1.bin'), { offered: ids.length });
  const timeline = await state.timeline(ids[0] as string);
  t.is(timeline.length, 1, 'the resumed claim wrote no second status');
});

test('batch claim with one device twice', async (t) => {
  const { state } = await store(t);
  const [id] = await addDevices(state, 1, 'cam_twice_');
  await addPatch(state, 'p-1.bin');
  const results = await state.claimOffers([id as string, id as string], TIMEOUT_MS, MAX_ATTEMPTS);
  t.deepEqual(results, [
    { kind: 'offer', patchId: 'p-1.bin', attempt: 1, resumed: false },
    { kind: 'offer', patchId: 'p-1.bin', attempt: 1, resumed: true },
  ]);
  t.deepEqual(await state.patchCounts('p-1.bin'), { offered: 1 });
});

test('batch claim matches single claims', async (t) => {
  const { state } = await store(t);
  await addPatch(state, 'p-1.bin');
  await addPatch(state, 'p-2.bin');
  // Per group: a device that applied p-1 gets p-2, one that applied p-2 gets nothing older, a pending one
  // gets nothing, and one that applied nothing gets p-1.
  const situations = async (group: string): Promise<string[]> => {
    const ids = await addDevices(state, 4, `cam_${group}_`);
    await state.registerDevice({ deviceId: ids[0] as string, model: 'cam', firmware: '1.0', sessionId: 's', leaseMs: 60_000, replicaId: 'r', applied: ['p-1.bin'], newEnrollment: 'accepted' });
    await state.registerDevice({ deviceId: ids[1] as string, model: 'cam', firmware: '1.0', sessionId: 's', leaseMs: 60_000, replicaId: 'r', applied: ['p-2.bin'], newEnrollment: 'accepted' });
    await state.redis.hset(state.keys.device(ids[2] as string), 'enrollment', 'pending');
    return ids;
  };
  const expected = [
    { kind: 'offer', patchId: 'p-2.bin', attempt: 1, resumed: false },
    { kind: 'none' },
    { kind: 'none' },
    { kind: 'offer', patchId: 'p-1.bin', attempt: 1, resumed: false },
  ];

  const batch = await state.claimOffers(await situations('batch'), TIMEOUT_MS, MAX_ATTEMPTS);
  t.deepEqual(batch, expected);
  const singles: ClaimResult[] = [];
  for (const id of await situations('single')) singles.push(await state.claimOffer(id, TIMEOUT_MS, MAX_ATTEMPTS));
  t.deepEqual(singles, expected);
});

test('batch claim keeps a rollout cap', async (t) => {
  const { state } = await store(t);
  const ids = await addDevices(state, 30, 'cam_cap_');
  const rollouts = new RolloutStore(state);
  const rollout = await rollouts.create(parseRolloutSpec({ patchId: 'cap-1.bin', maxInFlight: 7 }));
  await addPatch(state, 'cap-1.bin');

  const results = await state.claimOffers(ids, TIMEOUT_MS, MAX_ATTEMPTS);
  t.is(results.filter((r) => r.kind === 'offer').length, 7);
  t.is(results.filter((r) => r.kind === 'wait' && r.reason === 'queued').length, 23);
  // The first seven in the batch got the slots, as seven single claims in a row would.
  t.deepEqual(kinds(results.slice(0, 7)), Array(7).fill('offer'));
  t.is(await state.redis.scard(state.keys.rolloutInFlight(rollout.id)), 7);
  const read = await rollouts.get(rollout.id);
  t.is(read?.maxInFlightSeen, 7);
  t.is(read?.claims, 7);
  t.is(read?.waiting, 23);
});

test('batch claim sees slots freed within it', async (t) => {
  const { state } = await store(t);
  const ids = await addDevices(state, 4, 'cam_free_');
  const rollouts = new RolloutStore(state);
  const rollout = await rollouts.create(parseRolloutSpec({ patchId: 'free-1.bin', maxInFlight: 1 }));
  await addPatch(state, 'free-1.bin');
  const [holder, next] = ids as [string, string];
  t.like(await state.claimOffer(holder, TIMEOUT_MS, MAX_ATTEMPTS), { kind: 'offer' });
  // The holder's attempt loses its deadline record. Its next claim clears the attempt, which frees the slot,
  // and starts attempt 2 in it. The device after it in the same batch still finds the rollout full.
  await state.redis.zrem(state.keys.inFlightUpdates, holder);
  const results = await state.claimOffers([holder, next], TIMEOUT_MS, MAX_ATTEMPTS);
  t.like(results[0], { kind: 'offer', attempt: 2 });
  t.like(results[1], { kind: 'wait', reason: 'queued' });
  t.is(await state.redis.scard(state.keys.rolloutInFlight(rollout.id)), 1);
});

test('batch claim reports one failed device alone', async (t) => {
  const { state } = await store(t);
  const ids = await addDevices(state, 3, 'cam_fail_');
  await addPatch(state, 'p-1.bin');
  // A device hash of the wrong type makes that device's claim raise WRONGTYPE inside the script.
  const broken = 'cam_fail_broken';
  await state.redis.set(state.keys.device(broken), 'not a hash');

  const claims = [ids[0], broken, ids[1]].map((id) => state.claimOffer(id as string, TIMEOUT_MS, MAX_ATTEMPTS));
  const settled = await Promise.allSettled(claims);
  t.like(settled[0], { status: 'fulfilled', value: { kind: 'offer', attempt: 1 } });
  t.is(settled[1]?.status, 'rejected');
  t.like(settled[2], { status: 'fulfilled', value: { kind: 'offer', attempt: 1 } });
  await t.throwsAsync(state.claimOffers([ids[2] as string, broken], TIMEOUT_MS, MAX_ATTEMPTS), { message: /WRONGTYPE/ });
  t.like(await state.patchStatus('p-1.bin', ids[2] as string), { state: 'offered', attempt: 1 });
});

test('claims of one tick share script calls', async (t) => {
  const { state, calls } = await store(t);
  const count = CLAIM_BATCH_LIMIT + 44;
  const ids = await addDevices(state, count, 'cam_tick_');
  await addPatch(state, 'p-1.bin');
  calls.clear();

  const results = await Promise.all(ids.map((id) => state.claimOffer(id, TIMEOUT_MS, MAX_ATTEMPTS)));
  t.true(results.every((result) => result.kind === 'offer' && result.attempt === 1 && !result.resumed));
  t.is(calls.get('claim_offers'), 2);
  t.is(calls.get('claim_offer'), undefined);

  calls.clear();
  t.like(await state.claimOffer(ids[0] as string, TIMEOUT_MS, MAX_ATTEMPTS), { kind: 'offer', resumed: true });
  t.is(calls.get('claim_offer'), 1, 'a claim alone runs the single-device script');
  t.is(calls.get('claim_offers'), undefined);
});
