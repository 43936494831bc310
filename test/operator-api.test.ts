import { createHash, randomBytes } from 'node:crypto';
import test from 'ava';
import { API_ERRORS } from '../handlers/operator/errors.ts';
import { ROUTES } from '../handlers/operator/routes.ts';
import { EXTRA_ROUTES } from '../runtime/api/openapi.ts';
import { signManifest } from '../security/patch-signing.ts';
import { startBackend, TEST_SECURITY, type TestBackend } from './helpers/backend.ts';

interface Call {
  status: number;
  body: { error?: { code: string; message: string; value?: unknown } } & Record<string, unknown>;
}

async function call(backend: TestBackend, token: string | null, method: string, path: string, init: RequestInit = {}): Promise<Call> {
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  if (typeof init.body === 'string' && !headers.has('content-type')) headers.set('content-type', 'application/json');
  const response = await fetch(`${backend.apiUrl}${path}`, { ...init, method, headers });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : {} };
}

function signedUpload(id: string, bytes: Buffer) {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const signature = signManifest(TEST_SECURITY.privateKey, { id, name: id, version: id, size: bytes.length, sha256 });
  return {
    body: bytes,
    headers: { 'content-type': 'application/octet-stream', 'x-patch-signature': signature },
  };
}

test('every /v1 route needs a token and checks the role', async (t) => {
  const backend = await startBackend(t);
  const reader = await backend.operatorToken('read');
  for (const route of ROUTES) {
    const path = route.path.replace(/\{\w+\}/g, 'cam_1');
    const anonymous = await call(backend, null, route.method.toUpperCase(), path);
    t.is(anonymous.status, 401, `${route.method} ${route.path}`);
    t.is(anonymous.body.error?.code, 'unauthorized');
    const wrong = await call(backend, 'fop_not-a-token', route.method.toUpperCase(), path);
    t.is(wrong.status, 401);
    if (route.role === 'operator') {
      const readOnly = await call(backend, reader, route.method.toUpperCase(), path, route.body === 'stream' ? signedUpload('p.bin', Buffer.from('x')) : {});
      t.is(readOnly.status, 403, `${route.method} ${route.path} with a read-only token`);
      t.is(readOnly.body.error?.code, 'forbidden');
    }
  }
  t.is((await call(backend, null, 'GET', '/v1/events')).status, 401);
});

