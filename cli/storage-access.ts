import { pino } from 'pino';
import { ConfigError, loadConfig, type Config } from '../runtime/config.ts';
import { PatchBucket } from '../storage/bucket.ts';
import { Catalog } from '../storage/catalog.ts';
import { createKeys } from '../storage/keys.ts';
import { connectRedis } from '../storage/redis.ts';
import { StateStore } from '../storage/state-store.ts';

export interface StorageAccess {
  config: Config;
  state: StateStore;
  bucket: PatchBucket;
  catalog: Catalog;
  close(): Promise<void>;
}

/** Exit codes of the CLI, documented in docs/operators.md. */
export const EXIT = { ok: 0, failure: 1, usage: 2, unavailable: 3, conflict: 4, incomplete: 5 } as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Hides the password of a redis:// URL so that it can appear in messages. */
export function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * Opens Redis and the bucket with the same environment variables as `fleet serve`, so operators can run
 * the CLI next to any replica.
 */
export async function openStorage(): Promise<StorageAccess> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(`invalid configuration: ${err.message}`, EXIT.usage);
    throw err;
  }
  const redis = connectRedis(config.redisUrl, 'fleet-cli', { maxRetriesPerRequest: 1, retryStrategy: () => null });
  try {
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw new CliError(`cannot reach Redis at ${withoutPassword(config.redisUrl)}: ${(err as Error).message}`, EXIT.unavailable);
  }
  const state = new StateStore(redis, createKeys(config.keyPrefix));
  const bucket = new PatchBucket(config.s3);
  const catalog = new Catalog(state, bucket, pino({ level: 'silent' }), {
    publicKey: config.security.signingPublicKey,
    requireSignatures: config.security.requireSignatures,
  });
  return {
    config,
    state,
    bucket,
    catalog,
    async close() {
      redis.disconnect();
      bucket.destroy();
    },
  };
}
