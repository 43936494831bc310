import { randomBytes } from 'node:crypto';
import test from 'ava';
import { everyCameraApplied, fleetDeviceIds, SimulatedFleet } from '../simulator/index.ts';
import { parseRolloutSpec, RolloutStore } from '../storage/rollouts.ts';
import { TEST_SECURITY } from './helpers/backend.ts';
import { startTestCluster } from './helpers/cluster.ts';

test('cap holds for 500 devices on three replicas', async (t) => {
  t.timeout(120_000);
  const setup = await startTestCluster(t, { replicas: 3 });
  const count = 500;
  const cap = 25;
  const tokens = await setup.tokens(fleetDeviceIds({ count, prefix: 'cam_cap_' }));
  const fleet = new SimulatedFleet({
    url: setup.cluster.url,
    count,
    prefix: 'cam_cap_',
    applyMs: 30,
    connectsPerSecond: 1000,
    backoffCapMs: 2000,
    signingPublicKey: TEST_SECURITY.publicKey,
    tokenFor: (id) => tokens.get(id) ?? '',
  });
  t.teardown(() => fleet.stop());
  await fleet.start();
  await fleet.waitFor((s) => s.online === count);

  const rollouts = new RolloutStore(setup.state);
  const rollout = await rollouts.create(parseRolloutSpec({ patchId: 'cap-1.bin', maxInFlight: cap }));
  t.is(rollout.targetCount, count);
  await setup.upload('cap-1.bin', randomBytes(20_000));

  // Every replica fans the release out to its devices at once; sample the slots while they work through it.
  let sampledMax = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      sampledMax = Math.max(sampledMax, (await setup.state.redis.scard(setup.state.keys.rolloutInFlight(rollout.id))));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  await fleet.waitFor(everyCameraApplied(['cap-1.bin']), { signal: AbortSignal.timeout(90_000) });
  sampling = false;
  await sampler;

  const done = await rollouts.get(rollout.id);
  t.truthy(done);
  if (!done) return;
  t.true(sampledMax <= cap, `sampled ${sampledMax} in flight`);
  t.true(done.maxInFlightSeen <= cap, `max seen at a claim ${done.maxInFlightSeen}`);
  t.is(done.maxInFlightSeen, cap, 'the cap was reached, so the test did test it');
  t.is(done.counts.applied, count);
  t.is(done.claims, count, 'one attempt per device: waiting never cost an attempt');
  t.is(done.releases, count);
  t.is(done.inFlight, 0);
  t.is(done.waiting, 0);
  t.is(done.state, 'completed');
  t.deepEqual(await setup.state.patchCounts('cap-1.bin'), { applied: count });
  t.is(fleet.stats().duplicates, 0);
});
