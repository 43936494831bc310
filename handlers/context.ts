import type { Logger } from 'pino';
import type { CloseReason } from '../protocol/close-codes.ts';
import type { ServerMessage } from '../protocol/messages.ts';
import type { PatchBucket } from '../storage/bucket.ts';
import type { PatchRecord, StateStore } from '../storage/state-store.ts';
import type { ProgressState } from '../protocol/states.ts';

/** Settings handlers act on; a subset of the replica configuration. */
export interface HandlerSettings {
  replicaId: string;
  heartbeatIntervalS: number;
  presenceLeaseMs: number;
  updateTimeoutMs: number;
  maxAttempts: number;
  urlTtlS: number;
  security: { enrollment: 'provisioned' | 'auto' };
}

/** Connection state that a handler may read and change. */
export interface Session {
  readonly connectionId: string;
  readonly sessionId: string;
  /** Device id from the token the connection was opened with; `hello` must name the same one. */
  readonly authenticatedDeviceId: string;
  /** Null until a `hello` is accepted. */
  deviceId: string | null;
  /** The offer this connection last sent and has no terminal result for yet. */
  offer: { patchId: string; attempt: number } | null;
  /**
   * The unfinished stage Redis held after this connection's last `progress` report was applied. A report
   * of the same attempt at or below this stage changes no state, so it only pushes the deadline out.
   */
  stage: { patchId: string; attempt: number; state: ProgressState } | null;
}

/** Immutable patch metadata, cached per replica. */
export interface PatchLookup {
  get(patchId: string): Promise<PatchRecord | null>;
}

/**
 * Everything a handler gets. Handlers hold no state of their own between messages: what must survive lives
 * in Redis (state) or in the bucket, and what belongs to the connection lives in `session`.
 */
/** The replica's view of whether the patch store answers; devices download from it, not from the replica. */
export interface PatchStoreHealth {
  readonly reachable: boolean;
  /** True when the store is unreachable now or was at some moment in the last `ms` milliseconds. */
  unreachableWithin(ms: number): boolean;
}

export interface HandlerContext {
  session: Session;
  state: StateStore;
  bucket: PatchBucket;
  patchStore: PatchStoreHealth;
  patches: PatchLookup;
  settings: HandlerSettings;
  log: Logger;
  now(): number;
  send(message: ServerMessage): void;
  close(reason: CloseReason): void;
  /** Renews the presence lease of this session, coalesced with the other heartbeats of the replica. */
  markAlive(): void;
  /**
   * Pushes the deadline of this device's unfinished attempt out by one update timeout, coalesced with the
   * other reports of the replica and written to Redis within one heartbeat flush interval.
   */
  extendDeadline(patchId: string, attempt: number): void;
  /**
   * Binds the connection to a device id after a `hello`. The runtime closes any older local connection of the
   * same device and tells other replicas to close theirs.
   */
  bindDevice(deviceId: string, previousSessionId: string | null): void;
}
