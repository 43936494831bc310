import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { startBackendProcess, type BackendProcess } from '../local/backend-process.ts';
import { startCluster, type Cluster } from '../local/cluster.ts';
import { startLocalRedis, type LocalRedis } from '../local/redis-server.ts';
import { startLocalS3, type LocalS3 } from '../local/s3-server.ts';
import { issueDeviceTokens } from '../security/device-provisioning.ts';
import { DeviceTokens } from '../security/device-tokens.ts';
import { generateSigningKeys } from '../security/patch-signing.ts';
import { fleetDeviceIds, SimulatedFleet, type FleetOptions } from '../simulator/index.ts';
import { PatchBucket } from '../storage/bucket.ts';
import { Catalog } from '../storage/catalog.ts';
import { createKeys } from '../storage/keys.ts';
import { connectRedis } from '../storage/redis.ts';
import { StateStore } from '../storage/state-store.ts';

export interface EnvironmentOptions {
  /** Replicas started behind the load balancer. */
  replicas: number;
  /** Balancer slots, for scenarios that add replicas later. Default: `replicas`. */
  slots?: number;
  /** Turns on Redis AOF persistence. */
  appendonly?: boolean;
  /** Configuration variables for every replica, over the scenario defaults. */
  env?: Record<string, string>;
}

/** Defaults that keep the loops of a replica fast enough for a scenario of seconds. */
const SCENARIO_ENV: Record<string, string> = {
  FLEET_CATALOG_POLL_MS: '300',
  FLEET_BUCKET_SCAN_MS: '500',
  FLEET_SWEEP_INTERVAL_MS: '300',
  FLEET_UPDATE_TIMEOUT_MS: '20000',
  FLEET_HEARTBEAT_INTERVAL_S: '2',
  FLEET_PRESENCE_LEASE_MS: '6000',
  FLEET_DRAIN_MS: '1000',
  // HAProxy marks a replica down after two failed checks 300 ms apart.
  FLEET_UNREADY_DELAY_MS: '700',
  FLEET_SHUTDOWN_TIMEOUT_MS: '10000',
  LOG_LEVEL: 'info',
};

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Everything one scenario runs on, all private to it: a redis-server, an S3-compatible server, replicas as
 * child processes behind HAProxy, and the secrets the replicas and the simulated cameras share. Redis and
 * the store can be stopped and started again on the same port and folder. `stop()` ends every process that
 * the environment started, by its handle.
 */
export class ChaosEnvironment {
  readonly security = { deviceTokenSecret: randomBytes(48).toString('base64'), ...generateSigningKeys() };
  readonly log: Logger = pino({ level: 'silent' });
  redis!: LocalRedis;
  s3!: LocalS3;
  cluster!: Cluster;
  /** Replicas started outside the balancer with `startLoneReplica`. */
  readonly loneReplicas: BackendProcess[] = [];
  state!: StateStore;
  bucket!: PatchBucket;
  catalog!: Catalog;
  env!: Record<string, string>;
  readonly workDir: string;
  private readonly fleets: SimulatedFleet[] = [];
  private readonly tokens = new DeviceTokens(this.security.deviceTokenSecret);
  private readonly bucketName = `chaos-${randomBytes(4).toString('hex')}`;

  private constructor(workDir: string) {
    this.workDir = workDir;
  }

  static async start(options: EnvironmentOptions): Promise<ChaosEnvironment> {
    const environment = new ChaosEnvironment(await mkdtemp(join(tmpdir(), 'fleet-chaos-')));
    try {
      await environment.startServices(options);
    } catch (err) {
      await environment.stop();
      throw err;
    }
    return environment;
  }

  private async startServices(options: EnvironmentOptions): Promise<void> {
    this.redis = await startLocalRedis({ appendonly: options.appendonly ?? false, dir: await this.folder('redis') });
    this.s3 = await startLocalS3({ directory: await this.folder('s3') });
    this.env = {
      REDIS_URL: this.redis.url,
      S3_ENDPOINT: this.s3.endpoint,
      S3_BUCKET: this.bucketName,
      S3_ACCESS_KEY: this.s3.accessKey,
      S3_SECRET_KEY: this.s3.secretKey,
      FLEET_KEY_PREFIX: 'chaos:',
      FLEET_DEVICE_TOKEN_SECRET: this.security.deviceTokenSecret,
      FLEET_SIGNING_PUBLIC_KEY: this.security.publicKey,
      ...SCENARIO_ENV,
      ...options.env,
    };
    this.bucket = new PatchBucket({
      endpoint: this.s3.endpoint,
      publicEndpoint: this.s3.endpoint,
      region: 'us-east-1',
      bucket: this.bucketName,
      accessKey: this.s3.accessKey,
      secretKey: this.s3.secretKey,
    });
    await this.bucket.ensureBucket();
    // The observer connection waits out Redis restarts instead of failing the scenario's own reads.
    this.state = new StateStore(
      connectRedis(this.redis.url, 'chaos-observer', { maxRetriesPerRequest: null }),
      createKeys('chaos:'),
    );
    this.catalog = new Catalog(this.state, this.bucket, this.log, {
      publicKey: this.security.publicKey,
      requireSignatures: true,
    });
    this.cluster = await startCluster({
      replicas: options.replicas,
      slots: options.slots,
      env: this.env,
      logDir: this.workDir,
    });
  }

