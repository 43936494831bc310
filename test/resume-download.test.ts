import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import test from 'ava';
import { SimulatedCamera } from '../simulator/index.ts';
import { localS3, startBackend, TEST_SECURITY } from './helpers/backend.ts';
import { until } from './helpers/rollouts.ts';

interface ProxiedRequest {
  path: string;
  range: string | null;
}

/**
 * A TCP proxy in front of the S3 server that the signed URLs point at. On the first connection it forwards the
 * request and `cutAfter` bytes of the response, then holds the rest back until `releaseAt()` has passed and
 * closes both sides, as a network that stalls and breaks would. Later connections pass untouched.
 */
async function stallingProxy(target: URL, cutAfter: number, releaseAt: () => number): Promise<{ server: Server; url: string; requests: ProxiedRequest[] }> {
  const requests: ProxiedRequest[] = [];
  let connections = 0;
  const server = createServer((client: Socket) => {
    const first = connections++ === 0;
    const upstream = connect(Number(target.port), target.hostname);
    client.on('data', (chunk: Buffer) => {
      const head = chunk.toString('latin1');
      const line = /^GET (\S+) HTTP/.exec(head);
      if (line?.[1]) requests.push({ path: line[1], range: /\r\nrange: *([^\r]+)/i.exec(head)?.[1] ?? null });
      upstream.write(chunk);
    });
    let forwarded = 0;
    upstream.on('data', (chunk: Buffer) => {
      if (!first) {
        client.write(chunk);
        return;
      }
      const room = cutAfter - forwarded;
      if (room > 0) client.write(chunk.subarray(0, room));
      forwarded += chunk.length;
    });
    if (first) {
      const wait = setInterval(() => {
        if (Date.now() < releaseAt()) return;
        clearInterval(wait);
        client.destroy();
        upstream.destroy();
      }, 100);
    }
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => {
      if (!first) client.destroy();
    });
    client.on('close', () => upstream.destroy());
    // The S3 server closes an idle connection after a few seconds; the stalled one stays open until its release.
    upstream.on('close', () => {
      if (!first) client.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://127.0.0.1:${port}`, requests };
}

test('download resumes with Range after URL expiry', async (t) => {
  t.timeout(60_000);
  const s3 = await localS3();
  let urlExpiresAt = Number.MAX_SAFE_INTEGER;
  // Hold the first response until the signed URL has expired, plus a second for the clocks.
  const proxy = await stallingProxy(new URL(s3.endpoint), 300_000, () => urlExpiresAt + 1000);
  t.teardown(() => proxy.server.close());
  const backend = await startBackend(t, { S3_PUBLIC_ENDPOINT: proxy.url, FLEET_URL_TTL_S: '10' });
  const bytes = randomBytes(1_000_000);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  await backend.upload('resume-1.bin', bytes);

  const deviceId = 'cam_resume_url_1';
  const tokens = await backend.tokens([deviceId]);
  const camera = new SimulatedCamera({
    url: backend.url,
    deviceId,
    token: tokens.get(deviceId) ?? '',
    signingPublicKey: TEST_SECURITY.publicKey,
    applyMs: 10,
    backoffBaseMs: 100,
  });
  t.teardown(() => camera.stop());
  const resumedAt: number[] = [];
  camera.on('resumed', (event) => resumedAt.push(event.offset));
  camera.on('progress', (event) => {
    if (event.state === 'downloading' && event.bytes === 0 && urlExpiresAt === Number.MAX_SAFE_INTEGER) {
      urlExpiresAt = Date.now() + 10_000;
    }
  });
  await camera.start();

  await until(t, 'the camera applied the patch', () => camera.snapshot(), (s) => s.applied.includes('resume-1.bin'));
  // The camera applies before the server has its result; wait for the acknowledged state.
  const status = await until(t, 'the server recorded the result', () => backend.state.patchStatus('resume-1.bin', deviceId), (s) => s?.state === 'applied');
  t.deepEqual(status, { state: 'applied', attempt: 1 });
  t.is(camera.applyCount('resume-1.bin'), 1);
  t.is(resumedAt.length, 1);
  t.true((resumedAt[0] ?? 0) > 0, 'the second request continued after the bytes received');
  t.true((resumedAt[0] ?? 0) < bytes.length);

  // Two GETs through the proxy: the first under the offer's URL, the second under a fresh URL with a Range.
  const [first, second] = proxy.requests;
  t.is(proxy.requests.length, 2);
  t.is(first?.range, null);
  t.is(second?.range, `bytes=${resumedAt[0]}-`);
  const signature = (path: string | undefined) => new URL(path ?? '/', 'http://x').searchParams.get('X-Amz-Signature');
  t.not(signature(first?.path), signature(second?.path), 'the resumed request used a fresh URL');
  // The offer's URL has expired. The camera applies only bytes that match the sha256; the same Range request
  // gives those bytes here too. Both requests go through the proxy, because the signature covers its host.
  const expired = await fetch(`${proxy.url}${first?.path}`);
  t.is(expired.status, 403);
  t.regex(await expired.text(), /expired/i);
  const fresh = await fetch(`${proxy.url}${second?.path}`, { headers: { range: `bytes=${resumedAt[0]}-` } });
  t.is(fresh.status, 206);
  const rest = Buffer.from(await fresh.arrayBuffer());
  t.is(createHash('sha256').update(Buffer.concat([bytes.subarray(0, resumedAt[0]), rest])).digest('hex'), sha256);
});
