import { DevicePool } from '../lib/device-pool.ts';
import { deviceLabel, type FigureSeries } from '../lib/figures.ts';
import { startBareUws } from '../lib/peers.ts';
import { placeFor } from '../lib/placement.ts';
import { startOne, startProduct, startTogether, type BenchContext, type ProductSystem } from '../lib/stack.ts';
import type { MemoryReading } from '../lib/processes.ts';
import { sleep, summarize } from '../lib/stats.ts';

/**
 * Devices connected before the baseline is read, and kept: the baseline is then a serving process (code
 * compiled, buffers and the young generation in use) rather than one that has just started.
 */
const BASELINE_DEVICES = 200;

/** Baseline readings of a process that differ by less than this are taken as settled. */
const SETTLED_BYTES = 1024 * 1024;

interface System {
  name: string;
  replicas: number | null;
  urls: string[];
  pids: number[];
  /** Provisions devices and issues their tokens; absent for the bare server. */
  tokens?: (deviceIds: string[]) => Promise<string[]>;
  pool: DevicePool;
  memoryAfterGc(reducerWaitMs: number): Promise<MemoryReading>;
  profileStart(): Promise<void>;
  profileEnd(label: string): Promise<void>;
  heapSnapshot(label: string): Promise<void>;
}

/**
 * Memory per connected device and connect rate. Each repeat starts the bare uWebSockets.js server and the
 * product with each replica count, grows every fleet through the plan's steps one system after another,
 * lets every device send at least one heartbeat, and reads each server's RSS after a full GC. Memory per
 * device is the growth over the baseline reading with BASELINE_DEVICES connected, divided by the devices
 * added since.
 * The figure leaves out V8's young generation: its size follows the allocation rate (1 to 32 MiB with
 * Node 20's defaults), not the number of devices, and a full GC empties it without giving it back. The
 * growth including it is kept in the figure's details. The connect rate is taken from the last step, the
 * one that adds the most devices.
 */
