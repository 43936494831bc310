/**
 * MQTT load generator: subscribers of one topic at QoS 0, the Mosquitto side of the fan-out yardstick.
 * Each subscriber stands for one device and uses its own loopback source address, like the device fleet.
 */
import { epochMs } from '../lib/stats.ts';
import { serveCommands } from '../lib/worker.ts';
import type { Arrivals } from './device-commands.ts';
import { RawMqttClient } from './mqtt-client.ts';

export type MqttCommands = {
  connect: {
    params: { port: number; from: number; to: number; topic: string; concurrency: number };
    result: { connected: number; failed: number; firstError: string | null };
  };
  arm: { params: null; result: null };
  waitArrivals: { params: { count: number; timeoutMs: number }; result: Arrivals };
  close: { params: null; result: { closed: number } };
};

const clients: RawMqttClient[] = [];
let arrivals: Arrivals = { count: 0, first: 0, last: 0, bytes: 0 };
let wake: (() => void) | null = null;
let unexpectedCloses = 0;
let closing = false;

function sourceAddress(index: number): string {
  return `127.${1 + Math.floor(index / 62_500)}.${Math.floor(index / 250) % 250}.${(index % 250) + 1}`;
}

async function connectClients(params: MqttCommands['connect']['params']): Promise<MqttCommands['connect']['result']> {
  const result = { connected: 0, failed: 0, firstError: null as string | null };
  let next = params.from;
  const lane = async () => {
    while (next < params.to) {
      const index = next++;
      try {
        const client = await RawMqttClient.open(
          { host: '127.0.0.1', port: params.port, clientId: `bench-sub-${index}`, topic: params.topic, localAddress: sourceAddress(index) },
          {
            publish: (bytes, receivedAt) => {
              arrivals.count += 1;
              if (arrivals.first === 0) arrivals.first = receivedAt;
              arrivals.last = Math.max(arrivals.last, receivedAt);
              arrivals.bytes = bytes;
              wake?.();
            },
            close: () => {
              if (!closing) unexpectedCloses += 1;
            },
            error: () => undefined,
          },
          epochMs,
        );
        clients.push(client);
        result.connected += 1;
      } catch (err) {
        result.failed += 1;
        result.firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(params.concurrency, params.to - params.from) }, lane));
  return result;
}

async function waitArrivals(params: { count: number; timeoutMs: number }): Promise<Arrivals> {
  if (unexpectedCloses > 0) throw new Error(`${unexpectedCloses} subscribers lost their connection`);
  await new Promise<void>((resolve, reject) => {
    if (arrivals.count >= params.count) {
      resolve();
      return;
    }
    const timer = setTimeout(() => reject(new Error(`only ${arrivals.count} of ${params.count} messages arrived within ${params.timeoutMs} ms`)), params.timeoutMs);
    wake = () => {
      if (arrivals.count < params.count) return;
      clearTimeout(timer);
      resolve();
    };
  });
  wake = null;
  return arrivals;
}

serveCommands<MqttCommands>({
  connect: connectClients,
  arm: () => {
    arrivals = { count: 0, first: 0, last: 0, bytes: 0 };
    return null;
  },
  waitArrivals,
  close: () => {
    closing = true;
    for (const client of clients) client.close();
    const closed = clients.length;
    clients.length = 0;
    return { closed };
  },
});
