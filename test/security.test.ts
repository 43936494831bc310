import { randomBytes } from 'node:crypto';
import test from 'ava';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { CLOSE_CODES } from '../protocol/close-codes.ts';
import { DeviceTokens } from '../security/device-tokens.ts';
import { generateSigningKeys, signManifest, verifyManifest } from '../security/patch-signing.ts';
import { OperatorStore } from '../storage/operator-store.ts';
import { hashOperatorToken } from '../security/operator-tokens.ts';
import { SimulatedCamera } from '../simulator/index.ts';
import { startBackend, TEST_SECURITY, type TestBackend } from './helpers/backend.ts';
import { RawDevice } from './helpers/device-client.ts';
import { Readable } from 'node:stream';

/** Attempts an upgrade and returns the HTTP status and JSON body of a rejection, or 101 when it opened. */
function tryUpgrade(url: string, headers: Record<string, string>): Promise<{ status: number; body: { error?: string } }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    socket.on('unexpected-response', (_request, response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      response.on('end', () => {
        resolve({ status: response.statusCode ?? 0, body: text ? (JSON.parse(text) as { error?: string }) : {} });
        socket.terminate();
      });
    });
    socket.on('open', () => {
      resolve({ status: 101, body: {} });
      socket.close();
    });
    socket.on('error', (err) => {
      if (!String(err.message).includes('Unexpected server response')) reject(err);
    });
  });
}

async function deviceKeys(backend: TestBackend): Promise<string[]> {
  return backend.state.redis.keys(`${backend.config.keyPrefix}device*`);
}

test('an upgrade without a token gets 401 and leaves no trace in Redis', async (t) => {
  const backend = await startBackend(t);
  const result = await tryUpgrade(backend.url, { 'x-device-id': 'cam_trace_1' });
  t.is(result.status, 401);
  t.is(result.body.error, 'token_missing');
  const prefix = backend.config.keyPrefix;
  for (const pattern of ['device*', 'presence*', 'known_devices', 'in_flight_updates', 'patch_status*']) {
    t.deepEqual(await backend.state.redis.keys(`${prefix}${pattern}`), [], pattern);
  }
});

test('bad, foreign and malformed tokens get 401 token_invalid', async (t) => {
  const backend = await startBackend(t);
  await backend.state.provisionDevice('cam_sec_1');
  const foreign = await new DeviceTokens(randomBytes(32).toString('hex')).issue('cam_sec_1', 0);
  for (const authorization of ['Bearer garbage', `Bearer ${foreign}`, 'Basic dXNlcjpwYXNz', `Bearer ${foreign}x`]) {
    const result = await tryUpgrade(backend.url, { authorization });
    t.is(result.status, 401, authorization.slice(0, 20));
    t.true(['token_invalid', 'token_missing'].includes(result.body.error ?? ''), result.body.error);
  }
  t.deepEqual(await deviceKeys(backend), [backend.state.keys.device('cam_sec_1')]);
});

test('the Bearer scheme is case-insensitive', async (t) => {
  const backend = await startBackend(t);
  await backend.state.provisionDevice('cam_sec_case');
  const token = await backend.deviceTokens.issue('cam_sec_case', 0);
  for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
    const result = await tryUpgrade(backend.url, { authorization: `${scheme} ${token}` });
    t.is(result.status, 101, `${scheme} is accepted`);
  }
  const twoSpaces = await tryUpgrade(backend.url, { authorization: `Bearer  ${token}` });
  t.is(twoSpaces.status, 401, 'exactly one space separates scheme and token');
  t.is(twoSpaces.body.error, 'token_missing');
});

test('an expired token gets 401 token_expired', async (t) => {
  const backend = await startBackend(t);
  await backend.state.provisionDevice('cam_exp_1');
  const key = new TextEncoder().encode(TEST_SECURITY.deviceTokenSecret);
  const expired = await new SignJWT({ gen: 0 })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('cam_exp_1')
    .setIssuer('camera-fleet')
    .setAudience('fleet-device')
    .setIssuedAt(Math.floor(Date.now() / 1000) - 120)
    .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
    .setJti('x')
    .sign(key);
  const result = await tryUpgrade(backend.url, { authorization: `Bearer ${expired}` });
  t.is(result.status, 401);
  t.is(result.body.error, 'token_expired');
});

