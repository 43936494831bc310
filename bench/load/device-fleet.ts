/**
 * Device load generator: one process that plays up to a few thousand lean devices of protocol v1 over raw
 * WebSockets, driven by the harness over IPC (commands in device-commands.ts). It keeps no per-device
 * timers: one 100 ms tick sends the heartbeats that are due.
 */
import { Agent, get } from 'node:http';
import { serveCommands } from '../lib/worker.ts';
import { epochMs } from '../lib/stats.ts';
import type {
  Arrivals,
  ConnectParams,
  ConnectResult,
  DeviceCommands,
  DownloadResult,
  FleetStats,
  IngestResult,
  RolloutResult,
} from './device-commands.ts';
import { bearerHeaders } from './device-headers.ts';
import { RawWebSocket } from './ws-client.ts';

/** One process must stay well below the 20,000 open files allowed per process on the benchmark machine. */
const MAX_DEVICES = 9000;
const HEARTBEAT = '{"type":"heartbeat"}';
const TICK_MS = 100;
/** Tries per device, as a camera reconnects after a failed handshake; retries are counted and reported. */
const CONNECT_ATTEMPTS = 3;

interface Offer {
  patchId: string;
  attempt: number;
  url: string;
  size: number;
}

interface Device {
  id: string;
  ws: RawWebSocket;
  welcomed: boolean;
  offer: Offer | null;
  /** Called with the next reply that ends a batch of ingest messages or a result. */
  onBarrier: (() => void) | null;
  onAck: (() => void) | null;
  closing: boolean;
  progressBytes: number;
  /** Frames that arrived while parsing was deferred, handled once the arrivals are complete. */
  deferred: Buffer[];
}

const devices: Device[] = [];
const stats: FleetStats = { open: 0, unexpectedCloses: {}, errors: {} };
let heartbeatS = 0;
let heartbeatsEnabled = true;
let tick = 0;

let arrivals: Arrivals = { count: 0, first: 0, last: 0, bytes: 0 };
let arrivalWaiter: (() => void) | null = null;
/**
 * While set, a welcomed device's next frame only counts as an arrival and is parsed later: parsing 10,000
 * offers as they come would delay the arrival times of the later ones by the client's own CPU time.
 */
let deferParsing = false;
let rollout: { agent: Agent; result: RolloutResult; waiter: (() => void) | null } | null = null;
let barrierPatchId = 'bench-barrier';

function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

/** Source address of device i on the loopback network: 127.1.0.1, 127.1.0.2, … */
function sourceAddress(index: number): string {
  return `127.${1 + Math.floor(index / 62_500)}.${Math.floor(index / 250) % 250}.${(index % 250) + 1}`;
}

function progressText(offer: Offer, state: string, bytes?: number): string {
  const tail = bytes === undefined ? '' : `,"bytes":${bytes}`;
  return `{"type":"progress","patchId":"${offer.patchId}","attempt":${offer.attempt},"state":"${state}"${tail}}`;
}

function barrierText(): string {
  return `{"type":"progress","patchId":"${barrierPatchId}","attempt":1,"state":"downloading"}`;
}

function resultText(offer: Offer, outcome: 'applied' | 'failed'): string {
  const reason = outcome === 'failed' ? ',"reason":"download_failed"' : '';
  return `{"type":"result","patchId":"${offer.patchId}","attempt":${offer.attempt},"outcome":"${outcome}"${reason}}`;
}

function onFrame(device: Device, payload: Buffer, receivedAt: number, welcomed: () => void): void {
  if (deferParsing && device.welcomed) {
    if (device.deferred.length === 0) {
      arrivals.count += 1;
      if (arrivals.first === 0) arrivals.first = receivedAt;
      if (receivedAt > arrivals.last) arrivals.last = receivedAt;
      arrivals.bytes = payload.length;
      arrivalWaiter?.();
    }
    device.deferred.push(payload);
    return;
  }
  onText(device, payload.toString('utf8'), receivedAt, welcomed);
}

/** Handles the frames held back while parsing was deferred; their arrivals were counted already. */
function handleDeferred(): void {
  deferParsing = false;
  for (const device of devices) {
    const frames = device.deferred;
    device.deferred = [];
    for (const frame of frames) onText(device, frame.toString('utf8'), 0, () => undefined, false);
  }
}