  private async folder(name: string): Promise<string> {
    const path = join(this.workDir, name);
    await mkdir(path, { recursive: true });
    return path;
  }

  /** Starts a replica outside the balancer, with extra variables, e.g. a moved clock. */
  async startLoneReplica(extraEnv: Record<string, string>, name: string): Promise<BackendProcess> {
    const replica = await startBackendProcess(
      { ...this.env, FLEET_REPLICA_ID: name, ...extraEnv },
      join(this.workDir, `${name}.log`),
    );
    this.loneReplicas.push(replica);
    return replica;
  }

  /** Uploads a signed patch of `size` random bytes through the same path as `fleet patch upload`. */
  async release(patchId: string, size: number): Promise<void> {
    const bytes = randomBytes(size);
    await this.catalog.upload(patchId, Readable.from([bytes]), bytes.length, { signingKey: this.security.privateKey });
  }

  /** Provisions the devices and issues their tokens. */
  issueTokens(deviceIds: readonly string[]): Promise<Map<string, string>> {
    return issueDeviceTokens(this.state, this.tokens, deviceIds);
  }

  /** Provisions a fleet of simulated cameras, starts it and waits until every camera is online. */
  async startFleet(options: Omit<FleetOptions, 'tokenFor' | 'signingPublicKey'>): Promise<SimulatedFleet> {
    const tokens = await this.issueTokens(fleetDeviceIds(options));
    const fleet = new SimulatedFleet({
      applyMs: 50,
      connectsPerSecond: 500,
      backoffBaseMs: 100,
      backoffCapMs: 1000,
      ...options,
      signingPublicKey: this.security.publicKey,
      tokenFor: (id) => tokens.get(id) ?? '',
    });
    this.fleets.push(fleet);
    await fleet.start();
    await fleet.waitFor((s) => s.online === s.total, { signal: AbortSignal.timeout(60_000) });
    return fleet;
  }

  /** Stops Redis: SIGKILL for a crash, SIGTERM for a clean stop (which flushes the AOF). */
  async stopRedis(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    const child = this.redis.process;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }

  /** Starts Redis again on the same port and folder, with the same persistence setting. */
  async startRedis(appendonly: boolean): Promise<void> {
    this.redis = await startLocalRedis({ port: this.redis.port, dir: this.redis.dir, appendonly });
  }

  /** Stops the S3-compatible server and drops its connections; the objects stay on disk. */
  async stopBucket(): Promise<void> {
    await this.s3.stop({ keepData: true });
  }

  /** Starts the S3-compatible server again on the same port and folder. */
  async startBucket(): Promise<void> {
    this.s3 = await startLocalS3({ port: this.s3.port, directory: this.s3.directory });
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.fleets.map((fleet) => fleet.stop()));
    // SIGKILL: the scenario is over, and a drain would only add seconds to every run.
    await Promise.allSettled(this.loneReplicas.map((replica) => replica.kill()));
    await Promise.allSettled((this.cluster?.running() ?? []).map((replica) => replica.kill()));
    await this.cluster?.stop().catch(() => undefined);
    this.state?.redis.disconnect();
    this.bucket?.destroy();
    await this.s3?.stop().catch(() => undefined);
    await this.redis?.stop().catch(() => undefined);
  }

  /** Counts the replica log lines, over every replica this environment started, whose message is `message`. */
  async countLogLines(message: string): Promise<number> {
    const files = (await readdir(this.workDir)).filter((name) => name.endsWith('.log'));
    let count = 0;
    for (const file of files) {
      for (const line of (await readFile(join(this.workDir, file), 'utf8')).split('\n')) {
        if (line.includes(`"msg":${JSON.stringify(message)}`) || line.includes(`"msg":"${message}`)) count += 1;
      }
    }
    return count;
  }

  /** Deletes the work folder with the replica logs; scenarios keep it when they fail. */
  async removeWorkDir(): Promise<void> {
    await rm(this.workDir, { recursive: true, force: true });
  }
}
