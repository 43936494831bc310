/**
 * Yardstick peer: the rate at which Redis takes writes from one client that does nothing else. It writes
 * HSET commands in hand-encoded RESP over a raw socket, `batch` commands per write with `depth` batches
 * in flight, and counts the one-line integer replies. No client library runs, so this is Redis' own rate
 * on this machine with one connection.
 */
import { connect, type Socket } from 'node:net';
import { epochMs } from '../lib/stats.ts';
import { serveCommands } from '../lib/worker.ts';

export type RespWriterCommands = {
  run: { params: { durationMs: number; batch: number; depth: number; keys: number }; result: { commands: number; elapsedMs: number } };
};

const redisUrl = new URL(process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379');

function bulk(text: string): string {
  return `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
}

/** `batch` HSET commands on device hashes, as one buffer; the value has the size of a status entry. */
function encodeBatch(batch: number, keys: number, offset: number): Buffer {
  let out = '';
  for (let i = 0; i < batch; i++) {
    const key = `bench:raw:{cam_${(offset + i) % keys}}`;
    out += `*4\r\n$4\r\nHSET\r\n${bulk(key)}${bulk('status:bench-patch')}${bulk(`downloading|1|${Date.now()}`)}`;
  }
  return Buffer.from(out);
}

async function run(params: { durationMs: number; batch: number; depth: number; keys: number }): Promise<{ commands: number; elapsedMs: number }> {
  const socket: Socket = connect({ host: redisUrl.hostname, port: Number(redisUrl.port || 6379), noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const batches = Array.from({ length: 16 }, (_, i) => encodeBatch(params.batch, params.keys, i * params.batch));
  let sent = 0;
  let replies = 0;
  let written = 0;
  const startedAt = epochMs();
  const endAt = startedAt + params.durationMs;
  return new Promise((resolve, reject) => {
    const writeBatch = () => {
      socket.write(batches[written % batches.length] as Buffer);
      written += 1;
      sent += params.batch;
    };
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      let lineStart = 0;
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) {
        // Every reply is one line: ":1" or ":0", or "-ERR …" when something is wrong.
        if (chunk[lineStart] === 45) {
          reject(new Error(`Redis replied with an error: ${chunk.toString('utf8', lineStart, i)}`));
          return;
        }
        lineStart = i + 1;
        replies += 1;
        if (replies % params.batch === 0 && epochMs() < endAt) writeBatch();
      }
      if (replies === sent && epochMs() >= endAt) {
        const elapsedMs = epochMs() - startedAt;
        socket.destroy();
        resolve({ commands: replies, elapsedMs });
      }
    });
    for (let i = 0; i < params.depth; i++) writeBatch();
  });
}

serveCommands<RespWriterCommands>({ run });