function onText(device: Device, text: string, receivedAt: number, welcomed: () => void, countArrival = true): void {
  let message: { type?: string; code?: string; patchId?: string; attempt?: number; url?: string; size?: number };
  try {
    message = JSON.parse(text) as typeof message;
  } catch {
    bump(stats.errors, 'unreadable_reply');
    return;
  }
  if (!device.welcomed) {
    device.welcomed = true;
    if (message.type === 'welcome') welcomed();
    else bump(stats.errors, `first_reply_${message.type}_${message.code ?? ''}`);
    return;
  }
  switch (message.type) {
    case 'offer': {
      device.offer = {
        patchId: String(message.patchId),
        attempt: Number(message.attempt),
        url: String(message.url ?? ''),
        size: Number(message.size ?? 0),
      };
      if (countArrival) {
        arrivals.count += 1;
        if (arrivals.first === 0) arrivals.first = receivedAt;
        arrivals.last = Math.max(arrivals.last, receivedAt);
        arrivals.bytes = Buffer.byteLength(text);
        arrivalWaiter?.();
      }
      if (rollout) runUpdate(device, device.offer);
      break;
    }
    case 'result_ack': {
      const done = device.onAck;
      device.onAck = null;
      done?.();
      break;
    }
    case 'ack':
    case 'error': {
      if (message.type === 'error' && !(message.code === 'unknown_patch' && device.onBarrier)) {
        bump(stats.errors, String(message.code));
        break;
      }
      const done = device.onBarrier;
      device.onBarrier = null;
      done?.();
      break;
    }
    default:
      break;
  }
}

