import { createHash, randomBytes } from 'node:crypto';
import test from 'ava';
import { Readable } from 'node:stream';
import { PatchExistsError } from '../storage/bucket.ts';
import { startBackend } from './helpers/backend.ts';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

test('an object put straight into the bucket reaches a connected device', async (t) => {
  const backend = await startBackend(t);
  const device = await backend.connect('cam_bucket_1');
  device.hello('cam_bucket_1');
  await device.next('welcome');
  const bytes = randomBytes(5000);
  await backend.putDirect('direct-1.bin', bytes);
  const offer = await device.next('offer');
  t.is(offer.patchId, 'direct-1.bin');
  t.is(offer.sha256, sha256(bytes));
  t.is(offer.size, bytes.length);
  t.is((await backend.state.getPatch('direct-1.bin'))?.source, 'bucket');
  t.deepEqual(await backend.state.catalog(), ['direct-1.bin']);
  device.close();
});

test('a bucket object with a key outside the id grammar is not released', async (t) => {
  const backend = await startBackend(t);
  await backend.putDirect('nested/dir/evil.bin', randomBytes(10));
  await backend.putDirect('ok-after.bin', randomBytes(10));
  while ((await backend.state.catalog()).length === 0) await new Promise((r) => setTimeout(r, 100));
  t.deepEqual(await backend.state.catalog(), ['ok-after.bin']);
});

test('an id pushed onto patch_files with RPUSH reaches a connected device', async (t) => {
  const backend = await startBackend(t, { FLEET_BUCKET_SCAN_MS: '3600000' });
  const bytes = randomBytes(4000);
  // The object exists in the bucket but not in the catalog, as after an upload with another tool.
  await backend.putDirect('pushed-1.bin', bytes);
  const device = await backend.connect('cam_rpush_1');
  device.hello('cam_rpush_1');
  await device.next('welcome');
  await backend.state.redis.rpush(backend.state.keys.patchFiles, 'pushed-1.bin');
  const offer = await device.next('offer');
  t.is(offer.patchId, 'pushed-1.bin');
  t.is(offer.sha256, sha256(bytes));
  t.is((await backend.state.getPatch('pushed-1.bin'))?.source, 'catalog');
  device.close();
});

test('a pushed id with no object is marked missing and skipped', async (t) => {
  const backend = await startBackend(t, { FLEET_BUCKET_SCAN_MS: '3600000' });
  await backend.state.redis.rpush(backend.state.keys.patchFiles, 'ghost.bin');
  await backend.upload('real-1.bin', randomBytes(100));
  const device = await backend.connect('cam_ghost_1');
  device.hello('cam_ghost_1');
  const offer = await device.next('offer');
  t.is(offer.patchId, 'real-1.bin');
  t.is((await backend.state.getPatch('ghost.bin'))?.state, 'missing');
  device.close();
});

test('uploading the same id twice is rejected and keeps the first content', async (t) => {
  const backend = await startBackend(t);
  const first = randomBytes(1000);
  await backend.upload('same-1.bin', first);
  await t.throwsAsync(() => backend.upload('same-1.bin', randomBytes(1000)), { instanceOf: PatchExistsError });
  t.is((await backend.state.getPatch('same-1.bin'))?.sha256, sha256(first));
  t.deepEqual(await backend.state.catalog(), ['same-1.bin']);
});

test('an upload with an invalid id is rejected before touching the bucket', async (t) => {
  const backend = await startBackend(t);
  for (const id of ['../escape.bin', 'a/b', '.hidden', '', 'x'.repeat(129), 'star*', 'tag{x}', 'nl\nx']) {
    await t.throwsAsync(() => backend.catalog.upload(id, Readable.from([Buffer.from('x')]), 1), {
      message: /invalid patch id/,
    });
  }
  t.deepEqual(await backend.bucket.list(), []);
});

test('a device that connects late gets both patches in catalog order', async (t) => {
  const backend = await startBackend(t);
  await backend.upload('order-a.bin', randomBytes(100));
  await backend.upload('order-b.bin', randomBytes(100));
  const device = await backend.connect('cam_late_1');
  device.hello('cam_late_1');
  const first = await device.next('offer');
  t.is(first.patchId, 'order-a.bin');
  device.send({ type: 'result', patchId: first.patchId, attempt: 1, outcome: 'applied' });
  const second = await device.next('offer');
  t.is(second.patchId, 'order-b.bin');
  device.send({ type: 'result', patchId: second.patchId, attempt: 1, outcome: 'applied' });
  await device.next('result_ack');
  await device.next('result_ack');
  t.deepEqual((await backend.state.getDevice('cam_late_1'))?.applied, ['order-a.bin', 'order-b.bin']);
  t.is(device.received.filter((m) => m.type === 'offer').length, 2);
  device.close();
});