test('a token whose subject breaks the id grammar is rejected', async (t) => {
  const backend = await startBackend(t);
  const key = new TextEncoder().encode(TEST_SECURITY.deviceTokenSecret);
  for (const sub of ['../../etc', 'cam*', 'a{b}', '', 'x'.repeat(200), 'nul\u0000byte']) {
    const token = await new SignJWT({ gen: 0 })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(sub)
      .setIssuer('camera-fleet')
      .setAudience('fleet-device')
      .setIssuedAt()
      .setJti('x')
      .sign(key);
    const result = await tryUpgrade(backend.url, { authorization: `Bearer ${token}` });
    t.is(result.status, 401, JSON.stringify(sub));
  }
  t.deepEqual(await deviceKeys(backend), []);
});

test('revoking a device closes its connection and rejects its old tokens', async (t) => {
  const backend = await startBackend(t);
  const [oldToken] = (await backend.tokens(['cam_rev_1'])).values();
  const device = await RawDevice.connect(backend.url, oldToken);
  device.hello('cam_rev_1');
  await device.next('welcome');
  await backend.state.revokeDeviceTokens('cam_rev_1');
  t.is((await device.closed).code, CLOSE_CODES.unauthorized.code);
  const again = await tryUpgrade(backend.url, { authorization: `Bearer ${oldToken}` });
  t.is(again.status, 401);
  t.is(again.body.error, 'token_revoked');
  const [newToken] = (await backend.tokens(['cam_rev_1'])).values();
  t.is((await tryUpgrade(backend.url, { authorization: `Bearer ${newToken}` })).status, 101);
});

test('a device that is not provisioned gets 403', async (t) => {
  const backend = await startBackend(t);
  const token = await backend.deviceTokens.issue('cam_unknown_9', 0);
  const result = await tryUpgrade(backend.url, { authorization: `Bearer ${token}` });
  t.is(result.status, 403);
  t.is(result.body.error, 'device_not_provisioned');
  t.deepEqual(await deviceKeys(backend), []);
});

test('auto-enrolment keeps a new device pending until accepted', async (t) => {
  const backend = await startBackend(t, { FLEET_ENROLLMENT: 'auto' });
  await backend.upload('auto-1.bin', randomBytes(1000));
  const token = await backend.deviceTokens.issue('cam_auto_1', 0);
  const device = await RawDevice.connect(backend.url, token);
  device.hello('cam_auto_1');
  const welcome = await device.next('welcome');
  t.is(welcome.enrollment, 'pending');
  t.is((await backend.state.getDevice('cam_auto_1'))?.enrollment, 'pending');
  const { before } = await backend.state.provisionDevice('cam_auto_1');
  t.is(before, 'pending');
  const offer = await device.next('offer');
  t.is(offer.patchId, 'auto-1.bin');
  t.is(device.received.filter((m) => m.type === 'offer').length, 1);
  device.close();
});

test('unsigned and wrongly signed patches are never offered when signatures are required', async (t) => {
  const backend = await startBackend(t);
  const unsigned = randomBytes(500);
  await backend.catalog.upload('unsigned-1.bin', Readable.from([unsigned]), unsigned.length);
  t.is((await backend.state.getPatch('unsigned-1.bin'))?.state, 'unsigned');
  await backend.putDirect('direct-unsigned.bin', randomBytes(300), { signed: false });
  const stranger = generateSigningKeys();
  await t.throwsAsync(
    () => backend.catalog.upload('wrong-key.bin', Readable.from([unsigned]), unsigned.length, { signingKey: stranger.privateKey }),
    { message: /does not belong to the fleet public key/ },
  );
  await backend.upload('signed-1.bin', randomBytes(500));
  const device = await backend.connect('cam_sig_1');
  device.hello('cam_sig_1');
  const offer = await device.next('offer');
  t.is(offer.patchId, 'signed-1.bin');
  t.truthy(offer.signature);
  while (!(await backend.state.getPatch('direct-unsigned.bin'))) await new Promise((r) => setTimeout(r, 50));
  t.is((await backend.state.getPatch('direct-unsigned.bin'))?.state, 'unsigned');
  t.is(device.received.filter((m) => m.type === 'offer').length, 1);
  device.close();
});

