import type { Command } from 'commander';
import { UPDATE_STATES } from '../protocol/states.ts';
import type { FleetSummary } from '../storage/summary.ts';
import { clientFor } from './api-client.ts';
import { bar } from './format.ts';
import { CliError, EXIT } from './errors.ts';

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

/** Devices per firmware version and per model, most common first. */
export function renderDistribution(summary: FleetSummary): string {
  const line = (label: string, counts: Record<string, number>) => {
    const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    return `${label.padEnd(9)} ${entries.map(([name, n]) => `${name} ${n}`).join('  ') || '-'}`;
  };
  return [line('firmware', summary.firmware), line('models', summary.models)].join('\n');
}

/** `fleet status`: device counts and, per patch, how many devices are in each state. */
export async function showStatus(options: { json?: boolean; untilDone?: boolean }, command: Command): Promise<void> {
  if (options.untilDone) throw new CliError('--until-done needs --watch', EXIT.usage);
  const summary = await clientFor(command).request<FleetSummary>('GET', '/v1/summary');
  process.stdout.write(options.json ? `${JSON.stringify(summary)}\n` : `${renderSummary(summary)}\n\n${renderDistribution(summary)}\n`);
}
