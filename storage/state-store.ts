import type { Redis } from 'ioredis';
import type { Keys } from './keys.ts';
import { ClaimBatcher, parseClaimReply } from './claim-batcher.ts';
import { runScript, type ScriptName } from './scripts.ts';
import type { UpdateState } from '../protocol/states.ts';
import type { RolloutDeviceState } from './rollouts.ts';

export interface PatchRecord {
  id: string;
  name: string;
  size: number;
  sha256: string;
  etag: string;
  /**
   * ready: offered to devices; missing: no object in the bucket; unsigned: a required signature is absent;
   * retired: an operator withdrew it.
   */
  state: PatchState;
  source: string;
  addedAt: number;
  version: string;
  signature: string | null;
}

export type PatchState = 'ready' | 'missing' | 'unsigned' | 'retired';

export type Enrollment = 'accepted' | 'pending';

export interface DeviceRecord {
  id: string;
  enrollment: Enrollment;
  model: string;
  firmware: string;
  firstSeen: number;
  lastSeen: number;
  online: boolean;
  session: string | null;
  replica: string | null;
  inFlight: { patchId: string; attempt: number } | null;
  applied: string[];
  /** Tags set by an operator. */
  tags: string[];
  /** Tags the device reported in its last hello. */
  reportedTags: string[];
}

/**
 * One state change of a device, at a time from the Redis clock. Entries about a patch with a rollout carry
 * its id. States of an attempt come with its number; rollout-only states (waiting, held, superseded,
 * cancelled) come with the device's attempts in the rollout so far.
 */
export interface TimelineEntry {
  at: number;
  patchId: string;
  rolloutId?: string;
  state: UpdateState | RolloutDeviceState;
  attempt: number;
  detail?: string;
}

/**
 * Why a device gets nothing now: `pending` the catalog entry is not inspected yet, `queued` its rollout has no
 * room, `held` it waits out the backoff after a failed attempt, `paused` its rollout is paused.
 */
export type WaitReason = 'pending' | 'queued' | 'held' | 'paused';

export type ClaimResult =
  | { kind: 'offer'; patchId: string; attempt: number; resumed: boolean }
  | { kind: 'wait'; patchId: string; reason: WaitReason }
  | { kind: 'none' };

/** One repeated progress report whose attempt's deadline is to be pushed out. */
export interface DeadlineExtension {
  deviceId: string;
  patchId: string;
  attempt: number;
}

export type ReportOutcome = 'ok' | 'duplicate' | 'stale' | 'unknown';
export interface ReportResult {
  outcome: ReportOutcome;
  state: UpdateState | null;
  attempt: number;
  /** The reason when this result paused the patch's rollout (failure threshold or wave), else null. */
  rolloutPaused: string | null;
}

export type AddPatchResult = { kind: 'added' } | { kind: 'exists' } | { kind: 'conflict'; sha256: string };

export interface NewPatch {
  id: string;
  name: string;
  size: number;
  sha256: string;
  etag: string;
  source: 'upload' | 'bucket' | 'catalog';
  version: string;
  signature: string | null;
  state: 'ready' | 'unsigned';
}

/**
 * Fleet state in Redis: devices, presence, the patch catalog, per-device patch status and in-flight updates.
 * Stateless itself; every replica makes one over its own connection.
 */
export class StateStore {
  private readonly claims = new ClaimBatcher({
    claimOne: (deviceId, timeoutMs, maxAttempts) => this.run('claim_offer', [deviceId, timeoutMs, maxAttempts]),
    claimMany: (deviceIds, timeoutMs, maxAttempts) => this.run('claim_offers', [timeoutMs, maxAttempts, ...deviceIds]),
  });

  constructor(
    readonly redis: Redis,
    readonly keys: Keys,
  ) {}

  private run(name: ScriptName, args: (string | number)[]) {
    return runScript(this.redis, name, [this.keys.prefix, ...args]);
  }

