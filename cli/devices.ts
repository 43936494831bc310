import { ago, table } from './format.ts';
import { openStorage } from './storage-access.ts';

export interface DevicesOptions {
  json?: boolean;
  online?: boolean;
  limit?: string;
}

const PAGE = 500;

/** `fleet devices`: every known device, one page of Redis at a time, in id order. */
export async function listDevices(options: DevicesOptions): Promise<void> {
  const storage = await openStorage();
  const limit = options.limit === undefined ? Infinity : Number(options.limit);
  try {
    const rows: (string | number)[][] = [];
    const records = [];
    let after = '';
    while (records.length < limit) {
      const page = await storage.state.listDevices(after, PAGE);
      for (const device of page.devices) {
        if (options.online && !device.online) continue;
        if (records.length >= limit) break;
        records.push(device);
      }
      if (!page.next) break;
      after = page.next;
    }
    if (options.json) {
      process.stdout.write(`${JSON.stringify(records)}\n`);
      return;
    }
    for (const d of records) {
      rows.push([d.id, d.online ? 'yes' : 'no', ago(d.lastSeen), d.model, d.firmware, d.applied.join(',') || '-']);
    }
    process.stdout.write(`${table(['DEVICE', 'ONLINE', 'LAST SEEN', 'MODEL', 'FIRMWARE', 'PATCHES APPLIED'], rows)}\n`);
  } finally {
    await storage.close();
  }
}