/** Opens one device and resolves when its welcome arrives, or rejects. */
function openDevice(index: number, params: ConnectParams, headers: Record<string, string>): Promise<Device> {
  const url = new URL(params.urls[index % params.urls.length] as string);
  const id = `${params.prefix}${index}`;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${id}: no welcome within ${params.timeoutMs} ms`));
      device.ws.destroy();
    }, params.timeoutMs);
    const hello = JSON.stringify({
      type: 'hello',
      protocol: 1,
      deviceId: id,
      model: 'bench-cam',
      firmware: '1.0.0',
      patches: params.patches,
    });
    const device: Device = {
      id,
      welcomed: false,
      offer: null,
      onBarrier: null,
      onAck: null,
      closing: false,
      progressBytes: 0,
      deferred: [],
      ws: new RawWebSocket(
        { host: url.hostname, port: Number(url.port), path: url.pathname, localAddress: sourceAddress(index) },
        headers,
        {
          open: () => device.ws.send(hello),
          text: (payload, receivedAt) =>
            onFrame(device, payload, receivedAt, () => {
              clearTimeout(timer);
              resolve(device);
            }),
          close: (code) => {
            clearTimeout(timer);
            if (device.welcomed) stats.open -= 1;
            else reject(new Error(`${id}: closed with ${code} before the welcome`));
            if (!device.closing && device.welcomed) bump(stats.unexpectedCloses, String(code));
            device.onBarrier?.();
            device.onAck?.();
          },
          error: (err) => {
            if (!device.welcomed) reject(new Error(`${id}: ${err.message}`));
          },
        },
        epochMs,
      ),
    };
  });
}

async function connectDevices(params: ConnectParams): Promise<ConnectResult> {
  if (devices.length + params.to - params.from > MAX_DEVICES) {
    throw new Error(`a load generator can have at most ${MAX_DEVICES} devices, requested ${devices.length + params.to - params.from}; start more generators`);
  }
  heartbeatS = params.heartbeatS;
  const tokens = new Map(params.tokens.map((token, i) => [`${params.prefix}${params.from + i}`, token]));
  const headersOf = bearerHeaders(tokens);

  const result: ConnectResult = { connected: 0, failed: 0, retried: 0, startedAt: epochMs(), finishedAt: 0, firstError: null };
  let next = params.from;
  const lane = async () => {
    while (next < params.to) {
      const index = next++;
      for (let attempt = 1; attempt <= CONNECT_ATTEMPTS; attempt++) {
        try {
          devices.push(await openDevice(index, params, headersOf(`${params.prefix}${index}`)));
          stats.open += 1;
          result.connected += 1;
          result.finishedAt = epochMs();
          break;
        } catch (err) {
          result.firstError ??= (err as Error).message;
          if (attempt === CONNECT_ATTEMPTS) result.failed += 1;
          else result.retried += 1;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(params.concurrency, params.to - params.from) }, lane));
  return result;
}

function sendHeartbeats(): void {
  tick += 1;
  if (heartbeatS <= 0 || !heartbeatsEnabled) return;
  const slots = Math.max(1, Math.round((heartbeatS * 1000) / TICK_MS));
  const slot = tick % slots;
  for (let i = slot; i < devices.length; i += slots) {
    const device = devices[i] as Device;
    if (!device.closing) device.ws.send(HEARTBEAT);
  }
}

function waitUntil(condition: () => boolean, timeoutMs: number, what: string, register: (wake: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    if (condition()) {
      resolve();
      return;
    }
    const timer = setTimeout(() => reject(new Error(`${what} timed out after ${timeoutMs} ms`)), timeoutMs);
    register(() => {
      if (!condition()) return;
      clearTimeout(timer);
      resolve();
    });
  });
}

function arm(params: { rollout: boolean; downloadSlots: number }): null {
  arrivals = { count: 0, first: 0, last: 0, bytes: 0 };
  deferParsing = !params.rollout;
  rollout?.agent.destroy();
  rollout = params.rollout
    ? {
        agent: new Agent({ keepAlive: true, maxSockets: params.downloadSlots }),
        result: { done: 0, failed: 0, last: 0, bytes: 0 },
        waiter: null,
      }
    : null;
  return null;
}

async function waitOffers(params: { count: number; timeoutMs: number }): Promise<Arrivals> {
  await waitUntil(() => arrivals.count >= params.count, params.timeoutMs, `waiting for ${params.count} offers`, (wake) => {
    arrivalWaiter = wake;
  });
  arrivalWaiter = null;
  handleDeferred();
  return arrivals;
}

async function apply(params: { timeoutMs: number }): Promise<{ acked: number }> {
  let expected = 0;
  let acked = 0;
  let wake = () => undefined as void;
  for (const device of devices) {
    const offer = device.offer;
    if (!offer || device.closing) continue;
    expected += 1;
    device.onAck = () => {
      device.offer = null;
      acked += 1;
      wake();
    };
    device.ws.send(resultText(offer, 'applied'));
  }
  await waitUntil(() => acked >= expected, params.timeoutMs, `waiting for ${expected} result acks`, (w) => {
    wake = w;
  });
  return { acked };
}

/** Downloads, then reports verifying, applying and the result, as a device does with an offer. */
function runUpdate(device: Device, offer: Offer): void {
  const state = rollout;
  if (!state) return;
  device.ws.send(progressText(offer, 'downloading', 0));
  fetchBytes(offer.url, state.agent).then(
    (bytes) => {
      state.result.bytes += bytes;
      const complete = bytes === offer.size;
      if (!complete) state.result.failed += 1;
      device.onAck = () => {
        if (complete) state.result.done += 1;
        state.result.last = Math.max(state.result.last, epochMs());
        state.waiter?.();
      };
      if (complete) device.ws.send(progressText(offer, 'verifying'), progressText(offer, 'applying'), resultText(offer, 'applied'));
      else device.ws.send(resultText(offer, 'failed'));
    },
    (err: unknown) => {
      bump(stats.errors, `download: ${(err as Error).message}`);
      state.result.failed += 1;
      state.waiter?.();
    },
  );
}

/** GETs `url` through `agent` and resolves with the number of body bytes; rejects on a status other than 200. */
function fetchBytes(url: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = get(url, { agent }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        reject(new Error(`HTTP ${response.statusCode}`));
        return;
      }
      let bytes = 0;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      response.on('end', () => resolve(bytes));
      response.on('error', reject);
    });
    request.on('error', reject);
  });
}

async function waitRollout(params: { count: number; timeoutMs: number }): Promise<RolloutResult> {
  const state = rollout;
  if (!state) throw new Error('arm the generator with rollout: true first');
  await waitUntil(
    () => state.result.done + state.result.failed >= params.count,
    params.timeoutMs,
    `waiting for ${params.count} updates`,
    (wake) => {
      state.waiter = wake;
    },
  );
  return state.result;
}

async function download(params: { url: string; count: number; size: number; downloadSlots: number; timeoutMs: number }): Promise<DownloadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: params.downloadSlots });
  const result: DownloadResult = { done: 0, failed: 0, startedAt: epochMs(), finishedAt: 0, bytes: 0 };
  const all = Array.from({ length: params.count }, () =>
    fetchBytes(params.url, agent).then(
      (bytes) => {
        result.bytes += bytes;
        if (bytes === params.size) result.done += 1;
        else result.failed += 1;
        result.finishedAt = epochMs();
      },
      (err: unknown) => {
        bump(stats.errors, `download: ${(err as Error).message}`);
        result.failed += 1;
      },
    ),
  );
  const timeout = new Promise<never>((_, reject) => {
    setTimeout(() => reject(new Error(`downloads did not finish within ${params.timeoutMs} ms`)), params.timeoutMs).unref();
  });
  await Promise.race([Promise.all(all), timeout]);
  agent.destroy();
  return result;
}

async function ingest(params: { durationMs: number; barrierPatchId: string; timeoutMs: number }): Promise<IngestResult> {
  barrierPatchId = params.barrierPatchId;
  const errorsBefore = { ...stats.errors };
  const result: IngestResult = { messages: 0, startedAt: epochMs(), finishedAt: 0, errors: {} };
  const endAt = result.startedAt + params.durationMs;
  let running = 0;
  let wake = () => undefined as void;
  const fallback: Offer = { patchId: 'bench-ingest', attempt: 1, url: '', size: 0 };
  const sendBatch = (device: Device) => {
    const offer = device.offer ?? fallback;
    device.progressBytes += 1024;
    device.onBarrier = () => {
      result.messages += 4;
      if (epochMs() < endAt && !device.closing && device.ws.isOpen) {
        sendBatch(device);
      } else {
        running -= 1;
        wake();
      }
    };
    device.ws.send(HEARTBEAT, progressText(offer, 'downloading', device.progressBytes), HEARTBEAT, barrierText());
  };
  for (const device of devices) {
    if (device.closing || !device.ws.isOpen) continue;
    running += 1;
    sendBatch(device);
  }
  await waitUntil(() => running === 0, params.durationMs + params.timeoutMs, 'waiting for the last ingest batches', (w) => {
    wake = w;
  });
  result.finishedAt = epochMs();
  for (const [code, count] of Object.entries(stats.errors)) {
    const fresh = count - (errorsBefore[code] ?? 0);
    if (fresh > 0) result.errors[code] = fresh;
  }
  return result;
}

async function finishUpdates(params: { barrierPatchId: string; timeoutMs: number }): Promise<{ devices: number }> {
  barrierPatchId = params.barrierPatchId;
  let expected = 0;
  let finished = 0;
  let wake = () => undefined as void;
  for (const device of devices) {
    const offer = device.offer;
    if (!offer || device.closing) continue;
    expected += 1;
    device.onBarrier = () => {
      finished += 1;
      wake();
    };
    // The heartbeat keeps the lease alive for the check that follows, however long the device was quiet.
    device.ws.send(HEARTBEAT, progressText(offer, 'verifying'), progressText(offer, 'applying'), barrierText());
  }
  await waitUntil(() => finished >= expected, params.timeoutMs, `waiting for ${expected} devices to report`, (w) => {
    wake = w;
  });
  return { devices: finished };
}

async function closeAll(params: { timeoutMs: number }): Promise<{ closed: number }> {
  for (const device of devices) {
    device.closing = true;
    device.ws.close(1000);
  }
  const deadline = Date.now() + params.timeoutMs;
  while (stats.open > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  for (const device of devices) device.ws.destroy();
  const closed = devices.length;
  devices.length = 0;
  stats.open = 0;
  return { closed };
}

setInterval(sendHeartbeats, TICK_MS);

serveCommands<DeviceCommands>({
  connect: connectDevices,
  arm,
  waitOffers,
  apply,
  ingest,
  finishUpdates,
  waitRollout,
  download,
  heartbeats: ({ enabled }) => {
    heartbeatsEnabled = enabled;
    return null;
  },
  stats: () => stats,
  close: closeAll,
});
