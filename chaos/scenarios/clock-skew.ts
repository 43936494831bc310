import { fileURLToPath } from 'node:url';
import { ChaosEnvironment } from '../environment.ts';
import { check, fleetFigures, fleetInvariants, noRecordedFailures, PATCH_BYTES, type Scenario } from '../scenario.ts';

/** Ten minutes behind: longer than the signed URLs' lifetime, shorter than S3's 15-minute request skew limit. */
const CLOCK_OFFSET_MS = -10 * 60 * 1000;
const preload = fileURLToPath(new URL('../../local/clock-offset.ts', import.meta.url));

/**
 * One replica's wall clock runs ten minutes behind (local/clock-offset.ts moves Date.now and new Date in its
 * process). Half the cameras connect to it directly, the other half to a replica with a right clock behind
 * the balancer. Deadlines and leases live on the Redis clock; signed URLs and the times sent to devices must
 * not depend on the replica's clock either, or every URL it signs has expired before it is sent.
 */
export const clockSkew: Scenario = {
  name: 'clock-skew',
  summary: 'one replica clock runs 10 minutes behind during a rollout',
  async run(context) {
    const environment = await ChaosEnvironment.start({ replicas: 1 });
    context.started(environment);
    const startedAt = performance.now();
    const skewed = await environment.startLoneReplica(
      { FAKE_CLOCK_OFFSET_MS: String(CLOCK_OFFSET_MS), NODE_OPTIONS: `--import tsx --import ${preload}` },
      'replica-skewed',
    );
    const half = Math.max(2, Math.floor(context.devices / 2));
    const behind = await environment.startFleet({ url: skewed.url, count: half, prefix: 'skew_' });
    const right = await environment.startFleet({ url: environment.cluster.url, count: half, prefix: 'sync_' });
    const fleets = [behind, right];
    await environment.release('skew_a.bin', PATCH_BYTES);
    await environment.release('skew_b.bin', PATCH_BYTES);

    const checks = await fleetInvariants(environment, fleets, ['skew_a.bin', 'skew_b.bin']);
    const deviceIds = fleets.flatMap((fleet) => fleet.cameras.map((camera) => camera.deviceId));
    checks.push(await noRecordedFailures(environment, deviceIds));
    const noticed = await environment.countLogLines('replica clock differs from the redis clock; using the redis clock');
    checks.push(check('skew noticed', noticed >= 1, `${noticed} log lines about the clock offset`));
    return { checks, figures: { ...fleetFigures(fleets, startedAt), offsetS: CLOCK_OFFSET_MS / 1000 } };
  },
};
