import { DevicePool } from '../lib/device-pool.ts';
import { deviceLabel, type FigureSeries } from '../lib/figures.ts';
import { startBareUws } from '../lib/peers.ts';
import { placeFor, registerProcess, unregisterProcess } from '../lib/placement.ts';
import { startOne, startProduct, startTogether, type BenchContext, type ProductSystem } from '../lib/stack.ts';
import { epochMs } from '../lib/stats.ts';
import { track } from '../lib/cleanup.ts';
import { Worker } from '../lib/worker.ts';
import type { MqttCommands } from '../load/mqtt-fleet.ts';
import { publishPacket, RawMqttClient } from '../load/mqtt-client.ts';
import { paddedOffer } from '../peers/uws-peer.ts';
import { startMosquitto } from '../peers/mosquitto.ts';

const TOPIC = 'fleet/patches';
const FAN_OUT_TIMEOUT_MS = 60_000;

/** Subscribers of the private Mosquitto broker, spread over two load generator processes. */
class MqttPool {
  private readonly held: number[];
  private nextIndex = 0;

  private constructor(private readonly workers: Worker<MqttCommands>[]) {
    this.held = workers.map(() => 0);
  }

  static async start(context: BenchContext): Promise<MqttPool> {
    const workers = await Promise.all(
      [1, 2].map((i) => Worker.start<MqttCommands>(`mqtt-subscribers-${i}`, new URL('../load/mqtt-fleet.ts', import.meta.url), { logDir: context.logDir })),
    );
    for (const worker of workers) {
      track(worker.child);
      registerProcess(worker.pid);
    }
    return new MqttPool(workers);
  }

  async grow(port: number, total: number): Promise<void> {
    const add = total - this.held.reduce((a, b) => a + b, 0);
    let from = this.nextIndex;
    const results = await Promise.all(
      this.workers.map((worker, i) => {
        const share = Math.floor(add / this.workers.length) + (i < add % this.workers.length ? 1 : 0);
        const params = { port, from, to: from + share, topic: TOPIC, concurrency: 200 };
        from += share;
        this.held[i] = (this.held[i] as number) + share;
        return worker.request('connect', params);
      }),
    );
    this.nextIndex = from;
    const failed = results.reduce((sum, r) => sum + r.failed, 0);
    if (failed > 0) throw new Error(`${failed} MQTT subscribers failed to connect: ${results.find((r) => r.firstError)?.firstError}`);
  }

  async arm(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request('arm', null)));
  }

  async lastArrival(): Promise<number> {
    const all = await Promise.all(
      this.workers.map((w, i) => w.request('waitArrivals', { count: this.held[i] as number, timeoutMs: FAN_OUT_TIMEOUT_MS }, FAN_OUT_TIMEOUT_MS + 5000)),
    );
    return Math.max(...all.map((a) => a.last));
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request('close', null).catch(() => undefined)));
    await Promise.all(this.workers.map((w) => w.stop()));
    for (const worker of this.workers) unregisterProcess(worker.pid);
  }
}

interface ProductFleet {
  replicas: number;
  product: ProductSystem;
  pool: DevicePool;
  released: string[];
}

/**
 * Release fan-out: the time from a patch entering the catalog until the last connected device has its
 * offer. The product, a bare uWebSockets.js publish of a message of the offer's size, and Mosquitto
 * delivering one QoS 0 message to as many MQTT subscribers all hold their fleets at once, and each repeat
 * measures them one right after another, so their ratios compare runs a few seconds apart.
 */
