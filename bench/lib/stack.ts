import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { startBuiltReplica, type BuiltReplica } from './backend.ts';
import { startLocalRedis, type LocalRedis } from '../../local/redis-server.ts';
import { issueDeviceTokens } from '../../security/device-provisioning.ts';
import { DeviceTokens } from '../../security/device-tokens.ts';
import { generateSigningKeys, signManifest } from '../../security/patch-signing.ts';
import { PatchBucket } from '../../storage/bucket.ts';
import { createKeys, type Keys } from '../../storage/keys.ts';
import { connectRedis } from '../../storage/redis.ts';
import { StateStore } from '../../storage/state-store.ts';
import type { S3StoreCommands } from '../peers/s3-store.ts';
import { track } from './cleanup.ts';
import type { Plan } from './plan.ts';
import { registerProcess, unregisterProcess } from './placement.ts';
import { rssBytes, lowestMemory, stopChild, type MemoryReading } from './processes.ts';
import { sleep } from './stats.ts';
import { Worker } from './worker.ts';

export const BUCKET = 'bench-patches';
const projectRoot = fileURLToPath(new URL('../../', import.meta.url));
const controlPreload = fileURLToPath(new URL('../peers/control-preload.mjs', import.meta.url));

/** Shared state of all scenarios: the plan, the private Redis and patch store, and the log folder. */
export interface BenchContext {
  plan: Plan;
  logDir: string;
  /** Folder for --cpu-prof profiles of the backend, or null when not profiling. */
  profileDir: string | null;
  /** Folder for --heap-snapshots of the backend, or null. */
  heapDir: string | null;
  redis: LocalRedis;
  /** Harness connection to the private Redis, for checks and cleanup. */
  redisClient: Redis;
  store: { endpoint: string; accessKey: string; secretKey: string; pid: number };
  bucket: PatchBucket;
  /** HMAC secret the backend verifies device tokens with. */
  tokenSecret: string;
  /** Folder of the JavaScript build of the backend (see buildBackend). */
  buildDir: string;
  /** Ed25519 keys (PEM): the backend gets the public key, the harness signs each released patch. */
  signingKeys: { publicKey: string; privateKey: string };
  progress(message: string): void;
}

export interface Stack {
  context: BenchContext;
  stop(): Promise<void>;
}

/** Starts the private Redis and the patch store, and creates the bucket. */
export async function startStack(
  plan: Plan,
  options: { logDir: string; profileDir: string | null; heapDir: string | null; progress(message: string): void },
): Promise<Stack> {
  const buildDir = await buildBackend(options.progress);
  const redis = await startLocalRedis();
  track(redis.process);
  registerProcess(redis.pid);
  let store: Worker<S3StoreCommands> | null = null;
  try {
    store = await Worker.start<S3StoreCommands>('s3-store', new URL('../peers/s3-store.ts', import.meta.url), { logDir: options.logDir });
    track(store.child);
    registerProcess(store.pid);
    const info = { ...(store.info as { endpoint: string; accessKey: string; secretKey: string }), pid: store.pid };
    const bucket = new PatchBucket({
      endpoint: info.endpoint,
      publicEndpoint: info.endpoint,
      region: 'us-east-1',
      bucket: BUCKET,
      accessKey: info.accessKey,
      secretKey: info.secretKey,
    });
    await bucket.ensureBucket();
    const redisClient = connectRedis(redis.url, 'bench-harness');
    const context: BenchContext = {
      plan,
      logDir: options.logDir,
      profileDir: options.profileDir,
      heapDir: options.heapDir,
      redis,
      redisClient,
      store: info,
      bucket,
      buildDir,
      tokenSecret: randomBytes(48).toString('base64'),
      signingKeys: generateSigningKeys(),
      progress: options.progress,
    };
    const storeWorker = store;
    return {
      context,
      async stop() {
        redisClient.disconnect();
        bucket.destroy();
        await storeWorker.stop();
        await redis.stop();
      },
    };
  } catch (err) {
    await store?.stop();
    await redis.stop();
    throw err;
  }
}

/**
 * Compiles the backend to JavaScript in bench/.build/ (inside the project, so that its node_modules and
 * package.json apply), as `npm run build` does for the container image, and returns the folder.
 * Started from the TypeScript sources instead, every replica would compile them at start-up and keep tsx's
 * module loader thread, whose own V8 heap shrinks by some 17 MiB at an unpredictable moment and hides the
 * memory the devices take. Type errors do not stop the build: `npm run typecheck` reports them.
 */
