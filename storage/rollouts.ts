import type { Redis } from 'ioredis';
import type { Keys } from './keys.ts';
import { runScript, type ScriptName } from './scripts.ts';
import type { DeviceRecord, StateStore, TimelineEntry } from './state-store.ts';
import { resolveAmounts, ROLLOUT_DEVICE_STATES, ROLLOUT_DONE_STATES, type RolloutDeviceState, type RolloutSpec } from './rollout-spec.ts';

export {
  parseRolloutSpec,
  ROLLOUT_DEVICE_STATES,
  ROLLOUT_DONE_STATES,
  RolloutSpecError,
  type RolloutDeviceState,
  type RolloutSpec,
} from './rollout-spec.ts';

/**
 * `running`, `paused` and `cancelled` are stored. `completed` is computed: a running rollout in which every
 * device it targeted at creation is done, and no device waits, is held or is in flight. Devices that match
 * later still get the patch.
 */
export type RolloutState = 'running' | 'paused' | 'cancelled' | 'completed';

export interface Rollout {
  id: string;
  patchId: string;
  state: RolloutState;
  /** The reason for the pause or the cancellation; null while running. */
  reason: string | null;
  /** The cause of a pause: `failures` (the failure threshold), `wave` (a wave below its success threshold) or `operator`. */
  pausedBy: 'failures' | 'wave' | 'operator' | null;
  createdAt: number;
  updatedAt: number;
  targets: { devices: string[]; tags: string[]; models: string[]; firmware: string[] };
  /** Devices the rollout targeted, and that lacked the patch, when it was created. */
  targetCount: number;
  strategy: {
    maxInFlight: number | null;
    fleetMaxInFlight: number | null;
    ratePerMinute: number | null;
    /** The waves as the operator wrote them, e.g. ["5", "25%"]; [] for none. */
    waves: string[];
    /** The waves as cumulative device counts, resolved at creation. */
    waveSizes: number[];
    waveSuccessPercent: number;
    failureThreshold: string | null;
    failureMinDevices: number;
    timeoutMs: number | null;
    maxAttempts: number | null;
    retryBackoffMs: number;
    retryBackoffMaxMs: number;
    supersedes: string[] | 'all';
  };
  /** The open wave, from 1; past the last listed wave every targeted device may start. */
  wave: number;
  counts: Record<RolloutDeviceState, number>;
  inFlight: number;
  waiting: number;
  held: number;
  /** Devices that started their first attempt. */
  started: number;
  /** Attempts started and slots freed; `claims - releases` is the number in flight. */
  claims: number;
  releases: number;
  /** The largest number of this rollout's devices in flight at once, and of the whole fleet, seen at a claim. */
  maxInFlightSeen: number;
  maxFleetInFlightSeen: number;
}

export type ControlResult = { kind: 'ok'; state: RolloutState } | { kind: 'not_found' } | { kind: 'invalid'; state: RolloutState };

export class RolloutExistsError extends Error {
  constructor(
    readonly patchId: string,
    readonly rolloutId: string,
  ) {
    super(`patch ${patchId} has rollout ${rolloutId} already; cancel it before creating another`);
  }
}

/** Defaults that docs/rollouts.md documents; the Lua rules use the same values (rollout.lua). */
export const ROLLOUT_DEFAULTS = {
  waveSuccessPercent: 100,
  retryBackoffMs: 30_000,
  retryBackoffMaxMs: 600_000,
} as const;

const PAGE = 500;

function list(text: string | undefined): string[] {
  return text ? text.split(',') : [];
}

function numberOrNull(text: string | undefined): number | null {
  return text === undefined || text === '' ? null : Number(text);
}

/** Returns true when the device matches every selector of the targets, as is_targeted in rollout.lua decides. */
export function matchesTargets(device: DeviceRecord, targets: RolloutSpec['targets']): boolean {
  if (targets.devices.length > 0 && !targets.devices.includes(device.id)) return false;
  if (targets.models.length > 0 && !targets.models.includes(device.model)) return false;
  if (targets.firmware.length > 0 && !targets.firmware.includes(device.firmware)) return false;
  if (targets.tags.length > 0 && !targets.tags.some((t) => device.tags.includes(t) || device.reportedTags.includes(t))) return false;
  return true;
}

/**
 * Rollouts in Redis: creation, reading with progress, and the operator controls. The rules that decide each
 * offer run in the Lua scripts (rollout.lua, claim_offer.lua); this class only reads and starts them.
 */
export class RolloutStore {
  private readonly redis: Redis;
  private readonly keys: Keys;

  constructor(private readonly state: StateStore) {
    this.redis = state.redis;
    this.keys = state.keys;
  }

