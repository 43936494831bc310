import type { SimulatedFleet } from '../simulator/index.ts';
import type { ChaosEnvironment } from './environment.ts';
import { checkInvariants, type Check, type DeviceTruth } from './invariants.ts';

/** Figures a scenario measured, by name; numbers unless a text says more. */
export type Figures = Record<string, number | string>;

export interface ScenarioContext {
  /** Simulated cameras in the main fleet. */
  devices: number;
  /** Writes one progress line for a person watching the run. */
  progress(message: string): void;
  /** Called with the environment once it runs, so the runner can keep its logs when the scenario fails. */
  started(environment: ChaosEnvironment): void;
}

export interface ScenarioOutcome {
  checks: Check[];
  figures: Figures;
}

export interface Scenario {
  name: string;
  /** The fault, in one line. */
  summary: string;
  run(context: ScenarioContext): Promise<ScenarioOutcome>;
}

/** Patch sizes of a scenario rollout: large enough that downloads are in progress when the fault hits. */
export const PATCH_BYTES = 256 * 1024;

/** Waits until `count` devices hold `patchId`, so a fault lands in the middle of the rollout. */
export function midRollout(fleet: SimulatedFleet, patchId: string, fraction = 0.25): Promise<unknown> {
  const count = Math.max(1, Math.floor(fleet.cameras.length * fraction));
  return fleet.waitFor((s) => (s.applied[patchId] ?? 0) >= count, { signal: AbortSignal.timeout(60_000) });
}

/** The figures every rollout scenario reports, from the simulators' own counts. */
export function fleetFigures(fleets: SimulatedFleet[], startedAt: number): Figures {
  const stats = fleets.map((fleet) => fleet.stats());
  const sum = (pick: (s: (typeof stats)[number]) => number) => stats.reduce((total, s) => total + pick(s), 0);
  const closeCodes: Record<string, number> = {};
  for (const s of stats) {
    for (const [code, n] of Object.entries(s.closeCodes)) closeCodes[code] = (closeCodes[code] ?? 0) + n;
  }
  return {
    devices: sum((s) => s.total),
    seconds: Math.round((performance.now() - startedAt) / 100) / 10,
    reconnects: sum((s) => s.reconnects),
    failedAttempts: sum((s) => Object.values(s.failed).reduce((a, b) => a + b, 0)),
    alreadyApplied: sum((s) => s.alreadyApplied),
    resumed: sum((s) => s.resumedDownloads),
    closeCodes: Object.entries(closeCodes)
      .map(([code, n]) => `${code}:${n}`)
      .join(' '),
  };
}

/** Runs the shared invariants over the cameras of `fleets` and any extra scripted devices. */
export async function fleetInvariants(
  environment: ChaosEnvironment,
  fleets: SimulatedFleet[],
  patches: string[],
  extra: DeviceTruth[] = [],
  timeoutMs = 60_000,
): Promise<Check[]> {
  return checkInvariants({
    state: environment.state,
    devices: [...fleets.flatMap((fleet) => fleet.cameras), ...extra],
    patches,
    timeoutMs,
    stats: fleets.map((fleet) => fleet.stats()),
  });
}

/** Checks that no device's timeline in Redis records a `failed` attempt, and names those that do. */
export async function noRecordedFailures(environment: ChaosEnvironment, deviceIds: readonly string[]): Promise<Check> {
  const failed: string[] = [];
  for (const deviceId of deviceIds) {
    const timeline = await environment.state.timeline(deviceId);
    if (timeline.some((entry) => entry.state === 'failed' || entry.state === 'timed_out')) failed.push(deviceId);
  }
  return {
    name: 'no device failure counted',
    ok: failed.length === 0,
    detail: failed.length === 0 ? 'no failed or timed_out attempt recorded' : `recorded for ${failed.length} devices`,
  };
}

/** A check from a plain condition. */
export function check(name: string, ok: boolean, detail: string): Check {
  return { name, ok, detail };
}
