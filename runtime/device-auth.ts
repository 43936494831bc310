import { bearerToken, DeviceTokenError, type DeviceTokens } from '../security/device-tokens.ts';
import { StateRecovery } from '../storage/recovery.ts';
import type { StateStore } from '../storage/state-store.ts';

export type UpgradeDecision =
  /** `readmitted`: the device had no record because Redis lost its data, and was provisioned again. */
  | { ok: true; deviceId: string; readmitted?: boolean }
  | { ok: false; status: string; code: UpgradeRejection; message: string };

/**
 * Reasons an upgrade is rejected, sent as `{"error": code, "message": …}` with the HTTP status.
 * docs/protocol.md lists them.
 */
export type UpgradeRejection =
  | 'token_missing'
  | 'token_invalid'
  | 'token_expired'
  | 'token_revoked'
  | 'device_not_provisioned'
  | 'rate_limited'
  | 'shutting_down'
  | 'unavailable';

const UNAUTHORIZED = '401 Unauthorized';

/**
 * Decides whether a WebSocket upgrade may proceed: the bearer token must verify, must not be revoked, and
 * must name a provisioned device unless auto-enrolment is on. This only reads Redis, so a rejected upgrade
 * leaves no trace there.
 */
export async function authorizeUpgrade(
  authorization: string,
  tokens: DeviceTokens,
  state: StateStore,
  enrollment: 'provisioned' | 'auto',
): Promise<UpgradeDecision> {
  const token = bearerToken(authorization);
  if (!token) {
    return { ok: false, status: UNAUTHORIZED, code: 'token_missing', message: 'send Authorization: Bearer <device token>' };
  }
  let claims;
  try {
    claims = await tokens.verify(token);
  } catch (err) {
    if (err instanceof DeviceTokenError && err.reason === 'expired') {
      return { ok: false, status: UNAUTHORIZED, code: 'token_expired', message: 'the device token expired' };
    }
    const message = err instanceof DeviceTokenError ? err.message : 'the device token does not verify';
    return { ok: false, status: UNAUTHORIZED, code: 'token_invalid', message };
  }
  let record;
  try {
    record = await state.deviceAuth(claims.deviceId);
  } catch {
    return { ok: false, status: '503 Service Unavailable', code: 'unavailable', message: 'try again later' };
  }
  if (claims.generation < record.generation) {
    return { ok: false, status: UNAUTHORIZED, code: 'token_revoked', message: 'the device token was revoked' };
  }
  if (record.enrollment === null && enrollment === 'provisioned') {
    let readmitted;
    try {
      readmitted = await readmitAfterDataLoss(state, claims.deviceId, claims.generation);
    } catch {
      return { ok: false, status: '503 Service Unavailable', code: 'unavailable', message: 'try again later' };
    }
    if (readmitted) return { ok: true, deviceId: claims.deviceId, readmitted: true };
    return {
      ok: false,
      status: '403 Forbidden',
      code: 'device_not_provisioned',
      message: `device ${claims.deviceId} is not provisioned in this fleet`,
    };
  }
  return { ok: true, deviceId: claims.deviceId };
}

/**
 * Provisions a device again when Redis lost its data recently (the re-admission window is open): its token
 * verified, so an operator issued it, and only the record of that is gone. Returns whether it did.
 */
async function readmitAfterDataLoss(state: StateStore, deviceId: string, generation: number): Promise<boolean> {
  const recovery = new StateRecovery(state.redis, state.keys);
  if (!(await recovery.windowOpen())) return false;
  await recovery.readmit(deviceId, generation);
  return true;
}
