import { isValidId } from '../protocol/names.ts';

/** States of a device within a rollout, in the order progress bars show them. */
export const ROLLOUT_DEVICE_STATES = [
  'waiting',
  'held',
  'offered',
  'downloading',
  'verifying',
  'applying',
  'applied',
  'failed',
  'timed_out',
  'superseded',
  'cancelled',
] as const;
export type RolloutDeviceState = (typeof ROLLOUT_DEVICE_STATES)[number];

/** States in which a device is done with the rollout. */
export const ROLLOUT_DONE_STATES: readonly RolloutDeviceState[] = ['applied', 'failed', 'timed_out', 'superseded', 'cancelled'];

/** A number of devices, or a percentage of the devices a rollout targets. */
export interface Amount {
  value: number;
  percent: boolean;
  /** As the operator wrote it, e.g. "25%". */
  text: string;
}

/** A checked rollout request: which patch, which devices, and how fast and how safely. */
export interface RolloutSpec {
  patchId: string;
  /** Selectors; a device must match each one that is not empty. All empty: every device. */
  targets: { devices: string[]; tags: string[]; models: string[]; firmware: string[] };
  strategy: {
    maxInFlight?: number;
    fleetMaxInFlight?: number;
    ratePerMinute?: number;
    waves: Amount[];
    waveSuccessPercent?: number;
    failureThreshold?: Amount;
    failureMinDevices?: number;
    timeoutMs?: number;
    maxAttempts?: number;
    retryBackoffMs?: number;
    retryBackoffMaxMs?: number;
    supersedes: string[] | 'all';
  };
}

/**
 * The body of POST /v1/rollouts, and what `fleet rollout create` builds from its options. Numbers may come
 * as strings, lists as arrays or comma-separated strings. docs/rollouts.md describes each field.
 */
export interface RolloutRequest {
  patchId?: unknown;
  devices?: unknown;
  tags?: unknown;
  models?: unknown;
  firmware?: unknown;
  maxInFlight?: unknown;
  fleetMaxInFlight?: unknown;
  ratePerMinute?: unknown;
  waves?: unknown;
  waveSuccess?: unknown;
  failureThreshold?: unknown;
  failureMinDevices?: unknown;
  timeoutS?: unknown;
  maxAttempts?: unknown;
  retryBackoffS?: unknown;
  retryBackoffMaxS?: unknown;
  supersedes?: unknown;
}

const FIELDS = new Set<string>([
  'patchId', 'devices', 'tags', 'models', 'firmware', 'maxInFlight', 'fleetMaxInFlight', 'ratePerMinute', 'waves',
  'waveSuccess', 'failureThreshold', 'failureMinDevices', 'timeoutS', 'maxAttempts', 'retryBackoffS', 'retryBackoffMaxS',
  'supersedes',
]);
const MAX_WAVES = 20;
const MAX_TARGET_DEVICES = 100_000;
const MAX_SELECTORS = 64;
/** Finished devices a percentage threshold waits for by default, so that one early failure does not pause. */
const DEFAULT_FAILURE_MIN_DEVICES = 10;

/** A rollout request field that is missing or invalid; `field` names it as in the request body. */
export class RolloutSpecError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

function strings(field: string, value: unknown, limit: number, check: (item: string) => boolean, expected: string): string[] {
  if (value === undefined || value === null || value === '') return [];
  const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : value;
  if (!Array.isArray(items) || !items.every((item) => typeof item === 'string' && check(item))) {
    throw new RolloutSpecError(field, `expected a list of ${expected}`);
  }
  if (items.length > limit) throw new RolloutSpecError(field, `at most ${limit} entries, got ${items.length}`);
  return [...new Set(items as string[])];
}

