import type { FleetStats } from '../simulator/index.ts';
import { countOnline } from '../storage/summary.ts';
import type { StateStore } from '../storage/state-store.ts';
import { sleep } from './environment.ts';

/** One checked property of a scenario's end state. */
export interface Check {
  name: string;
  ok: boolean;
  /** The measured value, in a form a person can compare with the expectation. */
  detail: string;
}

/** The part of a camera that the invariants read: a simulator SimulatedCamera, or a scripted device. */
export interface DeviceTruth {
  readonly deviceId: string;
  /** Patches installed on the device now, by its own record. */
  readonly appliedPatches: readonly string[];
  /** How often this run applied the patch. */
  applyCount(patchId: string): number;
  readonly online: boolean;
}

export interface InvariantOptions {
  state: StateStore;
  devices: readonly DeviceTruth[];
  /** Patches every device must hold at the end: the rollout's documented end state. */
  patches: readonly string[];
  /** Time allowed for each condition that converges (rollout, in-flight, presence). */
  timeoutMs: number;
  /** Fleet stats, when the devices are simulated, for duplicate applies counted as they happened. */
  stats?: FleetStats[];
}

/** Polls `condition` every 100 ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(condition: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (performance.now() > deadline) return false;
    await sleep(100);
  }
}

function sample(items: string[]): string {
  return items.length <= 3 ? items.join(', ') : `${items.slice(0, 3).join(', ')} and ${items.length - 3} more`;
}

/**
 * Checks a scenario's end state against the devices' ground truth:
 *   rollout complete: every device holds every patch (waits up to `timeoutMs`);
 *   in-flight zero: `in_flight_updates` is empty (waits);
 *   no double apply: no device applied a patch twice;
 *   records match: each device's applied set in Redis equals the patches the device holds;
 *   no status lost: every device's status of every patch is `applied`, and the per-patch counters say so;
 *   presence right: the devices with a presence lease are exactly the online ones (waits).
 */
export async function checkInvariants(options: InvariantOptions): Promise<Check[]> {
  const { state, devices, patches, timeoutMs } = options;
  const checks: Check[] = [];
  const missing = () =>
    devices.filter((device) => patches.some((patchId) => !device.appliedPatches.includes(patchId))).map((d) => d.deviceId);

  const complete = await eventually(() => missing().length === 0, timeoutMs);
  checks.push({
    name: 'rollout complete',
    ok: complete,
    detail: complete ? `${devices.length} devices hold ${patches.length} patches` : `missing on ${sample(missing())}`,
  });

  let inFlight = 0;
  const drained = await eventually(async () => (inFlight = await state.inFlightCount()) === 0, timeoutMs);
  checks.push({ name: 'in-flight zero', ok: drained, detail: `${inFlight} updates in flight` });

  const doubled = devices.filter((device) => patches.some((patchId) => device.applyCount(patchId) > 1));
  const counted = (options.stats ?? []).reduce((sum, stats) => sum + stats.duplicates, 0);
  checks.push({
    name: 'no double apply',
    ok: doubled.length === 0 && counted === 0,
    detail: doubled.length === 0 && counted === 0 ? 'each patch applied once' : `doubled on ${sample(doubled.map((d) => d.deviceId))}`,
  });

  // Records are compared once every device is connected again, because a device that sent no hello since a
  // fault may not have reported its patches yet.
  await eventually(() => devices.every((device) => device.online), timeoutMs);
  const mismatched: string[] = [];
  const lost: string[] = [];
  for (const device of devices) {
    const record = await state.getDevice(device.deviceId);
    const held = [...device.appliedPatches].sort();
    if (JSON.stringify(record?.applied ?? []) !== JSON.stringify(held)) mismatched.push(device.deviceId);
    for (const patchId of patches) {
      const status = await state.patchStatus(patchId, device.deviceId);
      if (device.appliedPatches.includes(patchId) && status?.state !== 'applied') {
        lost.push(`${device.deviceId}/${patchId}=${status?.state ?? 'none'}`);
      }
    }
  }
  checks.push({
    name: 'records match devices',
    ok: mismatched.length === 0,
    detail: mismatched.length === 0 ? 'applied sets equal' : `differ on ${sample(mismatched)}`,
  });

  const countErrors: string[] = [];
  for (const patchId of patches) {
    const counts = await state.patchCounts(patchId);
    const holders = devices.filter((device) => device.appliedPatches.includes(patchId)).length;
    if (JSON.stringify(counts) !== JSON.stringify(holders > 0 ? { applied: holders } : {})) {
      countErrors.push(`${patchId} ${JSON.stringify(counts)} for ${holders} holders`);
    }
  }
  checks.push({
    name: 'no status lost',
    ok: lost.length === 0 && countErrors.length === 0,
    detail: lost.length === 0 && countErrors.length === 0 ? 'every status applied, counters agree' : sample([...lost, ...countErrors]),
  });

  let leases = 0;
  const online = () => devices.filter((device) => device.online).map((device) => device.deviceId);
  const presenceRight = await eventually(async () => {
    leases = await countOnline(state);
    if (leases !== online().length) return false;
    const records = await Promise.all(online().map((id) => state.getDevice(id)));
    return records.every((record) => record?.online === true);
  }, timeoutMs);
  checks.push({
    name: 'presence right',
    ok: presenceRight,
    detail: `${leases} leases for ${online().length} online devices`,
  });
  return checks;
}
