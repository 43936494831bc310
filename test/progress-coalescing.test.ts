import { randomBytes } from 'node:crypto';
import test from 'ava';
import { startBackend, type TestBackend } from './helpers/backend.ts';
import { until } from './helpers/rollouts.ts';
import { createKeys } from '../storage/keys.ts';

/** Short flushes keep the tests quick; the default is 1 s. */
const FLUSH_ENV = { FLEET_HEARTBEAT_FLUSH_MS: '100' };

/** Reads the device's update deadline in ms on the Redis clock, or null when it has no update in flight. */
async function deadlineOf(backend: TestBackend, deviceId: string): Promise<number | null> {
  const score = await backend.state.redis.zscore(createKeys(backend.config.keyPrefix).inFlightUpdates, deviceId);
  return score === null ? null : Number(score);
}

async function offered(backend: TestBackend, patchId: string, deviceId: string) {
  await backend.upload(patchId, randomBytes(1000));
  const device = await backend.connect(deviceId);
  device.hello(deviceId);
  const offer = await device.next('offer');
  return { device, offer };
}

test('repeated progress pushes the deadline out after a flush', async (t) => {
  const backend = await startBackend(t, FLUSH_ENV);
  const { device, offer } = await offered(backend, 'repeat-1.bin', 'cam_repeat_1');
  device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state: 'downloading', bytes: 0 });
  const first = await until(t, 'the downloading state', () => backend.state.patchStatus('repeat-1.bin', 'cam_repeat_1'), (s) => s?.state === 'downloading');
  t.deepEqual(first, { state: 'downloading', attempt: 1 });
  const before = await deadlineOf(backend, 'cam_repeat_1');
  t.not(before, null);

  for (let bytes = 100; bytes <= 500; bytes += 100) {
    device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state: 'downloading', bytes });
  }
  const after = await until(t, 'a later deadline', () => deadlineOf(backend, 'cam_repeat_1'), (d) => d !== null && d > (before ?? 0));
  t.true((after ?? 0) > (before ?? 0));

  t.deepEqual(await backend.state.patchStatus('repeat-1.bin', 'cam_repeat_1'), { state: 'downloading', attempt: 1 });
  t.deepEqual(await backend.state.patchCounts('repeat-1.bin'), { downloading: 1 });
  const states = (await backend.state.timeline('cam_repeat_1')).map((entry) => entry.state);
  t.deepEqual(states, ['downloading', 'offered']);
  t.deepEqual(device.received.filter((m) => m.type === 'error'), []);
  device.close();
});

test('repeated progress is kept when the device disconnects', async (t) => {
  const backend = await startBackend(t, FLUSH_ENV);
  const { device, offer } = await offered(backend, 'repeat-2.bin', 'cam_repeat_2');
  device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state: 'downloading', bytes: 0 });
  await until(t, 'the downloading state', () => backend.state.patchStatus('repeat-2.bin', 'cam_repeat_2'), (s) => s?.state === 'downloading');
  const before = await deadlineOf(backend, 'cam_repeat_2');

  device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state: 'downloading', bytes: 700 });
  device.close();
  await device.closed;
  const after = await until(t, 'a later deadline', () => deadlineOf(backend, 'cam_repeat_2'), (d) => d !== null && d > (before ?? 0));
  t.true((after ?? 0) > (before ?? 0));
  t.deepEqual(await backend.state.patchStatus('repeat-2.bin', 'cam_repeat_2'), { state: 'downloading', attempt: 1 });
});

test('a new stage is stored before the next reply', async (t) => {
  const backend = await startBackend(t, FLUSH_ENV);
  const { device, offer } = await offered(backend, 'stage-1.bin', 'cam_stage_1');
  device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state: 'downloading' });
  device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state: 'downloading', bytes: 10 });
  device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state: 'verifying' });
  // The error for a patch that was never offered comes after every earlier message was handled.
  device.send({ type: 'progress', patchId: 'never-offered.bin', attempt: 1, state: 'downloading' });
  const error = await device.next('error');
  t.is(error.code, 'unknown_patch');
  t.deepEqual(await backend.state.patchStatus('stage-1.bin', 'cam_stage_1'), { state: 'verifying', attempt: 1 });

  const response = await fetch(`${backend.apiUrl}/v1/devices/cam_stage_1`, {
    headers: { authorization: `Bearer ${await backend.operatorToken('read')}` },
  });
  t.is(response.status, 200);
  const record = (await response.json()) as { timeline: { state: string }[] };
  t.deepEqual(
    record.timeline.map((entry) => entry.state),
    ['verifying', 'downloading', 'offered'],
  );
  device.close();
});

