import type { ExecutionContext } from 'ava';
import type { OfferMessage } from '../../protocol/messages.ts';
import { RolloutStore, parseRolloutSpec, type Rollout } from '../../storage/rollouts.ts';
import type { FailureReason } from '../../simulator/index.ts';
import type { TestBackend } from './backend.ts';
import type { RawDevice } from './device-client.ts';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `read` every 50 ms until `done` accepts its value. It sets no time limit of its own: ava's inactivity
 * timeout ends a test that waits forever, and the last value is logged so the failure says what was seen.
 */
export async function until<T>(
  t: ExecutionContext,
  what: string,
  read: () => Promise<T> | T,
  done: (value: T) => boolean,
): Promise<T> {
  let polls = 0;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    polls += 1;
    if (polls % 200 === 0) t.log(`still waiting for ${what}; last value ${JSON.stringify(value)}`);
    await sleep(50);
  }
}

/** Connects the devices and sends hello for each, resolving once every one is welcomed. */
export async function welcomeAll(backend: TestBackend, ids: string[], tags?: Record<string, string[]>): Promise<RawDevice[]> {
  const devices = await Promise.all(ids.map((id) => backend.connect(id)));
  devices.forEach((device, i) => {
    const id = ids[i] as string;
    device.send({ type: 'hello', protocol: 1, deviceId: id, model: 'test-cam', firmware: '1.0.0', patches: [], ...(tags?.[id] ? { tags: tags[id] } : {}) });
  });
  await Promise.all(devices.map((device) => device.next('welcome')));
  return devices;
}

/** Offers the devices have received so far, optionally of one patch only. */
export function offersOf(devices: RawDevice[], patchId?: string): { device: RawDevice; offer: OfferMessage }[] {
  return devices.flatMap((device) =>
    device.received
      .filter((m): m is OfferMessage => m.type === 'offer' && (patchId === undefined || m.patchId === patchId))
      .map((offer) => ({ device, offer })),
  );
}

/** Sends the result of an offer and waits for its acknowledgement. */
export async function finish(device: RawDevice, offer: OfferMessage, outcome: 'applied' | FailureReason): Promise<void> {
  const acks = device.received.filter((m) => m.type === 'result_ack').length;
  device.send(
    outcome === 'applied'
      ? { type: 'result', patchId: offer.patchId, attempt: offer.attempt, outcome }
      : { type: 'result', patchId: offer.patchId, attempt: offer.attempt, outcome: 'failed', reason: outcome },
  );
  while (device.received.filter((m) => m.type === 'result_ack').length <= acks) {
    if (device.socket.readyState === device.socket.CLOSED) {
      throw new Error(`connection closed before the result of ${offer.patchId} attempt ${offer.attempt} was acknowledged`);
    }
    await sleep(10);
  }
}

/** Creates a rollout through the same path as the API and the CLI. */
export function createRollout(backend: TestBackend, body: Record<string, unknown>): Promise<Rollout> {
  return new RolloutStore(backend.state).create(parseRolloutSpec(body));
}

export async function readRollout(backend: TestBackend, id: string): Promise<Rollout> {
  const rollout = await new RolloutStore(backend.state).get(id);
  if (!rollout) throw new Error(`no rollout ${id}`);
  return rollout;
}
