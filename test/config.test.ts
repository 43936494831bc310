import test from 'ava';
import { ConfigError, loadConfig } from '../runtime/config.ts';

const base = { S3_ENDPOINT: 'http://127.0.0.1:9000', S3_ACCESS_KEY: 'a', S3_SECRET_KEY: 'b' };

test('defaults apply when only the S3 settings are given', (t) => {
  const config = loadConfig(base);
  t.is(config.redisUrl, 'redis://127.0.0.1:6379');
  t.is(config.keyPrefix, 'fleet:');
  t.is(config.s3.publicEndpoint, 'http://127.0.0.1:9000');
  t.is(config.port, 8080);
  t.true(config.presenceLeaseMs > config.heartbeatIntervalS * 1000);
});

const bad: [string, Record<string, string>, RegExp][] = [
  ['missing endpoint', { S3_ACCESS_KEY: 'a', S3_SECRET_KEY: 'b' }, /^S3_ENDPOINT: is required/],
  ['missing secret', { S3_ENDPOINT: 'http://x:1', S3_ACCESS_KEY: 'a' }, /^S3_SECRET_KEY/],
  ['bad port', { ...base, FLEET_PORT: 'eighty' }, /^FLEET_PORT: expected a whole number/],
  ['port range', { ...base, FLEET_PORT: '70000' }, /^FLEET_PORT: must be between/],
  ['bad redis url', { ...base, REDIS_URL: 'http://redis' }, /^REDIS_URL: expected a redis: or rediss: URL/],
  ['bad bucket', { ...base, S3_BUCKET: 'Bad_Bucket' }, /^S3_BUCKET/],
  ['wildcard prefix', { ...base, FLEET_KEY_PREFIX: 'fleet*' }, /^FLEET_KEY_PREFIX/],
  ['short lease', { ...base, FLEET_HEARTBEAT_INTERVAL_S: '10', FLEET_PRESENCE_LEASE_MS: '5000' }, /^FLEET_PRESENCE_LEASE_MS/],
];

for (const [name, env, message] of bad) {
  test(`config rejects ${name}`, (t) => {
    const error = t.throws(() => loadConfig(env), { instanceOf: ConfigError });
    t.regex(error?.message ?? '', message);
  });
}