function numberIn(field: string, value: unknown, min: number, max: number, integer: boolean): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'string' ? Number(value.trim()) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new RolloutSpecError(field, `expected a ${integer ? 'whole ' : ''}number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Parses "25%" or "25" (or the number 25) as a percentage or a device count. */
export function parseAmount(field: string, value: unknown): Amount {
  let text = '';
  if (typeof value === 'number') text = String(value);
  else if (typeof value === 'string') text = value.trim();
  const match = /^(\d+)(%?)$/.exec(text);
  const n = Number(match?.[1]);
  if (!match || n < 1 || (match[2] && n > 100)) {
    throw new RolloutSpecError(field, `expected a device count such as 10 or a percentage from 1% to 100%, got ${JSON.stringify(value)}`);
  }
  return { value: n, percent: match[2] === '%', text };
}

function percentOnly(field: string, value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const text = typeof value === 'number' ? `${value}%` : String(value).trim();
  const amount = parseAmount(field, text.endsWith('%') ? text : `${text}%`);
  return amount.value;
}

function waves(value: unknown): Amount[] {
  if (value === undefined || value === null || value === '') return [];
  const items = typeof value === 'string' ? value.split(',') : value;
  if (!Array.isArray(items)) throw new RolloutSpecError('waves', 'expected a list such as ["5", "25%", "100%"]');
  if (items.length > MAX_WAVES) throw new RolloutSpecError('waves', `at most ${MAX_WAVES} waves, got ${items.length}`);
  const parsed = items.map((item) => parseAmount('waves', item));
  for (let i = 1; i < parsed.length; i++) {
    const [before, after] = [parsed[i - 1] as Amount, parsed[i] as Amount];
    if (before.percent === after.percent && after.value <= before.value) {
      throw new RolloutSpecError('waves', `each wave must be larger than the one before: ${after.text} follows ${before.text}`);
    }
  }
  return parsed;
}

function seconds(field: string, value: unknown, min: number, max: number): number | undefined {
  const s = numberIn(field, value, min, max, false);
  return s === undefined ? undefined : Math.round(s * 1000);
}

function defaultFailureMin(threshold: Amount | undefined): number | undefined {
  if (!threshold) return undefined;
  return threshold.percent ? DEFAULT_FAILURE_MIN_DEVICES : 1;
}

/** Checks a rollout request and returns the spec, or throws RolloutSpecError naming the first bad field. */
export function parseRolloutSpec(body: unknown): RolloutSpec {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new RolloutSpecError('body', 'expected a JSON object such as {"patchId": "fix-1.bin", "maxInFlight": 20}');
  }
  const unknownField = Object.keys(body).find((name) => !FIELDS.has(name));
  if (unknownField) throw new RolloutSpecError(unknownField, `unknown field; the fields are ${[...FIELDS].join(', ')}`);
  const request = body as RolloutRequest;

  if (typeof request.patchId !== 'string' || !isValidId(request.patchId)) {
    throw new RolloutSpecError('patchId', 'required: a patch id of 1 to 128 characters from A-Z a-z 0-9 . _ -');
  }

  const text = (item: string) => item.length > 0 && item.length <= 64 && !item.includes(',');
  const supersedes =
    request.supersedes === 'all' ? 'all' : strings('supersedes', request.supersedes, MAX_SELECTORS, isValidId, 'patch ids, or "all"');
  const failureThreshold = request.failureThreshold === undefined || request.failureThreshold === '' ? undefined : parseAmount('failureThreshold', request.failureThreshold);
  const retryBackoffMs = seconds('retryBackoffS', request.retryBackoffS, 0, 86_400);
  const retryBackoffMaxMs = seconds('retryBackoffMaxS', request.retryBackoffMaxS, 0, 7 * 86_400);
  if (retryBackoffMs !== undefined && retryBackoffMaxMs !== undefined && retryBackoffMaxMs < retryBackoffMs) {
    throw new RolloutSpecError('retryBackoffMaxS', 'must be at least retryBackoffS');
  }

  return {
    patchId: request.patchId,
    targets: {
      devices: strings('devices', request.devices, MAX_TARGET_DEVICES, isValidId, 'device ids'),
      tags: strings('tags', request.tags, MAX_SELECTORS, isValidId, 'tags, each in the id grammar'),
      models: strings('models', request.models, MAX_SELECTORS, text, 'models of 1 to 64 characters without commas'),
      firmware: strings('firmware', request.firmware, MAX_SELECTORS, text, 'firmware versions of 1 to 64 characters without commas'),
    },
    strategy: {
      maxInFlight: numberIn('maxInFlight', request.maxInFlight, 1, 1_000_000, true),
      fleetMaxInFlight: numberIn('fleetMaxInFlight', request.fleetMaxInFlight, 1, 1_000_000, true),
      ratePerMinute: numberIn('ratePerMinute', request.ratePerMinute, 1, 1_000_000, true),
      waves: waves(request.waves),
      waveSuccessPercent: percentOnly('waveSuccess', request.waveSuccess),
      failureThreshold,
      failureMinDevices:
        numberIn('failureMinDevices', request.failureMinDevices, 1, 1_000_000, true) ?? defaultFailureMin(failureThreshold),
      timeoutMs: seconds('timeoutS', request.timeoutS, 1, 86_400),
      maxAttempts: numberIn('maxAttempts', request.maxAttempts, 1, 100, true),
      retryBackoffMs,
      retryBackoffMaxMs,
      supersedes,
    },
  };
}

/**
 * Turns waves into cumulative device counts: a percentage of `targetCount` rounded up, at least 1. Counts
 * above `targetCount` are cut to it when it is above 0, and a wave no larger than the one before is dropped.
 */
export function resolveAmounts(amounts: Amount[], targetCount: number): number[] {
  const sizes: number[] = [];
  for (const amount of amounts) {
    let size = amount.percent ? Math.max(1, Math.ceil((amount.value * targetCount) / 100)) : amount.value;
    if (targetCount > 0) size = Math.min(size, targetCount);
    if (size > (sizes[sizes.length - 1] ?? 0)) sizes.push(size);
  }
  return sizes;
}
