import { randomBytes } from 'node:crypto';
import test from 'ava';
import { everyCameraApplied, fleetDeviceIds, SimulatedCamera, SimulatedFleet } from '../simulator/index.ts';
import { startBackend, TEST_SECURITY, type TestBackend } from './helpers/backend.ts';

async function fleetFor(
  t: { teardown(fn: () => Promise<void>): void },
  backend: TestBackend,
  options: Partial<ConstructorParameters<typeof SimulatedFleet>[0]> & { count: number },
) {
  const tokens = await backend.tokens(fleetDeviceIds(options));
  const fleet = new SimulatedFleet({
    url: backend.url,
    applyMs: 20,
    connectsPerSecond: 500,
    signingPublicKey: TEST_SECURITY.publicKey,
    tokenFor: (id) => tokens.get(id) ?? '',
    ...options,
  });
  t.teardown(() => fleet.stop());
  return fleet;
}

async function assertBackendAgrees(t: import('ava').ExecutionContext, backend: TestBackend, fleet: SimulatedFleet, patchIds: string[]) {
  for (const id of patchIds) {
    t.deepEqual(await backend.state.patchCounts(id), { applied: fleet.cameras.length }, id);
  }
  for (const camera of fleet.cameras) {
    const record = await backend.state.getDevice(camera.deviceId);
    t.deepEqual(record?.applied, [...camera.appliedPatches].sort(), camera.deviceId);
    for (const id of patchIds) t.is(camera.applyCount(id), 1, `${camera.deviceId} applied ${id} once`);
  }
  t.is(await backend.state.inFlightCount(), 0);
  t.is(fleet.stats().duplicates, 0);
}

test('50 cameras and two uploaded patches end with every camera applied', async (t) => {
  const backend = await startBackend(t);
  const fleet = await fleetFor(t, backend, { count: 50 });
  await fleet.start();
  await fleet.waitFor((s) => s.online === 50);
  const patches = ['e2e-a.bin', 'e2e-b.bin'];
  await backend.upload('e2e-a.bin', randomBytes(300_000));
  await backend.upload('e2e-b.bin', randomBytes(400_000));
  await fleet.waitFor(everyCameraApplied(patches));
  while ((await backend.state.inFlightCount()) > 0) await new Promise((r) => setTimeout(r, 50));
  await assertBackendAgrees(t, backend, fleet, patches);
  for (const camera of fleet.cameras) t.deepEqual([...camera.appliedPatches], patches);
});

test('cameras that drop mid-download resume and complete', async (t) => {
  const backend = await startBackend(t);
  const fleet = await fleetFor(t, backend, { count: 20, disconnectRate: 1, downloadBytesPerSecond: 2_000_000 });
  await fleet.start();
  await fleet.waitFor((s) => s.online === 20);
  await backend.upload('resume-a.bin', randomBytes(500_000));
  await fleet.waitFor(everyCameraApplied(['resume-a.bin']));
  while ((await backend.state.inFlightCount()) > 0) await new Promise((r) => setTimeout(r, 50));
  const stats = fleet.stats();
  t.true(stats.reconnects >= 20, `reconnects ${stats.reconnects}`);
  t.true(stats.resumedDownloads >= 1, `resumed ${stats.resumedDownloads}`);
  await assertBackendAgrees(t, backend, fleet, ['resume-a.bin']);
});

test('a direct bucket upload and a direct Redis push reach every camera', async (t) => {
  const backend = await startBackend(t);
  const fleet = await fleetFor(t, backend, { count: 30 });
  await fleet.start();
  await fleet.waitFor((s) => s.online === 30);
  await backend.putDirect('via-bucket.bin', randomBytes(200_000));
  await fleet.waitFor(everyCameraApplied(['via-bucket.bin']));

  // An object the scanner has not seen yet, released by pushing its id with RPUSH as operators do by hand.
  await backend.state.redis.rpush(backend.state.keys.patchFiles, 'via-redis.bin');
  await backend.putDirect('via-redis.bin', randomBytes(200_000));
  await fleet.waitFor(everyCameraApplied(['via-bucket.bin', 'via-redis.bin']));
  while ((await backend.state.inFlightCount()) > 0) await new Promise((r) => setTimeout(r, 50));
  await assertBackendAgrees(t, backend, fleet, ['via-bucket.bin', 'via-redis.bin']);
});

test('a camera that connects late gets both patches in order', async (t) => {
  const backend = await startBackend(t);
  await backend.upload('late-a.bin', randomBytes(100_000));
  await backend.upload('late-b.bin', randomBytes(100_000));
  const [token] = (await backend.tokens(['cam_late_e2e'])).values();
  const camera = new SimulatedCamera({
    url: backend.url,
    deviceId: 'cam_late_e2e',
    token,
    applyMs: 10,
    signingPublicKey: TEST_SECURITY.publicKey,
  });
  t.teardown(() => camera.stop());
  const done = new Promise<void>((resolve) => {
    camera.on('applied', () => {
      if (camera.appliedPatches.length === 2) resolve();
    });
  });
  await camera.start();
  await done;
  t.deepEqual([...camera.appliedPatches], ['late-a.bin', 'late-b.bin']);
});
