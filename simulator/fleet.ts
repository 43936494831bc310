import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { SimulatedCamera } from './camera.ts';
import { DownloadSlots } from './download-slots.ts';
import { CAMERA_EVENT_NAMES, type CameraEventName, type CameraEvents } from './events.ts';
import { FleetCounters, type FleetStats } from './fleet-stats.ts';
import { deviceIdAt, hashFraction } from './identity.ts';
import { checkWebSocketUrl, resolveBehaviour, type CameraBehaviour } from './options.ts';
import { seededRandom } from './random.ts';

export interface FleetOptions extends Partial<CameraBehaviour> {
  /** WebSocket URL of the device endpoint, e.g. ws://127.0.0.1:8080/device. */
  url: string;
  /** Number of cameras. */
  count: number;
  /** Device id prefix. Default `cam_`. */
  prefix?: string;
  /** Number of the first camera. Default 1, so ids run cam_0001, cam_0002, … */
  firstIndex?: number;
  /** Digits of the zero-padded number. Default 4, or more when the last number needs them. */
  idWidth?: number;
  /** Connects started per second while the fleet ramps up. Default 250. */
  connectsPerSecond?: number;
  /**
   * Cap on HTTP downloads running at once over the whole fleet. Default 256, and 0 means no cap. Node's default
   * listen backlog is 511, so a local S3 server written in Node (s3rver) drops connects beyond it in a burst,
   * and on Linux each dropped connect waits at least 1 s for the SYN retransmit. Raise the cap for S3 or MinIO.
   */
  maxConcurrentDownloads?: number;
  /**
   * Seed for per-camera random sources, each derived from the seed and the device id, so a camera's fault
   * draws do not depend on the order in which other cameras draw. Its own timing (reconnects, retries) still
   * shifts them. Ignored when `random` is given.
   */
  seed?: number;
  /** Patch ids every camera applied before the run. */
  applied?: readonly string[];
  /** Device token of each camera; without it cameras connect with no Authorization header. */
  tokenFor?: (deviceId: string) => string;
}

export interface FleetEvents extends CameraEvents {
  /** Every camera has begun connecting. */
  ramped: [event: { started: number; elapsedMs: number }];
}

export const DEFAULT_CONNECTS_PER_SECOND = 250;

/** The device ids a fleet with these options plays, in order; callers use it to issue tokens up front. */
export function fleetDeviceIds(options: Pick<FleetOptions, 'count' | 'prefix' | 'firstIndex' | 'idWidth'>): string[] {
  const prefix = options.prefix ?? 'cam_';
  const firstIndex = options.firstIndex ?? 1;
  const lastIndex = firstIndex + options.count - 1;
  const idWidth = options.idWidth ?? Math.max(4, String(lastIndex).length);
  const ids: string[] = [];
  for (let index = firstIndex; index <= lastIndex; index += 1) ids.push(deviceIdAt(prefix, index, idWidth));
  return ids;
}
export const DEFAULT_MAX_CONCURRENT_DOWNLOADS = 256;
/** Cameras whose ramp delay is shorter than this start right away, without a timer of their own. */
const MIN_RAMP_SLEEP_MS = 10;

interface Waiter {
  predicate: (stats: FleetStats) => boolean;
  resolve: (stats: FleetStats) => void;
  reject: (err: unknown) => void;
  cleanup: () => void;
}

/**
 * Many simulated cameras in one process, sharing one set of options. Connects are ramped so that the server
 * does not get every WebSocket upgrade at once, and totals are kept from camera events as they happen.
 * Each camera has one heartbeat interval of the length the server sets in `welcome`. Node (lib/internal/timers.js)
 * keeps timers of the same duration in one list behind a single libuv timer, so thousands of them stay cheap.
 */
export class SimulatedFleet extends EventEmitter<FleetEvents> {
  readonly cameras: readonly SimulatedCamera[];

  private readonly byId = new Map<string, SimulatedCamera>();
  private readonly counters: FleetCounters;
  private readonly connectsPerSecond: number;
  private readonly logger: Logger;
  private readonly rampController = new AbortController();
  private ramp: Promise<void> | null = null;
  private readonly waiters = new Set<Waiter>();
  private checkScheduled = false;
  private stopped = false;

