import { randomBytes } from 'node:crypto';
import test from 'ava';
import { RolloutStore } from '../storage/rollouts.ts';
import { startBackend } from './helpers/backend.ts';
import { createRollout, finish, offersOf, readRollout, sleep, until, welcomeAll } from './helpers/rollouts.ts';

const ids = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i + 1}`);

test('waves open only on success', async (t) => {
  const backend = await startBackend(t);
  const devices = await welcomeAll(backend, ids('cam_wave_', 6));
  const rollout = await createRollout(backend, { patchId: 'wave-1.bin', waves: ['1', '50%'], waveSuccess: '100%', maxAttempts: 1 });
  t.deepEqual(rollout.strategy.waveSizes, [1, 3]);
  await backend.upload('wave-1.bin', randomBytes(1000));

  const canary = await until(t, 'the canary offer', () => offersOf(devices, 'wave-1.bin'), (o) => o.length >= 1);
  await sleep(500);
  t.is(offersOf(devices).length, 1, 'only the canary is offered the patch');
  const waiting = await readRollout(backend, rollout.id);
  t.is(waiting.waiting, 5);
  t.is(waiting.counts.waiting, 5);
  t.is(waiting.started, 1);

  const first = canary[0];
  if (!first) return;
  await finish(first.device, first.offer, 'applied');
  const second = await until(t, 'the second wave', () => offersOf(devices, 'wave-1.bin'), (o) => o.length >= 3);
  await sleep(500);
  t.is(offersOf(devices).length, 3, 'the second wave holds three devices in all');
  t.is((await readRollout(backend, rollout.id)).wave, 2);

  const [, applies, fails] = second;
  if (!applies || !fails) return;
  await finish(fails.device, fails.offer, 'apply_failed');
  await finish(applies.device, applies.offer, 'applied');
  const paused = await until(t, 'the wave pause', () => readRollout(backend, rollout.id), (r) => r.state === 'paused');
  t.is(paused.pausedBy, 'wave');
  t.regex(paused.reason ?? '', /wave 2 ended with 2 of 3 devices applied/);
  await sleep(500);
  t.is(offersOf(devices).length, 3, 'no device of the next wave starts while the wave misses its threshold');

  const resumed = await new RolloutStore(backend.state).resume(rollout.id);
  t.deepEqual(resumed, { kind: 'ok', state: 'running' });
  const all = await until(t, 'the last wave', () => offersOf(devices, 'wave-1.bin'), (o) => o.length >= 6);
  t.deepEqual(all.map((o) => o.offer.attempt), [1, 1, 1, 1, 1, 1]);
  t.is(new Set(all.map((o) => o.device)).size, 6);
  t.is((await readRollout(backend, rollout.id)).wave, 3);
  for (const device of devices) device.close();
});

test('rate limit spreads first attempts', async (t) => {
  const backend = await startBackend(t);
  const devices = await welcomeAll(backend, ids('cam_rate_', 6));
  // 120 a minute is 2 a second, with a burst of 2.
  await createRollout(backend, { patchId: 'rate-1.bin', ratePerMinute: 120 });
  await backend.upload('rate-1.bin', randomBytes(1000));
  const started = Date.now();
  await until(t, 'the burst', () => offersOf(devices), (o) => o.length >= 2);
  await sleep(200);
  t.true(offersOf(devices).length <= 3, `offers right after the release: ${offersOf(devices).length}`);
  await until(t, 'every offer', () => offersOf(devices), (o) => o.length === 6);
  // Four offers after the burst need four tokens at one per 500 ms.
  t.true(Date.now() - started >= 1500, `six offers took ${Date.now() - started} ms`);
  for (const device of devices) device.close();
});
