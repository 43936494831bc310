import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startBackendProcess } from '../local/backend-process.ts';
import { startCluster } from '../local/cluster.ts';
import { startLocalRedis, type LocalRedis } from '../local/redis-server.ts';
import { startLocalS3, type LocalS3 } from '../local/s3-server.ts';
import { fleetDeviceIds, SimulatedFleet } from '../simulator/index.ts';
import { DeviceTokens } from '../security/device-tokens.ts';
import { issueDeviceTokens } from '../security/device-provisioning.ts';
import { generateSigningKeys } from '../security/patch-signing.ts';
import { PatchBucket } from '../storage/bucket.ts';
import { Catalog } from '../storage/catalog.ts';
import { createKeys } from '../storage/keys.ts';
import { OperatorStore } from '../storage/operator-store.ts';
import { connectRedis } from '../storage/redis.ts';
import { StateStore } from '../storage/state-store.ts';
import { summarizeFleet, type FleetSummary } from '../storage/summary.ts';
import { LiveProgress } from './demo-progress.ts';
import { DemoRollouts, type DemoRolloutReport } from './demo-rollouts.ts';
import { bytes, table } from './format.ts';
import { CliError, EXIT } from './storage-access.ts';

export interface DemoOptions {
  devices: string;
  patchMb: string;
  json?: boolean;
  keepRunning?: boolean;
  failureRate: string;
  disconnectRate: string;
  stallTimeout: string;
  replicas: string;
  killReplica?: boolean;
  maxInFlight?: string;
  failureThreshold?: string;
}

interface DemoSummary {
  devices: number;
  patches: number;
  applied: number;
  failed: number;
  durationMs: number;
  duplicates: number;
  inFlightAtEnd: number;
  resumedDownloads: number;
  replicas: number;
  killedReplica: boolean;
  /**
   * The largest number of updates in flight at once: sampled every 500 ms, and with rollouts also counted
   * exactly by every claim.
   */
  maxInFlightSeen: number;
  rolloutState: DemoRolloutReport['rolloutState'];
  rolloutReason: string | null;
  perPatch: { id: string; applied: number; failed: number; rolloutId: string | null; rolloutState: string | null }[];
}

function positive(name: string, value: string, integer: boolean): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new CliError(`invalid --${name} ${JSON.stringify(value)}: expected a positive ${integer ? 'whole ' : ''}number`, EXIT.usage);
  }
  return n;
}

function fraction(name: string, value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw new CliError(`invalid --${name} ${JSON.stringify(value)}: expected 0 to 1`, EXIT.usage);
  return n;
}

/**
 * `fleet demo`: the main job on one machine. Starts Redis and an S3-compatible store when none is configured,
 * one backend replica and a simulated fleet, releases two real patch files, shows live progress and ends
 * with a report. With --max-in-flight or --failure-threshold each patch gets a rollout before its release.
 * Exit code 0 only when every camera applied every patch; 5 when some did not, for example because a
 * rollout paused at its failure threshold (the summary's rolloutState and rolloutReason give the cause).
 */
