import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { parseRolloutSpec, ROLLOUT_DEVICE_STATES, RolloutSpecError, type RolloutRequest } from '../storage/rollout-spec.ts';
import type { Rollout } from '../storage/rollouts.ts';
import type { TimelineEntry } from '../storage/state-store.ts';
import { clientFor, segment } from './api-client.ts';
import { CliError, EXIT } from './errors.ts';
import { ago, bar, table } from './format.ts';
import { OPTION_OF, rolloutRequestValue, type RolloutOptions } from './rollout-options.ts';

/**
 * Builds the body of POST /v1/rollouts from the options and checks it here first, so an invalid value is
 * reported under its option name before anything is sent.
 */
export function rolloutRequest(patchId: string, options: RolloutOptions): RolloutRequest {
  const request: Record<string, unknown> = { patchId };
  for (const field of Object.keys(OPTION_OF)) {
    const value = rolloutRequestValue(options, field);
    if (value !== undefined) request[field] = value;
  }
  if (request.supersedes !== undefined && request.supersedes !== 'all') request.supersedes = String(request.supersedes).split(',');
  try {
    parseRolloutSpec(request);
  } catch (err) {
    if (err instanceof RolloutSpecError) {
      const option = OPTION_OF[err.field];
      throw new CliError(option ? `invalid ${option}: ${err.message.slice(err.field.length + 2)}` : err.message, EXIT.usage);
    }
    throw err;
  }
  return request as RolloutRequest;
}

/** Creates a rollout through the API and returns it. */
export async function postRollout(command: Command, request: RolloutRequest): Promise<Rollout> {
  return clientFor(command).request<Rollout>('POST', '/v1/rollouts', { json: request });
}

/** Returns the row of a rollout in the table of `fleet rollout list`. */
function rolloutRow(r: Rollout): (string | number)[] {
  const total = Math.max(r.targetCount, r.started);
  const failing = r.counts.failed + r.counts.timed_out + r.held;
  return [r.id, r.patchId, r.state, `${r.counts.applied}/${total}`, r.inFlight, r.waiting, failing, r.reason ?? ''];
}

/** Names the open wave; past the last listed wave every targeted device may start. */
function waveText(wave: number, waves: number): string {
  return wave > waves ? 'all waves open' : `wave ${wave} of ${waves} open`;
}

/**
 * Says how many devices the rollout targeted when it was created, and how many it has counted since when
 * devices that matched later raised that number.
 */
function targetText(targetCount: number, counted: number): string {
  const targets = `targets ${targetCount} ${targetCount === 1 ? 'device' : 'devices'}`;
  return counted > targetCount ? `${targets} at creation, ${counted} counted since` : targets;
}

/** Renders a rollout with one progress bar per device state, for `show` and `watch`. */
export function renderRollout(r: Rollout): string {
  const counted = ROLLOUT_DEVICE_STATES.reduce((sum, state) => sum + r.counts[state], 0);
  const total = Math.max(r.targetCount, counted);
  const notStarted = Math.max(0, r.targetCount - counted);
  const s = r.strategy;
  const limits = [
    s.maxInFlight ? `max in flight ${s.maxInFlight}` : null,
    s.fleetMaxInFlight ? `fleet max in flight ${s.fleetMaxInFlight}` : null,
    s.ratePerMinute ? `rate ${s.ratePerMinute}/min` : null,
    s.waves.length > 0 ? `waves ${s.waves.join(',')} (${s.waveSizes.join(',')} devices), ${waveText(r.wave, s.waveSizes.length)}` : null,
    s.failureThreshold ? `failure threshold ${s.failureThreshold} after ${s.failureMinDevices} devices` : null,
  ].filter(Boolean);
  const lines = [
    `rollout ${r.id} of ${r.patchId}: ${r.state}${r.reason ? ` (${r.reason})` : ''}`,
    `${targetText(r.targetCount, counted)}; ${limits.join('; ') || 'no limits'}`,
    `in flight ${r.inFlight} (max seen ${r.maxInFlightSeen}), waiting ${r.waiting}, held ${r.held}`,
  ];
  const width = Math.max(...ROLLOUT_DEVICE_STATES.map((state) => state.length), 'not started'.length);
  if (notStarted > 0) lines.push(`  ${'not started'.padEnd(width)} ${bar(notStarted, total)} ${notStarted}`);
  for (const state of ROLLOUT_DEVICE_STATES) {
    if (r.counts[state] > 0) lines.push(`  ${state.padEnd(width)} ${bar(r.counts[state], total)} ${r.counts[state]}`);
  }
  return lines.join('\n');
}

function checkRolloutId(id: string): string {
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(id)) {
    throw new CliError(`invalid rollout ${JSON.stringify(id)}: give a rollout id such as r3, or a patch id`, EXIT.usage);
  }
  return id;
}

