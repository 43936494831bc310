import { randomBytes } from 'node:crypto';
import test from 'ava';
import { startBackend } from './helpers/backend.ts';
import { createRollout, finish, offersOf, readRollout, sleep, until, welcomeAll } from './helpers/rollouts.ts';

test('silent device times out, slot frees once', async (t) => {
  const backend = await startBackend(t);
  const [silent, patient] = await welcomeAll(backend, ['cam_to_1', 'cam_to_2']);
  if (!silent || !patient) return;
  const rollout = await createRollout(backend, { patchId: 'to-1.bin', maxInFlight: 1, timeoutS: 1, maxAttempts: 1 });
  await backend.upload('to-1.bin', randomBytes(1000));
  const [first] = await until(t, 'the first offer', () => offersOf([silent, patient]), (o) => o.length === 1);
  if (!first) return;
  const waiter = first.device === silent ? patient : silent;
  const quiet = first.device;
  const quietId = quiet === silent ? 'cam_to_1' : 'cam_to_2';

  // The quiet device sends nothing; after its timeout the other device gets the slot.
  const [second] = await until(t, 'the offer to the waiting device', () => offersOf([waiter]), (o) => o.length === 1);
  let state = await readRollout(backend, rollout.id);
  t.is(state.releases, 1);
  t.is(state.claims, 2);
  t.is(state.inFlight, 1);
  t.is(state.counts.timed_out, 1);
  t.deepEqual(await backend.state.patchStatus('to-1.bin', quietId), { state: 'timed_out', attempt: 1 });

  // A late result is still the truth about the device, but frees no second slot.
  await finish(quiet, first.offer, 'applied');
  state = await readRollout(backend, rollout.id);
  t.is(state.releases, 1);
  t.is(state.inFlight, 1);
  t.is(state.counts.applied, 1);
  t.is(state.counts.timed_out, 0);
  if (!second) return;
  await finish(waiter, second.offer, 'applied');
  state = await readRollout(backend, rollout.id);
  t.is(state.releases, 2);
  t.is(state.claims - state.releases, state.inFlight);
  t.is(state.inFlight, 0);
  t.is(state.state, 'completed');
  const timeline = await backend.state.timeline(quietId);
  t.deepEqual(timeline.map((e) => e.state), ['applied', 'timed_out', 'offered']);
  t.true(timeline.every((e) => e.rolloutId === rollout.id));
  silent.close();
  patient.close();
});

test('retries back off and stop at the limit', async (t) => {
  const backend = await startBackend(t);
  const [device] = await welcomeAll(backend, ['cam_retry_r1']);
  if (!device) return;
  const rollout = await createRollout(backend, { patchId: 'retry-1.bin', maxAttempts: 3, retryBackoffS: 0.3 });
  await backend.upload('retry-1.bin', randomBytes(1000));
  const times: number[] = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    const offers = await until(t, `attempt ${attempt}`, () => offersOf([device]), (o) => o.length === attempt);
    times.push(Date.now());
    const offer = offers[attempt - 1]?.offer;
    if (!offer) return;
    t.is(offer.attempt, attempt);
    await finish(device, offer, attempt === 2 ? 'download_failed' : 'apply_failed');
  }
  await sleep(1500);
  t.is(offersOf([device]).length, 3, 'no fourth attempt');
  // Backoff doubles: 0.3 s after the first failure, 0.6 s after the second.
  t.true((times[1] ?? 0) - (times[0] ?? 0) >= 250, `gap 1: ${(times[1] ?? 0) - (times[0] ?? 0)} ms`);
  t.true((times[2] ?? 0) - (times[1] ?? 0) >= 550, `gap 2: ${(times[2] ?? 0) - (times[1] ?? 0)} ms`);
  const state = await readRollout(backend, rollout.id);
  t.is(state.counts.failed, 1);
  t.is(state.held, 0);
  const held = (await backend.state.timeline('cam_retry_r1')).filter((e) => e.state === 'held');
  t.is(held.length, 2);
  t.regex(held[1]?.detail ?? '', /^apply_failed, next attempt in 1 s/);
  device.close();
});

test('rejected and bad signature are not retried', async (t) => {
  const backend = await startBackend(t);
  const devices = await welcomeAll(backend, ['cam_rej_1', 'cam_rej_2']);
  const rollout = await createRollout(backend, { patchId: 'rej-1.bin', maxAttempts: 5, retryBackoffS: 0.1 });
  await backend.upload('rej-1.bin', randomBytes(1000));
  const offers = await until(t, 'two offers', () => offersOf(devices), (o) => o.length === 2);
  const [a, b] = offers;
  if (!a || !b) return;
  await finish(a.device, a.offer, 'rejected');
  await finish(b.device, b.offer, 'signature_invalid');
  await sleep(800);
  t.is(offersOf(devices).length, 2);
  const state = await readRollout(backend, rollout.id);
  t.is(state.counts.failed, 2);
  t.is(state.held, 0);
  for (const device of devices) device.close();
});
