import { bearerToken, DeviceTokenError, type DeviceTokens } from '../security/device-tokens.ts';
import type { StateStore } from '../storage/state-store.ts';

export type UpgradeDecision =
  | { ok: true; deviceId: string }
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
    return {
      ok: false,
      status: '403 Forbidden',
      code: 'device_not_provisioned',
      message: `device ${claims.deviceId} is not provisioned in this fleet`,
    };
  }
  return { ok: true, deviceId: claims.deviceId };
}
