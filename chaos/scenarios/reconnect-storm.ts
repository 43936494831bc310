import { ChaosEnvironment } from '../environment.ts';
import { TcpProxy } from '../tcp-proxy.ts';
import { check, fleetFigures, fleetInvariants, midRollout, PATCH_BYTES, type Scenario } from '../scenario.ts';

/**
 * Half the cameras reach replica 1 through a proxy that stands in for their network; the other half go
 * through the balancer. Mid-rollout the proxy drops every camera's side at once: the cameras see 1006 and
 * reconnect together, while the replica still holds their old, silent connections. Each hello must replace
 * the old session without marking the device offline, and the rollout must go on.
 */
export const reconnectStorm: Scenario = {
  name: 'reconnect-storm',
  summary: "every device of a replica drops at once and reconnects while its old connections linger",
  async run(context) {
    const environment = await ChaosEnvironment.start({ replicas: 2 });
    context.started(environment);
    const target = environment.cluster.replicas[0];
    if (!target) throw new Error('replica 1 is not running');
    const proxy = await TcpProxy.start(target.port);
    try {
      const startedAt = performance.now();
      const half = Math.max(2, Math.floor(context.devices / 2));
      const stormy = await environment.startFleet({ url: proxy.url(), count: half, prefix: 'storm_' });
      const calm = await environment.startFleet({ url: environment.cluster.url, count: half, prefix: 'calm_' });
      const fleets = [stormy, calm];
      await environment.release('storm_a.bin', PATCH_BYTES);
      await midRollout(stormy, 'storm_a.bin');
      const dropped = proxy.dropClients();
      context.progress(`dropped ${dropped} connections at once`);
      const dropAt = performance.now();
      await stormy.waitFor((s) => s.reconnects >= dropped && s.online === s.total, { signal: AbortSignal.timeout(60_000) });
      const backInMs = Math.round(performance.now() - dropAt);
      await environment.release('storm_b.bin', PATCH_BYTES);

      const checks = await fleetInvariants(environment, fleets, ['storm_a.bin', 'storm_b.bin']);
      const stats = stormy.stats();
      checks.push(check('every dropped device back', stats.reconnects >= dropped, `${stats.reconnects} reconnects for ${dropped} drops`));
      checks.push(check('no device stopped', stats.stoppedByServer === 0, `${stats.stoppedByServer} stopped by the server`));
      checks.push(check('calm half untouched', calm.stats().reconnects === 0, `${calm.stats().reconnects} reconnects`));
      return { checks, figures: { ...fleetFigures(fleets, startedAt), dropped, backInMs } };
    } finally {
      await proxy.stop();
    }
  },
};
