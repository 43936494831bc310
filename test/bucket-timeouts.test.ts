import { createServer, type Socket } from 'node:net';
import test from 'ava';
import { PatchBucket } from '../storage/bucket.ts';

test('a stalled store fails the call instead of holding it', async (t) => {
  // A store that accepts connections and reads requests but never sends a response.
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  const endpoint = `http://127.0.0.1:${address.port}`;
  const bucket = new PatchBucket({
    endpoint,
    publicEndpoint: endpoint,
    region: 'us-east-1',
    bucket: 'stalled',
    accessKey: 'key',
    secretKey: 'secret',
    requestTimeoutMs: 300,
  });
  t.teardown(() => bucket.destroy());
  const error = await t.throwsAsync(bucket.head('patch-1.bin'));
  t.regex(String(error?.name) + String(error?.message), /timeout|timed out|Timeout/i);
  t.true(sockets.size >= 1, 'the request reached the stalled store');
});