  private run(name: ScriptName, args: (string | number)[]) {
    return runScript(this.redis, name, [this.keys.prefix, ...args]);
  }

  /**
   * Counts the known devices that the targets match and that lack the patch. Reads every device, a page at
   * a time, so it costs time in proportion to the fleet.
   */
  async countTargets(patchId: string, targets: RolloutSpec['targets']): Promise<number> {
    let count = 0;
    let after = '';
    for (;;) {
      const page = await this.state.listDevices(after, PAGE);
      count += page.devices.filter((d) => matchesTargets(d, targets) && !d.applied.includes(patchId)).length;
      if (!page.next) return count;
      after = page.next;
    }
  }

  /**
   * Creates the rollout of a patch, which need not be released yet. Percentages of waves are resolved against
   * the devices targeted now. Throws RolloutExistsError when the patch has a rollout that is not cancelled.
   */
  async create(spec: RolloutSpec): Promise<Rollout> {
    const { targets, strategy } = spec;
    const targetCount = await this.countTargets(spec.patchId, targets);
    const fields: Record<string, string | number> = { target_count: targetCount };
    const put = (name: string, value: string | number | undefined) => {
      if (value !== undefined && value !== '') fields[name] = value;
    };
    put('target_tags', targets.tags.join(','));
    put('target_models', targets.models.join(','));
    put('target_firmware', targets.firmware.join(','));
    put('max_in_flight', strategy.maxInFlight);
    put('fleet_max_in_flight', strategy.fleetMaxInFlight);
    put('rate_per_min', strategy.ratePerMinute);
    if (strategy.waves.length > 0) {
      put('waves', resolveAmounts(strategy.waves, targetCount).join(','));
      put('wave_spec', strategy.waves.map((w) => w.text).join(','));
    }
    put('wave_success_pct', strategy.waveSuccessPercent);
    if (strategy.failureThreshold) {
      put(strategy.failureThreshold.percent ? 'failure_pct' : 'failure_count', strategy.failureThreshold.value);
    }
    put('failure_min', strategy.failureMinDevices);
    put('timeout_ms', strategy.timeoutMs);
    put('max_attempts', strategy.maxAttempts);
    put('backoff_ms', strategy.retryBackoffMs);
    put('backoff_max_ms', strategy.retryBackoffMaxMs);
    put('supersedes', strategy.supersedes === 'all' ? '*' : strategy.supersedes.join(','));

    const reply = (await this.run('create_rollout', [spec.patchId, JSON.stringify(fields), JSON.stringify(targets.devices)])) as [string, string];
    if (reply[0] === 'exists') throw new RolloutExistsError(spec.patchId, reply[1]);
    const created = await this.get(reply[1]);
    if (!created) throw new Error(`rollout ${reply[1]} vanished right after it was created`);
    return created;
  }

  /** Finds a rollout by its id, or by a patch id for the patch's current rollout. */
  async resolve(idOrPatch: string): Promise<string | null> {
    if (await this.redis.exists(this.keys.rollout(idOrPatch))) return idOrPatch;
    return this.redis.get(this.keys.patchRollout(idOrPatch));
  }

  async get(rolloutId: string): Promise<Rollout | null> {
    const k = this.keys;
    const [hash, counts, devices, inFlight, waiting, held] = await Promise.all([
      this.redis.hgetall(k.rollout(rolloutId)),
      this.redis.hgetall(k.rolloutCounts(rolloutId)),
      this.redis.smembers(k.rolloutTargets(rolloutId)),
      this.redis.scard(k.rolloutInFlight(rolloutId)),
      this.redis.zcard(k.rolloutWaiting(rolloutId)),
      this.redis.zcard(k.rolloutHeld(rolloutId)),
    ]);
    if (!hash.patch) return null;
    const rollout = toRollout(rolloutId, hash, counts, devices.sort());
    rollout.inFlight = inFlight;
    rollout.waiting = waiting;
    rollout.held = held;
    if (rollout.state === 'running' && isComplete(rollout)) rollout.state = 'completed';
    return rollout;
  }

  /** Returns every rollout, newest first. */
  async list(): Promise<Rollout[]> {
    const ids = await this.redis.zrevrange(this.keys.rollouts, 0, -1);
    const rollouts = await Promise.all(ids.map((id) => this.get(id)));
    return rollouts.filter((r): r is Rollout => r !== null);
  }

  async pause(rolloutId: string, reason: string): Promise<ControlResult> {
    return this.control(rolloutId, 'pause', reason, {});
  }

