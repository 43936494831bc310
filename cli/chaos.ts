import { formatResults, machineDescription, runChaos } from '../chaos/run.ts';
import { haproxyInstalled } from '../local/load-balancer.ts';
import { redisServerInstalled } from '../local/redis-server.ts';
import { CliError, EXIT } from './storage-access.ts';

export interface ChaosCommandOptions {
  scenario?: string[];
  json?: boolean;
  devices: string;
}

/**
 * `fleet chaos`: runs the fault scenarios, each on its own redis-server, S3-compatible server, replicas and
 * HAProxy, and prints a table. With --json the last line of stdout is a JSON array with one entry per
 * scenario: its name, whether it passed and the figures it measured. Exit code 0 only when every scenario passed, 5 otherwise.
 */
export async function runChaosCommand(options: ChaosCommandOptions): Promise<void> {
  const devices = Number(options.devices);
  if (!Number.isInteger(devices) || devices < 4 || devices > 5000) {
    throw new CliError(`invalid --devices ${JSON.stringify(options.devices)}: expected a whole number from 4 to 5000`, EXIT.usage);
  }
  if (!redisServerInstalled() || !haproxyInstalled()) {
    throw new CliError('fleet chaos needs redis-server and haproxy (Debian: apt-get install redis-server haproxy)', EXIT.unavailable);
  }
  const started = performance.now();
  let results;
  try {
    results = await runChaos({
      scenarios: options.scenario ?? [],
      devices,
      progress: (message) => process.stderr.write(`${message}\n`),
    });
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('unknown scenario')) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
  process.stdout.write(`${formatResults(results)}\n`);
  process.stdout.write(`machine: ${machineDescription()}; ${Math.round((performance.now() - started) / 1000)} s in all\n`);
  if (options.json) {
    const entries = results.map((r) => ({ name: r.name, passed: r.passed, figures: r.figures }));
    process.stdout.write(`${JSON.stringify(entries)}\n`);
  }
  if (results.some((r) => !r.passed)) process.exitCode = EXIT.incomplete;
}
