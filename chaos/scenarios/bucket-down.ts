import { ChaosEnvironment, sleep } from '../environment.ts';
import {
  check,
  fleetFigures,
  fleetInvariants,
  midRollout,
  noRecordedFailures,
  PATCH_BYTES,
  type Scenario,
} from '../scenario.ts';

/** How long the store stays down: longer than a camera's download retries, shorter than the update timeout. */
const BUCKET_DOWN_MS = 5000;
/** Large enough that a download is still on the wire when the store stops, beyond what socket buffers hold. */
const BIG_PATCH_BYTES = 4 * 1024 * 1024;

/**
 * The S3-compatible store stops right after the second patch is released, while the first is still rolling
 * out, drops the downloads in progress and starts again on the same port and folder. Cameras whose downloads fail report `download_failed`.
 * The backend must not count those as device failures, must hold offers back while the store is down, and
 * must finish the rollout once it is back.
 */
export const bucketDown: Scenario = {
  name: 'bucket-down',
  summary: 'the S3 store stops mid-rollout for a few seconds and starts again',
  async run(context) {
    const environment = await ChaosEnvironment.start({ replicas: 2 });
    context.started(environment);
    const startedAt = performance.now();
    // Downloads of the first patch take a few seconds each, so many are in progress when the store goes.
    const fleet = await environment.startFleet({
      url: environment.cluster.url,
      count: context.devices,
      prefix: 'bkt_',
      downloadBytesPerSecond: BIG_PATCH_BYTES / 2,
    });
    await environment.release('bkt_a.bin', BIG_PATCH_BYTES);
    await midRollout(fleet, 'bkt_a.bin', 0.1);
    await environment.release('bkt_b.bin', PATCH_BYTES);
    const appliedAtStop = fleet.stats().applied['bkt_a.bin'] ?? 0;
    context.progress(`store stops with ${appliedAtStop} of ${context.devices} applied`);
    await environment.stopBucket();
    await sleep(BUCKET_DOWN_MS);
    const failedDuringOutage = Object.values(fleet.stats().failed).reduce((a, b) => a + b, 0);
    await environment.startBucket();
    context.progress('store is back');

    const checks = await fleetInvariants(environment, [fleet], ['bkt_a.bin', 'bkt_b.bin']);
    checks.push(await noRecordedFailures(environment, fleet.cameras.map((camera) => camera.deviceId)));
    const stats = fleet.stats();
    checks.push(check('no device stopped', stats.stoppedByServer === 0, `${stats.stoppedByServer} stopped by the server`));
    const figures = { ...fleetFigures([fleet], startedAt), failedDuringOutage };
    return { checks, figures };
  },
};
