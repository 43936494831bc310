import { ChaosEnvironment, sleep } from '../environment.ts';
import {
  check,
  fleetFigures,
  fleetInvariants,
  midRollout,
  noRecordedFailures,
  PATCH_BYTES,
  type Scenario,
  type ScenarioContext,
} from '../scenario.ts';

/** How long Redis stays down: longer than a replica's command retries, shorter than the update timeout. */
const REDIS_DOWN_MS = 3000;

/**
 * Redis is killed with SIGKILL while the first patch is half rolled out, stays down for a few seconds and
 * comes back on the same port. With AOF (`appendfsync always`, so every acknowledged write is on disk) it
 * comes back with its data. Without persistence it comes back empty, and the replicas must notice, drop
 * their devices so that each says hello again and reports what it holds, and rebuild the catalog from the
 * bucket.
 */
async function restartMidRollout(context: ScenarioContext, appendonly: boolean) {
  const environment = await ChaosEnvironment.start({ replicas: 2, appendonly });
  context.started(environment);
  if (appendonly) await environment.state.redis.config('SET', 'appendfsync', 'always');
  const startedAt = performance.now();
  const prefix = appendonly ? 'aof_' : 'mem_';
  const fleet = await environment.startFleet({ url: environment.cluster.url, count: context.devices, prefix });
  await environment.release(`${prefix}a.bin`, PATCH_BYTES);
  await midRollout(fleet, `${prefix}a.bin`);
  const keysBefore = await environment.state.redis.dbsize();
  const devicesBefore = await environment.state.deviceCount();
  context.progress(`SIGKILL to redis-server with ${keysBefore} keys`);
  await environment.stopRedis('SIGKILL');
  await sleep(REDIS_DOWN_MS);
  await environment.startRedis(appendonly);
  if (appendonly) await environment.state.redis.config('SET', 'appendfsync', 'always');
  const keysAfter = await environment.state.redis.dbsize();
  const devicesAfter = await environment.state.deviceCount();
  context.progress(`redis-server back with ${keysAfter} keys`);
  await environment.release(`${prefix}b.bin`, PATCH_BYTES);

  const checks = await fleetInvariants(environment, [fleet], [`${prefix}a.bin`, `${prefix}b.bin`]);
  const stats = fleet.stats();
  checks.push(check('no device stopped', stats.stoppedByServer === 0, `${stats.stoppedByServer} stopped by the server`));
  const internal = stats.serverErrors.internal ?? 0;
  checks.push(check('no internal errors', internal === 0, `${internal} internal errors sent to devices`));
  if (appendonly) {
    checks.push(check('data kept', devicesAfter === devicesBefore, `${devicesAfter} device records after, ${devicesBefore} before`));
    checks.push(await noRecordedFailures(environment, fleet.cameras.map((camera) => camera.deviceId)));
  } else {
    const reported = await environment.countLogLines('redis lost its data');
    checks.push(check('data loss reported', reported > 0, `${reported} replica log lines report the loss`));
  }
  return { checks, figures: { ...fleetFigures([fleet], startedAt), keysBefore, keysAfter } };
}

export const redisRestartAof: Scenario = {
  name: 'redis-restart-aof',
  summary: 'Redis with AOF is killed mid-rollout and restarted',
  run: (context) => restartMidRollout(context, true),
};

export const redisRestartEmpty: Scenario = {
  name: 'redis-restart-empty',
  summary: 'Redis without persistence is killed mid-rollout and comes back empty',
  run: (context) => restartMidRollout(context, false),
};