  constructor(options: FleetOptions) {
    super();
    checkWebSocketUrl(options.url);
    if (!Number.isInteger(options.count) || options.count < 1) {
      throw new RangeError(`invalid count ${options.count}: expected a whole number of at least 1`);
    }
    this.connectsPerSecond = options.connectsPerSecond ?? DEFAULT_CONNECTS_PER_SECOND;
    if (!(this.connectsPerSecond > 0)) {
      throw new RangeError(`invalid connectsPerSecond ${this.connectsPerSecond}: expected a number above 0`);
    }
    const ids = fleetDeviceIds(options);
    // Resolving once validates the knobs and gives every camera the same logger, download slots and, unless
    // `seed` is set, random source.
    const behaviour = resolveBehaviour(options);
    behaviour.downloadSlots ??= new DownloadSlots(options.maxConcurrentDownloads ?? DEFAULT_MAX_CONCURRENT_DOWNLOADS);
    this.logger = behaviour.logger;

    const cameras: SimulatedCamera[] = [];
    for (const deviceId of ids) {
      const random =
        options.random === undefined && options.seed !== undefined
          ? seededRandom(options.seed + Math.floor(hashFraction(deviceId, 'seed') * 2 ** 32))
          : behaviour.random;
      const camera = new SimulatedCamera({
        ...behaviour,
        random,
        url: options.url,
        deviceId,
        applied: options.applied,
        token: options.tokenFor?.(deviceId),
      });
      cameras.push(camera);
      this.byId.set(camera.deviceId, camera);
    }
    this.cameras = cameras;

    const alwaysFailing = cameras.filter((camera) => camera.alwaysFails).length;
    this.counters = new FleetCounters(cameras.length, alwaysFailing);
    for (const camera of cameras) {
      this.counters.recordAppliedBefore(camera.appliedPatches);
      for (const name of CAMERA_EVENT_NAMES) this.forward(camera, name);
    }
  }

  camera(deviceId: string): SimulatedCamera | undefined {
    return this.byId.get(deviceId);
  }

  /** Starts the cameras at `connectsPerSecond`. Resolves when all have begun connecting, or the fleet stopped. */
  start(): Promise<void> {
    this.ramp ??= this.rampUp();
    return this.ramp;
  }

  stats(): FleetStats {
    return this.counters.snapshot();
  }

  /**
   * Resolves with the stats once `predicate` holds for them. The predicate runs now and again after camera
   * events, at most once per event-loop turn. There is no time limit: pass a signal, e.g.
   * `AbortSignal.timeout(ms)`, to give up. Rejects with the signal's reason, or when the fleet stops first.
   */
  waitFor(predicate: (stats: FleetStats) => boolean, options: { signal?: AbortSignal } = {}): Promise<FleetStats> {
    const { signal } = options;
    return new Promise((resolve, reject) => {
      signal?.throwIfAborted();
      const stats = this.stats();
      if (predicate(stats)) {
        resolve(stats);
        return;
      }
      if (this.stopped) {
        reject(new Error('the fleet is stopped, so the condition can no longer change'));
        return;
      }
      const onAbort = (): void => waiter.reject(signal?.reason);
      const waiter: Waiter = {
        predicate,
        resolve: (value) => {
          waiter.cleanup();
          resolve(value);
        },
        reject: (err) => {
          waiter.cleanup();
          reject(err);
        },
        cleanup: () => {
          signal?.removeEventListener('abort', onAbort);
          this.waiters.delete(waiter);
        },
      };
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Stops every camera and resolves when all their sockets are closed. */
  async stop(): Promise<void> {
    this.rampController.abort();
    await this.ramp;
    await Promise.all(this.cameras.map((camera) => camera.stop()));
    this.stopped = true;
    this.checkWaiters();
    for (const waiter of this.waiters) {
      waiter.reject(new Error('the fleet stopped before the condition held'));
    }
  }

  private async rampUp(): Promise<void> {
    const startedAt = performance.now();
    const signal = this.rampController.signal;
    for (const [index, camera] of this.cameras.entries()) {
      const waitMs = startedAt + (index / this.connectsPerSecond) * 1000 - performance.now();
      try {
        if (waitMs >= MIN_RAMP_SLEEP_MS) await sleep(waitMs, undefined, { signal });
      } catch (err) {
        if (signal.aborted) return;
        throw err;
      }
      if (signal.aborted) return;
      this.counters.recordStarted();
      camera.start().catch((err: unknown) => {
        this.logger.error({ err, deviceId: camera.deviceId }, 'camera failed to start');
      });
    }
    this.emit('ramped', { started: this.cameras.length, elapsedMs: Math.round(performance.now() - startedAt) });
  }

  private forward<K extends CameraEventName>(camera: SimulatedCamera, name: K): void {
    const listener = (...args: CameraEvents[K]): void => {
      if (this.counters.record(name, args[0])) this.scheduleCheck();
      (this.emit as (name: K, ...args: CameraEvents[K]) => boolean)(name, ...args);
    };
    (camera.on as (name: K, listener: (...args: CameraEvents[K]) => void) => SimulatedCamera)(name, listener);
  }

  private scheduleCheck(): void {
    if (this.checkScheduled || this.waiters.size === 0) return;
    this.checkScheduled = true;
    setImmediate(() => {
      this.checkScheduled = false;
      this.checkWaiters();
    });
  }

  private checkWaiters(): void {
    if (this.waiters.size === 0) return;
    const stats = this.stats();
    for (const waiter of this.waiters) {
      try {
        if (waiter.predicate(stats)) waiter.resolve(stats);
      } catch (err) {
        waiter.reject(err);
      }
    }
  }
}
