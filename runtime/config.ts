import { hostname } from 'node:os';
import { checkPublicKey } from '../security/patch-signing.ts';
import type { BucketConfig } from '../storage/bucket.ts';

/** Configuration of one replica, read from environment variables. docs/configuration.md lists each one. */
export interface Config {
  redisUrl: string;
  keyPrefix: string;
  s3: BucketConfig;
  host: string;
  port: number;
  apiPort: number;
  replicaId: string;
  logLevel: string;
  maxPayloadBytes: number;
  helloTimeoutMs: number;
  heartbeatIntervalS: number;
  presenceLeaseMs: number;
  heartbeatFlushMs: number;
  updateTimeoutMs: number;
  maxAttempts: number;
  urlTtlS: number;
  catalogPollMs: number;
  bucketScanMs: number;
  sweepIntervalMs: number;
  sendQueueLimit: number;
  drainMs: number;
  unreadyDelayMs: number;
  shutdownTimeoutMs: number;
  security: SecurityConfig;
}

export interface SecurityConfig {
  deviceTokenSecret: string;
  enrollment: 'provisioned' | 'auto';
  /** Bootstrap operator token from the environment; null when unset. */
  adminToken: string | null;
  signingPublicKey: string | null;
  requireSignatures: boolean;
  deviceMessagesPerS: number;
  deviceMessageBurst: number;
  upgradesPerSPerAddress: number;
  upgradeBurst: number;
  trustForwardedFor: boolean;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

type Env = Record<string, string | undefined>;

function text(env: Env, name: string, fallback?: string): string {
  const value = env[name];
  if (value !== undefined && value !== '') return value;
  if (fallback !== undefined) return fallback;
  throw new ConfigError(name, 'is required but not set');
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `expected a whole number, got ${JSON.stringify(raw)}`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function url(env: Env, name: string, fallback: string | undefined, protocols: string[]): string {
  const value = text(env, name, fallback);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, `expected a URL such as ${protocols[0]}//host:port, got ${JSON.stringify(value)}`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `expected a ${protocols.join(' or ')} URL, got ${JSON.stringify(value)}`);
  }
  return value.replace(/\/+$/, '');
}

