import type { StateStore } from '../storage/state-store.ts';
import type { DeviceTokens } from './device-tokens.ts';

/**
 * Provisions a device (accepting it if it was pending) and issues a token for it. The token carries the
 * device's current token generation, so it stays valid until the device's tokens are revoked.
 */
export async function issueDeviceToken(
  state: StateStore,
  tokens: DeviceTokens,
  deviceId: string,
  ttlSeconds = 0,
): Promise<string> {
  const { generation } = await state.provisionDevice(deviceId);
  return tokens.issue(deviceId, generation, ttlSeconds);
}

/** Provisions many devices and issues their tokens, a batch at a time so Redis sees pipelined commands. */
export async function issueDeviceTokens(
  state: StateStore,
  tokens: DeviceTokens,
  deviceIds: readonly string[],
): Promise<Map<string, string>> {
  const issued = new Map<string, string>();
  const batch = 500;
  for (let start = 0; start < deviceIds.length; start += batch) {
    const slice = deviceIds.slice(start, start + batch);
    const values = await Promise.all(slice.map((id) => issueDeviceToken(state, tokens, id)));
    slice.forEach((id, i) => issued.set(id, values[i] as string));
  }
  return issued;
}