test('the OpenAPI document lists exactly the served routes', async (t) => {
  const backend = await startBackend(t);
  const document = (await call(backend, null, 'GET', '/v1/openapi.json')).body as { openapi: string; paths: Record<string, Record<string, unknown>> };
  t.is(document.openapi, '3.1.0');
  const documented = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m} ${path}`)).sort();
  const served = [...ROUTES, ...EXTRA_ROUTES].map((r) => `${r.method} ${r.path}`).sort();
  t.deepEqual(documented, served);
  // Every documented route answers with something other than not_found or method_not_allowed.
  const operator = await backend.operatorToken('operator');
  for (const route of ROUTES) {
    const path = route.path.replace(/\{\w+\}/g, 'cam_doc_1');
    const result = await call(backend, operator, route.method.toUpperCase(), path);
    t.false(['method_not_allowed'].includes(result.body.error?.code ?? ''), `${route.method} ${route.path}`);
  }
  const codes = (document as unknown as { components: { schemas: { Error: { properties: { error: { properties: { code: { enum: string[] } } } } } } } })
    .components.schemas.Error.properties.error.properties.code.enum;
  t.deepEqual(codes, Object.keys(API_ERRORS));
});

test('patch upload, list, show and retire', async (t) => {
  const backend = await startBackend(t);
  const operator = await backend.operatorToken('operator');
  const bytes = randomBytes(300_000);
  const upload = await call(backend, operator, 'POST', '/v1/patches/api-1.bin', signedUpload('api-1.bin', bytes));
  t.is(upload.status, 201, JSON.stringify(upload.body));
  t.is(upload.body.sha256, createHash('sha256').update(bytes).digest('hex'));
  t.is(upload.body.state, 'ready');
  const again = await call(backend, operator, 'POST', '/v1/patches/api-1.bin', signedUpload('api-1.bin', bytes));
  t.is(again.status, 409);
  t.is(again.body.error?.code, 'patch_exists');

  const list = await call(backend, operator, 'GET', '/v1/patches');
  t.deepEqual((list.body.patches as { id: string }[]).map((p) => p.id), ['api-1.bin']);
  const show = await call(backend, operator, 'GET', '/v1/patches/api-1.bin');
  t.is(show.body.size, bytes.length);
  t.is((await call(backend, operator, 'GET', '/v1/patches/nope.bin')).status, 404);
  t.is((await call(backend, operator, 'GET', '/v1/patches/..%2Fetc')).body.error?.code, 'invalid_patch_id');

  const retired = await call(backend, operator, 'DELETE', '/v1/patches/api-1.bin');
  t.is(retired.body.state, 'retired');
  t.is((await backend.state.getPatch('api-1.bin'))?.state, 'retired');
  // The bucket scan runs every 300 ms in tests; a few of them must not bring the patch back.
  await new Promise((resolve) => setTimeout(resolve, 1200));
  t.is((await backend.state.getPatch('api-1.bin'))?.state, 'retired');
  const device = await backend.connect('cam_retired_1');
  device.hello('cam_retired_1');
  await device.next('welcome');
  t.is(device.received.filter((m) => m.type === 'offer').length, 0);
  device.close();
});

test('bad uploads get clear errors and store nothing', async (t) => {
  const backend = await startBackend(t);
  const operator = await backend.operatorToken('operator');
  const bytes = Buffer.from('patch bytes');
  const wrongType = await call(backend, operator, 'POST', '/v1/patches/bad-1.bin', { body: bytes, headers: { 'content-type': 'text/plain' } });
  t.is(wrongType.body.error?.code, 'unsupported_media_type');
  const unsigned = await call(backend, operator, 'POST', '/v1/patches/bad-2.bin', { body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  t.is(unsigned.body.error?.code, 'signature_required');
  const forged = signedUpload('bad-3.bin', Buffer.from('other bytes'));
  const mismatch = await call(backend, operator, 'POST', '/v1/patches/bad-3.bin', { ...forged, body: bytes });
  t.is(mismatch.body.error?.code, 'signature_invalid');
  const empty = await call(backend, operator, 'POST', '/v1/patches/empty-1.bin', signedUpload('empty-1.bin', Buffer.alloc(0)));
  t.is(empty.body.error?.code, 'invalid_request');
  t.regex(empty.body.error?.message ?? '', /empty/);
  const badId = await call(backend, operator, 'POST', '/v1/patches/.hidden', signedUpload('.hidden', bytes));
  t.is(badId.body.error?.code, 'invalid_patch_id');
  t.deepEqual(await backend.bucket.list(), []);
  t.deepEqual(await backend.state.catalog(), []);
});

test('malformed API requests get clear errors', async (t) => {
  const backend = await startBackend(t);
  const operator = await backend.operatorToken('operator');
  const anonymous = await call(backend, null, 'POST', '/v1/rollouts', { body: '{bad' });
  t.is(anonymous.status, 401);
  const badJson = await call(backend, operator, 'POST', '/v1/rollouts', { body: '{bad' });
  t.is(badJson.body.error?.code, 'invalid_request');
  const huge = await call(backend, null, 'POST', '/v1/rollouts', { body: JSON.stringify({ pad: 'x'.repeat(70_000) }) });
  t.is(huge.status, 401);
  const hugeAuthorized = await call(backend, operator, 'POST', '/v1/rollouts', { body: JSON.stringify({ pad: 'x'.repeat(70_000) }) });
  t.is(hugeAuthorized.body.error?.code, 'payload_too_large');
  const badEscape = await call(backend, operator, 'GET', '/v1/patches/%ZZ');
  t.is(badEscape.body.error?.code, 'invalid_request');
  const cutEscape = await call(backend, null, 'GET', '/v1/rollouts/%E0%A4%A');
  t.is(cutEscape.status, 401);
  const plainText = await call(backend, operator, 'POST', '/v1/rollouts', {
    body: JSON.stringify({ patchId: 'text-1.bin' }),
    headers: { 'content-type': 'text/plain' },
  });
  t.is(plainText.body.error?.code, 'unsupported_media_type');
  const after = await call(backend, operator, 'GET', '/v1/patches');
  t.is(after.status, 200);
});

test('device list filters, paginates and rejects bad cursors', async (t) => {
  const backend = await startBackend(t);
  const reader = await backend.operatorToken('read');
  const operator = await backend.operatorToken('operator');
  for (let i = 0; i < 12; i++) await backend.state.provisionDevice(`cam_list_${String(i).padStart(2, '0')}`);
  const online = await backend.connect('cam_list_03');
  online.hello('cam_list_03');
  await online.next('welcome');

  const seen: string[] = [];
  let cursor = '';
  for (;;) {
    const page = await call(backend, reader, 'GET', `/v1/devices?limit=5${cursor ? `&cursor=${cursor}` : ''}`);
    t.is(page.status, 200);
    seen.push(...(page.body.devices as { id: string }[]).map((d) => d.id));
    if (!page.body.next) break;
    cursor = page.body.next as string;
  }
  t.is(seen.length, 12);
  t.deepEqual(seen, [...seen].sort());

  const onlineOnly = await call(backend, reader, 'GET', '/v1/devices?online=true');
  t.deepEqual((onlineOnly.body.devices as { id: string }[]).map((d) => d.id), ['cam_list_03']);
  const search = await call(backend, reader, 'GET', '/v1/devices?q=_1');
  t.deepEqual((search.body.devices as { id: string }[]).map((d) => d.id), ['cam_list_10', 'cam_list_11']);
  const tagged = await call(backend, operator, 'PUT', '/v1/devices/cam_list_05/tags', { body: JSON.stringify({ tags: ['lobby'] }) });
  t.is(tagged.status, 200);
  const byTag = await call(backend, reader, 'GET', '/v1/devices?tag=lobby');
  t.deepEqual((byTag.body.devices as { id: string }[]).map((d) => d.id), ['cam_list_05']);

  t.is((await call(backend, reader, 'GET', '/v1/devices?cursor=%%%')).body.error?.code, 'invalid_cursor');
  t.is((await call(backend, reader, 'GET', '/v1/devices?limit=0')).body.error?.code, 'invalid_request');
  t.is((await call(backend, reader, 'GET', '/v1/devices?online=maybe')).body.error?.code, 'invalid_request');
  const badTags = await call(backend, operator, 'PUT', '/v1/devices/cam_list_05/tags', { body: '{"tags": ["a b"]}' });
  t.is(badTags.body.error?.code, 'invalid_request');
  const notJson = await call(backend, operator, 'PUT', '/v1/devices/cam_list_05/tags', { body: '{tags' });
  t.is(notJson.body.error?.code, 'invalid_request');
  online.close();
});

test('device show, token, revoke and accept', async (t) => {
  const backend = await startBackend(t, { FLEET_ENROLLMENT: 'auto' });
  const operator = await backend.operatorToken('operator');
  t.is((await call(backend, operator, 'GET', '/v1/devices/cam_none')).status, 404);
  const issued = await call(backend, operator, 'POST', '/v1/devices/cam_api_1/token?ttl=3600');
  t.is(issued.status, 201);
  const device = await import('./helpers/device-client.ts').then(({ RawDevice }) => RawDevice.connect(backend.url, issued.body.token as string));
  device.hello('cam_api_1');
  await device.next('welcome');
  const shown = await call(backend, operator, 'GET', '/v1/devices/cam_api_1');
  t.is(shown.body.online, true);
  t.true(Array.isArray(shown.body.timeline));
  const revoked = await call(backend, operator, 'POST', '/v1/devices/cam_api_1/revoke');
  t.is(revoked.status, 200);
  t.is((await device.closed).code, 4102);
  const accepted = await call(backend, operator, 'POST', '/v1/devices/cam_api_2/accept');
  t.is(accepted.body.enrollment, 'accepted');
  t.is((await call(backend, operator, 'POST', '/v1/devices/bad%20id/token')).body.error?.code, 'invalid_device_id');
});

test('unknown routes and methods get not_found and method_not_allowed', async (t) => {
  const backend = await startBackend(t);
  const operator = await backend.operatorToken('operator');
  t.is((await call(backend, operator, 'GET', '/v2/devices')).body.error?.code, 'not_found');
  t.is((await call(backend, operator, 'PATCH', '/v1/summary')).body.error?.code, 'method_not_allowed');
});

test('summary and the event stream report the fleet', async (t) => {
  const backend = await startBackend(t);
  const reader = await backend.operatorToken('read');
  const device = await backend.connect('cam_sum_1');
  device.hello('cam_sum_1');
  await device.next('welcome');
  const summary = await call(backend, reader, 'GET', '/v1/summary');
  t.is(summary.body.devices, 1);
  t.is(summary.body.online, 1);
  t.deepEqual(summary.body.models, { 'test-cam': 1 });

  const controller = new AbortController();
  const response = await fetch(`${backend.apiUrl}/v1/events`, { headers: { authorization: `Bearer ${reader}` }, signal: controller.signal });
  t.is(response.headers.get('content-type'), 'text/event-stream');
  const reader2 = response.body?.getReader();
  let text = '';
  while (!text.includes('event: summary')) {
    const chunk = await reader2?.read();
    if (!chunk || chunk.done) break;
    text += Buffer.from(chunk.value).toString();
  }
  controller.abort();
  const data = JSON.parse(text.split('event: summary\ndata: ')[1]?.split('\n')[0] ?? '{}') as { devices: number };
  t.is(data.devices, 1);
  device.close();
});

test('/metrics is Prometheus text and its counters move', async (t) => {
  const backend = await startBackend(t);
  const before = await (await fetch(`${backend.apiUrl}/metrics`)).text();
  await backend.upload('metrics-1.bin', randomBytes(1000));
  const device = await backend.connect('cam_metrics_1');
  device.hello('cam_metrics_1');
  const offer = await device.next('offer');
  device.send({ type: 'result', patchId: offer.patchId, attempt: offer.attempt, outcome: 'applied' });
  await device.next('result_ack');
  device.sendRaw('not json');
  await device.next('error');
  const after = await (await fetch(`${backend.apiUrl}/metrics`)).text();
  for (const line of after.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    t.regex(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (-?[0-9.e+-]+|nan|[+-]inf)$/i, line);
  }
  const value = (text: string, series: string) => Number(text.split('\n').find((l) => l.startsWith(series))?.split(' ').pop() ?? 0);
  t.is(value(before, 'fleet_messages_in_total{type="hello"}'), 0);
  t.is(value(after, 'fleet_messages_in_total{type="hello"}'), 1);
  t.is(value(after, 'fleet_messages_out_total{type="offer"}'), 1);
  t.is(value(after, 'fleet_results_total{outcome="applied"}'), 1);
  t.is(value(after, 'fleet_invalid_messages_total{code="invalid_json"}'), 1);
  t.is(value(after, 'fleet_device_connections'), 1);
  t.true(value(after, 'fleet_redis_seconds_count{script="claim_offer"}') >= 1);
  t.true(value(after, 'fleet_bucket_seconds_count{operation="sign"}') >= 1);
  device.close();
});
