import { randomBytes } from 'node:crypto';
import test from 'ava';
import { startBackend, type TestBackend } from './helpers/backend.ts';
import type { RawDevice } from './helpers/device-client.ts';
import { createRollout, finish, offersOf, readRollout, sleep, until, welcomeAll } from './helpers/rollouts.ts';

/**
 * Applies the next `count` offers the device gets, waiting as long as each takes, then gives the backend half a
 * second to send one more, which would be wrong. Returns the patch ids in the order they came.
 */
async function applyOffers(device: RawDevice, count: number): Promise<string[]> {
  const applied: string[] = [];
  while (applied.length < count) {
    const offer = await device.next('offer');
    await finish(device, offer, 'applied');
    applied.push(offer.patchId);
  }
  const extra = await Promise.race([device.next('offer'), sleep(500).then(() => null)]);
  if (extra) applied.push(extra.patchId);
  return applied;
}

async function release(backend: TestBackend, ids: string[]): Promise<void> {
  for (const id of ids) await backend.upload(id, randomBytes(500));
}

test('returning device gets patches in catalog order', async (t) => {
  const backend = await startBackend(t);
  const [away] = await welcomeAll(backend, ['cam_away_1']);
  away?.close();
  await createRollout(backend, { patchId: 'order-1.bin', maxInFlight: 1 });
  await createRollout(backend, { patchId: 'order-2.bin', maxInFlight: 1 });
  await release(backend, ['order-1.bin', 'order-2.bin', 'order-3.bin']);
  const [online] = await welcomeAll(backend, ['cam_here_1']);
  if (!online) return;
  t.deepEqual(await applyOffers(online, 3), ['order-1.bin', 'order-2.bin', 'order-3.bin']);

  const [back] = await welcomeAll(backend, ['cam_away_1']);
  if (!back) return;
  t.deepEqual(await applyOffers(back, 3), ['order-1.bin', 'order-2.bin', 'order-3.bin']);
  online.close();
  back.close();
});

test('superseding patch replaces the pending older one', async (t) => {
  const backend = await startBackend(t);
  const [away] = await welcomeAll(backend, ['cam_sup_away']);
  away?.close();
  const old = await createRollout(backend, { patchId: 'sup-1.bin' });
  const newer = await createRollout(backend, { patchId: 'sup-2.bin', supersedes: 'all' });
  await release(backend, ['sup-1.bin', 'sup-2.bin', 'sup-3.bin']);

  const [online] = await welcomeAll(backend, ['cam_sup_here']);
  if (!online) return;
  t.deepEqual(await applyOffers(online, 2), ['sup-2.bin', 'sup-3.bin']);
  const [back] = await welcomeAll(backend, ['cam_sup_away']);
  if (!back) return;
  t.deepEqual(await applyOffers(back, 2), ['sup-2.bin', 'sup-3.bin']);

  t.is((await readRollout(backend, old.id)).counts.superseded, 2);
  t.is((await readRollout(backend, newer.id)).counts.applied, 2);
  const entry = (await backend.state.timeline('cam_sup_away')).find((e) => e.state === 'superseded');
  t.is(entry?.detail, 'superseded by sup-2.bin');
  online.close();
  back.close();
});

test('no offer older than the newest success', async (t) => {
  const backend = await startBackend(t);
  await createRollout(backend, { patchId: 'new-1.bin' });
  await release(backend, ['new-1.bin', 'new-2.bin', 'new-3.bin']);
  const device = await backend.connect('cam_newest_1');
  device.hello('cam_newest_1', ['new-2.bin']);
  await device.next('welcome');
  t.deepEqual(await applyOffers(device, 1), ['new-3.bin']);
  const status = await backend.state.patchStatus('new-1.bin', 'cam_newest_1');
  t.is(status, null, 'the older patch was never offered');
  device.close();
});