export async function runMemory(context: BenchContext): Promise<FigureSeries[]> {
  const { plan } = context;
  const steps = plan.memorySteps;
  const maxDevices = steps[steps.length - 1] as number;
  const memory = new Map<string, number[][]>();
  const rawMemory = new Map<string, number[][]>();
  const connect = new Map<string, number[]>();

  for (let repeat = 0; repeat < plan.slowRepeats; repeat++) {
    context.progress(`memory and connect rate, repeat ${repeat + 1} of ${plan.slowRepeats}`);
    const systems: System[] = [];
    const stoppers: (() => Promise<void>)[] = [];
    try {
      const bare = await startOne(startBareUws(context, `memory-bare-${repeat + 1}`, plan.heartbeatS), stoppers);
      const products = await startTogether(
        plan.replicaCounts.map((replicas) => startProduct(context, `memory-r${replicas}-${repeat + 1}`, replicas, plan.heartbeatS)),
        stoppers,
      );
      const names = ['bare', ...plan.replicaCounts.map((replicas) => `r${replicas}`)];
      const pools = await startTogether(
        names.map((name) => DevicePool.start(context, `memory-${name}-${repeat + 1}`, maxDevices)),
        stoppers,
      );
      systems.push({
        name: 'bare',
        replicas: null,
        urls: [bare.url],
        pids: bare.pids,
        pool: pools[0] as DevicePool,
        memoryAfterGc: (reducerWaitMs) => bare.memoryAfterGc(reducerWaitMs),
        profileStart: async () => undefined,
        profileEnd: async () => undefined,
        heapSnapshot: async () => undefined,
      });
      plan.replicaCounts.forEach((replicas, i) => {
        const product = products[i] as ProductSystem;
        systems.push({
          name: `r${replicas}`,
          replicas,
          urls: product.urls,
          pids: product.pids,
          tokens: (ids) => product.deviceTokens(ids),
          pool: pools[i + 1] as DevicePool,
          memoryAfterGc: (reducerWaitMs) => product.memoryAfterGc(reducerWaitMs),
          profileStart: () => product.profileStart(),
          profileEnd: (label) => product.profileEnd(label),
          heapSnapshot: (label) => product.heapSnapshot(label),
        });
      });

      for (const system of systems) {
        placeFor(system.pids);
        await system.pool.grow(plan.memoryWarmUpDevices, { urls: system.urls, heartbeatS: plan.heartbeatS, tokens: system.tokens });
      }
      await sleep(plan.heartbeatS * 1000 + 1000);
      for (const system of systems) await system.pool.closeDevices();

      const baseline = new Map<System, MemoryReading>();
      for (const system of systems) {
        placeFor(system.pids);
        await system.pool.grow(BASELINE_DEVICES, { urls: system.urls, heartbeatS: plan.heartbeatS, tokens: system.tokens });
      }
      await sleep(plan.heartbeatS * 1000 + 1000);
      const baselines = await stableReadings(systems, plan.memoryReadingMs, plan.memoryBaselineRounds);
      for (const system of systems) await system.heapSnapshot(`memory-${system.name}-${BASELINE_DEVICES}-${repeat + 1}`);
      systems.forEach((system, i) => {
        const reading = baselines[i] as MemoryReading;
        baseline.set(system, reading);
        context.progress(`  ${system.name}: baseline RSS ${mib(reading.rss)} MiB with young generation ${mib(reading.young)} MiB`);
      });

      for (const [stepIndex, devices] of steps.entries()) {
        // The other fleets pause their heartbeats, so that their servers stay idle while one connects.
        for (const system of systems) await system.pool.setHeartbeats(false);
        const last = stepIndex === steps.length - 1;
        for (const system of systems) {
          placeFor(system.pids);
          if (last) await system.profileStart();
          const grown = await system.pool.grow(devices, {
            urls: system.urls,
            heartbeatS: plan.heartbeatS,
            tokens: system.tokens,
          });
          if (last) await system.profileEnd(`connect-${system.name}-${repeat + 1}`);
          await system.pool.setHeartbeats(false);
          if (last) push(connect, system.name, grown.rate);
          const retries = grown.retried > 0 ? `, ${grown.retried} handshakes retried (first error: ${grown.firstError})` : '';
          context.progress(`  ${system.name}: ${devices} devices, ${Math.round(grown.rate)} connects/s${retries}`);
        }
        for (const system of systems) await system.pool.setHeartbeats(true);
        // Every device sends its first heartbeat within one interval.
        await sleep(plan.heartbeatS * 1000 + 1000);
        const readings = await readAll(systems, plan.memoryReadingMs);
        for (const system of systems) await system.heapSnapshot(`memory-${system.name}-${devices}-${repeat + 1}`);
        for (const [i, system] of systems.entries()) {
          await system.pool.checkHealthy();
          const reading = readings[i] as MemoryReading;
          const base = baseline.get(system) as MemoryReading;
          const added = devices - BASELINE_DEVICES;
          const perDevice = (reading.rss - reading.young - (base.rss - base.young)) / added / 1024;
          const rawPerDevice = (reading.rss - base.rss) / added / 1024;
          record(memory, system.name, steps.length, stepIndex, perDevice);
          record(rawMemory, system.name, steps.length, stepIndex, rawPerDevice);
          context.progress(
            `  ${system.name}: RSS ${mib(reading.rss)} MiB with young generation ${mib(reading.young)} MiB; ` +
              `${perDevice.toFixed(2)} KB per device, ${rawPerDevice.toFixed(2)} KB with the young generation`,
          );
        }
      }
    } finally {
      for (const stop of stoppers.reverse()) await stop();
    }
  }

  const figures: FigureSeries[] = [];
  for (const replicas of plan.replicaCounts) {
    for (const [stepIndex, devices] of steps.entries()) {
      figures.push({
        id: `memory.${deviceLabel(devices)}.r${replicas}`,
        title: 'memory per connected device',
        unit: 'KB',
        better: 'lower',
        devices,
        replicas,
        values: memory.get(`r${replicas}`)?.[stepIndex] ?? [],
        yardsticks: [{ name: 'bare uWS', values: memory.get('bare')?.[stepIndex] ?? [] }],
        details: {
          rssGrowthWithYoungGenerationKB: summarize(rawMemory.get(`r${replicas}`)?.[stepIndex] ?? [0]).median,
          bareRssGrowthWithYoungGenerationKB: summarize(rawMemory.get('bare')?.[stepIndex] ?? [0]).median,
        },
      });
    }
  }
  const added = maxDevices - (steps[steps.length - 2] ?? 0);
  for (const replicas of plan.replicaCounts) {
    figures.push({
      id: `connect.${deviceLabel(added)}.r${replicas}`,
      title: 'connect rate (upgrade + hello)',
      unit: 'devices/s',
      better: 'higher',
      devices: added,
      replicas,
      values: connect.get(`r${replicas}`) ?? [],
      yardsticks: [{ name: 'bare uWS', values: connect.get('bare') ?? [] }],
      details: {},
    });
  }
  return figures;
}

/**
 * Reads every system's memory at once, with heartbeats paused: V8 returns free pages and shrinks its young
 * generation only once the process allocates little, so an idle process gives the same kind of reading
 * at every step. The devices heartbeated within the interval before.
 */
async function readAll(systems: System[], reducerWaitMs: number): Promise<MemoryReading[]> {
  for (const system of systems) await system.pool.setHeartbeats(false);
  const readings = await Promise.all(systems.map((system) => system.memoryAfterGc(reducerWaitMs)));
  for (const system of systems) await system.pool.setHeartbeats(true);
  return readings;
}

/**
 * Reads the baselines, repeated until each system's reading changed by less than SETTLED_BYTES per
 * process (at most `rounds` readings), so that memory a fresh process gives back late does not count as
 * memory the devices took.
 */
async function stableReadings(systems: System[], reducerWaitMs: number, rounds: number): Promise<MemoryReading[]> {
  let previous = await readAll(systems, reducerWaitMs);
  for (let round = 1; round < rounds; round++) {
    const current = await readAll(systems, reducerWaitMs);
    const settled = systems.every((system, i) => {
      const before = previous[i] as MemoryReading;
      const now = current[i] as MemoryReading;
      return Math.abs(before.rss - before.young - (now.rss - now.young)) < SETTLED_BYTES * system.pids.length;
    });
    previous = current;
    if (settled) break;
  }
  return previous;
}

function record(map: Map<string, number[][]>, key: string, steps: number, step: number, value: number): void {
  const series = map.get(key) ?? Array.from({ length: steps }, () => []);
  series[step]?.push(value);
  map.set(key, series);
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}

function push(map: Map<string, number[]>, key: string, value: number): void {
  const list = map.get(key) ?? [];
  list.push(value);
  map.set(key, list);
}
