import test from 'ava';
import { ConfigError, loadConfig } from '../runtime/config.ts';
import { generateSigningKeys } from '../security/patch-signing.ts';

const keys = generateSigningKeys();
const base = {
  S3_ENDPOINT: 'http://127.0.0.1:9000',
  S3_ACCESS_KEY: 'a',
  S3_SECRET_KEY: 'b',
  FLEET_DEVICE_TOKEN_SECRET: 'x'.repeat(32),
  FLEET_SIGNING_PUBLIC_KEY: keys.publicKey,
};

test('defaults apply when only the S3 settings are given', (t) => {
  const config = loadConfig(base);
  t.is(config.redisUrl, 'redis://127.0.0.1:6379');
  t.is(config.keyPrefix, 'fleet:');
  t.is(config.s3.publicEndpoint, 'http://127.0.0.1:9000');
  t.is(config.port, 8080);
  t.true(config.presenceLeaseMs > config.heartbeatIntervalS * 1000);
  t.is(config.security.enrollment, 'provisioned');
  t.true(config.security.requireSignatures);
});

test('signatures can be turned off, and then no public key is needed', (t) => {
  const config = loadConfig({ ...base, FLEET_SIGNING_PUBLIC_KEY: '', FLEET_REQUIRE_SIGNATURES: 'false' });
  t.false(config.security.requireSignatures);
  t.is(config.security.signingPublicKey, null);
});

const bad: [string, Record<string, string>, RegExp][] = [
  ['missing endpoint', { ...base, S3_ENDPOINT: '' }, /^S3_ENDPOINT: is required/],
  ['missing secret', { ...base, S3_SECRET_KEY: '' }, /^S3_SECRET_KEY/],
  ['missing token secret', { ...base, FLEET_DEVICE_TOKEN_SECRET: '' }, /^FLEET_DEVICE_TOKEN_SECRET: is required/],
  ['short token secret', { ...base, FLEET_DEVICE_TOKEN_SECRET: 'short' }, /^FLEET_DEVICE_TOKEN_SECRET: must be at least 32 bytes/],
  ['missing public key', { ...base, FLEET_SIGNING_PUBLIC_KEY: '' }, /^FLEET_SIGNING_PUBLIC_KEY: is required while/],
  ['bad public key', { ...base, FLEET_SIGNING_PUBLIC_KEY: 'not a key' }, /^FLEET_SIGNING_PUBLIC_KEY: not an Ed25519/],
  ['bad enrollment', { ...base, FLEET_ENROLLMENT: 'open' }, /^FLEET_ENROLLMENT: expected one of provisioned, auto/],
  ['bad flag', { ...base, FLEET_REQUIRE_SIGNATURES: 'yes' }, /^FLEET_REQUIRE_SIGNATURES: expected one of true, false/],
  ['bad log level', { ...base, LOG_LEVEL: 'loud' }, /^LOG_LEVEL/],
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
