import { randomBytes } from 'node:crypto';
import test from 'ava';
import { startBackend, type TestBackend } from './helpers/backend.ts';
import { RawDevice } from './helpers/device-client.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Deletes every key of the backend's prefix, as a Redis restart without persistence would. */
async function loseRedisData(backend: TestBackend): Promise<void> {
  const keys = await backend.state.redis.keys(`${backend.state.keys.prefix}*`);
  if (keys.length > 0) await backend.state.redis.del(...keys);
}

async function waitReady(backend: TestBackend): Promise<void> {
  while ((await fetch(`${backend.baseUrl}/readyz`)).status !== 200) await sleep(50);
}

test('data loss closes devices with 4003 and re-admits them', async (t) => {
  const backend = await startBackend(t);
  await waitReady(backend);
  const token = await backend.deviceTokens.issue('cam_loss_1', (await backend.state.provisionDevice('cam_loss_1')).generation);
  const device = await RawDevice.connect(backend.url, token);
  device.hello('cam_loss_1');
  await device.next('welcome');

  await loseRedisData(backend);
  const closed = await device.closed;
  t.is(closed.code, 4003);
  t.is(await backend.state.getDevice('cam_loss_1'), null);

  const again = await RawDevice.connect(backend.url, token);
  t.teardown(() => again.close());
  again.hello('cam_loss_1', ['before-loss.bin']);
  await again.next('welcome');
  const record = await backend.state.getDevice('cam_loss_1');
  t.is(record?.enrollment, 'accepted');
  t.deepEqual(record?.applied, ['before-loss.bin']);
});

test('heartbeat after data loss does not replace the session', async (t) => {
  const backend = await startBackend(t, { FLEET_HEARTBEAT_INTERVAL_S: '1', FLEET_PRESENCE_LEASE_MS: '3000', FLEET_HEARTBEAT_FLUSH_MS: '200' });
  const device = await backend.connect('cam_loss_2');
  device.hello('cam_loss_2');
  await device.next('welcome');
  await backend.state.redis.del(backend.state.keys.presence('cam_loss_2'), backend.state.keys.device('cam_loss_2'));
  device.send({ type: 'heartbeat' });
  const closed = await Promise.race([device.closed, sleep(2500).then(() => null)]);
  t.not(closed?.code, 4100, 'a lost record must not read as a newer session');
  device.close();
});

test('upload into an emptied catalog keeps release order', async (t) => {
  const backend = await startBackend(t, { FLEET_BUCKET_SCAN_MS: '3600000' });
  await backend.upload('order-loss-a.bin', randomBytes(100));
  await sleep(1100);
  await loseRedisData(backend);
  await backend.upload('order-loss-b.bin', randomBytes(100));
  t.deepEqual(await backend.state.catalog(), ['order-loss-a.bin', 'order-loss-b.bin']);
  t.is((await backend.state.getPatch('order-loss-a.bin'))?.state, 'ready');
});