/** `fleet rollout create PATCH`: creates the rollout of a patch, before or after the patch is uploaded. */
export async function createRollout(patchId: string, options: RolloutOptions & { json?: boolean }, command: Command): Promise<void> {
  const rollout = await postRollout(command, rolloutRequest(patchId, options));
  process.stdout.write(options.json ? `${JSON.stringify(rollout)}\n` : `created rollout ${rollout.id} of ${rollout.patchId}\n${renderRollout(rollout)}\n`);
  const selected = [options.devices, options.tags, options.models, options.firmware].some((value) => value !== undefined);
  if (selected && rollout.targetCount === 0) {
    process.stderr.write(
      `fleet: warning: no known device that lacks ${rollout.patchId} matches the --devices, --tags, --models or --firmware of rollout ${rollout.id}\n`,
    );
  }
}

/** `fleet rollout list` */
export async function listRollouts(options: { json?: boolean }, command: Command): Promise<void> {
  const { rollouts } = await clientFor(command).request<{ rollouts: Rollout[] }>('GET', '/v1/rollouts');
  if (options.json) {
    process.stdout.write(`${JSON.stringify(rollouts)}\n`);
    return;
  }
  const rows = rollouts.map(rolloutRow);
  process.stdout.write(`${table(['ID', 'PATCH', 'STATE', 'APPLIED', 'IN FLIGHT', 'WAITING', 'FAILING', 'REASON'], rows)}\n`);
}

/** `fleet rollout show ID`, with --device D for that device's timeline in the rollout. */
export async function showRollout(id: string, options: { json?: boolean; device?: string }, command: Command): Promise<void> {
  const rollout = await clientFor(command).request<Rollout & { device?: { id: string; timeline: TimelineEntry[] } }>(
    'GET',
    `/v1/rollouts/${segment(checkRolloutId(id))}`,
    { query: { device: options.device } },
  );
  if (options.json) {
    process.stdout.write(`${JSON.stringify(rollout)}\n`);
    return;
  }
  const lines = [renderRollout(rollout), `created ${ago(rollout.createdAt)}, changed ${ago(rollout.updatedAt)}`];
  if (rollout.device) {
    const rows = rollout.device.timeline.map((e) => [new Date(e.at).toISOString(), e.state, e.attempt, e.detail ?? '']);
    lines.push(`\ntimeline of ${rollout.device.id}, newest first`, table(['AT', 'STATE', 'ATTEMPT', 'DETAIL'], rows));
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** `fleet rollout pause|resume|cancel ID` */
export async function controlRollout(
  action: 'pause' | 'resume' | 'cancel',
  id: string,
  options: { reason?: string; failureThreshold?: string; failureMin?: string; json?: boolean },
  command: Command,
): Promise<void> {
  const query = { reason: options.reason, failureThreshold: options.failureThreshold, failureMinDevices: options.failureMin };
  const path = `/v1/rollouts/${segment(checkRolloutId(id))}/${action}`;
  const result = await clientFor(command).request<{ id: string; state: string }>('POST', path, { query });
  process.stdout.write(options.json ? `${JSON.stringify(result)}\n` : `rollout ${result.id} is ${result.state}\n`);
}

/**
 * `fleet rollout watch ID`: polls the rollout and shows a progress bar per device state until it completes
 * (exit 0), is cancelled (exit 5) or pauses (exit 5, with the reason), unless --through-pauses.
 */
export async function watchRollout(
  id: string,
  options: { json?: boolean; intervalMs: string; throughPauses?: boolean },
  command: Command,
): Promise<void> {
  const interval = Number(options.intervalMs);
  if (!Number.isInteger(interval) || interval < 100) throw new CliError(`invalid --interval-ms ${options.intervalMs}: expected at least 100`, EXIT.usage);
  const client = clientFor(command);
  const path = `/v1/rollouts/${segment(checkRolloutId(id))}`;
  const tty = !options.json && process.stdout.isTTY === true;
  let drawn = 0;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  try {
    for (;;) {
      const rollout = await client.request<Rollout>('GET', path);
      const text = options.json ? JSON.stringify(rollout) : renderRollout(rollout);
      if (tty && drawn > 0) process.stdout.write(`\x1b[${drawn}A\x1b[0J`);
      process.stdout.write(`${text}\n${options.json || tty ? '' : '\n'}`);
      drawn = text.split('\n').length;
      if (rollout.state === 'completed') return;
      if (rollout.state === 'cancelled' || (rollout.state === 'paused' && !options.throughPauses)) {
        throw new CliError(`rollout ${rollout.id} is ${rollout.state}: ${rollout.reason ?? 'no reason given'}`, EXIT.incomplete);
      }
      try {
        await sleep(interval, undefined, { signal: stop.signal });
      } catch {
        throw new CliError(`stopped watching rollout ${rollout.id} while it was ${rollout.state}`, EXIT.incomplete);
      }
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
  }
}
