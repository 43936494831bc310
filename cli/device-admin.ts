import { DeviceTokens } from '../security/device-tokens.ts';
import { issueDeviceToken } from '../security/device-provisioning.ts';
import { isValidId } from '../protocol/names.ts';
import { CliError, EXIT, openStorage } from './storage-access.ts';

function checkId(deviceId: string): void {
  if (!isValidId(deviceId)) {
    throw new CliError(`invalid device id ${JSON.stringify(deviceId)}: use 1 to 128 characters from A-Z a-z 0-9 . _ -`, EXIT.usage);
  }
}

/** `fleet device token ID`: provisions the device if needed and prints a token for it. */
export async function printDeviceToken(deviceId: string, options: { ttl?: string; json?: boolean }): Promise<void> {
  checkId(deviceId);
  const ttl = options.ttl === undefined ? 0 : Number(options.ttl);
  if (!Number.isInteger(ttl) || ttl < 0) throw new CliError(`invalid --ttl ${options.ttl}: expected whole seconds`, EXIT.usage);
  const storage = await openStorage();
  try {
    const tokens = new DeviceTokens(storage.config.security.deviceTokenSecret);
    const token = await issueDeviceToken(storage.state, tokens, deviceId, ttl);
    process.stdout.write(options.json ? `${JSON.stringify({ deviceId, token, ttlSeconds: ttl })}\n` : `${token}\n`);
  } finally {
    await storage.close();
  }
}

/** `fleet device revoke ID`: every token issued so far stops working and the device is disconnected. */
export async function revokeDevice(deviceId: string): Promise<void> {
  checkId(deviceId);
  const storage = await openStorage();
  try {
    const generation = await storage.state.revokeDeviceTokens(deviceId);
    process.stdout.write(`revoked every token of ${deviceId} (generation now ${generation})\n`);
  } finally {
    await storage.close();
  }
}

/** `fleet device accept ID`: accepts a device that auto-enrolled and waits in the pending state. */
export async function acceptDevice(deviceId: string): Promise<void> {
  checkId(deviceId);
  const storage = await openStorage();
  try {
    const { before } = await storage.state.provisionDevice(deviceId);
    const what = before === 'pending' ? 'accepted' : before === 'accepted' ? 'was already accepted' : 'provisioned';
    process.stdout.write(`${deviceId} ${what}\n`);
  } finally {
    await storage.close();
  }
}
