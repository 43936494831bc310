/**
 * Every Redis key of the product is built here. All keys start with a configurable prefix (default `fleet:`)
 * so several fleets or test runs can share one Redis. The operator-facing names `known_devices`,
 * `patch_files`, `patch_status` and `in_flight_updates` are kept as they are in the keys.
 *
 * Device ids and uploaded patch ids have passed the id grammar in protocol/names.ts, so they contain no
 * braces, wildcards or separators. The one exception is an id someone pushed onto `patch_files` by hand:
 * it may be anything, is only ever part of a key name (never of a SCAN pattern), and is marked missing.
 * Keys of one device share the hash tag `{deviceId}`.
 */
export interface Keys {
  readonly prefix: string;
  /** ZSET of every device id ever seen, all with score 0 so ZRANGEBYLEX pages through them in id order. */
  knownDevices: string;
  /** LIST of patch ids in release order: the catalog. Operators may RPUSH an object key here. */
  patchFiles: string;
  /** STRING counter bumped on every catalog change, so replicas notice changes with one GET. */
  catalogVersion: string;
  /** ZSET of device ids with an update in progress, scored by the deadline in ms (Redis clock). */
  inFlightUpdates: string;
  /** Pub/sub channel for events between replicas. */
  events: string;
  /** HASH SHA-256(operator token) → JSON record with name and role. */
  operatorTokens: string;
  /** HASH model → number of devices that last reported it. */
  modelCounts: string;
  /** HASH firmware version → number of devices that last reported it. */
  firmwareCounts: string;
  /**
   * STRING random id written once into an empty Redis. A replica that finds it gone or changed knows that Redis
   * lost its data (a restart without persistence, a flush, a failover to an empty node).
   */
  stateEpoch: string;
  /** STRING with a TTL, set after a detected data loss: while it exists, devices with valid tokens are re-admitted. */
  recovery: string;
  /** HASH of one device: model, firmware, first/last seen, session, in-flight patch and attempt. */
  device(deviceId: string): string;
  /** SET of patch ids a device has applied. */
  deviceApplied(deviceId: string): string;
  /** LIST of the latest state changes of a device, newest first, bounded. */
  deviceTimeline(deviceId: string): string;
  /** STRING holding the session id of the device's live connection, with a TTL: the presence lease. */
  presence(deviceId: string): string;
  /** HASH of patch metadata: name, size, sha256, etag, state, added_at. */
  patch(patchId: string): string;
  /** HASH device id → "state|attempt|updated_at_ms" for one patch. */
  patchStatus(patchId: string): string;
  /** HASH state → number of devices currently in that state for one patch. */
  patchCounts(patchId: string): string;
  /** STRING lock so that only one replica does a piece of shared work at a time. */
  lock(name: string): string;
  /** ZSET of rollout ids, scored by creation time in ms. */
  rollouts: string;
  /** STRING counter that numbers new rollouts (r1, r2, …). */
  rolloutSeq: string;
  /** SET of rollout ids that have devices waiting for a slot or held back, so the sweep visits only those. */
  rolloutQueues: string;
  /** STRING holding the id of the patch's current rollout. A patch without one is offered to every device at once. */
  patchRollout(patchId: string): string;
  /** HASH of one rollout: patch, state, reason, targets, strategy and counters. */
  rollout(rolloutId: string): string;
  /** SET of the device ids a rollout targets by list. */
  rolloutTargets(rolloutId: string): string;
  /** HASH device id → "state|tries|hold_until_ms" within one rollout. */
  rolloutDevices(rolloutId: string): string;
  /** HASH rollout device state → number of devices in it. */
  rolloutCounts(rolloutId: string): string;
  /** SET of the device ids with an attempt of this rollout in flight: the slots the cap limits. */
  rolloutInFlight(rolloutId: string): string;
  /** ZSET of the device ids waiting for a slot, scored by a sequence number: the FIFO queue. */
  rolloutWaiting(rolloutId: string): string;
  /** ZSET of the device ids held back after a failed attempt, scored by the end of the hold in ms. */
  rolloutHeld(rolloutId: string): string;
}

export function createKeys(prefix: string): Keys {
  return {
    prefix,
    knownDevices: `${prefix}known_devices`,
    patchFiles: `${prefix}patch_files`,
    catalogVersion: `${prefix}catalog_version`,
    inFlightUpdates: `${prefix}in_flight_updates`,
    events: `${prefix}events`,
    operatorTokens: `${prefix}operator_tokens`,
    modelCounts: `${prefix}model_counts`,
    firmwareCounts: `${prefix}firmware_counts`,
    stateEpoch: `${prefix}state_epoch`,
    recovery: `${prefix}recovery`,
    device: (id) => `${prefix}device:{${id}}`,
    deviceApplied: (id) => `${prefix}device:{${id}}:applied`,
    deviceTimeline: (id) => `${prefix}device:{${id}}:timeline`,
    presence: (id) => `${prefix}presence:{${id}}`,
    patch: (id) => `${prefix}patch:${id}`,
    patchStatus: (id) => `${prefix}patch_status:${id}`,
    patchCounts: (id) => `${prefix}patch_counts:${id}`,
    lock: (name) => `${prefix}lock:${name}`,
    rollouts: `${prefix}rollouts`,
    rolloutSeq: `${prefix}rollout_seq`,
    rolloutQueues: `${prefix}rollout_queues`,
    patchRollout: (id) => `${prefix}patch_rollout:${id}`,
    rollout: (id) => `${prefix}rollout:${id}`,
    rolloutTargets: (id) => `${prefix}rollout:${id}:targets`,
    rolloutDevices: (id) => `${prefix}rollout:${id}:devices`,
    rolloutCounts: (id) => `${prefix}rollout:${id}:counts`,
    rolloutInFlight: (id) => `${prefix}rollout:${id}:in_flight`,
    rolloutWaiting: (id) => `${prefix}rollout:${id}:waiting`,
    rolloutHeld: (id) => `${prefix}rollout:${id}:held`,
  };
}
