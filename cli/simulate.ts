import { pino } from 'pino';
import { fleetDeviceIds, SimulatedCamera, SimulatedFleet } from '../simulator/index.ts';
import { checkWebSocketUrl } from '../simulator/options.ts';
import { DeviceTokens } from '../security/device-tokens.ts';
import { issueDeviceTokens } from '../security/device-provisioning.ts';
import { CliError, EXIT, openStorage } from './storage-access.ts';

export interface SimulateOptions {
  url: string;
  token?: string;
  publicKey?: string;
  devices: string;
  prefix: string;
  failureRate: string;
  flakyRate: string;
  disconnectRate: string;
  downloadKbps: string;
  applyMs: string;
  json?: boolean;
}

function number(name: string, value: string, min: number, max = Infinity): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new CliError(`invalid --${name} ${JSON.stringify(value)}: expected a number from ${min} to ${max}`, EXIT.usage);
  }
  return n;
}

/** Checks --url, whose default is FLEET_DEVICE_URL, before anything connects, so a wrong scheme is a usage error. */
function checkDeviceUrl(url: string): void {
  try {
    checkWebSocketUrl(url);
  } catch {
    throw new CliError(
      `invalid device URL ${JSON.stringify(url)} (--url or FLEET_DEVICE_URL): expected a ws:// or wss:// URL, such as ws://127.0.0.1:8080/device`,
      EXIT.usage,
    );
  }
}

function behaviour(options: Omit<SimulateOptions, 'devices' | 'prefix' | 'json' | 'url'>) {
  const signingPublicKey = options.publicKey ?? process.env.FLEET_SIGNING_PUBLIC_KEY ?? null;
  return {
    signingPublicKey: signingPublicKey || null,
    failureRate: number('failure-rate', options.failureRate, 0, 1),
    flakyRate: number('flaky-rate', options.flakyRate, 0, 1),
    disconnectRate: number('disconnect-rate', options.disconnectRate, 0, 1),
    downloadBytesPerSecond: number('download-kbps', options.downloadKbps, 0) * 1024,
    applyMs: number('apply-ms', options.applyMs, 0),
  };
}

/** Provisions the devices and issues their tokens, with the same configuration as `fleet serve`. */
async function issueTokensFromStorage(deviceIds: string[]): Promise<Map<string, string>> {
  const storage = await openStorage();
  try {
    return await issueDeviceTokens(storage.state, new DeviceTokens(storage.config.security.deviceTokenSecret), deviceIds);
  } finally {
    await storage.close();
  }
}

function untilInterrupted(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

/** `fleet simulate --devices N`: plays N cameras in this process until Ctrl-C, printing totals. */
export async function simulateFleet(options: SimulateOptions): Promise<void> {
  const count = number('devices', options.devices, 1, 100_000);
  checkDeviceUrl(options.url);
  const ids = fleetDeviceIds({ count, prefix: options.prefix });
  const tokens = await issueTokensFromStorage(ids);
  process.stderr.write(`issued ${tokens.size} device tokens\n`);
  const fleet = new SimulatedFleet({
    url: options.url,
    count,
    prefix: options.prefix,
    tokenFor: (id) => tokens.get(id) ?? '',
    ...behaviour(options),
  });
  const interrupted = untilInterrupted();
  await fleet.start();
  const timer = setInterval(() => {
    const s = fleet.stats();
    const applied = Object.entries(s.applied).map(([id, n]) => `${id} ${n}`).join('  ') || '-';
    process.stderr.write(`online ${s.online}/${s.total}  reconnects ${s.reconnects}  applied: ${applied}\n`);
  }, 2000);
  await interrupted;
  clearInterval(timer);
  await fleet.stop();
  if (options.json) process.stdout.write(`${JSON.stringify(fleet.stats())}\n`);
  process.exit();
}

/** `fleet device ID`: plays one camera, keeping its applied patches in a state file across restarts. */
export async function runDevice(deviceId: string, options: SimulateOptions & { state?: string }): Promise<void> {
  const stateFile = options.state ?? `.fleet/${deviceId}.json`;
  checkDeviceUrl(options.url);
  const logger = pino({ level: 'info' });
  const token = options.token ?? process.env.FLEET_DEVICE_TOKEN ?? (await issueTokensFromStorage([deviceId])).get(deviceId);
  const camera = new SimulatedCamera({ url: options.url, deviceId, token, stateFile, logger, ...behaviour(options) });
  camera.on('connected', (e) => logger.info({ sessionId: e.sessionId }, 'connected'));
  // The camera itself logs every applied and failed patch with its device id, so no listener repeats that.
  camera.on('disconnected', (e) => logger.info({ code: e.code, reason: e.reason, reconnectInMs: e.reconnectInMs }, 'disconnected'));
  camera.on('stopped', (e) => {
    if (e.closeCode !== null) {
      logger.error({ code: e.closeCode }, 'server told the camera not to reconnect');
      process.exitCode = EXIT.failure;
    }
  });
  const interrupted = untilInterrupted();
  await camera.start();
  logger.info({ deviceId, stateFile, applied: camera.appliedPatches }, 'camera started; Ctrl-C stops it');
  await interrupted;
  await camera.stop();
  // Downloads cut short by the stop may leave sockets in the HTTP client's pool; they must not keep the
  // process alive once the camera is gone.
  process.exit();
}
