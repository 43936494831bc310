import { randomBytes } from 'node:crypto';
import test from 'ava';
import { RolloutStore } from '../storage/rollouts.ts';
import { startBackend } from './helpers/backend.ts';
import { createRollout, finish, offersOf, readRollout, sleep, until, welcomeAll } from './helpers/rollouts.ts';

const ids = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i + 1}`);

test('failure threshold pauses with a reason', async (t) => {
  const backend = await startBackend(t);
  const devices = await welcomeAll(backend, ids('cam_thr_', 12));
  const rollout = await createRollout(backend, {
    patchId: 'thr-1.bin',
    maxInFlight: 4,
    failureThreshold: '25%',
    failureMinDevices: 3,
    retryBackoffS: 600,
  });
  await backend.upload('thr-1.bin', randomBytes(1000));
  const first = await until(t, 'four offers', () => offersOf(devices), (o) => o.length === 4);
  const [a, b, c] = first;
  if (!a || !b || !c) return;

  await finish(a.device, a.offer, 'applied');
  await finish(b.device, b.offer, 'apply_failed');
  // Two devices finished, fewer than the minimum of three, so one failure in two does not pause yet.
  t.is((await readRollout(backend, rollout.id)).state, 'running');
  await finish(c.device, c.offer, 'download_failed');
  const paused = await until(t, 'the pause', () => readRollout(backend, rollout.id), (r) => r.state === 'paused');
  t.is(paused.pausedBy, 'failures');
  t.is(paused.reason, 'failure threshold reached: 2 of 3 devices (66%) failed their last attempt, threshold 25% after 3 devices');

  // The devices still in flight finish and report; nobody new starts, and nothing in flight is left.
  const offeredAtPause = offersOf(devices).length;
  const finished = new Set([a.offer, b.offer, c.offer]);
  for (const { device, offer } of offersOf(devices)) {
    if (!finished.has(offer)) await finish(device, offer, 'applied');
  }
  await sleep(500);
  const after = await readRollout(backend, rollout.id);
  t.is(offersOf(devices).length, offeredAtPause, 'the slots freed after the pause went to nobody');
  t.is(after.state, 'paused');
  t.is(after.inFlight, 0);
  t.is(after.held, 2, 'the failed devices wait for their retry');
  t.is(after.counts.applied, offeredAtPause - 2);
  t.is(after.waiting, 12 - offeredAtPause);
  for (const device of devices) device.close();
});

test('pause stops starts and resume continues', async (t) => {
  const backend = await startBackend(t);
  const devices = await welcomeAll(backend, ids('cam_pause_', 5));
  const rollouts = new RolloutStore(backend.state);
  const rollout = await createRollout(backend, { patchId: 'pause-1.bin', maxInFlight: 2 });
  await backend.upload('pause-1.bin', randomBytes(1000));
  const first = await until(t, 'two offers', () => offersOf(devices), (o) => o.length === 2);
  t.deepEqual(await rollouts.pause(rollout.id, 'checking the canaries'), { kind: 'ok', state: 'paused' });
  t.is((await readRollout(backend, rollout.id)).reason, 'checking the canaries');

  for (const { device, offer } of first) await finish(device, offer, 'applied');
  await sleep(600);
  const paused = await readRollout(backend, rollout.id);
  t.is(offersOf(devices).length, 2, 'no device starts while the rollout is paused');
  t.is(paused.counts.applied, 2, 'attempts in flight finish and count');
  t.is(paused.waiting, 3);
  t.is(paused.counts.failed, 0, 'waiting is not a failure');

  t.deepEqual(await rollouts.resume(rollout.id), { kind: 'ok', state: 'running' });
  t.is((await readRollout(backend, rollout.id)).reason, null);
  const next = await until(t, 'two more offers', () => offersOf(devices), (o) => o.length === 4);
  t.deepEqual(next.map((o) => o.offer.attempt), [1, 1, 1, 1]);
  t.deepEqual(await rollouts.pause('r999', 'x'), { kind: 'not_found' });
  for (const device of devices) device.close();
});

test('cancel finishes in-flight, moves waiting on', async (t) => {
  const backend = await startBackend(t);
  const devices = await welcomeAll(backend, ids('cam_cancel_', 5));
  const rollouts = new RolloutStore(backend.state);
  const rollout = await createRollout(backend, { patchId: 'cancel-1.bin', maxInFlight: 2, retryBackoffS: 0.1 });
  await backend.upload('cancel-1.bin', randomBytes(1000));
  await backend.upload('cancel-2.bin', randomBytes(1000));
  const inFlight = await until(t, 'two offers', () => offersOf(devices, 'cancel-1.bin'), (o) => o.length === 2);
  t.deepEqual(await rollouts.cancel(rollout.id, 'wrong build'), { kind: 'ok', state: 'cancelled' });

  // The three waiting devices skip the cancelled patch and get the next one at once.
  const moved = await until(t, 'offers of the next patch', () => offersOf(devices, 'cancel-2.bin'), (o) => o.length === 3);
  t.false(moved.some((m) => inFlight.some((f) => f.device === m.device)));

  // The two in flight finish and report: one applies, one fails and is not retried.
  const [ok, bad] = inFlight;
  if (!ok || !bad) return;
  await finish(ok.device, ok.offer, 'applied');
  await finish(bad.device, bad.offer, 'apply_failed');
  await until(t, 'all five on the next patch', () => offersOf(devices, 'cancel-2.bin'), (o) => o.length === 5);
  await sleep(300);
  t.is(offersOf(devices, 'cancel-1.bin').length, 2, 'the failed attempt was not retried');

  const cancelled = await readRollout(backend, rollout.id);
  t.is(cancelled.state, 'cancelled');
  t.is(cancelled.reason, 'wrong build');
  t.is(cancelled.counts.cancelled, 3);
  t.is(cancelled.counts.applied, 1);
  t.is(cancelled.counts.failed, 1);
  t.is(cancelled.inFlight, 0);
  const waitingDevice = moved[0]?.device;
  const waitingId = devices.indexOf(waitingDevice as never);
  const timeline = await backend.state.timeline(`cam_cancel_${waitingId + 1}`);
  const entry = timeline.find((e) => e.state === 'cancelled');
  t.is(entry?.rolloutId, rollout.id);
  t.is(entry?.patchId, 'cancel-1.bin');
  t.deepEqual(await rollouts.resume(rollout.id), { kind: 'invalid', state: 'cancelled' });
  for (const device of devices) device.close();
});
