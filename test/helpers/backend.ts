import { createHash, randomBytes } from 'node:crypto';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Readable, type Writable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import { startLocalS3, type LocalS3 } from '../../local/s3-server.ts';
import { loadConfig, type Config } from '../../runtime/config.ts';
import { DEVICE_PATH, startReplica, type Replica } from '../../runtime/replica.ts';
import { PatchBucket } from '../../storage/bucket.ts';
import { Catalog } from '../../storage/catalog.ts';
import { createKeys } from '../../storage/keys.ts';
import { connectRedis } from '../../storage/redis.ts';
import { StateStore } from '../../storage/state-store.ts';
import { DeviceTokens } from '../../security/device-tokens.ts';
import { issueDeviceToken, issueDeviceTokens } from '../../security/device-provisioning.ts';
import { detachedSignature, generateSigningKeys } from '../../security/patch-signing.ts';
import { RawDevice } from './device-client.ts';
import { OperatorStore } from '../../storage/operator-store.ts';
import type { OperatorRole } from '../../security/operator-tokens.ts';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Secrets of this test process: a device token secret and a patch signing key pair. */
export const TEST_SECURITY = {
  deviceTokenSecret: randomBytes(32).toString('base64'),
  ...generateSigningKeys(),
};

/** Security variables every test backend gets, so the tests run with security on, as production does. */
export function securityEnv(): Record<string, string> {
  return {
    FLEET_DEVICE_TOKEN_SECRET: TEST_SECURITY.deviceTokenSecret,
    FLEET_SIGNING_PUBLIC_KEY: TEST_SECURITY.publicKey,
  };
}

let sharedS3: Promise<LocalS3> | null = null;

test.after.always(async () => {
  if (sharedS3) await (await sharedS3).stop();
});

/** One S3-compatible server per test process; tests isolate themselves with a bucket each. */
export function localS3(): Promise<LocalS3> {
  sharedS3 ??= startLocalS3();
  return sharedS3;
}

export function uniqueName(kind: string): string {
  return `${kind}-${randomBytes(5).toString('hex')}`;
}

export interface TestBackend {
  config: Config;
  replica: Replica;
  url: string;
  baseUrl: string;
  /** Operator API base URL, e.g. http://127.0.0.1:PORT. */
  apiUrl: string;
  state: StateStore;
  bucket: PatchBucket;
  catalog: Catalog;
  deviceTokens: DeviceTokens;
  /** Uploads `bytes` as a patch, signed, through the same path as `fleet patch upload`. */
  upload(patchId: string, bytes: Buffer): Promise<string>;
  /** Provisions the device, issues its token and opens a connection with it (no hello yet). */
  connect(deviceId: string): Promise<RawDevice>;
  /**
   * Puts an object straight into the bucket, as `mc cp` would, with a detached signature object next to it
   * unless `signed` is false.
   */
  putDirect(key: string, bytes: Buffer, options?: { signed?: boolean }): Promise<void>;
  /** Creates an operator token with this role. */
  operatorToken(role: OperatorRole): Promise<string>;
  /** Provisions devices and issues their tokens. */
  tokens(deviceIds: readonly string[]): Promise<Map<string, string>>;
  stop(): Promise<void>;
}

/**
 * Starts a real replica on a free port with its own Redis key prefix and its own bucket, and stops it when
 * the test ends. `env` overrides configuration variables; `logStream` gets the log lines instead of stdout.
 */
export async function startBackend(
  t: ExecutionContext,
  env: Record<string, string> = {},
  logStream?: Writable,
): Promise<TestBackend> {
  const s3 = await localS3();
  const prefix = `test:${uniqueName('fleet')}:`;
  const bucketName = uniqueName('patches');
  const config = loadConfig({
    REDIS_URL,
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: bucketName,
    S3_ACCESS_KEY: s3.accessKey,
    S3_SECRET_KEY: s3.secretKey,
    FLEET_KEY_PREFIX: prefix,
    FLEET_HOST: '127.0.0.1',
    FLEET_PORT: '0',
    FLEET_API_PORT: '0',
    FLEET_REPLICA_ID: uniqueName('replica'),
    FLEET_CATALOG_POLL_MS: '200',
    FLEET_BUCKET_SCAN_MS: '300',
    FLEET_SWEEP_INTERVAL_MS: '200',
    FLEET_DRAIN_MS: '0',
    FLEET_UNREADY_DELAY_MS: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...securityEnv(),
    ...env,
  });
  const bucket = new PatchBucket(config.s3);
  await bucket.ensureBucket();
  const log = logStream ? pino({ level: config.logLevel }, logStream) : pino({ level: config.logLevel });
  const replica = await startReplica(config, log);
  const redis = connectRedis(config.redisUrl, 'test-observer');
  const state = new StateStore(redis, createKeys(prefix));
  const catalog = new Catalog(state, bucket, log, {
    publicKey: config.security.signingPublicKey,
    requireSignatures: config.security.requireSignatures,
  });
  const deviceTokens = new DeviceTokens(config.security.deviceTokenSecret);

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await replica.stop();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    bucket.destroy();
  };
  t.teardown(stop);

  return {
    config,
    replica,
    url: `ws://127.0.0.1:${replica.port}${DEVICE_PATH}`,
    baseUrl: `http://127.0.0.1:${replica.port}`,
    apiUrl: `http://127.0.0.1:${replica.apiPort}`,
    state,
    bucket,
    catalog,
    deviceTokens,
    async upload(patchId, bytes) {
      const { sha256 } = await catalog.upload(patchId, Readable.from([bytes]), bytes.length, {
        signingKey: TEST_SECURITY.privateKey,
      });
      return sha256;
    },
    async connect(deviceId) {
      const token = await issueDeviceToken(state, deviceTokens, deviceId);
      return RawDevice.connect(`ws://127.0.0.1:${replica.port}${DEVICE_PATH}`, token);
    },
    tokens: (deviceIds) => issueDeviceTokens(state, deviceTokens, deviceIds),
    operatorToken: (role) => new OperatorStore(redis, createKeys(prefix)).create(`test-${role}`, role),
    async putDirect(key, bytes, options = {}) {
      const s3 = new S3Client({
        endpoint: config.s3.endpoint,
        region: config.s3.region,
        credentials: { accessKeyId: config.s3.accessKey, secretAccessKey: config.s3.secretKey },
        forcePathStyle: true,
        requestChecksumCalculation: 'WHEN_REQUIRED',
      });
      try {
        if (options.signed ?? true) {
          const sha256 = createHash('sha256').update(bytes).digest('hex');
          const manifest = { id: key, name: key, version: key, size: bytes.length, sha256 };
          const sig = detachedSignature(TEST_SECURITY.privateKey, manifest);
          await s3.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key: `${key}.sig`, Body: sig }));
        }
        await s3.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key: key, Body: bytes }));
      } finally {
        s3.destroy();
      }
    },
    stop,
  };
}