  /**
   * Resumes a paused rollout. A new failure threshold (with its minimum) replaces the old one, so that an
   * operator can let a rollout go on that its threshold paused.
   */
  async resume(rolloutId: string, failure?: Pick<RolloutSpec['strategy'], 'failureThreshold' | 'failureMinDevices'>): Promise<ControlResult> {
    const thresholds: Record<string, string | number> = {};
    if (failure?.failureThreshold) {
      thresholds.failure_pct = failure.failureThreshold.percent ? failure.failureThreshold.value : 0;
      thresholds.failure_count = failure.failureThreshold.percent ? 0 : failure.failureThreshold.value;
    }
    if (failure?.failureMinDevices !== undefined) thresholds.failure_min = failure.failureMinDevices;
    return this.control(rolloutId, 'resume', '', thresholds);
  }

  async cancel(rolloutId: string, reason: string): Promise<ControlResult> {
    return this.control(rolloutId, 'cancel', reason, {});
  }

  private async control(rolloutId: string, action: string, reason: string, thresholds: Record<string, string | number>): Promise<ControlResult> {
    const reply = (await this.run('set_rollout_state', [rolloutId, action, reason, JSON.stringify(thresholds)])) as string[];
    if (reply[0] === 'not_found') return { kind: 'not_found' };
    if (reply[0] === 'invalid') return { kind: 'invalid', state: reply[1] as RolloutState };
    const rollout = await this.get(rolloutId);
    return { kind: 'ok', state: rollout?.state ?? (reply[1] as RolloutState) };
  }

  /** Returns the device's timeline entries about this rollout, newest first. */
  async timeline(rolloutId: string, deviceId: string): Promise<TimelineEntry[]> {
    return (await this.state.timeline(deviceId)).filter((entry) => entry.rolloutId === rolloutId);
  }
}

/** Builds a rollout from its hash fields and state counts. The caller fills in the sizes of its sets. */
function toRollout(rolloutId: string, hash: Record<string, string>, counts: Record<string, string>, devices: string[]): Rollout {
  const perState = Object.fromEntries(ROLLOUT_DEVICE_STATES.map((s) => [s, Math.max(0, Number(counts[s] ?? 0))]));
  const failurePercent = Number(hash.failure_pct ?? 0);
  const failureCount = Number(hash.failure_count ?? 0);
  let failureThreshold: string | null = null;
  if (failurePercent > 0) failureThreshold = `${failurePercent}%`;
  else if (failureCount > 0) failureThreshold = String(failureCount);
  const supersedes = hash.supersedes === '*' ? 'all' : list(hash.supersedes);
  return {
    id: rolloutId,
    patchId: hash.patch ?? '',
    state: (hash.state ?? 'running') as RolloutState,
    reason: hash.reason || null,
    pausedBy: hash.state === 'paused' ? ((hash.pause_kind || 'operator') as Rollout['pausedBy']) : null,
    createdAt: Number(hash.created_at ?? 0),
    updatedAt: Number(hash.updated_at ?? 0),
    targets: { devices, tags: list(hash.target_tags), models: list(hash.target_models), firmware: list(hash.target_firmware) },
    targetCount: Number(hash.target_count ?? 0),
    strategy: {
      maxInFlight: numberOrNull(hash.max_in_flight),
      fleetMaxInFlight: numberOrNull(hash.fleet_max_in_flight),
      ratePerMinute: numberOrNull(hash.rate_per_min),
      waves: list(hash.wave_spec),
      waveSizes: list(hash.waves).map(Number),
      waveSuccessPercent: Number(hash.wave_success_pct ?? ROLLOUT_DEFAULTS.waveSuccessPercent),
      failureThreshold,
      failureMinDevices: Number(hash.failure_min ?? 1),
      timeoutMs: numberOrNull(hash.timeout_ms),
      maxAttempts: numberOrNull(hash.max_attempts),
      retryBackoffMs: Number(hash.backoff_ms ?? ROLLOUT_DEFAULTS.retryBackoffMs),
      retryBackoffMaxMs: Number(hash.backoff_max_ms ?? ROLLOUT_DEFAULTS.retryBackoffMaxMs),
      supersedes,
    },
    wave: Number(hash.wave ?? 1),
    counts: perState as Record<RolloutDeviceState, number>,
    inFlight: 0,
    waiting: 0,
    held: 0,
    started: Number(hash.started ?? 0),
    claims: Number(hash.claims ?? 0),
    releases: Number(hash.releases ?? 0),
    maxInFlightSeen: Number(hash.max_in_flight_seen ?? 0),
    maxFleetInFlightSeen: Number(hash.max_fleet_in_flight_seen ?? 0),
  };
}

function isComplete(rollout: Rollout): boolean {
  if (rollout.inFlight > 0 || rollout.waiting > 0 || rollout.held > 0) return false;
  const done = ROLLOUT_DONE_STATES.reduce((sum, state) => sum + rollout.counts[state], 0);
  return done > 0 && done >= rollout.targetCount;
}
