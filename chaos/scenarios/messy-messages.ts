import { ChaosEnvironment } from '../environment.ts';
import { ScriptedDevice } from '../scripted-device.ts';
import { check, fleetFigures, fleetInvariants, PATCH_BYTES, type Scenario } from '../scenario.ts';

const PATCH_A = 'messy_a.bin';
const PATCH_B = 'messy_b.bin';

/**
 * Plays one device's script. Every report of patch A is sent twice and out of order, with a late progress
 * after the result. When `failFirst` is set, patch B fails once, a late progress follows, and the old failed
 * result arrives again after the second attempt applied. Then the device drops, reconnects, sends hello twice
 * and sends its last result again. Resolves with the number of results sent.
 */
async function playMessy(device: ScriptedDevice, url: string, failFirst: boolean): Promise<number> {
  let results = 0;
  await device.connect(url);
  const offerA = await device.next('offer');
  const a = { patchId: offerA.patchId, attempt: offerA.attempt };
  device.send({ type: 'progress', ...a, state: 'downloading', bytes: 0 });
  device.send({ type: 'progress', ...a, state: 'downloading', bytes: 0 });
  device.send({ type: 'progress', ...a, state: 'applying' });
  device.send({ type: 'progress', ...a, state: 'verifying' });
  device.recordApplied(a.patchId);
  device.send({ type: 'result', ...a, outcome: 'applied' });
  device.send({ type: 'result', ...a, outcome: 'applied' });
  device.send({ type: 'progress', ...a, state: 'downloading', bytes: 0 });
  results += 2;

  const offerB = await device.next('offer', device.received.indexOf(offerA) + 1);
  let b = { patchId: offerB.patchId, attempt: offerB.attempt };
  const failed = { type: 'result', ...b, outcome: 'failed', reason: 'apply_failed', detail: 'scripted failure' } as const;
  if (failFirst) {
    device.send(failed);
    device.send({ type: 'progress', ...b, state: 'applying' });
    results += 1;
    const retry = await device.next('offer', device.received.indexOf(offerB) + 1);
    b = { patchId: retry.patchId, attempt: retry.attempt };
  }
  device.recordApplied(b.patchId);
  device.send({ type: 'result', ...b, outcome: 'applied' });
  device.send({ type: 'result', ...b, outcome: 'applied' });
  results += 2;
  if (failFirst) {
    device.send(failed);
    results += 1;
  }
  while (device.received.filter((m) => m.type === 'result_ack').length < results) {
    await device.next('result_ack', device.received.length);
  }

  device.drop();
  await device.closed();
  await device.connect(url);
  device.hello();
  device.send({ type: 'result', ...b, outcome: 'applied' });
  results += 1;
  while (device.received.filter((m) => m.type === 'result_ack').length < results) {
    await device.next('result_ack', device.received.length);
  }
  return results;
}

/**
 * Scripted devices send duplicated, reordered and late reports next to a simulated fleet. The server must
 * count every patch once per device, acknowledge every result, and reject none of these reports as invalid.
 */
export const messyMessages: Scenario = {
  name: 'messy-messages',
  summary: 'devices send duplicated, reordered and late reports, and reconnect with a stale result',
  async run(context) {
    const environment = await ChaosEnvironment.start({ replicas: 1 });
    context.started(environment);
    const startedAt = performance.now();
    const fleet = await environment.startFleet({ url: environment.cluster.url, count: context.devices, prefix: 'tidy_' });
    const ids = Array.from({ length: Math.max(4, Math.floor(context.devices / 10)) }, (_, i) => `messy_${i + 1}`);
    const tokens = await environment.issueTokens(ids);
    const devices = ids.map((id) => new ScriptedDevice(id, tokens.get(id) ?? ''));
    await environment.release(PATCH_A, PATCH_BYTES);
    const playing = devices.map((device, i) => playMessy(device, environment.cluster.url, i % 2 === 0));
    await environment.release(PATCH_B, PATCH_BYTES);
    const sent = await Promise.all(playing);

    const checks = await fleetInvariants(environment, [fleet], [PATCH_A, PATCH_B], devices);
    const acks = devices.reduce((n, d) => n + d.received.filter((m) => m.type === 'result_ack').length, 0);
    const results = sent.reduce((a, b) => a + b, 0);
    checks.push(check('every result acknowledged', acks === results, `${acks} acks for ${results} results`));
    const errors = devices.flatMap((d) => d.received.filter((m) => m.type === 'error').map((m) => (m.type === 'error' ? m.code : '')));
    checks.push(check('no report rejected', errors.length === 0, errors.length === 0 ? 'no error messages' : errors.join(', ')));
    devices.forEach((d) => d.close());
    return { checks, figures: { ...fleetFigures([fleet], startedAt), scripted: devices.length, results } };
  },
};
