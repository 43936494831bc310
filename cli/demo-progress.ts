import type { FleetSummary } from '../storage/summary.ts';
import { renderSummary } from './status.ts';

/**
 * Live progress of the demo. On a terminal it redraws the fleet summary in place; otherwise (CI, pipes,
 * --json) it prints one short line every few seconds to stderr so stdout stays machine-readable.
 */
export class LiveProgress {
  private drawnLines = 0;
  private lastLine = 0;
  private readonly tty = process.stderr.isTTY === true;

  show(summary: FleetSummary, elapsedMs: number): void {
    const seconds = (elapsedMs / 1000).toFixed(1);
    if (this.tty) {
      const text = `${renderSummary(summary)}\nelapsed ${seconds}s`;
      if (this.drawnLines > 0) process.stderr.write(`\x1b[${this.drawnLines}A\x1b[0J`);
      process.stderr.write(`${text}\n`);
      this.drawnLines = text.split('\n').length;
      return;
    }
    if (elapsedMs - this.lastLine < 2000) return;
    this.lastLine = elapsedMs;
    const perPatch = summary.patches
      .map((p) => `${p.id} ${p.counts.applied ?? 0}/${summary.devices}`)
      .join('  ');
    process.stderr.write(`[${seconds}s] online ${summary.online}/${summary.devices}  in flight ${summary.inFlight}  ${perPatch}\n`);
  }

  message(text: string): void {
    this.drawnLines = 0;
    process.stderr.write(`${text}\n`);
  }
}