  async registerDevice(input: {
    deviceId: string;
    model: string;
    firmware: string;
    sessionId: string;
    leaseMs: number;
    replicaId: string;
    applied: string[];
    newEnrollment: Enrollment;
    /** Tags reported in hello; they replace the ones reported before. */
    tags?: string[];
  }): Promise<{ previousSession: string | null; isNew: boolean; enrollment: Enrollment }> {
    const reply = (await this.run('register_device', [
      input.deviceId,
      input.model,
      input.firmware,
      input.sessionId,
      input.leaseMs,
      input.replicaId,
      JSON.stringify(input.applied),
      input.newEnrollment,
      [...new Set(input.tags ?? [])].sort().join(','),
    ])) as [string, number, Enrollment];
    return { previousSession: reply[0] || null, isNew: reply[1] === 1, enrollment: reply[2] };
  }

  /** Provisions a device (or accepts a pending one) and returns the generation new tokens must carry. */
  async provisionDevice(deviceId: string): Promise<{ generation: number; before: Enrollment | null }> {
    const reply = (await this.run('provision_device', [deviceId])) as [number, string];
    return { generation: Number(reply[0]), before: (reply[1] || null) as Enrollment | null };
  }

  /**
   * Invalidates every token issued for the device so far and publishes a `revoked` event, so the replicas
   * close its connection. Returns the new generation.
   */
  async revokeDeviceTokens(deviceId: string): Promise<number> {
    const generation = await this.redis.hincrby(this.keys.device(deviceId), 'token_generation', 1);
    await this.redis.publish(this.keys.events, JSON.stringify({ kind: 'revoked', deviceId }));
    return generation;
  }

  /** Returns what the upgrade check needs: enrollment (null for an unknown device) and the token generation. */
  async deviceAuth(deviceId: string): Promise<{ enrollment: Enrollment | null; generation: number }> {
    const [enrollment, generation] = await this.redis.hmget(this.keys.device(deviceId), 'enrollment', 'token_generation');
    return { enrollment: (enrollment as Enrollment | null) ?? null, generation: Number(generation ?? 0) };
  }

  /**
   * Claims the device's next offer (claim_offer.lua). Claims requested in the same turn of the event loop share
   * one claim_offers.lua call, so a fan-out to thousands of devices costs Redis a few dozen script calls.
   */
  claimOffer(deviceId: string, timeoutMs: number, maxAttempts: number): Promise<ClaimResult> {
    return this.claims.claim(deviceId, timeoutMs, maxAttempts);
  }

  /**
   * Claims the next offer of each device in one claim_offers.lua call; the results are in the order given.
   * Throws when the claim of any device failed, although the others were recorded.
   */
  async claimOffers(deviceIds: string[], timeoutMs: number, maxAttempts: number): Promise<ClaimResult[]> {
    if (deviceIds.length === 0) return [];
    const replies = (await this.run('claim_offers', [timeoutMs, maxAttempts, ...deviceIds])) as unknown[];
    return replies.map((reply) => parseClaimReply(reply as Parameters<typeof parseClaimReply>[0]));
  }

  async reportState(input: {
    deviceId: string;
    patchId: string;
    attempt: number;
    state: UpdateState;
    timeoutMs: number;
    detail?: string;
    /** Failure reason of a failed result; a rollout retries by it. */
    reason?: string;
    /** Attempt limit for rollouts that set none. */
    maxAttempts: number;
  }): Promise<ReportResult> {
    const reply = (await this.run('report_state', [
      input.deviceId,
      input.patchId,
      input.attempt,
      input.state,
      input.timeoutMs,
      input.detail ?? '',
      input.reason ?? '',
      input.maxAttempts,
    ])) as [ReportOutcome, string, number, string];
    return {
      outcome: reply[0],
      state: (reply[1] || null) as UpdateState | null,
      attempt: Number(reply[2]),
      rolloutPaused: reply[3] || null,
    };
  }

  /**
   * Times out updates past their deadline and wakes devices that may start now; returns the timed-out
   * device ids. `maxAttempts` is the attempt limit for rollouts that set none.
   */
  async expireInFlight(limit: number, maxAttempts = 3): Promise<string[]> {
    return (await this.run('expire_in_flight', [limit, maxAttempts])) as string[];
  }

