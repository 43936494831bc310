import { pino } from 'pino';
import { ConfigError, loadConfig, type Config } from '../runtime/config.ts';
import { PatchBucket } from '../storage/bucket.ts';
import { Catalog } from '../storage/catalog.ts';
import { createKeys } from '../storage/keys.ts';
import { connectRedis } from '../storage/redis.ts';
import { StateStore } from '../storage/state-store.ts';
import { CliError, EXIT } from './errors.ts';

export interface StorageAccess {
  config: Config;
  state: StateStore;
  bucket: PatchBucket;
  catalog: Catalog;
  close(): Promise<void>;
}

// CliError and EXIT live in errors.ts so that API commands can load them without the storage clients.
export { CliError, EXIT };

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
