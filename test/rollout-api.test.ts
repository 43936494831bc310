import { randomBytes } from 'node:crypto';
import test from 'ava';
import { startBackend, type TestBackend } from './helpers/backend.ts';
import { finish, offersOf, until, welcomeAll } from './helpers/rollouts.ts';

interface Call {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; message: string; value?: unknown } };
}

async function call(backend: TestBackend, token: string, method: string, path: string, body?: unknown): Promise<Call> {
  const response = await fetch(`${backend.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : {} };
}

test('rollout routes create, show and control', async (t) => {
  const backend = await startBackend(t);
  const operator = await backend.operatorToken('operator');
  const reader = await backend.operatorToken('read');
  const devices = await welcomeAll(backend, ['cam_api_r1', 'cam_api_r2', 'cam_api_r3']);

  const created = await call(backend, operator, 'POST', '/v1/rollouts', {
    patchId: 'api-r1.bin',
    maxInFlight: 1,
    waves: ['1', '100%'],
    failureThreshold: '50%',
    timeoutS: 60,
  });
  t.is(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id as string;
  t.regex(id, /^r\d+$/);
  t.is(created.body.state, 'running');
  t.is(created.body.targetCount, 3);
  t.deepEqual((created.body.strategy as { waveSizes: number[] }).waveSizes, [1, 3]);

  const again = await call(backend, operator, 'POST', '/v1/rollouts', { patchId: 'api-r1.bin' });
  t.is(again.status, 409);
  t.is(again.body.error?.code, 'rollout_exists');
  t.is(again.body.error?.value, id);
  const invalid = await call(backend, operator, 'POST', '/v1/rollouts', { patchId: 'api-r2.bin', waves: ['50%', '10%'] });
  t.is(invalid.body.error?.code, 'invalid_request');
  t.is(invalid.body.error?.value, 'waves');
  t.is((await call(backend, operator, 'POST', '/v1/rollouts', { patchId: 'x.bin', speed: 3 })).body.error?.value, 'speed');
  t.is((await call(backend, reader, 'POST', '/v1/rollouts', { patchId: 'x.bin' })).status, 403);

  await backend.upload('api-r1.bin', randomBytes(500));
  const [first] = await until(t, 'the canary offer', () => offersOf(devices), (o) => o.length === 1);
  if (!first) return;
  const listed = await call(backend, reader, 'GET', '/v1/rollouts');
  t.deepEqual((listed.body.rollouts as { id: string }[]).map((r) => r.id), [id]);
  const byPatch = await call(backend, reader, 'GET', '/v1/rollouts/api-r1.bin');
  t.is(byPatch.body.id, id);
  t.is(byPatch.body.inFlight, 1);
  t.is(byPatch.body.waiting, 2);

  const paused = await call(backend, operator, 'POST', `/v1/rollouts/${id}/pause?reason=${encodeURIComponent('looking at the canary')}`);
  t.deepEqual(paused.body, { id, state: 'paused' });
  t.is((await call(backend, reader, 'GET', `/v1/rollouts/${id}`)).body.reason, 'looking at the canary');
  await finish(first.device, first.offer, 'applied');
  const deviceId = `cam_api_r${devices.indexOf(first.device) + 1}`;
  const shown = await call(backend, reader, 'GET', `/v1/rollouts/${id}?device=${deviceId}`);
  const timeline = (shown.body.device as { timeline: { state: string }[] }).timeline;
  t.deepEqual(timeline.map((e) => e.state), ['applied', 'offered']);

  const badResume = await call(backend, operator, 'POST', `/v1/rollouts/${id}/resume?failureThreshold=lots`);
  t.is(badResume.body.error?.code, 'invalid_request');
  const resumed = await call(backend, operator, 'POST', `/v1/rollouts/${id}/resume?failureThreshold=2`);
  t.deepEqual(resumed.body, { id, state: 'running' });
  t.is(((await call(backend, reader, 'GET', `/v1/rollouts/${id}`)).body.strategy as { failureThreshold: string }).failureThreshold, '2');
  await until(t, 'the second offer', () => offersOf(devices), (o) => o.length === 2);

  const cancelled = await call(backend, operator, 'POST', `/v1/rollouts/${id}/cancel`);
  t.deepEqual(cancelled.body, { id, state: 'cancelled' });
  t.is((await call(backend, reader, 'GET', `/v1/rollouts/${id}`)).body.reason, 'cancelled by test-operator');
  t.is((await call(backend, operator, 'POST', `/v1/rollouts/${id}/resume`)).body.error?.code, 'rollout_cancelled');
  t.is((await call(backend, reader, 'GET', '/v1/rollouts/r404')).body.error?.code, 'not_found');
  const replaced = await call(backend, operator, 'POST', '/v1/rollouts', { patchId: 'api-r1.bin' });
  t.is(replaced.status, 201, 'a cancelled rollout can be replaced');
  t.not(replaced.body.id, id);
  for (const device of devices) device.close();
});