test('a camera rejects a patch whose signature does not verify', async (t) => {
  const backend = await startBackend(t, { FLEET_REQUIRE_SIGNATURES: 'false' });
  const bytes = randomBytes(2000);
  await backend.catalog.upload('forged.bin', Readable.from([bytes]), bytes.length);
  const [token] = (await backend.tokens(['cam_forged_1'])).values();
  const camera = new SimulatedCamera({
    url: backend.url,
    deviceId: 'cam_forged_1',
    token,
    applyMs: 5,
    signingPublicKey: TEST_SECURITY.publicKey,
  });
  t.teardown(() => camera.stop());
  const failed = new Promise<string>((resolve) => camera.once('failed', (e) => resolve(e.reason)));
  await camera.start();
  t.is(await failed, 'signature_invalid');
  t.is(camera.applyCount('forged.bin'), 0);
});

test('a camera rejects bytes that do not match the sha256', async (t) => {
  const backend = await startBackend(t, { FLEET_BUCKET_SCAN_MS: '3600000' });
  await backend.upload('swapped.bin', randomBytes(2000));
  // Someone overwrites the object behind the catalog's back.
  await backend.putDirect('swapped.bin', randomBytes(2000), { signed: false });
  const [token] = (await backend.tokens(['cam_swap_1'])).values();
  const camera = new SimulatedCamera({
    url: backend.url,
    deviceId: 'cam_swap_1',
    token,
    applyMs: 5,
    signingPublicKey: TEST_SECURITY.publicKey,
    maxUrlRequests: 0,
  });
  t.teardown(() => camera.stop());
  const failed = new Promise<string>((resolve) => camera.once('failed', (e) => resolve(e.reason)));
  await camera.start();
  t.is(await failed, 'checksum_mismatch');
  t.is(camera.applyCount('swapped.bin'), 0);
});

test('a message flood gets rate_limited and the connection survives', async (t) => {
  const backend = await startBackend(t, { FLEET_DEVICE_MESSAGES_PER_S: '5', FLEET_DEVICE_MESSAGE_BURST: '10' });
  const device = await backend.connect('cam_flood_1');
  device.hello('cam_flood_1');
  await device.next('welcome');
  for (let i = 0; i < 100; i++) device.send({ type: 'heartbeat' });
  const error = await device.next('error');
  t.is(error.code, 'rate_limited');
  t.true(error.retryable);
  while (device.received.filter((m) => m.type === 'error').length < 80) await new Promise((r) => setTimeout(r, 20));
  t.true((await backend.state.getDevice('cam_flood_1'))?.online);
  device.close();
});

test('an upgrade flood from one address gets 429', async (t) => {
  const backend = await startBackend(t, { FLEET_UPGRADES_PER_S_PER_ADDRESS: '1', FLEET_UPGRADE_BURST: '3' });
  // Sent at once, so the bucket (3 upgrades, then 1 per second) cannot refill in between.
  const statuses = (await Promise.all(Array.from({ length: 8 }, () => tryUpgrade(backend.url, {})))).map((r) => r.status);
  t.is(statuses.filter((s) => s === 401).length, 3, statuses.join(','));
  t.is(statuses.filter((s) => s === 429).length, 5, statuses.join(','));
});

test('operator tokens are stored hashed and can be revoked', async (t) => {
  const backend = await startBackend(t);
  const operators = new OperatorStore(backend.state.redis, backend.state.keys);
  const token = await operators.create('alice', 'read');
  const stored = await backend.state.redis.hgetall(backend.state.keys.operatorTokens);
  t.deepEqual(Object.keys(stored), [hashOperatorToken(token)]);
  t.false(JSON.stringify(stored).includes(token));
  t.is((await operators.authenticate(token))?.role, 'read');
  t.is(await operators.authenticate(`${token}x`), null);
  t.is(await operators.revoke('alice'), 1);
  t.is(await operators.authenticate(token), null);
});

test('signatures verify only for the exact manifest and key', (t) => {
  const keys = generateSigningKeys();
  const manifest = { id: 'p.bin', name: 'p', version: '1', size: 10, sha256: 'a'.repeat(64) };
  const signature = signManifest(keys.privateKey, manifest);
  t.true(verifyManifest(keys.publicKey, manifest, signature));
  t.false(verifyManifest(generateSigningKeys().publicKey, manifest, signature));
  for (const change of [{ size: 11 }, { sha256: 'b'.repeat(64) }, { version: '2' }, { name: 'q' }, { id: 'q.bin' }]) {
    t.false(verifyManifest(keys.publicKey, { ...manifest, ...change }, signature), JSON.stringify(change));
  }
  t.false(verifyManifest(keys.publicKey, manifest, 'not base64 at all'));
});
