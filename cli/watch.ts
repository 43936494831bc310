import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { FleetSummary } from '../storage/summary.ts';
import { ApiRequestError, clientFor, type ApiClient } from './api-client.ts';
import { renderSummary } from './status.ts';
import { CliError, EXIT } from './errors.ts';

export interface WatchOptions {
  json?: boolean;
  untilDone?: boolean;
}

/** Reconnects in a row, each after RECONNECT_DELAY_MS, before a broken event stream ends the command. */
const MAX_RECONNECTS = 30;
const RECONNECT_DELAY_MS = 1000;

/**
 * True when no update is in flight and every patch that devices are offered (or will be, once inspected)
 * has been applied by every known device. Retired, missing and unsigned patches are never offered, so they
 * do not count. A device that fails every apply keeps this false.
 * NOTE: a rollout that targets only some devices, or a patch superseded by a newer one, also keeps this
 * false, because the summary has no per-rollout target counts.
 */
export function rolloutDone(summary: FleetSummary): boolean {
  if (summary.inFlight > 0) return false;
  return summary.patches.every(
    (p) => (p.state !== 'ready' && p.state !== 'pending') || (p.counts.applied ?? 0) >= summary.devices,
  );
}

/** Formats a summary as one line, for logs and pipes. */
function summaryLine(summary: FleetSummary): string {
  const patches = summary.patches
    .filter((p) => p.state !== 'retired')
    .map((p) => `${p.id} ${p.counts.applied ?? 0}/${summary.devices}`)
    .join('  ');
  const time = new Date().toISOString().slice(11, 19);
  return `[${time}] devices ${summary.devices}  online ${summary.online}  in flight ${summary.inFlight}${patches ? `  applied: ${patches}` : ''}`;
}

/** Redraws the summary in place on a terminal: moves the cursor up over the last drawing and clears below it. */
class LiveView {
  private drawnLines = 0;

  draw(summary: FleetSummary): void {
    const text = `${renderSummary(summary)}\nupdated ${new Date().toLocaleTimeString()}; Ctrl-C stops watching`;
    if (this.drawnLines > 0) process.stdout.write(`\x1b[${this.drawnLines}A\x1b[0J`);
    process.stdout.write(`${text}\n`);
    this.drawnLines = text.split('\n').length;
  }

  /** Prints a message below the drawing. The next drawing starts under it. */
  message(text: string): void {
    this.drawnLines = 0;
    process.stderr.write(`${text}\n`);
  }
}

function parseSummary(data: string, client: ApiClient): FleetSummary {
  try {
    return JSON.parse(data) as FleetSummary;
  } catch {
    throw new CliError(`the event stream of ${client.server} sent a summary that is not JSON: ${data.slice(0, 100)}`, EXIT.failure);
  }
}

/**
 * `fleet watch` and `fleet status --watch`: follows GET /v1/events, which sends a summary every second, and
 * shows each one until Ctrl-C, or with --until-done until rolloutDone. A stream that breaks after it
 * worked once is reopened, but a failing first connect ends the command at once.
 */
export async function watchFleet(options: WatchOptions, command: Command): Promise<void> {
  const client = clientFor(command);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const view = !options.json && process.stdout.isTTY ? new LiveView() : null;
  const message = (text: string) => (view ? view.message(text) : process.stderr.write(`${text}\n`));

  let last: FleetSummary | null = null;
  let lastPrinted = '';
  let done = false;
  let reconnects = 0;
  try {
    while (!stop.signal.aborted && !done) {
      try {
        for await (const event of client.events(stop.signal)) {
          if (event.event !== 'summary') continue;
          last = parseSummary(event.data, client);
          reconnects = 0;
          if (options.json) process.stdout.write(`${JSON.stringify(last)}\n`);
          else if (view) view.draw(last);
          else if (event.data !== lastPrinted) {
            // The replica sends a summary on connect and every second after, so a fleet that does not change
            // repeats the same summary. A log or pipe gets a new line only when the summary changed.
            process.stdout.write(`${summaryLine(last)}\n`);
            lastPrinted = event.data;
          }
          if (options.untilDone && rolloutDone(last)) {
            done = true;
            break;
          }
        }
      } catch (err) {
        if (stop.signal.aborted) break;
        const permanent = err instanceof ApiRequestError && err.status < 500;
        if (last === null || permanent) throw err;
        message(`fleet: ${(err as Error).message}`);
      }

      if (done || stop.signal.aborted) break;
      reconnects += 1;
      if (reconnects > MAX_RECONNECTS) {
        throw new CliError(`lost the event stream of ${client.server} and could not reopen it ${MAX_RECONNECTS} times in a row`, EXIT.unavailable);
      }
      message(`the event stream of ${client.server} ended; reconnecting in ${RECONNECT_DELAY_MS / 1000} s (attempt ${reconnects} of ${MAX_RECONNECTS})`);
      await sleep(RECONNECT_DELAY_MS, undefined, { signal: stop.signal }).catch(() => undefined);
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }

  if (done && last && !options.json) {
    const offered = last.patches.filter((p) => p.state === 'ready').length;
    message(`rollout done: all ${last.devices} devices applied every offered patch (${offered})`);
  } else if (options.untilDone && !done) {
    process.exitCode = EXIT.incomplete;
  }
}
