import { createHash, randomBytes } from 'node:crypto';
import test from 'ava';
import { startBackend } from './helpers/backend.ts';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

test('hello registers the device and the offer carries a working signed URL', async (t) => {
  const backend = await startBackend(t);
  const bytes = randomBytes(200_000);
  await backend.upload('fix-1.bin', bytes);

  const device = await backend.connect('cam_flow_1');
  device.hello('cam_flow_1');
  const welcome = await device.next('welcome');
  t.true(welcome.heartbeatIntervalS > 0);
  const offer = await device.next('offer');
  t.is(offer.patchId, 'fix-1.bin');
  t.is(offer.attempt, 1);
  t.is(offer.size, bytes.length);
  t.is(offer.sha256, sha256(bytes));
  t.true(offer.urlExpiresAt > Date.now());

  const response = await fetch(offer.url);
  t.is(response.status, 200);
  t.is(sha256(Buffer.from(await response.arrayBuffer())), offer.sha256);

  const record = await backend.state.getDevice('cam_flow_1');
  t.truthy(record);
  t.true(record?.online);
  t.deepEqual(record?.inFlight, { patchId: 'fix-1.bin', attempt: 1 });
  t.is(await backend.state.inFlightCount(), 1);
  device.close();
});

test('progress and result move the state forward and clear in-flight', async (t) => {
  const backend = await startBackend(t);
  await backend.upload('fix-2.bin', randomBytes(1000));
  const device = await backend.connect('cam_flow_2');
  device.hello('cam_flow_2');
  const offer = await device.next('offer');
  for (const state of ['downloading', 'verifying', 'applying'] as const) {
    device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state });
  }
  device.send({ type: 'result', patchId: offer.patchId, attempt: offer.attempt, outcome: 'applied' });
  const ack = await device.next('result_ack');
  t.is(ack.state, 'applied');
  t.deepEqual(await backend.state.patchStatus('fix-2.bin', 'cam_flow_2'), { state: 'applied', attempt: 1 });
  t.deepEqual(await backend.state.patchCounts('fix-2.bin'), { applied: 1 });
  t.is(await backend.state.inFlightCount(), 0);
  const record = await backend.state.getDevice('cam_flow_2');
  t.deepEqual(record?.applied, ['fix-2.bin']);
  const timeline = await backend.state.timeline('cam_flow_2');
  t.deepEqual(
    timeline.map((e) => e.state).reverse(),
    ['offered', 'downloading', 'verifying', 'applying', 'applied'],
  );
  device.close();
});

test('duplicate and late results do not double-count', async (t) => {
  const backend = await startBackend(t);
  await backend.upload('fix-3.bin', randomBytes(1000));
  const device = await backend.connect('cam_dup_1');
  device.hello('cam_dup_1');
  const offer = await device.next('offer');
  const result = { type: 'result', patchId: offer.patchId, attempt: offer.attempt, outcome: 'applied' };
  device.send(result);
  device.send(result);
  device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state: 'downloading' });
  device.send(result);
  t.is((await device.next('result_ack')).state, 'applied');
  t.is((await device.next('result_ack')).state, 'applied');
  t.is((await device.next('result_ack')).state, 'applied');
  t.deepEqual(await backend.state.patchCounts('fix-3.bin'), { applied: 1 });
  t.deepEqual(await backend.state.patchStatus('fix-3.bin', 'cam_dup_1'), { state: 'applied', attempt: 1 });
  device.close();
});

test('a result for an attempt never offered gets unknown_patch', async (t) => {
  const backend = await startBackend(t);
  await backend.upload('fix-4.bin', randomBytes(1000));
  const device = await backend.connect('cam_unknown_1');
  device.hello('cam_unknown_1');
  const offer = await device.next('offer');
  device.send({ type: 'result', patchId: offer.patchId, attempt: 7, outcome: 'applied' });
  t.is((await device.next('error')).code, 'unknown_patch');
  device.send({ type: 'result', patchId: 'never-released.bin', attempt: 1, outcome: 'applied' });
  t.is((await device.next('error')).code, 'unknown_patch');
  device.send({ type: 'result', patchId: offer.patchId, attempt: 1, outcome: 'failed' });
  const missingReason = await device.next('error');
  t.is(missingReason.code, 'invalid_message');
  t.deepEqual(await backend.state.patchCounts('fix-4.bin'), { offered: 1 });
  device.close();
});

test('a failed attempt is offered again until the attempt limit', async (t) => {
  const backend = await startBackend(t, { FLEET_MAX_ATTEMPTS: '2' });
  await backend.upload('fix-5.bin', randomBytes(1000));
  const device = await backend.connect('cam_retry_1');
  device.hello('cam_retry_1');
  const first = await device.next('offer');
  device.send({ type: 'result', patchId: first.patchId, attempt: 1, outcome: 'failed', reason: 'apply_failed' });
  t.is((await device.next('result_ack')).state, 'failed');
  const second = await device.next('offer');
  t.is(second.attempt, 2);
  device.send({ type: 'result', patchId: first.patchId, attempt: 2, outcome: 'failed', reason: 'apply_failed' });
  t.is((await device.next('result_ack')).state, 'failed');
  // A late result of the first attempt is acknowledged and changes nothing.
  device.send({ type: 'result', patchId: first.patchId, attempt: 1, outcome: 'applied' });
  t.is((await device.next('result_ack')).state, 'failed');
  t.deepEqual(await backend.state.patchCounts('fix-5.bin'), { failed: 1 });
  t.is(await backend.state.inFlightCount(), 0);
  t.is(device.received.filter((m) => m.type === 'offer').length, 2);
  device.close();
});

