import type { Command } from 'commander';
import { isValidId } from '../protocol/names.ts';
import type { DeviceRecord, TimelineEntry } from '../storage/state-store.ts';
import { clientFor, segment } from './api-client.ts';
import { ago, table } from './format.ts';
import { CliError, EXIT } from './errors.ts';

export interface DevicesOptions {
  json?: boolean;
  online?: boolean;
  offline?: boolean;
  model?: string;
  firmware?: string;
  tag?: string;
  patch?: string;
  missing?: string;
  search?: string;
  limit?: string;
  pageSize: string;
}

/** Largest page GET /v1/devices returns (handlers/operator/devices.ts). */
const MAX_PAGE = 500;

export function checkDeviceId(id: string): string {
  if (!isValidId(id)) {
    throw new CliError(`invalid device id ${JSON.stringify(id)}: use 1 to 128 characters from A-Z a-z 0-9 . _ -, not starting with a dot`, EXIT.usage);
  }
  return id;
}

function wholeNumber(option: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new CliError(`invalid ${option} ${JSON.stringify(text)}: expected a whole number from ${min} to ${max}`, EXIT.usage);
  }
  return n;
}

/** Builds the query parameters of GET /v1/devices from the filter options. */
function filters(options: DevicesOptions): Record<string, string | undefined> {
  if (options.online && options.offline) throw new CliError('--online and --offline exclude each other; pass one', EXIT.usage);
  let online: string | undefined;
  if (options.online) online = 'true';
  if (options.offline) online = 'false';
  return {
    online,
    model: options.model,
    firmware: options.firmware,
    tag: options.tag,
    patch: options.patch,
    missing: options.missing,
    q: options.search,
  };
}

/**
 * `fleet devices`: known devices in id order. Follows the `next` cursor page by page until the fleet is
 * listed or --limit devices are found. A page of a sparse filter may contain fewer devices than requested.
 */
export async function listDevices(options: DevicesOptions, command: Command): Promise<void> {
  const limit = options.limit === undefined ? Infinity : wholeNumber('--limit', options.limit, 1, Number.MAX_SAFE_INTEGER);
  const pageSize = wholeNumber('--page-size', options.pageSize, 1, MAX_PAGE);
  const query = filters(options);
  const client = clientFor(command);
  const devices: DeviceRecord[] = [];
  let cursor: string | undefined;
  do {
    const size = Math.min(pageSize, limit - devices.length);
    const page = await client.request<{ devices: DeviceRecord[]; next: string | null }>('GET', '/v1/devices', {
      query: { ...query, limit: String(size), cursor },
    });
    devices.push(...page.devices.slice(0, limit - devices.length));
    cursor = page.next ?? undefined;
  } while (cursor !== undefined && devices.length < limit);

  if (options.json) {
    process.stdout.write(`${JSON.stringify(devices)}\n`);
    return;
  }
  const rows = devices.map((d) => [
    d.id,
    d.online ? 'yes' : 'no',
    d.lastSeen ? ago(d.lastSeen) : 'never',
    d.model || '-',
    d.firmware || '-',
    d.tags.join(',') || '-',
    d.applied.join(',') || '-',
  ]);
  process.stdout.write(`${table(['DEVICE', 'ONLINE', 'LAST SEEN', 'MODEL', 'FIRMWARE', 'TAGS', 'PATCHES APPLIED'], rows)}\n`);
}

function when(epochMs: number): string {
  return epochMs ? `${new Date(epochMs).toISOString()} (${ago(epochMs)})` : 'never';
}

/** `fleet device show ID`: the device record, then its timeline, newest first. */
export async function showDevice(id: string, options: { json?: boolean }, command: Command): Promise<void> {
  checkDeviceId(id);
  const device = await clientFor(command).request<DeviceRecord & { timeline: TimelineEntry[] }>('GET', `/v1/devices/${segment(id)}`);
  if (options.json) {
    process.stdout.write(`${JSON.stringify(device)}\n`);
    return;
  }
  const online = device.online ? `yes (replica ${device.replica ?? '-'}, session ${device.session ?? '-'})` : 'no';
  const inFlight = device.inFlight ? `${device.inFlight.patchId} (attempt ${device.inFlight.attempt})` : '-';
  const fields = [
    ['device', device.id],
    ['enrollment', device.enrollment],
    ['online', online],
    ['model', device.model || '-'],
    ['firmware', device.firmware || '-'],
    ['first seen', when(device.firstSeen)],
    ['last seen', when(device.lastSeen)],
    ['in flight', inFlight],
    ['applied', device.applied.join(', ') || '-'],
    ['tags', device.tags.join(', ') || '-'],
  ];
  const lines = fields.map(([field, value]) => `${(field ?? '').padEnd(10)} ${value}`);
  lines.push('');
  if (device.timeline.length === 0) lines.push('no updates recorded yet');
  else {
    const rows = device.timeline.map((e) => [new Date(e.at).toISOString(), e.patchId, e.state, e.attempt, e.detail ?? '']);
    lines.push(table(['TIME', 'PATCH', 'STATE', 'ATTEMPT', 'DETAIL'], rows));
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
