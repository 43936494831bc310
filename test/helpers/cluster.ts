import { mkdtemp, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { pino } from 'pino';
import { startCluster, type Cluster } from '../../local/cluster.ts';
import { PatchBucket } from '../../storage/bucket.ts';
import { Catalog } from '../../storage/catalog.ts';
import { createKeys } from '../../storage/keys.ts';
import { connectRedis } from '../../storage/redis.ts';
import { StateStore } from '../../storage/state-store.ts';
import { localS3, REDIS_URL, securityEnv, TEST_SECURITY, uniqueName } from './backend.ts';
import { DeviceTokens } from '../../security/device-tokens.ts';
import { issueDeviceTokens } from '../../security/device-provisioning.ts';

export interface TestCluster {
  cluster: Cluster;
  env: Record<string, string>;
  state: StateStore;
  catalog: Catalog;
  bucket: PatchBucket;
  logDir: string;
  /** Provisions devices and issues their tokens. */
  tokens(deviceIds: readonly string[]): Promise<Map<string, string>>;
  /** Uploads a signed patch through the same path as `fleet patch upload`. */
  upload(patchId: string, bytes: Buffer): Promise<void>;
}

/**
 * Starts `replicas` replica processes behind HAProxy, with `slots` ports reserved for scaling, a key prefix
 * and a bucket of their own, and stops everything when the test ends. Replica logs stay in `logDir` when
 * the test fails.
 */
export async function startTestCluster(
  t: ExecutionContext,
  options: { replicas: number; slots?: number; env?: Record<string, string>; redisUrl?: string },
): Promise<TestCluster> {
  const s3 = await localS3();
  const prefix = `test:${uniqueName('cluster')}:`;
  const redisUrl = options.redisUrl ?? REDIS_URL;
  const env: Record<string, string> = {
    REDIS_URL: redisUrl,
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: uniqueName('patches'),
    S3_ACCESS_KEY: s3.accessKey,
    S3_SECRET_KEY: s3.secretKey,
    FLEET_KEY_PREFIX: prefix,
    FLEET_CATALOG_POLL_MS: '500',
    FLEET_BUCKET_SCAN_MS: '500',
    FLEET_SWEEP_INTERVAL_MS: '300',
    FLEET_DRAIN_MS: '2000',
    FLEET_UNREADY_DELAY_MS: '1000',
    // Far above drain plus the unready delay, so a slow machine never reaches the hard stop, which would
    // cut connections without a close frame.
    FLEET_SHUTDOWN_TIMEOUT_MS: '30000',
    LOG_LEVEL: 'info',
    ...securityEnv(),
    ...options.env,
  };
  const bucket = new PatchBucket({
    endpoint: s3.endpoint,
    publicEndpoint: s3.endpoint,
    region: 'us-east-1',
    bucket: env.S3_BUCKET as string,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
  });
  await bucket.ensureBucket();
  const logDir = await mkdtemp(join(tmpdir(), 'fleet-cluster-test-'));
  const cluster = await startCluster({ replicas: options.replicas, slots: options.slots, env, logDir });
  const redis = connectRedis(redisUrl, 'test-cluster-observer');
  const state = new StateStore(redis, createKeys(prefix));
  t.teardown(async () => {
    await cluster.stop();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    bucket.destroy();
    if (t.passed) await rm(logDir, { recursive: true, force: true });
    else t.log(`replica logs kept in ${logDir}`);
  });
  const catalog = new Catalog(state, bucket, pino({ level: 'silent' }), {
    publicKey: TEST_SECURITY.publicKey,
    requireSignatures: true,
  });
  const deviceTokens = new DeviceTokens(TEST_SECURITY.deviceTokenSecret);
  return {
    cluster,
    env,
    state,
    bucket,
    catalog,
    logDir,
    tokens: (deviceIds) => issueDeviceTokens(state, deviceTokens, deviceIds),
    async upload(patchId, bytes) {
      await catalog.upload(patchId, Readable.from([bytes]), bytes.length, { signingKey: TEST_SECURITY.privateKey });
    },
  };
}
