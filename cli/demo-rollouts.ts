import { parseRolloutSpec, RolloutSpecError, RolloutStore, type Rollout, type RolloutSpec } from '../storage/rollouts.ts';
import type { StateStore } from '../storage/state-store.ts';
import { CliError, EXIT } from './errors.ts';

/** Retry backoff of the demo's rollouts, short so that the demo does not wait out the 30 s default. */
const DEMO_RETRY_BACKOFF_S = 2;

/** Rollout fields of the demo summary, null when the demo made no rollouts. */
export interface DemoRolloutReport {
  /** `paused` when any rollout paused, else `cancelled` when any was cancelled, else `completed` or `running`. */
  rolloutState: Rollout['state'] | null;
  /** The reason for the pause or the cancellation. */
  rolloutReason: string | null;
}

export interface DemoRolloutOptions {
  maxInFlight?: string;
  failureThreshold?: string;
}

/** Returns the rollout request that every patch of the demo gets, or null when no rollout option is set. */
function template(options: DemoRolloutOptions): Record<string, unknown> | null {
  if (options.maxInFlight === undefined && options.failureThreshold === undefined) return null;
  return {
    maxInFlight: options.maxInFlight,
    fleetMaxInFlight: options.maxInFlight,
    failureThreshold: options.failureThreshold,
    retryBackoffS: DEMO_RETRY_BACKOFF_S,
  };
}

function spec(request: Record<string, unknown>, patchId: string): RolloutSpec {
  try {
    return parseRolloutSpec({ ...request, patchId });
  } catch (err) {
    if (!(err instanceof RolloutSpecError)) throw err;
    const option = err.field === 'failureThreshold' ? '--failure-threshold' : '--max-in-flight';
    throw new CliError(`invalid ${option}: ${err.message.slice(err.field.length + 2)}`, EXIT.usage);
  }
}

/**
 * The rollouts of `fleet demo --max-in-flight N --failure-threshold T`: one per released patch, created before
 * the patch is uploaded. N caps the devices of each rollout and the whole fleet, so at most N updates are in
 * flight at any moment.
 */
export class DemoRollouts {
  private readonly store: RolloutStore;
  private readonly ids: string[] = [];
  private readonly template: Record<string, unknown> | null;
  private readonly announced = new Set<string>();

  constructor(state: StateStore, options: DemoRolloutOptions) {
    this.store = new RolloutStore(state);
    this.template = template(options);
  }

  /** Throws a usage error naming the option when the rollout options are invalid. */
  static check(options: DemoRolloutOptions): void {
    const checked = template(options);
    if (checked) spec(checked, 'demo-check.bin');
  }

  /** Creates the rollout of a patch that is about to be released; does nothing without rollout options. */
  async create(patchId: string): Promise<string | null> {
    if (!this.template) return null;
    const rollout = await this.store.create(spec(this.template, patchId));
    this.ids.push(rollout.id);
    return rollout.id;
  }

  async read(): Promise<Rollout[]> {
    const rollouts = await Promise.all(this.ids.map((id) => this.store.get(id)));
    return rollouts.filter((r): r is Rollout => r !== null);
  }

  /** Returns the lines to print for rollouts that paused since the last call. */
  newPauses(rollouts: Rollout[]): string[] {
    const lines: string[] = [];
    for (const r of rollouts) {
      if (r.state !== 'paused' || this.announced.has(r.id)) continue;
      this.announced.add(r.id);
      lines.push(`rollout ${r.id} of ${r.patchId} paused: ${r.reason ?? 'no reason given'}`);
    }
    return lines;
  }

  /** True while a running rollout has devices held for a retry or waiting for a slot, so more will start. */
  static pending(rollouts: Rollout[]): boolean {
    return rollouts.some((r) => r.state === 'running' && (r.held > 0 || r.waiting > 0));
  }

  /** The largest number of updates in flight at once that any claim saw, over the whole fleet. */
  static maxInFlightSeen(rollouts: Rollout[]): number {
    return Math.max(0, ...rollouts.map((r) => Math.max(r.maxInFlightSeen, r.maxFleetInFlightSeen)));
  }

  static report(rollouts: Rollout[]): DemoRolloutReport {
    if (rollouts.length === 0) return { rolloutState: null, rolloutReason: null };
    const stopped = rollouts.find((r) => r.state === 'paused') ?? rollouts.find((r) => r.state === 'cancelled');
    if (stopped) return { rolloutState: stopped.state, rolloutReason: stopped.reason };
    const state = rollouts.every((r) => r.state === 'completed') ? 'completed' : 'running';
    return { rolloutState: state, rolloutReason: null };
  }
}