export async function runFanOut(context: BenchContext): Promise<FigureSeries[]> {
  const { plan } = context;
  const steps = plan.fanoutSteps;
  const maxDevices = steps[steps.length - 1] as number;
  const results = new Map<string, number[][]>();
  const record = (key: string, step: number, value: number) => {
    const series = results.get(key) ?? steps.map(() => []);
    series[step]?.push(value);
    results.set(key, series);
  };

  context.progress('release fan-out: starting the servers');
  const fleets: ProductFleet[] = [];
  const stoppers: (() => Promise<void>)[] = [];
  try {
    const bare = await startOne(startBareUws(context, 'fanout-bare', plan.heartbeatS), stoppers);
    const mosquitto = await startOne(startMosquitto(), stoppers);
    registerProcess(mosquitto.pid);
    const products = await startTogether(
      plan.replicaCounts.map((replicas) => startProduct(context, `fanout-r${replicas}`, replicas, plan.heartbeatS)),
      stoppers,
    );
    const [barePool, ...pools] = (await startTogether(
      ['bare', ...plan.replicaCounts.map((r) => `r${r}`)].map((name) => DevicePool.start(context, `fanout-${name}`, maxDevices)),
      stoppers,
    )) as [DevicePool, ...DevicePool[]];
    const mqttPool = await startOne(MqttPool.start(context), stoppers);
    const publisher = await RawMqttClient.open(
      { host: '127.0.0.1', port: mosquitto.port, clientId: 'bench-publisher' },
      { publish: () => undefined, close: () => undefined, error: () => undefined },
      epochMs,
    );
    stoppers.push(async () => publisher.close());
    plan.replicaCounts.forEach((replicas, i) => {
      fleets.push({ replicas, product: products[i] as ProductSystem, pool: pools[i] as DevicePool, released: [] });
    });

    for (const [step, devices] of steps.entries()) {
      context.progress(`release fan-out: ${devices} devices per system`);
      // No heartbeats: an idle fleet of one system must not load the CPU while another is measured.
      placeFor(bare.pids);
      await barePool.grow(devices, { urls: [bare.url], heartbeatS: 0 });
      placeFor([mosquitto.pid]);
      await mqttPool.grow(mosquitto.port, devices);
      for (const fleet of fleets) {
        placeFor(fleet.product.pids);
        // Devices list every patch released so far as applied, so the new ones have no offer open.
        await fleet.pool.grow(devices, {
          urls: fleet.product.urls,
          patches: fleet.released,
          heartbeatS: 0,
          tokens: (ids) => fleet.product.deviceTokens(ids),
        });
      }

      for (let repeat = 0; repeat < plan.repeats; repeat++) {
        let offerBytes = 0;
        for (const fleet of fleets) {
          const patchId = `fanout-${deviceLabel(devices)}-${repeat + 1}.bin`;
          await fleet.pool.arm();
          placeFor(fleet.product.pids);
          await fleet.product.profileStart();
          const t0 = epochMs();
          await fleet.product.release(patchId, 1024 * 1024, 'a'.repeat(64));
          const arrivals = await fleet.pool.waitOffers(FAN_OUT_TIMEOUT_MS);
          await fleet.product.profileEnd(`fanout-${deviceLabel(devices)}-r${fleet.replicas}-${repeat + 1}`);
          record(`r${fleet.replicas}`, step, arrivals.last - t0);
          offerBytes = arrivals.bytes;
          fleet.released.push(patchId);
          // Reporting the offers applied closes them, so the next release reaches every device again.
          await fleet.pool.apply();
          context.progress(`  r${fleet.replicas}: ${(arrivals.last - t0).toFixed(1)} ms for ${arrivals.count} offers of ${offerBytes} bytes`);
        }

        await barePool.arm();
        placeFor(bare.pids);
        const published = await bare.worker.request('publish', { bytes: offerBytes });
        const bareArrivals = await barePool.waitOffers(FAN_OUT_TIMEOUT_MS);
        record('bare', step, bareArrivals.last - published.t0);

        await mqttPool.arm();
        placeFor([mosquitto.pid]);
        const packet = publishPacket(TOPIC, paddedOffer(offerBytes));
        const t0 = epochMs();
        publisher.write(packet);
        const last = await mqttPool.lastArrival();
        record('mosquitto', step, last - t0);
        context.progress(
          `  bare uWS: ${(bareArrivals.last - published.t0).toFixed(1)} ms, Mosquitto: ${(last - t0).toFixed(1)} ms`,
        );
      }
      await barePool.checkHealthy();
      for (const fleet of fleets) await fleet.pool.checkHealthy();
    }
  } finally {
    for (const stop of stoppers.reverse()) await stop();
  }

  const figures: FigureSeries[] = [];
  for (const replicas of plan.replicaCounts) {
    for (const [step, devices] of steps.entries()) {
      figures.push({
        id: `fanout.${deviceLabel(devices)}.r${replicas}`,
        title: 'release fan-out to the last offer',
        unit: 'ms',
        better: 'lower',
        devices,
        replicas,
        values: results.get(`r${replicas}`)?.[step] ?? [],
        yardsticks: [
          { name: 'bare uWS publish', values: results.get('bare')?.[step] ?? [] },
          { name: 'Mosquitto QoS 0', values: results.get('mosquitto')?.[step] ?? [] },
        ],
        details: {},
      });
    }
  }
  return figures;
}
