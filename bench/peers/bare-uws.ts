/**
 * Yardstick peer: a bare uWebSockets.js server that keeps device connections open, welcomes each hello and
 * ignores every later message. It is the least the product can cost, per connection and per publish.
 */
import { serveCommands } from '../lib/worker.ts';
import { collectGarbage, startUwsPeer } from './uws-peer.ts';

export type BareUwsCommands = {
  /** Publishes one message of `bytes` bytes to every connection; t0 is epochMs() right before the call. */
  publish: { params: { bytes: number }; result: { t0: number; returnedMs: number } };
  gc: { params: null; result: { youngBytes: number } };
};

const heartbeatS = Number(process.env.BENCH_HEARTBEAT_S ?? 15);
const peer = await startUwsPeer({ heartbeatS, onMessage: () => undefined });

serveCommands<BareUwsCommands>(
  {
    publish: ({ bytes }) => peer.publish(bytes),
    gc: collectGarbage,
  },
  { port: peer.port },
);
