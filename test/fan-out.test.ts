import { randomBytes } from 'node:crypto';
import test from 'ava';
import { FAN_OUT_CHUNK } from '../runtime/background.ts';
import { startBackend } from './helpers/backend.ts';
import { logSink } from './helpers/log-sink.ts';
import { offersOf, until, welcomeAll } from './helpers/rollouts.ts';

test('release fans out in chunks, one offer each', async (t) => {
  const { lines, stream } = logSink();
  const backend = await startBackend(t, { LOG_LEVEL: 'info' }, stream);
  const count = 2 * FAN_OUT_CHUNK + 44;
  const ids = Array.from({ length: count }, (_, i) => `cam_fan_${i}`);
  const devices = await welcomeAll(backend, ids);
  t.teardown(() => devices.forEach((device) => device.close()));

  const bytes = randomBytes(5000);
  await backend.upload('fan-1.bin', bytes);
  await until(t, 'every device has its offer', () => offersOf(devices, 'fan-1.bin').length, (n) => n === count);
  await until(t, 'the fan-out summary', () => lines.filter((l) => l.msg === 'fan-out finished' && l.offered === count).length, (n) => n === 1);

  const offers = offersOf(devices, 'fan-1.bin');
  t.true(devices.every((device) => device.received.filter((m) => m.type === 'offer').length === 1));
  t.true(offers.every((o) => o.offer.attempt === 1));
  t.deepEqual(await backend.state.patchCounts('fan-1.bin'), { offered: count });
  t.is(await backend.state.inFlightCount(), count);
  t.is(lines.filter((l) => l.msg === 'offer sent').length, 0, 'a fan-out logs no line per offer');

  // Offers signed within the same second share one URL string; every distinct URL downloads the patch.
  for (const url of new Set(offers.map((o) => o.offer.url))) {
    const response = await fetch(url);
    t.is(response.status, 200);
    t.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);
  }
});
