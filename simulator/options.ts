import { pino, type Logger } from 'pino';
import { isValidId } from '../protocol/names.ts';
import type { DownloadSlots } from './download-slots.ts';

/** Behaviour and fault knobs that every camera of a fleet shares. */
export interface CameraBehaviour {
  /** Mean time the camera spends applying a patch, in milliseconds. */
  applyMs: number;
  /** Spread of the apply time as a fraction of applyMs: 0.5 draws uniformly from 0.5×applyMs to 1.5×applyMs. */
  applyJitter: number;
  /** Fraction of cameras, chosen from a hash of the device id, whose every apply fails with `apply_failed`. */
  failureRate: number;
  /** Probability per attempt that the apply fails with `apply_failed`. */
  flakyRate: number;
  /** Probability per attempt that the camera terminates its WebSocket once, mid-download, then resumes. */
  disconnectRate: number;
  /** Download speed limit in bytes per second. 0 means unlimited. */
  downloadBytesPerSecond: number;
  /** First reconnect delay bound in milliseconds. The bound doubles with every failed connect. */
  backoffBaseMs: number;
  /** Maximum reconnect delay bound in milliseconds. */
  backoffCapMs: number;
  /** Time from opening the connection until `welcome` must arrive, in milliseconds. Then the camera reconnects. */
  welcomeTimeoutMs: number;
  /** Time to wait for the `url` reply to a `url_request`, in milliseconds. */
  urlRequestTimeoutMs: number;
  /** Fresh URLs the camera requests per attempt before it reports `download_failed`. */
  maxUrlRequests: number;
  /** Download retries per attempt after network errors or HTTP 5xx before the camera reports `download_failed`. */
  downloadRetries: number;
  /** Minimum time between two `downloading` progress messages, in milliseconds. 25% steps are always sent. */
  progressIntervalMs: number;
  /** Time the camera waits for the server's close frame after `stop()` before it drops the socket, in milliseconds. */
  closeTimeoutMs: number;
  /** Cap on concurrent HTTP downloads, shared by the cameras given the same instance. Null means no cap. */
  downloadSlots: DownloadSlots | null;
  /** Random number source returning values in [0, 1). Tests pass a seeded one to make runs repeatable. */
  random: () => number;
  /** Logger. Each camera logs through a child bound to its device id. Silent unless the caller passes one. */
  logger: Logger;
  /**
   * Fleet public key (Ed25519, PEM). When set, the camera applies only patches whose offer carries a
   * signature of the manifest that verifies with it, and reports `signature_invalid` otherwise.
   */
  signingPublicKey: string | null;
}

export interface CameraOptions extends Partial<CameraBehaviour> {
  /** WebSocket URL of the device endpoint, e.g. ws://127.0.0.1:8080/device. */
  url: string;
  deviceId: string;
  /** Device token sent as `Authorization: Bearer …` on every connect. */
  token?: string;
  /** Hardware model sent in `hello`. Derived from the device id when left out. */
  model?: string;
  /** Firmware version sent in `hello`. Derived from the device id when left out. */
  firmware?: string;
  /** Ids of patches applied before this run, oldest first. */
  applied?: readonly string[];
  /**
   * Path of a JSON file that keeps the applied patches, model and firmware across restarts. Values in an
   * existing file take precedence over `model`, `firmware` and `applied`.
   */
  stateFile?: string;
}

export const DEFAULT_BEHAVIOUR: Readonly<Omit<CameraBehaviour, 'random' | 'logger' | 'downloadSlots' | 'signingPublicKey'>> = {
  applyMs: 300,
  applyJitter: 0.5,
  failureRate: 0,
  flakyRate: 0,
  disconnectRate: 0,
  downloadBytesPerSecond: 0,
  backoffBaseMs: 200,
  backoffCapMs: 5_000,
  welcomeTimeoutMs: 10_000,
  urlRequestTimeoutMs: 10_000,
  maxUrlRequests: 3,
  downloadRetries: 3,
  progressIntervalMs: 500,
  closeTimeoutMs: 2_000,
};

let silentLogger: Logger | undefined;

function defaultLogger(): Logger {
  silentLogger ??= pino({ level: 'silent' });
  return silentLogger;
}

function checkFraction(name: string, value: number): void {
  if (!(value >= 0 && value <= 1)) {
    throw new RangeError(`invalid ${name} ${value}: expected a fraction from 0 to 1`);
  }
}

function checkNonNegative(name: string, value: number): void {
  if (!(Number.isFinite(value) && value >= 0)) {
    throw new RangeError(`invalid ${name} ${value}: expected a finite number of at least 0`);
  }
}

/** Fills in defaults and throws a RangeError naming the first invalid knob. */
export function resolveBehaviour(options: Partial<CameraBehaviour>): CameraBehaviour {
  const defined = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  const behaviour: CameraBehaviour = {
    ...DEFAULT_BEHAVIOUR,
    downloadSlots: null,
    random: Math.random,
    logger: defaultLogger(),
    signingPublicKey: null,
    ...defined,
  };

  for (const name of ['applyJitter', 'failureRate', 'flakyRate', 'disconnectRate'] as const) {
    checkFraction(name, behaviour[name]);
  }
  const counts = [
    'applyMs',
    'downloadBytesPerSecond',
    'backoffBaseMs',
    'backoffCapMs',
    'welcomeTimeoutMs',
    'urlRequestTimeoutMs',
    'maxUrlRequests',
    'downloadRetries',
    'progressIntervalMs',
    'closeTimeoutMs',
  ] as const;
  for (const name of counts) {
    checkNonNegative(name, behaviour[name]);
  }
  if (behaviour.backoffCapMs < behaviour.backoffBaseMs) {
    throw new RangeError(
      `invalid backoffCapMs ${behaviour.backoffCapMs}: it must be at least backoffBaseMs (${behaviour.backoffBaseMs})`,
    );
  }
  return behaviour;
}

/** Throws when the URL is not a ws: or wss: URL. */
export function checkWebSocketUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`invalid WebSocket URL ${JSON.stringify(url)}: expected e.g. ws://127.0.0.1:8080/device`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new TypeError(`invalid WebSocket URL ${JSON.stringify(url)}: the scheme must be ws: or wss:`);
  }
}

/** Throws when the device id breaks the protocol's id grammar, which the server would reject in `hello`. */
export function checkDeviceId(deviceId: string): void {
  if (!isValidId(deviceId)) {
    throw new TypeError(
      `invalid device id ${JSON.stringify(deviceId)}: use 1 to 128 characters from A-Z a-z 0-9 . _ -, ` +
        'not starting with a dot',
    );
  }
}