async function buildBackend(progress: (message: string) => void): Promise<string> {
  const outDir = join(projectRoot, 'bench/.build');
  await rm(outDir, { recursive: true, force: true });
  progress(`compiling the backend into ${outDir}`);
  const tsc = spawnSync(process.execPath, [join(projectRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', outDir], {
    cwd: projectRoot,
    encoding: 'utf8',
  });
  if (!existsSync(join(outDir, 'cli/main.js'))) {
    throw new Error(`compiling the backend failed: ${tsc.stdout}${tsc.stderr}`);
  }
  if (tsc.status !== 0) progress(`the backend compiled with type errors (npm run typecheck shows them): ${tsc.stdout.split('\n')[0]}`);
  for (const [from, extension] of [['storage/scripts', '.lua'], ['runtime/dashboard', '.html']] as const) {
    const source = join(projectRoot, from);
    if (!existsSync(source)) continue;
    await mkdir(join(outDir, from), { recursive: true });
    for (const name of await readdir(source)) {
      if (name.endsWith(extension)) await copyFile(join(source, name), join(outDir, from, name));
    }
  }
  return outDir;
}

/** One product deployment under test: one or more replicas sharing a key prefix in the private Redis. */
export interface ProductSystem {
  name: string;
  replicas: BuiltReplica[];
  /** Device endpoints of the replicas; the load generators spread devices over them round-robin. */
  urls: string[];
  pids: number[];
  keys: Keys;
  state: StateStore;
  /** Sums of the replicas' RSS and young generation after full garbage collections: see lowestMemory. */
  memoryAfterGc(reducerWaitMs: number): Promise<MemoryReading>;
  /**
   * Starts a CPU profile in every replica when the run profiles (--cpu-prof); `profileEnd` writes them as
   * DIR/LABEL-REPLICA.cpuprofile. Both do nothing otherwise.
   */
  profileStart(): Promise<void>;
  profileEnd(label: string): Promise<void>;
  /** Writes a heap snapshot of every replica as DIR/LABEL-REPLICA.heapsnapshot when the run asks for them. */
  heapSnapshot(label: string): Promise<void>;
  /** Provisions the devices and issues their tokens with the project's helper, in order. */
  deviceTokens(deviceIds: string[]): Promise<string[]>;
  /** Adds a signed patch record to the catalog, as the last step of `fleet patch upload` does. */
  release(patchId: string, size: number, sha256: string): Promise<void>;
  stop(): Promise<void>;
}

/** Environment of a benchmarked replica. Settings that differ from the defaults are explained in docs/benchmarks.md. */
function productEnv(context: BenchContext, prefix: string, replicaId: string, heartbeatS: number): Record<string, string> {
  return {
    NODE_OPTIONS: `--import=${controlPreload}`,
    BENCH_CONTROL_DIR: context.logDir,
    REDIS_URL: context.redis.url,
    S3_ENDPOINT: context.store.endpoint,
    S3_BUCKET: BUCKET,
    S3_ACCESS_KEY: context.store.accessKey,
    S3_SECRET_KEY: context.store.secretKey,
    FLEET_KEY_PREFIX: prefix,
    FLEET_REPLICA_ID: replicaId,
    LOG_LEVEL: 'info',
    FLEET_HEARTBEAT_INTERVAL_S: String(Math.max(1, heartbeatS)),
    // The periodic bucket scan would add uploaded rollout patches on its own schedule; the benchmark adds
    // each patch at a moment it measures from.
    FLEET_BUCKET_SCAN_MS: '3600000',
    FLEET_DRAIN_MS: '0',
    FLEET_DEVICE_TOKEN_SECRET: context.tokenSecret,
    FLEET_SIGNING_PUBLIC_KEY: context.signingKeys.publicKey,
    // Ingest batches run far above a device's normal message rate; the limiter still runs on every message.
    FLEET_DEVICE_MESSAGES_PER_S: '100000',
    FLEET_DEVICE_MESSAGE_BURST: '100000',
  };
}

/** Starts `replicas` replicas of the backend as child processes with their own key prefix. */
export async function startProduct(context: BenchContext, name: string, replicas: number, heartbeatS: number): Promise<ProductSystem> {
  const prefix = `${name}-${randomBytes(3).toString('hex')}:`;
  const started: BuiltReplica[] = [];
  const startOne = async (index: number) => {
    const replicaId = `${name}-${index + 1}`;
    const replica = await startBuiltReplica(
      context.buildDir,
      productEnv(context, prefix, replicaId, heartbeatS),
      join(context.logDir, `${replicaId}.log`),
    );
    track(replica.process);
    started.push(replica);
    registerProcess(replica.pid);
    // SIGUSR2 would end a process without the control preload, so check it once before relying on it.
    await controlReplica(replica.pid, context.logDir, { command: 'gc' });
  };
  // Started together: each replica spends a few seconds compiling the TypeScript sources.
  const outcomes = await Promise.allSettled(Array.from({ length: replicas }, (_, i) => startOne(i)));
  const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failure) {
    await Promise.all(started.map((r) => stopChild(r.process)));
    throw failure.reason;
  }
  const keys = createKeys(prefix);
  const redis = connectRedis(context.redis.url, `bench-${name}`);
  const state = new StateStore(redis, keys);
  const tokens = new DeviceTokens(context.tokenSecret);
  const pids = started.map((r) => r.pid);
  return {
    name,
    replicas: started,
    urls: started.map((r) => r.url),
    pids,
    keys,
    state,
    memoryAfterGc(reducerWaitMs) {
      return lowestMemory(
        async () => {
          let young = 0;
          for (const pid of pids) young += (await controlReplica(pid, context.logDir, { command: 'gc' })).youngBytes as number;
          return young;
        },
        () => pids.reduce((sum, pid) => sum + rssBytes(pid), 0),
        reducerWaitMs,
      );
    },
    async profileStart() {
      if (!context.profileDir) return;
      for (const pid of pids) await controlReplica(pid, context.logDir, { command: 'profile-start' });
    },
    async profileEnd(label) {
      const dir = context.profileDir;
      if (!dir) return;
      for (const [i, pid] of pids.entries()) {
        await controlReplica(pid, context.logDir, { command: 'profile-stop', file: join(dir, `${label}-${i + 1}.cpuprofile`) });
      }
    },
    async heapSnapshot(label) {
      const dir = context.heapDir;
      if (!dir) return;
      for (const [i, pid] of pids.entries()) {
        await controlReplica(pid, context.logDir, { command: 'heap-snapshot', file: join(dir, `${label}-${i + 1}.heapsnapshot`) }, 120_000);
      }
    },
    async deviceTokens(deviceIds) {
      const issued = await issueDeviceTokens(state, tokens, deviceIds);
      return deviceIds.map((id) => issued.get(id) as string);
    },
    async release(patchId, size, sha256) {
      const manifest = { id: patchId, name: patchId, version: patchId, size, sha256 };
      const signature = signManifest(context.signingKeys.privateKey, manifest);
      const result = await state.addPatch({ ...manifest, etag: '', source: 'upload', signature, state: 'ready' }, true);
      if (result.kind !== 'added') throw new Error(`patch ${patchId} was not added to the catalog: ${result.kind}`);
    },
    async stop() {
      // SIGTERM lets each replica write its CPU profile on the way out.
      await Promise.all(started.map((r) => r.stop()));
      for (const pid of pids) unregisterProcess(pid);
      redis.disconnect();
    },
  };
}

