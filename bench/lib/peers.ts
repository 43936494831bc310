import type { BareUwsCommands } from '../peers/bare-uws.ts';
import type { RespWriterCommands } from '../peers/resp-writer.ts';
import type { UwsHsetCommands } from '../peers/uws-hset.ts';
import { track } from './cleanup.ts';
import { registerProcess, unregisterProcess } from './placement.ts';
import { rssBytes, lowestMemory, type MemoryReading } from './processes.ts';
import type { BenchContext } from './stack.ts';
import { Worker, type CommandMap } from './worker.ts';

export interface Peer<C extends CommandMap> {
  worker: Worker<C>;
  url: string;
  pids: number[];
  memoryAfterGc(reducerWaitMs: number): Promise<MemoryReading>;
  stop(): Promise<void>;
}

async function startPeer<C extends CommandMap & { gc: { params: null; result: { youngBytes: number } } }>(
  context: BenchContext,
  name: string,
  script: string,
  env: Record<string, string>,
): Promise<Peer<C>> {
  const worker = await Worker.start<C>(name, new URL(`../peers/${script}`, import.meta.url), {
    logDir: context.logDir,
    execArgv: ['--expose-gc'],
    env,
  });
  track(worker.child);
  registerProcess(worker.pid);
  return {
    worker,
    url: `ws://127.0.0.1:${worker.info.port as number}/device`,
    pids: [worker.pid],
    memoryAfterGc(reducerWaitMs) {
      return lowestMemory(
        async () => (await worker.request('gc', null)).youngBytes,
        () => rssBytes(worker.pid),
        reducerWaitMs,
      );
    },
    async stop() {
      await worker.stop();
      unregisterProcess(worker.pid);
    },
  };
}

/** Starts the bare uWebSockets.js server, which keeps connections open, welcomes each hello and publishes on request. */
export function startBareUws(context: BenchContext, name: string, heartbeatS: number): Promise<Peer<BareUwsCommands>> {
  return startPeer<BareUwsCommands>(context, name, 'bare-uws.ts', { BENCH_HEARTBEAT_S: String(Math.max(1, heartbeatS)) });
}

/** Starts the bare uWebSockets.js server with one ioredis HSET per device message. */
export function startUwsHset(context: BenchContext, name: string, heartbeatS: number): Promise<Peer<UwsHsetCommands>> {
  return startPeer<UwsHsetCommands>(context, name, 'uws-hset.ts', {
    BENCH_HEARTBEAT_S: String(Math.max(1, heartbeatS)),
    BENCH_REDIS_URL: context.redis.url,
  });
}

/** Starts the raw pipelined RESP writer. */
export async function startRespWriter(context: BenchContext): Promise<{ worker: Worker<RespWriterCommands>; stop(): Promise<void> }> {
  const worker = await Worker.start<RespWriterCommands>('resp-writer', new URL('../peers/resp-writer.ts', import.meta.url), {
    logDir: context.logDir,
    env: { BENCH_REDIS_URL: context.redis.url },
  });
  track(worker.child);
  registerProcess(worker.pid);
  return {
    worker,
    async stop() {
      await worker.stop();
      unregisterProcess(worker.pid);
    },
  };
}
