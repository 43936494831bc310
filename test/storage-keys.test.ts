import test from 'ava';
import { createKeys } from '../storage/keys.ts';
import { connectRedis } from '../storage/redis.ts';
import { REDIS_URL, uniqueName } from './helpers/backend.ts';

// The Lua prelude builds keys itself; this evaluates its builders in Redis and compares them with keys.ts.
test('Lua key builders match keys.ts', async (t) => {
  const redis = connectRedis(REDIS_URL, 'test-keys');
  t.teardown(() => redis.disconnect());
  const prefix = `test:${uniqueName('keys')}:`;
  const keys = createKeys(prefix);
  const { readFileSync } = await import('node:fs');
  const prelude = readFileSync(new URL('../storage/scripts/prelude.lua', import.meta.url), 'utf8');
  const probe = `${prelude}
return { k_known_devices(), k_patch_files(), k_catalog_version(), k_in_flight(), k_events(),
  k_model_counts(), k_firmware_counts(),
  k_device('cam_1'), k_device_applied('cam_1'), k_device_timeline('cam_1'), k_presence('cam_1'),
  k_patch('p.bin'), k_patch_status('p.bin'), k_patch_counts('p.bin'),
  k_rollouts(), k_rollout_seq(), k_rollout_queues(), k_patch_rollout('p.bin'), k_rollout('r1'),
  k_rollout_targets('r1'), k_rollout_devices('r1'), k_rollout_counts('r1'), k_rollout_in_flight('r1'),
  k_rollout_waiting('r1'), k_rollout_held('r1') }`;
  const fromLua = await redis.eval(probe, 0, prefix);
  t.deepEqual(fromLua, [
    keys.knownDevices,
    keys.patchFiles,
    keys.catalogVersion,
    keys.inFlightUpdates,
    keys.events,
    keys.modelCounts,
    keys.firmwareCounts,
    keys.device('cam_1'),
    keys.deviceApplied('cam_1'),
    keys.deviceTimeline('cam_1'),
    keys.presence('cam_1'),
    keys.patch('p.bin'),
    keys.patchStatus('p.bin'),
    keys.patchCounts('p.bin'),
    keys.rollouts,
    keys.rolloutSeq,
    keys.rolloutQueues,
    keys.patchRollout('p.bin'),
    keys.rollout('r1'),
    keys.rolloutTargets('r1'),
    keys.rolloutDevices('r1'),
    keys.rolloutCounts('r1'),
    keys.rolloutInFlight('r1'),
    keys.rolloutWaiting('r1'),
    keys.rolloutHeld('r1'),
  ]);
});

test('operator-facing key names stay recognisable', (t) => {
  const keys = createKeys('fleet:');
  t.is(keys.knownDevices, 'fleet:known_devices');
  t.is(keys.patchFiles, 'fleet:patch_files');
  t.is(keys.inFlightUpdates, 'fleet:in_flight_updates');
  t.is(keys.patchStatus('fix.bin'), 'fleet:patch_status:fix.bin');
});

test('scripts heal after SCRIPT FLUSH', async (t) => {
  const redis = connectRedis(REDIS_URL, 'test-flush');
  t.teardown(() => redis.disconnect());
  const prefix = `test:${uniqueName('flush')}:`;
  const { StateStore } = await import('../storage/state-store.ts');
  const state = new StateStore(redis, createKeys(prefix));
  t.is(await state.expireInFlight(10).then((r) => r.length), 0);
  await redis.script('FLUSH');
  t.is(await state.expireInFlight(10).then((r) => r.length), 0);
});
