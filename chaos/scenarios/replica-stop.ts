import { ChaosEnvironment } from '../environment.ts';
import { check, fleetFigures, fleetInvariants, midRollout, PATCH_BYTES, type Scenario, type ScenarioContext } from '../scenario.ts';

/**
 * Two replicas serve the fleet; one of them goes away while the first patch is half rolled out, and a
 * second patch is released after it. With SIGKILL its devices see 1006 and their presence leases on the
 * dead replica are overwritten when they say hello elsewhere. With SIGTERM the replica drains: every device
 * gets `going_away` (4000) and nothing else.
 */
async function stopMidRollout(context: ScenarioContext, signal: 'SIGKILL' | 'SIGTERM') {
  const environment = await ChaosEnvironment.start({ replicas: 2 });
  context.started(environment);
  const startedAt = performance.now();
  const prefix = signal === 'SIGKILL' ? 'kill_' : 'term_';
  const fleet = await environment.startFleet({ url: environment.cluster.url, count: context.devices, prefix });
  await environment.release(`${prefix}a.bin`, PATCH_BYTES);
  await midRollout(fleet, `${prefix}a.bin`);
  const onReplica = (await fetch(`${environment.cluster.replicas[0]?.baseUrl}/readyz`).then((r) => r.json())) as {
    devices: number;
  };
  context.progress(`${signal} to replica 1 with ${onReplica.devices} devices`);
  const unexpected: string[] = [];
  fleet.on('disconnected', (event) => {
    if (event.code !== 4000) unexpected.push(`${event.deviceId}:${event.code}@${Math.round(performance.now() - startedAt)}ms`);
  });
  if (signal === 'SIGKILL') await environment.cluster.killReplica(0);
  else await environment.cluster.stopReplica(0);
  await environment.release(`${prefix}b.bin`, PATCH_BYTES);

  const checks = await fleetInvariants(environment, [fleet], [`${prefix}a.bin`, `${prefix}b.bin`]);
  const stats = fleet.stats();
  checks.push(check('devices moved', stats.reconnects >= onReplica.devices, `${stats.reconnects} reconnects`));
  if (signal === 'SIGTERM') {
    checks.push(check('only going_away sent', unexpected.length === 0, unexpected.length === 0 ? 'close codes 4000' : `other closes ${unexpected.join(' ')}`));
    checks.push(check('no device stopped', stats.stoppedByServer === 0, `${stats.stoppedByServer} stopped`));
  }
  return { checks, figures: { ...fleetFigures([fleet], startedAt), devicesOnVictim: onReplica.devices } };
}

export const replicaSigkill: Scenario = {
  name: 'replica-sigkill',
  summary: 'one of two replicas is killed with SIGKILL mid-rollout',
  run: (context) => stopMidRollout(context, 'SIGKILL'),
};

export const replicaSigterm: Scenario = {
  name: 'replica-sigterm',
  summary: 'one of two replicas is stopped with SIGTERM mid-rollout and drains its devices',
  run: (context) => stopMidRollout(context, 'SIGTERM'),
};
