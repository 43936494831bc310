/**
 * Yardstick peer: a bare uWebSockets.js server that writes every device message to Redis with one ioredis
 * HSET, auto-pipelined like the product's connection. It replies to the progress report for the barrier patch
 * id, once its HSET is done, with the same error the product sends, so the load generator's batches end
 * the same way on both servers.
 */
import { Redis } from 'ioredis';
import { serveCommands } from '../lib/worker.ts';
import { collectGarbage, startUwsPeer } from './uws-peer.ts';

export type UwsHsetCommands = {
  gc: { params: null; result: { youngBytes: number } };
  /** Number of HSET commands Redis confirmed. */
  writes: { params: null; result: number };
};

const BARRIER_REPLY = JSON.stringify({
  type: 'error',
  code: 'unknown_patch',
  message: 'no offer of this patch and attempt was made to this device',
  retryable: false,
  details: 'bench-barrier attempt 1',
});

const redisUrl = process.env.BENCH_REDIS_URL;
if (!redisUrl) throw new Error('BENCH_REDIS_URL is not set');
const redis = new Redis(redisUrl, { enableAutoPipelining: true, connectionName: 'bench-uws-hset' });
let writes = 0;

interface DeviceMessage {
  type: string;
  patchId?: string;
  attempt?: number;
  state?: string;
}

const peer = await startUwsPeer({
  heartbeatS: Number(process.env.BENCH_HEARTBEAT_S ?? 15),
  onMessage(ws, text) {
    const data = ws.getUserData();
    const message = JSON.parse(text) as DeviceMessage;
    const key = `bench:device:{${data.deviceId}}`;
    const write =
      message.type === 'progress'
        ? redis.hset(key, `status:${message.patchId}`, `${message.state}|${message.attempt}|${Date.now()}`)
        : redis.hset(key, 'last_seen', Date.now());
    const barrier = message.patchId === 'bench-barrier';
    write.then(
      () => {
        writes += 1;
        if (barrier && !data.closed) ws.send(BARRIER_REPLY, false);
      },
      (err: unknown) => process.stderr.write(`HSET failed: ${(err as Error).message}\n`),
    );
  },
});

serveCommands<UwsHsetCommands>({ gc: collectGarbage, writes: () => writes }, { port: peer.port });