export async function runDemo(options: DemoOptions): Promise<void> {
  const deviceCount = positive('devices', options.devices, true);
  const patchBytes = Math.round(positive('patch-mb', options.patchMb, false) * 1024 * 1024);
  const failureRate = fraction('failure-rate', options.failureRate);
  const disconnectRate = fraction('disconnect-rate', options.disconnectRate);
  const stallMs = positive('stall-timeout', options.stallTimeout, false) * 1000;
  const replicaCount = positive('replicas', options.replicas, true);
  if (options.killReplica && replicaCount < 2) {
    throw new CliError('--kill-replica needs --replicas 2 or more, so the fleet has somewhere to go', EXIT.usage);
  }
  DemoRollouts.check(options);
  const progress = new LiveProgress();
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const step of cleanups.reverse()) await step().catch(() => undefined);
    cleanups.length = 0;
  };
  const onSignal = () => {
    progress.message('interrupted, stopping what the demo started');
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const workDir = await mkdtemp(join(tmpdir(), 'fleet-demo-'));
    // The work folder holds the backend log; it stays when the demo did not succeed.
    cleanups.push(() =>
      options.keepRunning || process.exitCode ? Promise.resolve() : rm(workDir, { recursive: true, force: true }),
    );

    let redisUrl = process.env.REDIS_URL;
    if (!redisUrl) {
      const redis: LocalRedis = await startLocalRedis();
      cleanups.push(() => redis.stop());
      redisUrl = redis.url;
      progress.message(`started redis-server on ${redis.url} (pid ${redis.pid})`);
    }
    let s3Env: Record<string, string>;
    if (process.env.S3_ENDPOINT) {
      s3Env = {};
    } else {
      const s3: LocalS3 = await startLocalS3();
      cleanups.push(() => s3.stop());
      s3Env = { S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY: s3.accessKey, S3_SECRET_KEY: s3.secretKey };
      progress.message(`started S3-compatible store on ${s3.endpoint}`);
    }
    const prefix = process.env.FLEET_KEY_PREFIX || `demo-${randomBytes(3).toString('hex')}:`;
    // The demo runs with security on, as production does: its own token secret and signing keys.
    const signing = generateSigningKeys();
    const deviceTokenSecret = randomBytes(48).toString('base64');
    const env: Record<string, string> = {
      FLEET_DEVICE_TOKEN_SECRET: deviceTokenSecret,
      FLEET_SIGNING_PUBLIC_KEY: signing.publicKey,
      REDIS_URL: redisUrl,
      FLEET_KEY_PREFIX: prefix,
      S3_BUCKET: process.env.S3_BUCKET || 'fleet-demo',
      FLEET_REPLICA_ID: 'demo-replica-1',
      ...s3Env,
    };
    const merged = { ...process.env, ...env };
    const bucket = new PatchBucket({
      endpoint: merged.S3_ENDPOINT ?? '',
      publicEndpoint: merged.S3_PUBLIC_ENDPOINT ?? merged.S3_ENDPOINT ?? '',
      region: merged.S3_REGION ?? 'us-east-1',
      bucket: env.S3_BUCKET ?? 'fleet-demo',
      accessKey: merged.S3_ACCESS_KEY ?? '',
      secretKey: merged.S3_SECRET_KEY ?? '',
    });
    cleanups.push(async () => bucket.destroy());
    await bucket.ensureBucket();

    let deviceUrl: string;
    // Operator API (and dashboard) of one running replica; haproxy in front of a cluster balances the device
    // port only. Asked for at the end, because --kill-replica stops replica 1.
    let apiUrl: () => string;
    let killFirstReplica: (() => Promise<void>) | null = null;
    if (replicaCount === 1) {
      const logFile = join(workDir, 'backend.log');
      const backend = await startBackendProcess(env, logFile);
      cleanups.push(() => backend.stop());
      deviceUrl = backend.url;
      apiUrl = () => backend.apiBaseUrl;
      progress.message(`backend replica on ${backend.baseUrl} (pid ${backend.pid}), log in ${logFile}`);
    } else {
      const cluster = await startCluster({ replicas: replicaCount, env, logDir: workDir });
      cleanups.push(() => cluster.stop());
      deviceUrl = cluster.url;
      apiUrl = () => cluster.running()[0]?.apiBaseUrl ?? '';
      const pids = cluster.running().map((r) => r.pid).join(', ');
      progress.message(
        `${replicaCount} replicas (pids ${pids}) behind haproxy on ${cluster.url}, logs in ${workDir}`,
      );
      killFirstReplica = async () => {
        const pid = cluster.replicas[0]?.pid;
        await cluster.killReplica(0);
        progress.message(`killed replica 1 (pid ${pid}) with SIGKILL mid-rollout`);
      };
    }

    const redis = connectRedis(redisUrl, 'fleet-demo');
    cleanups.push(async () => redis.disconnect());
    const state = new StateStore(redis, createKeys(prefix));
    const catalog = new Catalog(state, bucket, pino({ level: 'silent' }), {
      publicKey: signing.publicKey,
      requireSignatures: true,
    });

    const tokens = await issueDeviceTokens(state, new DeviceTokens(deviceTokenSecret), fleetDeviceIds({ count: deviceCount }));
    const fleet = new SimulatedFleet({
      url: deviceUrl,
      count: deviceCount,
      failureRate,
      disconnectRate,
      signingPublicKey: signing.publicKey,
      tokenFor: (id) => tokens.get(id) ?? '',
    });
    cleanups.push(() => fleet.stop());
    progress.message(`starting ${deviceCount} simulated cameras`);
    await fleet.start();
    await fleet.waitFor((s) => s.online === s.total);

    const rollouts = new DemoRollouts(state, options);
    const rolloutOf = new Map<string, string | null>();
    const started = performance.now();
    const patchIds: string[] = [];
    for (const [index, size] of [patchBytes, Math.round(patchBytes * 1.25)].entries()) {
      const id = `demo-patch-${index + 1}-${randomBytes(3).toString('hex')}.bin`;
      const file = join(workDir, id);
      await writeFile(file, randomBytes(size));
      const rolloutId = await rollouts.create(id);
      rolloutOf.set(id, rolloutId);
      if (rolloutId) progress.message(`created rollout ${rolloutId} of ${id}`);
      const { sha256 } = await catalog.upload(id, createReadStream(file), size, { signingKey: signing.privateKey });
      patchIds.push(id);
      progress.message(`released ${id} (${bytes(size)}, sha256 ${sha256.slice(0, 16)}…)`);
    }

    let summary: FleetSummary = await summarizeFleet(state);
    let lastChange = performance.now();
    let lastApplied = -1;
    let killedReplica = false;
    let sampledMax = 0;
    let rolloutRecords = await rollouts.read();
    for (;;) {
      summary = await summarizeFleet(state);
      rolloutRecords = await rollouts.read();
      sampledMax = Math.max(sampledMax, summary.inFlight);
      for (const line of rollouts.newPauses(rolloutRecords)) progress.message(line);
      progress.show(summary, performance.now() - started);
      const applied = summary.patches.reduce((sum, p) => sum + (p.counts.applied ?? 0), 0);
      if (options.killReplica && !killedReplica && killFirstReplica && applied >= deviceCount / 4) {
        killedReplica = true;
        await killFirstReplica();
      }
      if (applied !== lastApplied) {
        lastApplied = applied;
        lastChange = performance.now();
      }
      const stats = fleet.stats();
      const allApplied = patchIds.every((id) => (stats.applied[id] ?? 0) === deviceCount);
      if (allApplied && summary.inFlight === 0 && applied === deviceCount * patchIds.length) break;
      // Held devices of a running rollout start again after their backoff, so the demo is not settled yet.
      const settled = summary.inFlight === 0 && !DemoRollouts.pending(rolloutRecords) && performance.now() - lastChange > 3000;
      if (settled || performance.now() - lastChange > stallMs) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const durationMs = Math.round(performance.now() - started);
    const stats = fleet.stats();
    const report: DemoSummary = {
      devices: deviceCount,
      patches: patchIds.length,
      applied: 0,
      failed: 0,
      durationMs,
      duplicates: stats.duplicates,
      inFlightAtEnd: summary.inFlight,
      resumedDownloads: stats.resumedDownloads,
      replicas: replicaCount,
      killedReplica,
      maxInFlightSeen: Math.max(sampledMax, DemoRollouts.maxInFlightSeen(rolloutRecords)),
      ...DemoRollouts.report(rolloutRecords),
      perPatch: [],
    };
    for (const id of patchIds) {
      const counts = summary.patches.find((p) => p.id === id)?.counts ?? {};
      const applied = counts.applied ?? 0;
      const failed = (counts.failed ?? 0) + (counts.timed_out ?? 0);
      report.applied += applied;
      report.failed += failed;
      const rolloutId = rolloutOf.get(id) ?? null;
      const rolloutState = rolloutRecords.find((r) => r.id === rolloutId)?.state ?? null;
      report.perPatch.push({ id, applied, failed, rolloutId, rolloutState });
    }
    printReport(report);
    if (options.keepRunning) {
      const operatorToken = await new OperatorStore(redis, createKeys(prefix)).create('demo', 'operator');
      const signingKeyFile = join(workDir, 'fleet-signing.key');
      await writeFile(signingKeyFile, signing.privateKey, { mode: 0o600 });
      cleanups.push(() => rm(signingKeyFile, { force: true }));
      progress.message(keepRunningHelp({ apiUrl: apiUrl(), operatorToken, signingKeyFile, env }));
      process.removeListener('SIGINT', onSignal);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
    if (options.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    const ok = report.applied === deviceCount * patchIds.length && report.duplicates === 0;
    if (!ok) process.exitCode = EXIT.incomplete;
  } finally {
    await cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

/** Builds what the demo prints when it stays up: the dashboard, the API variables and the storage variables. */
function keepRunningHelp(help: { apiUrl: string; operatorToken: string; signingKeyFile: string; env: Record<string, string> }): string {
  const { apiUrl, operatorToken, signingKeyFile, env } = help;
  return [
    '',
    'keeping everything running; press Ctrl-C to stop.',
    `dashboard: ${apiUrl}/ (sign in with the operator token below)`,
    '',
    'Use the CLI against the operator API:',
    `  export FLEET_SERVER=${apiUrl}`,
    `  export FLEET_TOKEN=${operatorToken}`,
    `  export FLEET_SIGNING_KEY_FILE=${signingKeyFile}`,
    '  npm run fleet -- status --watch',
    '',
    'Commands that read Redis and the bucket directly (serve, simulate, device play, operator) also need:',
    ...Object.entries(env).map(([k, v]) => `  export ${k}='${v}'`),
  ].join('\n');
}

function printReport(report: DemoSummary): void {
  const rows = report.perPatch.map((p) => [p.id, p.applied, p.failed, p.rolloutId ? `${p.rolloutId} ${p.rolloutState}` : '-']);
  const text = [
    '',
    `devices ${report.devices}, patches ${report.patches}, took ${(report.durationMs / 1000).toFixed(1)}s`,
    table(['PATCH', 'APPLIED', 'FAILED', 'ROLLOUT'], rows),
    `applied ${report.applied}, failed ${report.failed}, duplicates ${report.duplicates}, ` +
      `in flight at end ${report.inFlightAtEnd}, max in flight ${report.maxInFlightSeen}, resumed downloads ${report.resumedDownloads}`,
    ...(report.rolloutReason ? [`rollouts ${report.rolloutState}: ${report.rolloutReason}`] : []),
  ].join('\n');
  process.stderr.write(`${text}\n`);
}
