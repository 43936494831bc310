import type { Command } from 'commander';

/** Options of `fleet rollout create`. */
export interface RolloutOptions {
  devices?: string;
  tags?: string;
  models?: string;
  firmware?: string;
  maxInFlight?: string;
  fleetMaxInFlight?: string;
  rate?: string;
  waves?: string;
  waveSuccess?: string;
  failureThreshold?: string;
  failureMin?: string;
  timeout?: string;
  maxAttempts?: string;
  retryBackoff?: string;
  retryBackoffMax?: string;
  supersedes?: string;
}

/** The option of each request field, so that an invalid value is reported under the name the operator typed. */
export const OPTION_OF: Record<string, string> = {
  devices: '--devices',
  tags: '--tags',
  models: '--models',
  firmware: '--firmware',
  maxInFlight: '--max-in-flight',
  fleetMaxInFlight: '--fleet-max-in-flight',
  ratePerMinute: '--rate',
  waves: '--waves',
  waveSuccess: '--wave-success',
  failureThreshold: '--failure-threshold',
  failureMinDevices: '--failure-min',
  timeoutS: '--timeout',
  maxAttempts: '--max-attempts',
  retryBackoffS: '--retry-backoff',
  retryBackoffMaxS: '--retry-backoff-max',
  supersedes: '--supersedes',
};

/** Adds the targeting and strategy options of a rollout to a command. */
export function withRolloutOptions(command: Command): Command {
  return command
    .option('--devices <ids>', 'target only these device ids, comma-separated')
    .option('--tags <tags>', 'target devices carrying any of these tags (set by an operator or reported in hello)')
    .option('--models <models>', 'target devices of these models, comma-separated')
    .option('--firmware <versions>', 'target devices running these firmware versions, comma-separated')
    .option('--max-in-flight <n>', 'at most n devices of the rollout update at once (default: no cap)')
    .option('--fleet-max-in-flight <n>', 'start an attempt only while fewer than n updates of any patch are in flight')
    .option('--rate <n>', 'at most n attempts start per minute (default: no limit)')
    .option('--waves <list>', 'cumulative wave sizes, counts or percentages, e.g. 5,25%,100% (default: one wave)')
    .option('--wave-success <percent>', 'share of a wave that must apply before the next wave opens (default: 100%)')
    .option('--failure-threshold <n|n%>', 'pause the rollout once this many devices, or this share, failed (default: never)')
    .option('--failure-min <n>', 'finished devices needed before the failure threshold applies (default: 10)')
    .option('--timeout <seconds>', 'an attempt without a report for this long times out (default: FLEET_UPDATE_TIMEOUT_MS)')
    .option('--max-attempts <n>', 'attempts per device, retries included (default: FLEET_MAX_ATTEMPTS)')
    .option('--retry-backoff <seconds>', 'hold after the first failed attempt; it doubles after each one (default: 30)')
    .option('--retry-backoff-max <seconds>', 'longest hold between attempts (default: 600)')
    .option('--supersedes <ids|all>', 'older patches this one replaces for the devices it targets: ids, or all');
}

export function rolloutRequestValue(options: RolloutOptions, field: string): string | undefined {
  const values: Record<string, string | undefined> = {
    devices: options.devices,
    tags: options.tags,
    models: options.models,
    firmware: options.firmware,
    maxInFlight: options.maxInFlight,
    fleetMaxInFlight: options.fleetMaxInFlight,
    ratePerMinute: options.rate,
    waves: options.waves,
    waveSuccess: options.waveSuccess,
    failureThreshold: options.failureThreshold,
    failureMinDevices: options.failureMin,
    timeoutS: options.timeout,
    maxAttempts: options.maxAttempts,
    retryBackoffS: options.retryBackoff,
    retryBackoffMaxS: options.retryBackoffMax,
    supersedes: options.supersedes,
  };
  return values[field];
}

