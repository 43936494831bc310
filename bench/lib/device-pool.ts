import type { Arrivals, DeviceCommands, DownloadResult } from '../load/device-commands.ts';
import { track } from './cleanup.ts';
import { registerProcess, unregisterProcess } from './placement.ts';
import type { BenchContext } from './stack.ts';
import { Worker } from './worker.ts';

/** Maximum devices per generator process, well below the limit of 20,000 open files per process. */
export const DEVICES_PER_GENERATOR = 8000;

export interface GrowResult {
  added: number;
  /** Handshakes that failed and succeeded on a later attempt. */
  retried: number;
  firstError: string | null;
  /** Devices per second that completed the upgrade and hello, from the first start to the last welcome. */
  rate: number;
  elapsedMs: number;
}

export interface IngestTotals {
  messages: number;
  elapsedMs: number;
  rate: number;
  errors: Record<string, number>;
}

/**
 * The devices of one system under test, spread over several load generator processes. Devices are added
 * in steps; device ids are `${prefix}${index}`, and each generator gets a contiguous share of every step.
 */
export class DevicePool {
  private readonly held: number[];
  private nextIndex = 0;
  /** Index ranges [from, to) of the devices connected now. */
  private ranges: [number, number][] = [];

  private constructor(
    readonly name: string,
    private readonly workers: Worker<DeviceCommands>[],
    private readonly prefix: string,
  ) {
    this.held = workers.map(() => 0);
  }

