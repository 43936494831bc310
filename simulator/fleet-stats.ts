import type { CameraEventName, CameraEvents } from './events.ts';

/** Totals over all cameras of a fleet, kept up to date from camera events so `stats()` costs no scan. */
export interface FleetStats {
  /** Cameras the fleet runs, started or not. */
  total: number;
  /** Cameras that began connecting. Below `total` while connects ramp up. */
  started: number;
  /** Cameras with a welcomed connection right now. */
  online: number;
  /** Cameras that stopped for good after a 4100-4199 close code from the server. */
  stoppedByServer: number;
  /** Cameras chosen by failureRate, whose every apply fails. */
  alwaysFailing: number;
  /** Connections that reached `welcome`, over all cameras. */
  connections: number;
  /** Welcomed connections after a camera's first one. */
  reconnects: number;
  /** Socket closes of any kind, over all cameras. */
  disconnects: number;
  /** Per close code, how many socket closes had it. */
  closeCodes: Record<string, number>;
  /** Per close code, closes of connections that had been welcomed; drops during the upgrade are not here. */
  onlineCloseCodes: Record<string, number>;
  /** Per patch id, cameras that applied it, counting patches applied before the run. */
  applied: Record<string, number>;
  /** Per patch id, failed attempts reported. */
  failed: Record<string, number>;
  /** Applies of a patch by a camera that had applied it already. Anything but 0 is a bug. */
  duplicates: number;
  /** Offers for patches applied already, which got an `applied` result without a second apply. */
  alreadyApplied: number;
  resumedDownloads: number;
  /** Per device error code, `error` messages received. */
  serverErrors: Record<string, number>;
  /** Frames from the server that broke the protocol schema. */
  invalidMessages: number;
}

type Recorders = { [K in CameraEventName]?: (event: CameraEvents[K][0]) => void };

function increment(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** Running totals that SimulatedFleet feeds with every camera event. */
export class FleetCounters {
  private readonly totals: FleetStats;

  constructor(total: number, alwaysFailing: number) {
    this.totals = {
      total,
      started: 0,
      online: 0,
      stoppedByServer: 0,
      alwaysFailing,
      connections: 0,
      reconnects: 0,
      disconnects: 0,
      closeCodes: {},
      onlineCloseCodes: {},
      applied: {},
      failed: {},
      duplicates: 0,
      alreadyApplied: 0,
      resumedDownloads: 0,
      serverErrors: {},
      invalidMessages: 0,
    };
  }

  private readonly recorders: Recorders = {
    connected: (event) => {
      this.totals.online += 1;
      this.totals.connections += 1;
      if (event.connection > 1) this.totals.reconnects += 1;
    },
    disconnected: (event) => {
      if (event.wasOnline) this.totals.online -= 1;
      this.totals.disconnects += 1;
      increment(this.totals.closeCodes, String(event.code));
      if (event.wasOnline) increment(this.totals.onlineCloseCodes, String(event.code));
    },
    applied: (event) => {
      if (event.applyCount > 1) this.totals.duplicates += 1;
      else increment(this.totals.applied, event.patchId);
    },
    failed: (event) => increment(this.totals.failed, event.patchId),
    'already-applied': () => {
      this.totals.alreadyApplied += 1;
    },
    resumed: () => {
      this.totals.resumedDownloads += 1;
    },
    'server-error': (event) => increment(this.totals.serverErrors, event.code),
    'invalid-message': () => {
      this.totals.invalidMessages += 1;
    },
    stopped: (event) => {
      if (event.closeCode !== null) this.totals.stoppedByServer += 1;
    },
  };

  /** Updates the totals for one event. Returns whether any total changed. */
  record<K extends CameraEventName>(name: K, event: CameraEvents[K][0]): boolean {
    const recorder = this.recorders[name] as ((event: CameraEvents[K][0]) => void) | undefined;
    recorder?.(event);
    return recorder !== undefined;
  }

  recordStarted(): void {
    this.totals.started += 1;
  }

  /** Counts patches a camera had applied before the run. */
  recordAppliedBefore(patchIds: readonly string[]): void {
    for (const patchId of patchIds) increment(this.totals.applied, patchId);
  }

  snapshot(): FleetStats {
    const totals = this.totals;
    return {
      ...totals,
      closeCodes: { ...totals.closeCodes },
      onlineCloseCodes: { ...totals.onlineCloseCodes },
      applied: { ...totals.applied },
      failed: { ...totals.failed },
      serverErrors: { ...totals.serverErrors },
    };
  }
}

/** Returns a `waitFor` predicate that is true once every camera of the fleet has applied all the patches. */
export function everyCameraApplied(patchIds: readonly string[]): (stats: FleetStats) => boolean {
  return (stats) => patchIds.every((patchId) => (stats.applied[patchId] ?? 0) >= stats.total);
}

/** Returns a `waitFor` predicate that is true once every camera of the fleet is online. */
export function everyCameraOnline(): (stats: FleetStats) => boolean {
  return (stats) => stats.online >= stats.total;
}
