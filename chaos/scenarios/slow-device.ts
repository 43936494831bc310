import { readFile } from 'node:fs/promises';
import { ChaosEnvironment, sleep } from '../environment.ts';
import { eventually } from '../invariants.ts';
import { ScriptedDevice } from '../scripted-device.ts';
import { TcpProxy } from '../tcp-proxy.ts';
import { check, fleetFigures, fleetInvariants, PATCH_BYTES, type Scenario } from '../scenario.ts';

/** Read rate of the slow device while its network is slow, in bytes per second. */
const READ_BYTES_PER_SECOND = 4096;
/** How long the network stays slow. */
const SLOW_MS = 8000;
/** Requests the slow device sends at once; their replies, about 5 MB, are more than socket buffers hold. */
const FLOOD = 30_000;
/** Growth of the replica's resident memory that counts as bounded for this flood. */
const MAX_RSS_GROWTH_MB = 64;

async function residentMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

/** Applies every offer from position `from` of the device's received messages until it holds `patches`. */
async function applyOffers(device: ScriptedDevice, patches: string[], from: number): Promise<void> {
  let cursor = from;
  while (patches.some((id) => !device.appliedPatches.includes(id))) {
    const offer = await device.next('offer', cursor);
    cursor = device.received.indexOf(offer) + 1;
    if (device.appliedPatches.includes(offer.patchId)) continue;
    device.recordApplied(offer.patchId);
    device.send({ type: 'result', patchId: offer.patchId, attempt: offer.attempt, outcome: 'applied' });
  }
}

/**
 * One device reads at 4 KB/s through a throttling proxy and floods the replica with url_request messages,
 * while a second patch is released. The replica's send buffer for it fills up: memory must stay bounded, no
 * reply and no offer may be dropped without closing the connection, and the other devices must not notice.
 * Then the device's network recovers and it must receive a reply to every request and finish both updates.
 */
export const slowDevice: Scenario = {
  name: 'slow-device',
  summary: 'a device reading at 4 KB/s floods requests while offers arrive',
  async run(context) {
    const environment = await ChaosEnvironment.start({ replicas: 1 });
    context.started(environment);
    const replica = environment.cluster.replicas[0];
    if (!replica) throw new Error('replica 1 is not running');
    const proxy = await TcpProxy.start(replica.port, READ_BYTES_PER_SECOND);
    try {
      const startedAt = performance.now();
      const fleet = await environment.startFleet({ url: environment.cluster.url, count: context.devices, prefix: 'fast_' });
      const tokens = await environment.issueTokens(['slow_1']);
      const slow = new ScriptedDevice('slow_1', tokens.get('slow_1') ?? '');
      await slow.connect(proxy.url());
      await environment.release('slow_a.bin', PATCH_BYTES);
      const offer = await slow.next('offer');
      const from = slow.received.length;

      const rssBefore = await residentMb(replica.pid);
      let rssPeak = rssBefore;
      const sampling = setInterval(() => {
        void residentMb(replica.pid).then((mb) => (rssPeak = Math.max(rssPeak, mb)));
      }, 200);
      for (let i = 0; i < FLOOD; i++) slow.send({ type: 'url_request', patchId: offer.patchId, attempt: offer.attempt });
      await environment.release('slow_b.bin', PATCH_BYTES);
      await fleet.waitFor((s) => (s.applied['slow_b.bin'] ?? 0) === s.total, { signal: AbortSignal.timeout(60_000) });
      const fleetDoneMs = Math.round(performance.now() - startedAt);
      await sleep(Math.max(0, SLOW_MS - (performance.now() - startedAt)));
      const readWhileSlow = slow.received.length - from;
      proxy.unthrottle();
      context.progress(`network recovers after ${readWhileSlow} replies read slowly`);

      const replies = () => slow.received.slice(from).filter((m) => m.type === 'url' || m.type === 'error').length;
      await eventually(() => replies() >= FLOOD || slow.closeCode !== null, 60_000);
      clearInterval(sampling);
      const answered = replies();
      const closeCode = slow.closeCode;
      if (closeCode !== null) {
        // Closed for reading too slowly: the device reconnects, as the protocol says, and is offered again.
        const reconnectedAt = slow.received.length;
        await slow.connect(environment.cluster.url);
        await applyOffers(slow, ['slow_a.bin', 'slow_b.bin'], reconnectedAt);
      } else {
        await applyOffers(slow, ['slow_a.bin', 'slow_b.bin'], 0);
      }

      const checks = await fleetInvariants(environment, [fleet], ['slow_a.bin', 'slow_b.bin'], [slow]);
      // Either every request got its reply, or the replica closed the connection for reading too slowly and
      // logged it; a connection that stays open with replies missing would be a silent drop. The device sees
      // 4002 only when the close frame gets through its full buffer, and 1006 otherwise; it reconnects on both.
      const closedForSlowness = closeCode !== null && (await environment.countLogLines('device reads too slowly, closing')) === 1;
      const explicit = closedForSlowness || (closeCode === null && answered === FLOOD);
      checks.push(check('no silent drop', explicit, `${answered} replies to ${FLOOD} requests, close code ${closeCode ?? 'none'}`));
      checks.push(check('memory bounded', rssPeak - rssBefore <= MAX_RSS_GROWTH_MB, `replica RSS ${rssBefore} MB, peak ${rssPeak} MB`));
      const others = fleet.stats();
      checks.push(check('other devices unaffected', others.reconnects === 0, `${others.reconnects} reconnects among them`));
      slow.close();
      const figures = {
        ...fleetFigures([fleet], startedAt),
        fleetDoneMs,
        readWhileSlow,
        rssBeforeMb: rssBefore,
        rssPeakMb: rssPeak,
        closeCode: closeCode ?? 'none',
      };
      return { checks, figures };
    } finally {
      await proxy.stop();
    }
  },
};