test('removed patch file fails with artifact_missing', async (t) => {
  const backend = await startBackend(t);
  const rollout = await createRollout(backend, { patchId: 'gone-1.bin', retryBackoffS: 0.1 });
  await release(backend, ['gone-1.bin']);
  await backend.bucket.remove('gone-1.bin');

  const [first] = await welcomeAll(backend, ['cam_gone_1']);
  if (!first) return;
  const offer = await first.next('offer');
  t.is((await fetch(offer.url)).status, 404);
  await finish(first, offer, 'artifact_missing');
  await until(t, 'the patch marked missing', () => backend.state.getPatch('gone-1.bin'), (p) => p?.state === 'missing');

  const [second] = await welcomeAll(backend, ['cam_gone_2']);
  if (!second) return;
  await sleep(500);
  t.is(offersOf([first, second]).length, 1, 'nobody is offered the missing patch again');
  const state = await readRollout(backend, rollout.id);
  t.is(state.counts.failed, 2);
  const entry = (await backend.state.timeline('cam_gone_2')).find((e) => e.rolloutId === rollout.id);
  t.is(entry?.state, 'failed');
  t.regex(entry?.detail ?? '', /^artifact_missing/);

  await createRollout(backend, { patchId: 'gone-3.bin' });
  await createRollout(backend, { patchId: 'gone-4.bin', supersedes: ['gone-3.bin'] });
  await release(backend, ['gone-3.bin', 'gone-4.bin']);
  await backend.bucket.remove('gone-3.bin');
  await backend.state.markPatchRemoved('gone-3.bin');
  const [third] = await welcomeAll(backend, ['cam_gone_3']);
  if (!third) return;
  t.deepEqual(await applyOffers(third, 1), ['gone-4.bin']);
  const entries = (await backend.state.timeline('cam_gone_3')).filter((e) => e.patchId === 'gone-3.bin');
  t.deepEqual(entries.map((e) => e.state), ['superseded'], 'the superseded patch gave no failure');
  for (const device of [first, second, third]) device.close();
});

test('rollout offers only to targeted devices', async (t) => {
  const backend = await startBackend(t);
  const devices = await welcomeAll(backend, ['cam_tag_1', 'cam_tag_2', 'cam_tag_3', 'cam_tag_4'], { cam_tag_1: ['lobby'] });
  await backend.state.setTags('cam_tag_2', ['lobby']);
  const byTag = await createRollout(backend, { patchId: 'tag-1.bin', tags: ['lobby'] });
  t.is(byTag.targetCount, 2);
  const byId = await createRollout(backend, { patchId: 'tag-2.bin', devices: ['cam_tag_3'] });
  t.is(byId.targetCount, 1);
  await release(backend, ['tag-1.bin', 'tag-2.bin']);
  await until(t, 'three offers', () => offersOf(devices), (o) => o.length === 3);
  await sleep(500);
  const offered = (id: string) => offersOf(devices, id).map((o) => devices.indexOf(o.device) + 1).sort();
  t.deepEqual(offered('tag-1.bin'), [1, 2]);
  t.deepEqual(offered('tag-2.bin'), [3]);
  t.is((await backend.state.getDevice('cam_tag_1'))?.reportedTags.join(), 'lobby');
  for (const device of devices) device.close();
});

test('hello tags checked, replaced and cleared', async (t) => {
  const backend = await startBackend(t);
  const device = await backend.connect('cam_tags_1');
  device.send({ type: 'hello', protocol: 1, deviceId: 'cam_tags_1', model: 'm', firmware: '1', patches: [], tags: ['a b'] });
  const error = await device.next('error');
  t.is(error.code, 'invalid_message');
  t.regex(error.details ?? '', /^\/tags\/0/);

  device.send({ type: 'hello', protocol: 1, deviceId: 'cam_tags_1', model: 'm', firmware: '1', patches: [], tags: ['site-2', 'lobby'] });
  await device.next('welcome');
  t.deepEqual((await backend.state.getDevice('cam_tags_1'))?.reportedTags, ['lobby', 'site-2']);
  const reader = await backend.operatorToken('read');
  const listed = await fetch(`${backend.apiUrl}/v1/devices?tag=site-2`, { headers: { authorization: `Bearer ${reader}` } });
  t.deepEqual(((await listed.json()) as { devices: { id: string }[] }).devices.map((d) => d.id), ['cam_tags_1']);
  await backend.state.setTags('cam_tags_1', ['door']);
  device.hello('cam_tags_1');
  await device.next('welcome');
  const record = await backend.state.getDevice('cam_tags_1');
  t.deepEqual(record?.reportedTags, [], 'a hello without tags clears the reported ones');
  t.deepEqual(record?.tags, ['door'], 'tags an operator set stay');
  device.close();
});