function choice<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const value = text(env, name, fallback);
  if (!allowed.includes(value as T)) {
    throw new ConfigError(name, `expected one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

function flag(env: Env, name: string, fallback: boolean): boolean {
  return choice(env, name, fallback ? 'true' : 'false', ['true', 'false']) === 'true';
}

function security(env: Env): SecurityConfig {
  const deviceTokenSecret = text(env, 'FLEET_DEVICE_TOKEN_SECRET');
  if (Buffer.byteLength(deviceTokenSecret) < 32) {
    throw new ConfigError('FLEET_DEVICE_TOKEN_SECRET', 'must be at least 32 bytes; generate one with `openssl rand -base64 48`');
  }
  const adminToken = env.FLEET_ADMIN_TOKEN || null;
  if (adminToken !== null && adminToken.length < 32) {
    throw new ConfigError('FLEET_ADMIN_TOKEN', 'must be at least 32 characters');
  }
  const signingPublicKey = env.FLEET_SIGNING_PUBLIC_KEY || null;
  if (signingPublicKey !== null) {
    try {
      checkPublicKey(signingPublicKey);
    } catch (err) {
      throw new ConfigError('FLEET_SIGNING_PUBLIC_KEY', `not an Ed25519 public key in PEM form: ${(err as Error).message}`);
    }
  }
  const requireSignatures = flag(env, 'FLEET_REQUIRE_SIGNATURES', true);
  if (requireSignatures && signingPublicKey === null) {
    throw new ConfigError(
      'FLEET_SIGNING_PUBLIC_KEY',
      'is required while FLEET_REQUIRE_SIGNATURES is true (the default); create keys with `fleet keys create`',
    );
  }
  return {
    deviceTokenSecret,
    enrollment: choice(env, 'FLEET_ENROLLMENT', 'provisioned', ['provisioned', 'auto'] as const),
    adminToken,
    signingPublicKey,
    requireSignatures,
    deviceMessagesPerS: integer(env, 'FLEET_DEVICE_MESSAGES_PER_S', 20, 1, 100_000),
    deviceMessageBurst: integer(env, 'FLEET_DEVICE_MESSAGE_BURST', 60, 1, 100_000),
    upgradesPerSPerAddress: integer(env, 'FLEET_UPGRADES_PER_S_PER_ADDRESS', 100, 1, 1_000_000),
    upgradeBurst: integer(env, 'FLEET_UPGRADE_BURST', 1000, 1, 1_000_000),
    trustForwardedFor: flag(env, 'FLEET_TRUST_FORWARDED_FOR', false),
  };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function logLevel(env: Env): string {
  const level = text(env, 'LOG_LEVEL', 'info');
  if (!LOG_LEVELS.includes(level)) throw new ConfigError('LOG_LEVEL', `expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(level)}`);
  return level;
}

/** Reads and validates the configuration; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const endpoint = url(env, 'S3_ENDPOINT', undefined, ['http:', 'https:']);
  const bucket = text(env, 'S3_BUCKET', 'fleet-patches');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new ConfigError('S3_BUCKET', `${JSON.stringify(bucket)} is not a valid S3 bucket name`);
  }
  const keyPrefix = text(env, 'FLEET_KEY_PREFIX', 'fleet:');
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(keyPrefix)) {
    throw new ConfigError('FLEET_KEY_PREFIX', 'use 1 to 64 characters from A-Z a-z 0-9 _ . : -');
  }
  const heartbeatIntervalS = integer(env, 'FLEET_HEARTBEAT_INTERVAL_S', 15, 1, 3600);
  const presenceLeaseMs = integer(env, 'FLEET_PRESENCE_LEASE_MS', heartbeatIntervalS * 3000, 1000, 86_400_000);
  if (presenceLeaseMs <= heartbeatIntervalS * 1000) {
    throw new ConfigError('FLEET_PRESENCE_LEASE_MS', 'must be longer than the heartbeat interval');
  }
  const securityConfig = security(env);
  const drainMs = integer(env, 'FLEET_DRAIN_MS', 10_000, 0, 600_000);
  const unreadyDelayMs = integer(env, 'FLEET_UNREADY_DELAY_MS', 2000, 0, 600_000);
  const shutdownTimeoutMs = integer(env, 'FLEET_SHUTDOWN_TIMEOUT_MS', 25_000, 1000, 3_600_000);
  if (shutdownTimeoutMs <= drainMs + unreadyDelayMs) {
    throw new ConfigError(
      'FLEET_SHUTDOWN_TIMEOUT_MS',
      `must be longer than FLEET_UNREADY_DELAY_MS + FLEET_DRAIN_MS (${unreadyDelayMs + drainMs} ms)`,
    );
  }
  const heartbeatFlushMs = integer(env, 'FLEET_HEARTBEAT_FLUSH_MS', 1000, 10, 60_000);
  if (heartbeatFlushMs * 2 >= presenceLeaseMs - heartbeatIntervalS * 1000) {
    throw new ConfigError(
      'FLEET_HEARTBEAT_FLUSH_MS',
      'must leave the lease time to spare: twice the flush interval must be below the lease minus one heartbeat interval',
    );
  }
  return {
    redisUrl: url(env, 'REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    keyPrefix,
    s3: {
      endpoint,
      publicEndpoint: url(env, 'S3_PUBLIC_ENDPOINT', endpoint, ['http:', 'https:']),
      region: text(env, 'S3_REGION', 'us-east-1'),
      bucket,
      accessKey: text(env, 'S3_ACCESS_KEY'),
      secretKey: text(env, 'S3_SECRET_KEY'),
    },
    host: text(env, 'FLEET_HOST', '0.0.0.0'),
    port: integer(env, 'FLEET_PORT', 8080, 0, 65535),
    apiPort: integer(env, 'FLEET_API_PORT', 8081, 0, 65535),
    replicaId: text(env, 'FLEET_REPLICA_ID', hostname()),
    logLevel: logLevel(env),
    maxPayloadBytes: integer(env, 'FLEET_MAX_PAYLOAD_BYTES', 16 * 1024, 1024, 1024 * 1024),
    helloTimeoutMs: integer(env, 'FLEET_HELLO_TIMEOUT_MS', 10_000, 100, 600_000),
    heartbeatIntervalS,
    presenceLeaseMs,
    heartbeatFlushMs,
    updateTimeoutMs: integer(env, 'FLEET_UPDATE_TIMEOUT_MS', 300_000, 1000, 86_400_000),
    maxAttempts: integer(env, 'FLEET_MAX_ATTEMPTS', 3, 1, 100),
    urlTtlS: integer(env, 'FLEET_URL_TTL_S', 300, 10, 7 * 86_400),
    catalogPollMs: integer(env, 'FLEET_CATALOG_POLL_MS', 1000, 50, 60_000),
    bucketScanMs: integer(env, 'FLEET_BUCKET_SCAN_MS', 2000, 100, 3_600_000),
    sweepIntervalMs: integer(env, 'FLEET_SWEEP_INTERVAL_MS', 1000, 50, 60_000),
    sendQueueLimit: integer(env, 'FLEET_SEND_QUEUE_LIMIT', 256, 8, 100_000),
    drainMs,
    unreadyDelayMs,
    shutdownTimeoutMs,
    security: securityConfig,
  };
}
