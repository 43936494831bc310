import { Redis, type RedisOptions } from 'ioredis';
import { defineScripts } from './scripts.ts';

/**
 * Opens a Redis connection with the product's scripts defined on it.
 * Auto-pipelining batches the commands issued in one event-loop tick into one write, which is how thousands
 * of devices share one connection without a round trip each.
 */
export function connectRedis(
  url: string,
  name: string,
  options: RedisOptions = {},
  onError: (err: Error) => void = () => undefined,
): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    enableAutoPipelining: true,
    // A device request should fail within seconds during an outage, not wait for the default 20 retries.
    maxRetriesPerRequest: 3,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: false,
    ...options,
  });
  // Connection errors also reject the commands waiting on them; this listener only keeps ioredis from
  // printing "Unhandled error event" for each reconnect attempt.
  redis.on('error', onError);
  defineScripts(redis);
  return redis;
}