  /** Renews many leases in one script call; returns the devices whose session no longer owns them. */
  async renewPresences(leases: { deviceId: string; sessionId: string }[], leaseMs: number): Promise<string[]> {
    if (leases.length === 0) return [];
    const args: (string | number)[] = [leaseMs];
    for (const lease of leases) args.push(lease.deviceId, lease.sessionId);
    return (await this.run('renew_presences', args)) as string[];
  }

  /**
   * Pushes the deadlines of many unfinished attempts out by one update timeout (the rollout's own, or
   * `timeoutMs`) in one script call. Entries whose attempt is stale or finished change nothing. Returns the
   * number of deadlines moved.
   */
  async extendDeadlines(entries: DeadlineExtension[], timeoutMs: number): Promise<number> {
    if (entries.length === 0) return 0;
    const args: (string | number)[] = [timeoutMs];
    for (const entry of entries) args.push(entry.deviceId, entry.patchId, entry.attempt);
    return Number(await this.run('extend_deadlines', args));
  }

  async releasePresence(deviceId: string, sessionId: string): Promise<boolean> {
    return (await this.run('release_presence', [deviceId, sessionId])) === 1;
  }

  /**
   * Ends the device's open attempt at a patch without counting it as a failure and opens the next attempt
   * in its place, for downloads that failed because the patch store was down. 'stale' when the attempt is
   * not the open one (a duplicate report, or one that timed out), and nothing changed.
   */
  async waiveAttempt(input: {
    deviceId: string;
    patchId: string;
    attempt: number;
    timeoutMs: number;
    detail: string;
  }): Promise<{ waived: boolean; attempt: number }> {
    const reply = (await this.run('waive_attempt', [
      input.deviceId,
      input.patchId,
      input.attempt,
      input.timeoutMs,
      input.detail,
    ])) as [string, number];
    return { waived: reply[0] === 'waived', attempt: Number(reply[1]) };
  }

  async addPatch(patch: NewPatch, append: boolean): Promise<AddPatchResult> {
    const reply = (await this.run('add_patch', [
      patch.id,
      patch.name,
      patch.size,
      patch.sha256,
      patch.etag,
      patch.source,
      append ? '1' : '0',
      patch.version,
      patch.signature ?? '',
      patch.state,
    ])) as string[];
    if (reply[0] === 'conflict') return { kind: 'conflict', sha256: String(reply[1]) };
    return reply[0] === 'exists' ? { kind: 'exists' } : { kind: 'added' };
  }

  async markPatchMissing(patchId: string): Promise<boolean> {
    return (await this.run('mark_patch_missing', [patchId])) === 1;
  }

  /** Marks a ready patch whose object is gone from the bucket as missing; false when it was not ready. */
  async markPatchRemoved(patchId: string): Promise<boolean> {
    return (await this.run('mark_patch_removed', [patchId])) === 1;
  }

  async catalogVersion(): Promise<number> {
    return Number((await this.redis.get(this.keys.catalogVersion)) ?? 0);
  }

  /** Number of entries in the catalog list, duplicates included. */
  async catalogLength(): Promise<number> {
    return this.redis.llen(this.keys.patchFiles);
  }

  /** Catalog entries in release order, each id once (an id pushed twice keeps its first place). */
  async catalog(): Promise<string[]> {
    const ids = await this.redis.lrange(this.keys.patchFiles, 0, -1);
    return [...new Set(ids)];
  }

  async getPatch(patchId: string): Promise<PatchRecord | null> {
    const h = await this.redis.hgetall(this.keys.patch(patchId));
    if (!h.state) return null;
    return {
      id: patchId,
      name: h.name ?? patchId,
      size: Number(h.size ?? 0),
      sha256: h.sha256 ?? '',
      etag: h.etag ?? '',
      state: h.state as PatchState,
      source: h.source ?? '',
      addedAt: Number(h.added_at ?? 0),
      version: h.version || patchId,
      signature: h.signature || null,
    };
  }