test('result is acknowledged once stored after coalesced progress', async (t) => {
  const backend = await startBackend(t, FLUSH_ENV);
  const { device, offer } = await offered(backend, 'result-1.bin', 'cam_result_1');
  device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state: 'applying' });
  device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state: 'applying' });
  device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state: 'downloading', bytes: 5 });
  device.send({ type: 'result', patchId: offer.patchId, attempt: offer.attempt, outcome: 'applied' });
  const ack = await device.next('result_ack');
  t.is(ack.state, 'applied');
  t.deepEqual(await backend.state.patchStatus('result-1.bin', 'cam_result_1'), { state: 'applied', attempt: 1 });
  t.deepEqual(await backend.state.patchCounts('result-1.bin'), { applied: 1 });
  t.is(await deadlineOf(backend, 'cam_result_1'), null);

  // A stage repeated after the result must not bring the finished update back once flushed.
  device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state: 'applying' });
  device.send({ type: 'progress', patchId: 'never-offered.bin', attempt: 1, state: 'downloading' });
  t.is((await device.next('error')).code, 'unknown_patch');
  await backend.replica.stop();
  t.is(await deadlineOf(backend, 'cam_result_1'), null);
  t.deepEqual(await backend.state.patchCounts('result-1.bin'), { applied: 1 });
});

test('extendDeadlines moves only unfinished current attempts', async (t) => {
  const backend = await startBackend(t, FLUSH_ENV);
  const { device, offer } = await offered(backend, 'extend-1.bin', 'cam_extend_1');
  const before = await deadlineOf(backend, 'cam_extend_1');
  t.not(before, null);

  t.is(await backend.state.extendDeadlines([{ deviceId: 'cam_extend_1', patchId: 'extend-1.bin', attempt: 2 }], 600_000), 0);
  t.is(await backend.state.extendDeadlines([{ deviceId: 'cam_extend_1', patchId: 'other.bin', attempt: 1 }], 600_000), 0);
  t.is(await deadlineOf(backend, 'cam_extend_1'), before);

  t.is(await backend.state.extendDeadlines([{ deviceId: 'cam_extend_1', patchId: 'extend-1.bin', attempt: 1 }], 600_000), 1);
  const moved = await deadlineOf(backend, 'cam_extend_1');
  t.true((moved ?? 0) > (before ?? 0));

  device.send({ type: 'result', patchId: offer.patchId, attempt: offer.attempt, outcome: 'applied' });
  await device.next('result_ack');
  t.is(await backend.state.extendDeadlines([{ deviceId: 'cam_extend_1', patchId: 'extend-1.bin', attempt: 1 }], 600_000), 0);
  t.is(await deadlineOf(backend, 'cam_extend_1'), null);
  device.close();
});

test('metrics count messages by type', async (t) => {
  const backend = await startBackend(t, FLUSH_ENV);
  const { device, offer } = await offered(backend, 'metrics-1.bin', 'cam_metrics_1');
  device.send({ type: 'heartbeat' });
  device.send({ type: 'heartbeat' });
  device.send({ type: 'progress', patchId: offer.patchId, attempt: offer.attempt, state: 'downloading' });
  device.send({ type: 'progress', patchId: 'never-offered.bin', attempt: 1, state: 'downloading' });
  await device.next('error');
  const text = await (await fetch(`${backend.apiUrl}/metrics`)).text();
  t.regex(text, /fleet_messages_in_total\{type="hello"\} 1\n/);
  t.regex(text, /fleet_messages_in_total\{type="heartbeat"\} 2\n/);
  t.regex(text, /fleet_messages_in_total\{type="progress"\} 2\n/);
  t.regex(text, /fleet_messages_out_total\{type="offer"\} 1\n/);
  t.regex(text, /fleet_messages_out_total\{type="error"\} 1\n/);
  t.regex(text, /# TYPE fleet_handler_seconds histogram/);
  device.close();
});