  /** Starts enough generators for `maxDevices`, at least two so that the clients use both cores. */
  static async start(context: BenchContext, name: string, maxDevices: number): Promise<DevicePool> {
    const count = Math.max(2, Math.ceil(maxDevices / DEVICES_PER_GENERATOR));
    const workers = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        Worker.start<DeviceCommands>(`devices-${name}-${i + 1}`, new URL('../load/device-fleet.ts', import.meta.url), {
          logDir: context.logDir,
        }),
      ),
    );
    for (const worker of workers) {
      track(worker.child);
      registerProcess(worker.pid);
    }
    return new DevicePool(name, workers, `${name}_cam_`);
  }

  get size(): number {
    return this.held.reduce((a, b) => a + b, 0);
  }

  /** Ids of the devices connected now. */
  deviceIds(): string[] {
    const ids: string[] = [];
    for (const [from, to] of this.ranges) for (let i = from; i < to; i++) ids.push(`${this.prefix}${i}`);
    return ids;
  }

  get pids(): number[] {
    return this.workers.map((w) => w.pid);
  }

  /** Connects devices until the pool has `total`, and throws when a device fails three handshakes. */
  async grow(
    total: number,
    options: {
      urls: string[];
      patches?: string[];
      heartbeatS: number;
      /** Provisions devices and returns their tokens, in order; absent for a server without authentication. */
      tokens?: (deviceIds: string[]) => Promise<string[]>;
      concurrency?: number;
      timeoutMs?: number;
    },
  ): Promise<GrowResult> {
    const add = total - this.size;
    if (add <= 0) return { added: 0, retried: 0, firstError: null, rate: 0, elapsedMs: 0 };
    const timeoutMs = options.timeoutMs ?? 60_000;
    const shares = this.workers.map((_, i) => Math.floor(add / this.workers.length) + (i < add % this.workers.length ? 1 : 0));
    let from = this.nextIndex;
    // Tokens are issued before any device connects, so the connect rate counts only the handshakes.
    const ids = Array.from({ length: add }, (_, i) => `${this.prefix}${from + i}`);
    const tokens = options.tokens ? await options.tokens(ids) : [];
    const requests = this.workers.map((worker, i) => {
      const share = shares[i] as number;
      const offset = from - this.nextIndex;
      const params = {
        urls: options.urls,
        from,
        to: from + share,
        prefix: this.prefix,
        patches: options.patches ?? [],
        concurrency: options.concurrency ?? 200,
        heartbeatS: options.heartbeatS,
        tokens: tokens.slice(offset, offset + share),
        timeoutMs,
      };
      from += share;
      this.held[i] = (this.held[i] as number) + share;
      return worker.request('connect', params, timeoutMs + 30_000);
    });
    this.ranges.push([this.nextIndex, from]);
    this.nextIndex = from;
    const results = await Promise.all(requests);
    const failed = results.reduce((sum, r) => sum + r.failed, 0);
    if (failed > 0) {
      const firstError = results.find((r) => r.firstError)?.firstError;
      throw new Error(`${this.name}: ${failed} of ${add} devices failed to connect; first error: ${firstError}`);
    }
    const startedAt = Math.min(...results.map((r) => r.startedAt));
    const finishedAt = Math.max(...results.map((r) => r.finishedAt));
    const elapsedMs = finishedAt - startedAt;
    const retried = results.reduce((sum, r) => sum + r.retried, 0);
    const firstError = results.find((r) => r.firstError)?.firstError ?? null;
    return { added: add, retried, firstError, rate: add / (elapsedMs / 1000), elapsedMs };
  }

  /** Starts counting offer arrivals afresh on every generator. */
  async arm(rollout = false, downloadSlots = 0): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request('arm', { rollout, downloadSlots })));
  }

  /** Waits until every device of the pool has received an offer since `arm`. */
  async waitOffers(timeoutMs = 60_000): Promise<Arrivals> {
    const all = await Promise.all(this.workers.map((w, i) => w.request('waitOffers', { count: this.held[i] as number, timeoutMs }, timeoutMs + 5000)));
    return {
      count: all.reduce((sum, a) => sum + a.count, 0),
      first: Math.min(...all.map((a) => a.first)),
      last: Math.max(...all.map((a) => a.last)),
      bytes: all[0]?.bytes ?? 0,
    };
  }

  /** Reports every held offer as applied and waits for the acknowledgements. */
  async apply(timeoutMs = 60_000): Promise<number> {
    const all = await Promise.all(this.workers.map((w) => w.request('apply', { timeoutMs }, timeoutMs + 5000)));
    return all.reduce((sum, a) => sum + a.acked, 0);
  }

  async ingest(durationMs: number, barrierPatchId: string, timeoutMs = 60_000): Promise<IngestTotals> {
    const all = await Promise.all(
      this.workers.map((w) => w.request('ingest', { durationMs, barrierPatchId, timeoutMs }, durationMs + timeoutMs + 5000)),
    );
    const messages = all.reduce((sum, r) => sum + r.messages, 0);
    const elapsedMs = Math.max(...all.map((r) => r.finishedAt)) - Math.min(...all.map((r) => r.startedAt));
    const errors: Record<string, number> = {};
    for (const result of all) for (const [code, n] of Object.entries(result.errors)) errors[code] = (errors[code] ?? 0) + n;
    return { messages, elapsedMs, rate: messages / (elapsedMs / 1000), errors };
  }

  async finishUpdates(barrierPatchId: string, timeoutMs = 60_000): Promise<number> {
    const all = await Promise.all(this.workers.map((w) => w.request('finishUpdates', { barrierPatchId, timeoutMs }, timeoutMs + 5000)));
    return all.reduce((sum, r) => sum + r.devices, 0);
  }

  /** Waits until every device finished the update it was offered since `arm(true)`; returns the last ack time. */
  async waitRollout(timeoutMs: number): Promise<{ last: number; failed: number; bytes: number }> {
    const all = await Promise.all(
      this.workers.map((w, i) => w.request('waitRollout', { count: this.held[i] as number, timeoutMs }, timeoutMs + 5000)),
    );
    return {
      last: Math.max(...all.map((r) => r.last)),
      failed: all.reduce((sum, r) => sum + r.failed, 0),
      bytes: all.reduce((sum, r) => sum + r.bytes, 0),
    };
  }

  /** Each generator fetches `url` once per device it holds, with no WebSocket traffic. */
  async download(url: string, size: number, downloadSlots: number, timeoutMs: number): Promise<DownloadResult> {
    const all = await Promise.all(
      this.workers.map((w, i) =>
        w.request('download', { url, count: this.held[i] as number, size, downloadSlots, timeoutMs }, timeoutMs + 5000),
      ),
    );
    return {
      done: all.reduce((sum, r) => sum + r.done, 0),
      failed: all.reduce((sum, r) => sum + r.failed, 0),
      startedAt: Math.min(...all.map((r) => r.startedAt)),
      finishedAt: Math.max(...all.map((r) => r.finishedAt)),
      bytes: all.reduce((sum, r) => sum + r.bytes, 0),
    };
  }

  async setHeartbeats(enabled: boolean): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request('heartbeats', { enabled })));
  }

  /** Throws when a device lost its connection or got an error reply since the pool started. */
  async checkHealthy(): Promise<void> {
    const all = await Promise.all(this.workers.map((w) => w.request('stats', null)));
    const problems: string[] = [];
    for (const stats of all) {
      for (const [code, n] of Object.entries(stats.unexpectedCloses)) problems.push(`${n} connections closed with ${code}`);
      for (const [code, n] of Object.entries(stats.errors)) problems.push(`${n} error replies ${code}`);
    }
    if (problems.length > 0) throw new Error(`${this.name}: ${problems.join(', ')}`);
  }

  /** Closes every device but keeps the generators for the next step. */
  async closeDevices(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request('close', { timeoutMs: 10_000 })));
    this.held.fill(0);
    this.ranges = [];
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
    for (const pid of this.pids) unregisterProcess(pid);
  }
}