  async patchCounts(patchId: string): Promise<Partial<Record<UpdateState, number>>> {
    const raw = await this.redis.hgetall(this.keys.patchCounts(patchId));
    const counts: Partial<Record<UpdateState, number>> = {};
    for (const [state, count] of Object.entries(raw)) {
      if (Number(count) > 0) counts[state as UpdateState] = Number(count);
    }
    return counts;
  }

  async patchStatus(patchId: string, deviceId: string): Promise<{ state: UpdateState; attempt: number } | null> {
    const raw = await this.redis.hget(this.keys.patchStatus(patchId), deviceId);
    if (!raw) return null;
    const [state, attempt] = raw.split('|');
    return { state: state as UpdateState, attempt: Number(attempt) };
  }

  async inFlightCount(): Promise<number> {
    return this.redis.zcard(this.keys.inFlightUpdates);
  }

  async deviceCount(): Promise<number> {
    return this.redis.zcard(this.keys.knownDevices);
  }

  /**
   * One page of devices in id order. `after` is the last id of the previous page ('' for the first page),
   * so a page costs the same however large the fleet is.
   */
  async listDevices(after: string, limit: number): Promise<{ devices: DeviceRecord[]; next: string | null }> {
    const start = after ? `(${after}` : '-';
    const ids = await this.redis.zrangebylex(this.keys.knownDevices, start, '+', 'LIMIT', 0, limit);
    const devices = await Promise.all(ids.map((id) => this.getDevice(id)));
    const present = devices.filter((d): d is DeviceRecord => d !== null);
    return { devices: present, next: ids.length === limit ? (ids[ids.length - 1] ?? null) : null };
  }

  async getDevice(deviceId: string): Promise<DeviceRecord | null> {
    const [hash, presence, applied] = await Promise.all([
      this.redis.hgetall(this.keys.device(deviceId)),
      this.redis.get(this.keys.presence(deviceId)),
      this.redis.smembers(this.keys.deviceApplied(deviceId)),
    ]);
    if (!hash.first_seen && !hash.enrollment) return null;
    return {
      id: deviceId,
      enrollment: hash.enrollment === 'pending' ? 'pending' : 'accepted',
      model: hash.model ?? '',
      firmware: hash.firmware ?? '',
      firstSeen: Number(hash.first_seen ?? 0),
      lastSeen: Number(hash.last_seen ?? hash.first_seen ?? 0),
      online: presence !== null,
      session: presence,
      replica: hash.replica ?? null,
      inFlight: hash.inflight_patch
        ? { patchId: hash.inflight_patch, attempt: Number(hash.inflight_attempt ?? 0) }
        : null,
      applied: applied.sort(),
      tags: hash.tags ? hash.tags.split(',') : [],
      reportedTags: hash.reported_tags ? hash.reported_tags.split(',') : [],
    };
  }

  /** Replaces a device's tags (each in the id grammar, so a comma never appears inside one). */
  async setTags(deviceId: string, tags: string[]): Promise<void> {
    await this.redis.hset(this.keys.device(deviceId), 'tags', [...new Set(tags)].sort().join(','));
  }

  /**
   * Retires a patch: it stays in the catalog and the bucket, but no device is offered it again. Devices in the
   * middle of it finish and report as usual. Returns false when there is no such patch.
   */
  async retirePatch(patchId: string): Promise<boolean> {
    if (!(await this.redis.exists(this.keys.patch(patchId)))) return false;
    await this.redis
      .multi()
      .hset(this.keys.patch(patchId), 'state', 'retired')
      .incr(this.keys.catalogVersion)
      .publish(this.keys.events, JSON.stringify({ kind: 'catalog', patchId }))
      .exec();
    return true;
  }

  async timeline(deviceId: string, limit = 100): Promise<TimelineEntry[]> {
    const raw = await this.redis.lrange(this.keys.deviceTimeline(deviceId), 0, limit - 1);
    return raw.map((line) => JSON.parse(line) as TimelineEntry);
  }

  /** Takes a lock for `ttlMs` unless another owner has it. Used for work one replica at a time should do. */
  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.keys.lock(name), owner, 'PX', ttlMs, 'NX')) === 'OK';
  }
}
