import test from 'ava';
import { CLOSE_CODES } from '../protocol/close-codes.ts';
import { startBackend } from './helpers/backend.ts';

test('invalid JSON gets invalid_json and the connection stays open', async (t) => {
  const backend = await startBackend(t);
  const device = await backend.connect('cam_valid_1');
  device.sendRaw('{not json');
  const error = await device.next('error');
  t.is(error.code, 'invalid_json');
  t.false(error.retryable);
  device.hello('cam_valid_1');
  const welcome = await device.next('welcome');
  t.is(welcome.protocol, 1);
  device.close();
});

test('unknown type gets unknown_type', async (t) => {
  const backend = await startBackend(t);
  const device = await backend.connect('cam_any');
  device.send({ type: 'reboot_now' });
  const error = await device.next('error');
  t.is(error.code, 'unknown_type');
  t.regex(error.details ?? '', /reboot_now/);
  device.close();
});

test('wrong field types get invalid_message naming the field', async (t) => {
  const backend = await startBackend(t);
  const device = await backend.connect('cam_any');
  device.send({ type: 'hello', protocol: 1, deviceId: 'cam_1', model: 42, firmware: '1', patches: [] });
  const error = await device.next('error');
  t.is(error.code, 'invalid_message');
  t.regex(error.details ?? '', /\/model/);
  device.send({ type: 'hello', protocol: 1, deviceId: '../etc', model: 'm', firmware: '1', patches: [] });
  const badId = await device.next('error');
  t.is(badId.code, 'invalid_message');
  t.regex(badId.details ?? '', /\/deviceId/);
  device.send({ type: 'heartbeat', extra: true });
  const extra = await device.next('error');
  t.is(extra.code, 'invalid_message');
  device.close();
});

test('non-object JSON gets invalid_message', async (t) => {
  const backend = await startBackend(t);
  const device = await backend.connect('cam_any');
  for (const raw of ['[]', '42', 'null', '"hello"']) {
    device.sendRaw(raw);
    const error = await device.next('error');
    t.is(error.code, 'invalid_message', raw);
  }
  device.close();
});

test('prototype keys in JSON are rejected and pollute nothing', async (t) => {
  const backend = await startBackend(t);
  const device = await backend.connect('cam_any');
  device.sendRaw('{"type":"heartbeat","__proto__":{"polluted":true}}');
  const error = await device.next('error');
  t.is(error.code, 'invalid_message');
  t.is(({} as Record<string, unknown>).polluted, undefined);
  device.close();
});

test('binary frames get binary_not_supported', async (t) => {
  const backend = await startBackend(t);
  const device = await backend.connect('cam_any');
  device.sendRaw(Buffer.from([1, 2, 3]), true);
  const error = await device.next('error');
  t.is(error.code, 'binary_not_supported');
  device.close();
});

test('messages before hello get hello_required', async (t) => {
  const backend = await startBackend(t);
  const device = await backend.connect('cam_any');
  device.send({ type: 'heartbeat' });
  const error = await device.next('error');
  t.is(error.code, 'hello_required');
  t.true(error.retryable);
  device.close();
});

test('a hello claiming another id than the token is rejected', async (t) => {
  const backend = await startBackend(t);
  const device = await backend.connect('cam_first');
  device.hello('cam_first');
  await device.next('welcome');
  device.hello('cam_second');
  const error = await device.next('error');
  t.is(error.code, 'device_id_mismatch');
  t.is((await device.closed).code, CLOSE_CODES.unauthorized.code);
  t.is(await backend.state.getDevice('cam_second'), null);
});

test('oversized frame gets message_too_large and the connection stays', async (t) => {
  const backend = await startBackend(t, { FLEET_MAX_PAYLOAD_BYTES: '2048' });
  const device = await backend.connect('cam_big_1');
  device.sendRaw(JSON.stringify({ type: 'heartbeat', pad: 'x'.repeat(4096) }));
  const error = await device.next('error');
  t.is(error.code, 'message_too_large');
  device.hello('cam_big_1');
  t.is((await device.next('welcome')).type, 'welcome');
  device.close();
});

test('frame over four times the limit drops the connection', async (t) => {
  const backend = await startBackend(t, { FLEET_MAX_PAYLOAD_BYTES: '2048' });
  const device = await backend.connect('cam_any');
  device.sendRaw(JSON.stringify({ type: 'heartbeat', pad: 'x'.repeat(9000) }));
  const { code } = await device.closed;
  t.is(code, 1006);
});

test('no hello in time closes with hello_timeout', async (t) => {
  const backend = await startBackend(t, { FLEET_HELLO_TIMEOUT_MS: '300' });
  const device = await backend.connect('cam_any');
  const { code } = await device.closed;
  t.is(code, CLOSE_CODES.hello_timeout.code);
});

test('a stream of invalid messages closes with too_many_errors', async (t) => {
  const backend = await startBackend(t);
  const device = await backend.connect('cam_any');
  for (let i = 0; i < 25; i++) device.sendRaw('garbage');
  const { code } = await device.closed;
  t.is(code, CLOSE_CODES.too_many_errors.code);
});
