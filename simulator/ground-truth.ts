import type { DeviceErrorCode } from '../protocol/errors.ts';
import type { ConnectionState } from './connection.ts';
import type { FailureReason } from './update.ts';

/** A failed attempt as the camera reported it. */
export interface CameraFailure {
  patchId: string;
  attempt: number;
  reason: FailureReason;
  detail: string;
}

/** Ground truth of one camera, for tests and benchmarks to compare with what the server recorded. */
export interface CameraSnapshot {
  deviceId: string;
  model: string;
  firmware: string;
  state: ConnectionState;
  /** Applied patch ids, oldest first, including those applied before this run. */
  applied: string[];
  /** How often this run applied each patch. Any count above 1 is a double apply. */
  applyCounts: Record<string, number>;
  failures: CameraFailure[];
  resumedDownloads: number;
  /** Offers for patches applied already, which got an `applied` result without a second apply. */
  alreadyApplied: number;
  /** Connections that reached `welcome`. */
  connections: number;
  lastCloseCode: number | null;
  unacknowledgedResults: number;
  serverErrors: Partial<Record<DeviceErrorCode, number>>;
  invalidMessages: number;
}

/** Record of one camera's applies, failures, resumed downloads and protocol errors, updated as they happen. */
export class GroundTruth {
  resumedDownloads = 0;
  alreadyApplied = 0;
  invalidMessages = 0;

  private readonly appliedOrder: string[] = [];
  private readonly appliedSet = new Set<string>();
  private readonly applyCounts = new Map<string, number>();
  private readonly failures: CameraFailure[] = [];
  private readonly serverErrors: Partial<Record<DeviceErrorCode, number>> = {};

  constructor(appliedBefore: readonly string[]) {
    this.replaceApplied(appliedBefore);
  }

  /** Applied patch ids, oldest first. */
  get applied(): readonly string[] {
    return this.appliedOrder;
  }

  hasApplied(patchId: string): boolean {
    return this.appliedSet.has(patchId);
  }

  /** Sets the patches applied before this run, e.g. from a state file. */
  replaceApplied(patchIds: readonly string[]): void {
    this.appliedOrder.splice(0, this.appliedOrder.length, ...patchIds);
    this.appliedSet.clear();
    for (const patchId of patchIds) this.appliedSet.add(patchId);
  }

  /** Records one apply and returns how often this run has applied the patch, this time included. */
  recordApplied(patchId: string): number {
    if (!this.appliedSet.has(patchId)) {
      this.appliedOrder.push(patchId);
      this.appliedSet.add(patchId);
    }
    const count = (this.applyCounts.get(patchId) ?? 0) + 1;
    this.applyCounts.set(patchId, count);
    return count;
  }

  /** Returns how often this run applied the patch. */
  applyCount(patchId: string): number {
    return this.applyCounts.get(patchId) ?? 0;
  }

  recordFailure(failure: CameraFailure): void {
    this.failures.push(failure);
  }

  recordServerError(code: DeviceErrorCode): void {
    this.serverErrors[code] = (this.serverErrors[code] ?? 0) + 1;
  }

  /** Copies the counts into the snapshot fields that do not depend on the connection. */
  snapshot(): Pick<
    CameraSnapshot,
    'applied' | 'applyCounts' | 'failures' | 'resumedDownloads' | 'alreadyApplied' | 'serverErrors' | 'invalidMessages'
  > {
    return {
      applied: [...this.appliedOrder],
      applyCounts: Object.fromEntries(this.applyCounts),
      failures: this.failures.map((failure) => ({ ...failure })),
      resumedDownloads: this.resumedDownloads,
      alreadyApplied: this.alreadyApplied,
      serverErrors: { ...this.serverErrors },
      invalidMessages: this.invalidMessages,
    };
  }
}