test('url_request returns a fresh URL for the attempt in progress', async (t) => {
  const backend = await startBackend(t);
  await backend.upload('fix-6.bin', randomBytes(1000));
  const device = await backend.connect('cam_url_1');
  device.hello('cam_url_1');
  const offer = await device.next('offer');
  device.send({ type: 'url_request', patchId: offer.patchId, attempt: offer.attempt });
  const fresh = await device.next('url');
  t.is(fresh.patchId, offer.patchId);
  t.is((await fetch(fresh.url)).status, 200);
  device.send({ type: 'url_request', patchId: offer.patchId, attempt: 5 });
  t.is((await device.next('error')).code, 'unknown_patch');
  device.close();
});

test('a silent device times out once and its in-flight record is cleared', async (t) => {
  const backend = await startBackend(t, { FLEET_UPDATE_TIMEOUT_MS: '1000', FLEET_MAX_ATTEMPTS: '1' });
  await backend.upload('fix-7.bin', randomBytes(1000));
  const device = await backend.connect('cam_silent_1');
  device.hello('cam_silent_1');
  const offer = await device.next('offer');
  device.send({ type: 'progress', patchId: offer.patchId, attempt: 1, state: 'downloading' });
  while ((await backend.state.patchStatus('fix-7.bin', 'cam_silent_1'))?.state !== 'timed_out') {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.is(await backend.state.inFlightCount(), 0);
  t.deepEqual(await backend.state.patchCounts('fix-7.bin'), { timed_out: 1 });
  t.is(await backend.state.getDevice('cam_silent_1').then((d) => d?.inFlight ?? null), null);
  const timeline = await backend.state.timeline('cam_silent_1');
  t.is(timeline.filter((e) => e.state === 'timed_out').length, 1);
  // The device's late result is still the truth about what it installed.
  device.send({ type: 'result', patchId: offer.patchId, attempt: 1, outcome: 'applied' });
  t.is((await device.next('result_ack')).state, 'applied');
  t.deepEqual(await backend.state.patchCounts('fix-7.bin'), { applied: 1 });
  device.close();
});

test('patches reported in hello count as applied and are not offered', async (t) => {
  const backend = await startBackend(t);
  await backend.upload('fix-8.bin', randomBytes(1000));
  await backend.upload('fix-9.bin', randomBytes(1000));
  const device = await backend.connect('cam_has_1');
  device.hello('cam_has_1', ['fix-8.bin']);
  const offer = await device.next('offer');
  t.is(offer.patchId, 'fix-9.bin');
  t.deepEqual(await backend.state.patchCounts('fix-8.bin'), { applied: 1 });
  device.close();
});

test('a reconnect mid-update gets the same attempt again', async (t) => {
  const backend = await startBackend(t);
  await backend.upload('fix-10.bin', randomBytes(1000));
  const first = await backend.connect('cam_resume_1');
  first.hello('cam_resume_1');
  const offer = await first.next('offer');
  first.send({ type: 'progress', patchId: offer.patchId, attempt: 1, state: 'downloading', bytes: 10 });
  first.close();
  await first.closed;
  const second = await backend.connect('cam_resume_1');
  second.hello('cam_resume_1');
  const again = await second.next('offer');
  t.is(again.patchId, offer.patchId);
  t.is(again.attempt, 1);
  t.deepEqual(await backend.state.patchCounts('fix-10.bin'), { downloading: 1 });
  second.close();
});

test('a second connection of the same device replaces the first', async (t) => {
  const backend = await startBackend(t);
  const first = await backend.connect('cam_twice_1');
  first.hello('cam_twice_1');
  const firstWelcome = await first.next('welcome');
  const second = await backend.connect('cam_twice_1');
  second.hello('cam_twice_1');
  const secondWelcome = await second.next('welcome');
  t.is((await first.closed).code, 4100);
  const record = await backend.state.getDevice('cam_twice_1');
  t.is(record?.session, secondWelcome.sessionId);
  t.not(firstWelcome.sessionId, secondWelcome.sessionId);
  t.true(record?.online);
  second.close();
  await second.closed;
  while ((await backend.state.getDevice('cam_twice_1'))?.online) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.pass();
});

test('heartbeats keep the presence lease alive past its length', async (t) => {
  const backend = await startBackend(t, {
    FLEET_HEARTBEAT_INTERVAL_S: '1',
    FLEET_PRESENCE_LEASE_MS: '2000',
    FLEET_HEARTBEAT_FLUSH_MS: '100',
  });
  const device = await backend.connect('cam_beat_1');
  device.hello('cam_beat_1');
  await device.next('welcome');
  const key = backend.state.keys.presence('cam_beat_1');
  // Five heartbeats half a second apart span 2.5 s, longer than the 2 s lease.
  for (let i = 0; i < 5; i++) {
    device.send({ type: 'heartbeat' });
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  t.true((await backend.state.redis.pttl(key)) > 0);
  t.true((await backend.state.getDevice('cam_beat_1'))?.online);
  device.close();
});
