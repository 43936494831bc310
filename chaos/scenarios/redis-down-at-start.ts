import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ChaosEnvironment, sleep } from '../environment.ts';
import { eventually } from '../invariants.ts';
import { check, fleetFigures, fleetInvariants, PATCH_BYTES, type Scenario } from '../scenario.ts';

/** How long the replica runs without Redis before Redis starts. */
const REDIS_ABSENT_MS = 4000;

async function readyStatus(baseUrl: string): Promise<number> {
  try {
    return (await fetch(`${baseUrl}/readyz`)).status;
  } catch {
    return 0;
  }
}

/** Reads the port from the replica's `replica listening` log line, or null before it was written. */
async function listeningPort(logFile: string): Promise<number | null> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const line = text.split('\n').find((l) => l.includes('"msg":"replica listening"'));
  return line ? Number((JSON.parse(line) as { port: number }).port) : null;
}

/**
 * A replica starts while Redis is not running. It must stay up, answer /healthz, report not ready on
 * /readyz, log the outage without flooding, and serve devices once Redis starts.
 */
export const redisDownAtStart: Scenario = {
  name: 'redis-down-at-start',
  summary: 'a replica starts while Redis is unreachable, then Redis starts',
  async run(context) {
    const environment = await ChaosEnvironment.start({ replicas: 0, slots: 1 });
    context.started(environment);
    const startedAt = performance.now();
    await environment.stopRedis('SIGTERM');
    const joining = environment.cluster.addReplica();
    joining.catch(() => undefined);

    const logFile = join(environment.workDir, 'replica-1.log');
    let port: number | null = null;
    const listening = await eventually(async () => (port = await listeningPort(logFile)) !== null, 30_000);
    const baseUrl = `http://127.0.0.1:${port}`;
    const statuses: number[] = [];
    const absentUntil = performance.now() + REDIS_ABSENT_MS;
    while (performance.now() < absentUntil) {
      statuses.push(await readyStatus(baseUrl));
      await sleep(250);
    }
    const alive = listening && (await fetch(`${baseUrl}/healthz`).then((r) => r.status).catch(() => 0)) === 200;
    const retryLines = await environment.countLogLines('redis connection error, retrying');

    context.progress(`redis-server starts after ${REDIS_ABSENT_MS} ms`);
    const redisUp = performance.now();
    await environment.startRedis(false);
    await joining;
    const readyAfterMs = Math.round(performance.now() - redisUp);

    const fleet = await environment.startFleet({ url: environment.cluster.url, count: context.devices, prefix: 'late_' });
    await environment.release('late_a.bin', PATCH_BYTES);
    const checks = await fleetInvariants(environment, [fleet], ['late_a.bin']);
    checks.push(check('alive without redis', alive, alive ? '/healthz 200 while redis was down' : 'replica did not answer'));
    const notReady = statuses.filter((s) => s === 503).length;
    checks.push(check('not ready without redis', notReady === statuses.length, `${notReady} of ${statuses.length} /readyz answers were 503`));
    checks.push(check('outage logged once', retryLines >= 1 && retryLines <= 2, `${retryLines} retry lines in ${REDIS_ABSENT_MS} ms`));
    const fatal = await environment.countLogLines('replica failed to start');
    checks.push(check('no start failure', fatal === 0, `${fatal} start failures logged`));
    return { checks, figures: { ...fleetFigures([fleet], startedAt), readyAfterMs, retryLines } };
  },
};
