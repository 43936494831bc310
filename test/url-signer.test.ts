import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import test, { type ExecutionContext } from 'ava';
import { PatchBucket } from '../storage/bucket.ts';
import { DownloadUrlSigner } from '../storage/url-signer.ts';
import { localS3, uniqueName } from './helpers/backend.ts';

const CREDENTIALS = { accessKey: 'AKIDEXAMPLE', secretKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

/** The AWS SDK's presigner, the reference the hand-written signer must agree with byte for byte. */
async function sdkUrl(endpoint: string, region: string, bucket: string, key: string, at: number, ttl: number) {
  const client = new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId: CREDENTIALS.accessKey, secretAccessKey: CREDENTIALS.secretKey },
    // As storage/bucket.ts sets it; the SDK's default adds x-amz-checksum-mode to GET URLs.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    return await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), {
      expiresIn: ttl,
      signingDate: new Date(at),
    });
  } finally {
    client.destroy();
  }
}

const CASES = [
  { endpoint: 'http://127.0.0.1:9000', region: 'us-east-1', bucket: 'patches', key: 'fw-1.0.bin', at: 1_700_000_000_123, ttl: 300 },
  { endpoint: 'https://patches.example.com', region: 'eu-central-1', bucket: 'fleet-patches', key: 'cam/fw 2+x~(1)*.bin', at: 1_764_880_000_999, ttl: 3600 },
  { endpoint: 'http://127.0.0.1:9000/', region: 'us-east-1', bucket: 'b', key: 'ü-ß.bin', at: 1_735_689_599_000, ttl: 1 },
  { endpoint: 'http://minio:9000', region: 'us-east-1', bucket: 'patches', key: 'a.bin', at: 1_735_689_600_000, ttl: 604_800 },
];

for (const c of CASES) {
  test(`signer matches the SDK presigner: ${c.key}`, async (t) => {
    const signer = new DownloadUrlSigner({ publicEndpoint: c.endpoint, region: c.region, bucket: c.bucket, ...CREDENTIALS });
    t.is(signer.sign(c.key, c.at, c.ttl), await sdkUrl(c.endpoint, c.region, c.bucket, c.key, c.at, c.ttl));
  });
}

test('signer derives a new key on a new day', async (t) => {
  const c = { endpoint: 'http://127.0.0.1:9000', region: 'us-east-1', bucket: 'patches', key: 'k.bin', ttl: 60 };
  const signer = new DownloadUrlSigner({ publicEndpoint: c.endpoint, region: c.region, bucket: c.bucket, ...CREDENTIALS });
  const lastSecond = Date.UTC(2026, 11, 4, 23, 59, 59);
  const nextDay = lastSecond + 1000;
  t.is(signer.sign(c.key, lastSecond, c.ttl), await sdkUrl(c.endpoint, c.region, c.bucket, c.key, lastSecond, c.ttl));
  t.is(signer.sign(c.key, nextDay, c.ttl), await sdkUrl(c.endpoint, c.region, c.bucket, c.key, nextDay, c.ttl));
  t.is(signer.sign(c.key, lastSecond, c.ttl), await sdkUrl(c.endpoint, c.region, c.bucket, c.key, lastSecond, c.ttl));
});

test('signer rejects lifetimes SigV4 does not allow', (t) => {
  const signer = new DownloadUrlSigner({ publicEndpoint: 'http://127.0.0.1:9000', region: 'us-east-1', bucket: 'b', ...CREDENTIALS });
  t.throws(() => signer.sign('k', Date.now(), 0), { instanceOf: RangeError });
  t.throws(() => signer.sign('k', Date.now(), 604_801), { instanceOf: RangeError });
  t.throws(() => signer.sign('k', Date.now(), 1.5), { instanceOf: RangeError });
});

/** Creates a bucket of its own on the test process' S3-compatible server; its client is closed when the test ends. */
async function storeBucket(t: ExecutionContext): Promise<PatchBucket> {
  const s3 = await localS3();
  const bucket = new PatchBucket({
    endpoint: s3.endpoint,
    publicEndpoint: s3.endpoint,
    region: 'us-east-1',
    bucket: uniqueName('signer'),
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
  });
  t.teardown(() => bucket.destroy());
  await bucket.ensureBucket();
  return bucket;
}

test('signed URL downloads from the store, a tampered one does not', async (t) => {
  const bucket = await storeBucket(t);
  const bytes = randomBytes(10_000);
  await bucket.upload('fw-2.0.bin', Readable.from([bytes]), bytes.length);

  const signed = bucket.signDownload('fw-2.0.bin', 60);
  t.true(signed.expiresAt > Date.now());
  t.true(signed.expiresAt <= Date.now() + 60_000);
  const ok = await fetch(signed.url);
  t.is(ok.status, 200);
  t.deepEqual(Buffer.from(await ok.arrayBuffer()), bytes);

  const tampered = signed.url.replace('X-Amz-Expires=60', 'X-Amz-Expires=61');
  const rejected = await fetch(tampered);
  t.is(rejected.status, 403);
  await rejected.arrayBuffer();
});

test('expired signed URL is rejected by the store', async (t) => {
  const bucket = await storeBucket(t);
  await bucket.upload('fw-3.0.bin', Readable.from([Buffer.from('patch')]), 5);

  // Signed two minutes ago for one minute: expired by the store's clock, which is this machine's.
  bucket.useClock(() => Date.now() - 120_000);
  const response = await fetch(bucket.signDownload('fw-3.0.bin', 60).url);
  t.is(response.status, 403);
  await response.arrayBuffer();
});

test('URLs signed within one second are reused', (t) => {
  const bucket = new PatchBucket({
    endpoint: 'http://127.0.0.1:9000',
    publicEndpoint: 'http://127.0.0.1:9000',
    region: 'us-east-1',
    bucket: 'patches',
    ...CREDENTIALS,
  });
  t.teardown(() => bucket.destroy());
  let now = 1_764_880_000_100;
  bucket.useClock(() => now);
  const first = bucket.signDownload('fw.bin', 300);
  t.is(first.expiresAt, 1_764_880_300_000, 'expiry counts from the whole second the URL is signed in');

  now += 850;
  t.deepEqual(bucket.signDownload('fw.bin', 300), first);
  t.not(bucket.signDownload('fw.bin', 301).url, first.url);
  t.not(bucket.signDownload('other.bin', 300).url, first.url);
  t.deepEqual(bucket.signDownload('fw.bin', 300), first, 'a URL signed again in the same second is the same string');

  now += 100;
  const next = bucket.signDownload('fw.bin', 300);
  t.not(next.url, first.url);
  t.is(next.expiresAt, 1_764_880_301_000);
});
