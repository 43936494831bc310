import type { Command } from 'commander';
import { clientFor, segment } from './api-client.ts';
import { checkDeviceId } from './devices.ts';
import { CliError, EXIT } from './errors.ts';

function print(json: boolean | undefined, body: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(body)}\n` : `${text}\n`);
}

/** `fleet device token ID`: provisions the device if needed and prints a token for it. */
export async function printDeviceToken(id: string, options: { ttl?: string; json?: boolean }, command: Command): Promise<void> {
  checkDeviceId(id);
  const ttl = options.ttl ?? '0';
  if (!/^\d+$/.test(ttl)) throw new CliError(`invalid --ttl ${JSON.stringify(ttl)}: expected whole seconds`, EXIT.usage);
  const body = await clientFor(command).request<{ deviceId: string; token: string; ttlSeconds: number }>(
    'POST',
    `/v1/devices/${segment(id)}/token`,
    { query: { ttl } },
  );
  print(options.json, body, body.token);
}

/** `fleet device revoke ID`: every token issued so far stops working and the device is disconnected. */
export async function revokeDevice(id: string, options: { json?: boolean }, command: Command): Promise<void> {
  checkDeviceId(id);
  const body = await clientFor(command).request<{ deviceId: string; tokenGeneration: number }>('POST', `/v1/devices/${segment(id)}/revoke`);
  print(options.json, body, `revoked every token of ${id} (generation now ${body.tokenGeneration})`);
}

/** `fleet device accept ID`: accepts a device that auto-enrolled and waits in the pending state. */
export async function acceptDevice(id: string, options: { json?: boolean }, command: Command): Promise<void> {
  checkDeviceId(id);
  const body = await clientFor(command).request<{ deviceId: string; before: 'pending' | 'accepted' | null }>(
    'POST',
    `/v1/devices/${segment(id)}/accept`,
  );
  let outcome = 'provisioned and accepted';
  if (body.before === 'pending') outcome = 'accepted';
  else if (body.before === 'accepted') outcome = 'was already accepted';
  print(options.json, body, `${id} ${outcome}`);
}

/** `fleet device tags ID TAG...`: replaces the tags of a device; --clear removes them all. */
export async function setDeviceTags(id: string, tags: string[], options: { clear?: boolean; json?: boolean }, command: Command): Promise<void> {
  checkDeviceId(id);
  if (tags.length === 0 && !options.clear) {
    throw new CliError('no tags given: list the tags the device should carry, or pass --clear to remove them all', EXIT.usage);
  }
  if (tags.length > 0 && options.clear) throw new CliError('--clear takes no tags; pass one or the other', EXIT.usage);
  const body = await clientFor(command).request<{ deviceId: string; tags: string[] }>('PUT', `/v1/devices/${segment(id)}/tags`, {
    json: { tags },
  });
  print(options.json, body, tags.length === 0 ? `${id} has no tags now` : `${id} tags: ${[...new Set(body.tags)].sort().join(', ')}`);
}