let commandId = 0;

/**
 * Runs a command of the control preload (peers/control-preload.mjs) in a replica: writes the command file,
 * sends SIGUSR2 and waits for the reply file with the same id.
 */
async function controlReplica(pid: number, dir: string, command: Record<string, string>, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const id = ++commandId;
  const replyFile = join(dir, `reply-${pid}.json`);
  await writeFile(join(dir, `command-${pid}.json`), JSON.stringify({ id, ...command }));
  process.kill(pid, 'SIGUSR2');
  for (let tries = 0; tries < timeoutMs / 20; tries++) {
    await sleep(20);
    let reply: Record<string, unknown>;
    try {
      reply = JSON.parse(await readFile(replyFile, 'utf8')) as Record<string, unknown>;
    } catch {
      continue; // Not written yet.
    }
    if (reply.id !== id) continue;
    if (typeof reply.error === 'string') throw new Error(`replica ${pid}: ${command.command} failed: ${reply.error}`);
    return reply;
  }
  throw new Error(`replica ${pid} sent no reply to ${command.command} within ${timeoutMs / 1000} s: is ${controlPreload} loaded?`);
}

/** Puts `bytes` into the store under `key` and returns their SHA-256; the catalog gets it only with `release`. */
export async function putObject(context: BenchContext, key: string, bytes: Buffer): Promise<string> {
  const stored = await context.bucket.upload(key, Readable.from([bytes]), bytes.length);
  return stored.sha256;
}

/**
 * Awaits starts that run together, adds a stop of each one that succeeded to `stoppers` (which the caller
 * runs in its `finally`), and throws the first failure once all have settled.
 */
export async function startTogether<T extends { stop(): Promise<void> }>(starts: Promise<T>[], stoppers: (() => Promise<void>)[]): Promise<T[]> {
  const outcomes = await Promise.allSettled(starts);
  for (const outcome of outcomes) {
    if (outcome.status === 'fulfilled') stoppers.push(() => outcome.value.stop());
  }
  const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failure) throw failure.reason;
  return outcomes.map((o) => (o as PromiseFulfilledResult<T>).value);
}

/** Awaits one start and adds its stop to `stoppers`. */
export async function startOne<T extends { stop(): Promise<void> }>(start: Promise<T>, stoppers: (() => Promise<void>)[]): Promise<T> {
  return (await startTogether([start], stoppers))[0] as T;
}
