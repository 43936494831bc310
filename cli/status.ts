import { UPDATE_STATES } from '../protocol/states.ts';
import { summarizeFleet, type FleetSummary } from '../storage/summary.ts';
import { bar } from './format.ts';
import { openStorage } from './storage-access.ts';

/** Renders the fleet summary for people: device counts, then one progress bar per patch. */
export function renderSummary(summary: FleetSummary): string {
  const lines = [`devices ${summary.devices}  online ${summary.online}  in flight ${summary.inFlight}`];
  for (const patch of summary.patches) {
    const applied = patch.counts.applied ?? 0;
    const states = UPDATE_STATES.filter((s) => (patch.counts[s] ?? 0) > 0)
      .map((s) => `${s} ${patch.counts[s]}`)
      .join('  ');
    const label = patch.state === 'ready' ? '' : ` (${patch.state})`;
    lines.push(`${patch.id}${label}`);
    lines.push(`  ${bar(applied, summary.devices)} ${applied}/${summary.devices} applied  ${states}`);
  }
  return lines.join('\n');
}

/** `fleet status`: per patch, how many devices are in each state. */
export async function showStatus(options: { json?: boolean }): Promise<void> {
  const storage = await openStorage();
  try {
    const summary = await summarizeFleet(storage.state);
    process.stdout.write(options.json ? `${JSON.stringify(summary)}\n` : `${renderSummary(summary)}\n`);
  } finally {
    await storage.close();
  }
}
