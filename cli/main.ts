#!/usr/bin/env node
import { Command } from 'commander';
import { DEFAULT_SERVER } from './api-client.ts';
import { CliError, EXIT } from './errors.ts';
import { withRolloutOptions } from './rollout-options.ts';
import { addHelpHints, commanderExitCode, packageVersion, reportUsageErrors } from './usage.ts';
import type { WatchOptions } from './watch.ts';

/**
 * Loads a command's module only when the command runs. The storage commands pull in the AWS SDK, ioredis and
 * the simulator, which would otherwise take about a second of CPU at every start of an API command.
 */
function lazy<A extends unknown[]>(load: () => Promise<(...args: A) => Promise<void> | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const action = await load();
    await action(...args);
  };
}

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// A reader that stops early, such as `fleet watch --json | head`, closes the pipe. The output is no longer
// wanted then, so the command ends quietly with 0, as Unix tools do, instead of crashing on EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(EXIT.ok);
  throw err;
});

const SERVER_HELP = `operator API of a replica (default: FLEET_SERVER, else ${DEFAULT_SERVER})`;
const TOKEN_HELP = 'operator token for the API (default: FLEET_TOKEN)';

const program = reportUsageErrors(new Command('fleet'))
  .description('Keep a fleet of cameras connected, known and up to date.')
  .version(packageVersion(), '-V, --version', 'print the version of fleet')
  .option('--server <url>', SERVER_HELP)
  .option('--token <token>', TOKEN_HELP)
  // Options before the command name belong to `fleet`, so `fleet device play ID --token T` keeps its own
  // --token (a device token). Every API command takes --server and --token after its name as well.
  .enablePositionalOptions()
  .addHelpText(
    'after',
    '\nCommands that use the operator API: patch upload|list|show|retire, devices, device show|token|revoke|accept|tags,\n' +
      'status, watch, rollout. The others read Redis and the bucket with the variables of `fleet serve`.\n' +
      'Exit codes: 0 ok, 1 failure or not found, 2 invalid usage, 3 server unreachable or failing, 4 conflict,\n' +
      '5 incomplete, 6 missing, unknown or insufficient operator token. See docs/operators.md.',
  );

/** Adds --server and --token to a command that calls the operator API. */
function apiCommand(command: Command): Command {
  return command.option('--server <url>', SERVER_HELP).option('--token <token>', TOKEN_HELP);
}

program
  .command('serve')
  .description('run one backend replica (configuration from environment variables, see docs/configuration.md)')
  .action(lazy(async () => (await import('./serve.ts')).serve));

const patch = program.command('patch').description('manage the patch catalog');
apiCommand(patch.command('upload'))
  .description('sign a patch file and upload it through the API, which releases it to every device')
  .argument('<file>', 'patch file to upload')
  .option('--id <id>', 'patch id and object key (default: the file name)')
  .option('--name <name>', 'human-readable name shown to operators (default: the id)')
  .option('--version <version>', 'version in the signed manifest (default: the id)')
  .option('--key <file>', 'Ed25519 signing key, PEM (default: FLEET_SIGNING_KEY_FILE)')
  .option('--json', 'print one JSON object instead of text')
  .action(lazy(async () => (await import('./patch.ts')).uploadPatch));
patch
  .command('sign')
  .description('write FILE.sig, a detached signature, for a patch put into the bucket by another tool')
  .argument('<file>', 'patch file')
  .option('--id <id>', 'patch id and object key (default: the file name)')
  .option('--name <name>', 'human-readable name (default: the id)')
  .option('--version <version>', 'version (default: the id)')
  .option('--key <file>', 'Ed25519 signing key, PEM (default: FLEET_SIGNING_KEY_FILE)')
  .action(lazy(async () => (await import('./keys.ts')).signPatchFile));
apiCommand(patch.command('list'))
  .description('list the catalog in release order')
  .option('--json', 'print a JSON array instead of a table')
  .action(lazy(async () => (await import('./patch.ts')).listPatches));
apiCommand(patch.command('show'))
  .description('show one patch: manifest, state, signature and device counts per update state')
  .argument('<id>', 'patch id')
  .option('--json', 'print JSON instead of text')
  .action(lazy(async () => (await import('./patch.ts')).showPatch));
apiCommand(patch.command('retire'))
  .description('retire a patch: no device is offered it again; devices in the middle of it finish')
  .argument('<id>', 'patch id')
  .option('--json', 'print JSON instead of text')
  .action(lazy(async () => (await import('./patch.ts')).retirePatch));

apiCommand(program.command('devices'))
  .description('list known devices in id order: online, last seen, model, firmware, tags, patches applied')
  .option('--online', 'only devices that are online now')
  .option('--offline', 'only devices that are offline now')
  .option('--model <model>', 'only devices of this exact model')
  .option('--firmware <version>', 'only devices with this exact firmware version')
  .option('--tag <tag>', 'only devices carrying this tag')
  .option('--patch <id>', 'only devices that applied this patch')
  .option('--missing <id>', 'only devices that have not applied this patch')
  .option('--search <text>', 'only devices whose id contains this text')
  .option('--limit <n>', 'list at most n devices (default: all)')
  .option('--page-size <n>', 'devices per API request, 1 to 500', '500')
  .option('--json', 'print a JSON array instead of a table')
  .action(lazy(async () => (await import('./devices.ts')).listDevices));

apiCommand(program.command('status'))
  .description('show device counts and, per patch, how many devices are in each update state')
  .option('--watch', 'follow the fleet live until Ctrl-C (the same as `fleet watch`)')
  .option('--until-done', 'with --watch: stop once every device applied every patch and nothing is in flight')
  .option('--json', 'print JSON instead of text; with --watch, one JSON summary per line')
  .action(async (options: WatchOptions & { watch?: boolean }, command: Command) => {
    if (options.watch) await (await import('./watch.ts')).watchFleet(options, command);
    else await (await import('./status.ts')).showStatus(options, command);
  });

apiCommand(program.command('watch'))
  .description('follow the fleet live: redraw per-patch progress bars on a terminal, else print a line whenever the summary changes')
  .option('--until-done', 'stop once every device applied every patch and nothing is in flight (exit 0), else exit 5 on Ctrl-C')
  .option('--json', 'print one JSON summary per line')
  .action(lazy(async () => (await import('./watch.ts')).watchFleet));

const rollout = program.command('rollout').description('control how a patch reaches the fleet: targets, pace, waves, stop on errors');
apiCommand(withRolloutOptions(rollout.command('create')))
  .description('create the rollout of a patch; create it before `patch upload` so no device gets the patch first')
  .argument('<patch>', 'patch id')
  .option('--json', 'print the rollout as JSON')
  .action(lazy(async () => (await import('./rollout.ts')).createRollout));
apiCommand(rollout.command('list'))
  .description('list rollouts, newest first, with their progress')
  .option('--json', 'print a JSON array instead of a table')
  .action(lazy(async () => (await import('./rollout.ts')).listRollouts));
apiCommand(rollout.command('show'))
  .description('show a rollout: strategy, state and devices per state')
  .argument('<id>', 'rollout id, or a patch id for its current rollout')
  .option('--device <id>', "also show this device's timeline in the rollout")
  .option('--json', 'print JSON instead of text')
  .action(lazy(async () => (await import('./rollout.ts')).showRollout));
for (const action of ['pause', 'cancel'] as const) {
  apiCommand(rollout.command(action))
    .description(
      action === 'pause'
        ? 'pause a rollout: no device starts, attempts in flight finish'
        : 'cancel a rollout for good: waiting devices go on to later patches, attempts in flight finish without retries',
    )
    .argument('<id>', 'rollout id, or a patch id')
    .option('--reason <text>', 'why, shown with the rollout')
    .option('--json', 'print JSON')
    .action(lazy(async () => {
      const { controlRollout } = await import('./rollout.ts');
      return (id: string, options: { reason?: string; json?: boolean }, command: Command) => controlRollout(action, id, options, command);
    }));
}
apiCommand(rollout.command('resume'))
  .description('resume a paused rollout; after a pause for a wave below its success threshold, the next wave opens')
  .argument('<id>', 'rollout id, or a patch id')
  .option('--failure-threshold <n|n%>', 'replace the failure threshold')
  .option('--failure-min <n>', 'replace the finished devices needed before the threshold applies')
  .option('--json', 'print JSON')
  .action(lazy(async () => {
    const { controlRollout } = await import('./rollout.ts');
    return (id: string, options: { failureThreshold?: string; failureMin?: string; json?: boolean }, command: Command) =>
      controlRollout('resume', id, options, command);
  }));
apiCommand(rollout.command('watch'))
  .description('show live progress bars per device state until the rollout completes (exit 0), pauses or is cancelled (exit 5)')
  .argument('<id>', 'rollout id, or a patch id')
  .option('--interval-ms <ms>', 'time between two reads', '1000')
  .option('--through-pauses', 'keep watching while the rollout is paused')
  .option('--json', 'print the rollout as one JSON object per line')
  .action(lazy(async () => (await import('./rollout.ts')).watchRollout));

function withCameraOptions(command: Command): Command {
  return command
    .option('--url <url>', 'device endpoint of a replica', process.env.FLEET_DEVICE_URL ?? 'ws://127.0.0.1:8080/device')
    .option('--failure-rate <fraction>', 'fraction of cameras whose every apply fails', '0')
    .option('--flaky-rate <fraction>', 'probability per attempt that an apply fails', '0')
    .option('--disconnect-rate <fraction>', 'probability per attempt of a drop mid-download', '0')
    .option('--download-kbps <KiB/s>', 'download speed limit per camera in KiB/s; 0 for none', '0')
    .option('--apply-ms <ms>', 'mean time to apply a patch in milliseconds', '300')
    .option('--public-key <pem>', 'fleet signing public key the cameras verify with (default: FLEET_SIGNING_PUBLIC_KEY)');
}

const device = program.command('device').description('play one camera, or manage device tokens and enrolment');
withCameraOptions(device.command('play', { isDefault: true }))
  .description('play one camera (the default: `fleet device ID`); its applied patches persist in a state file')
  .argument('<id>', 'device id')
  .option('--state <file>', 'state file (default: .fleet/<id>.json)')
  .option('--token <token>', 'device token (default: FLEET_DEVICE_TOKEN, else one is issued through Redis)')
  .action(lazy(async () => (await import('./simulate.ts')).runDevice));
apiCommand(device.command('show'))
  .description('show one device: record, enrolment, presence and its update timeline')
  .argument('<id>', 'device id')
  .option('--json', 'print JSON instead of text')
  .action(lazy(async () => (await import('./devices.ts')).showDevice));
apiCommand(device.command('token'))
  .description('provision a device if needed and print a token for it')
  .argument('<id>', 'device id')
  .option('--ttl <seconds>', 'lifetime of the token; 0 or absent for no expiry (revocation still applies)')
  .option('--json', 'print JSON')
  .action(lazy(async () => (await import('./device-admin.ts')).printDeviceToken));
apiCommand(device.command('revoke'))
  .description('invalidate every token of a device and disconnect it')
  .argument('<id>', 'device id')
  .option('--json', 'print JSON')
  .action(lazy(async () => (await import('./device-admin.ts')).revokeDevice));
apiCommand(device.command('accept'))
  .description('accept a pending device (auto-enrolment) so it gets patches')
  .argument('<id>', 'device id')
  .option('--json', 'print JSON')
  .action(lazy(async () => (await import('./device-admin.ts')).acceptDevice));
apiCommand(device.command('tags'))
  .description('replace the tags of a device (each in the id grammar, at most 32)')
  .argument('<id>', 'device id')
  .argument('[tags...]', 'the tags the device carries from now on')
  .option('--clear', 'remove every tag')
  .option('--json', 'print JSON')
  .action(lazy(async () => (await import('./device-admin.ts')).setDeviceTags));

program
  .command('keys')
  .description('manage the fleet secrets')
  .command('create')
  .description('create a patch signing key pair and a device token secret')
  .option('--out <dir>', 'folder for the files', 'fleet-keys')
  .action(lazy(async () => (await import('./keys.ts')).createKeys));

const operator = program.command('operator').description('manage operator tokens for the HTTP API and dashboard');
operator
  .command('create')
  .description('create an operator token and print it once')
  .argument('<name>', 'who the token is for')
  .requiredOption('--role <role>', 'read (read-only) or operator (read and change)')
  .option('--json', 'print JSON')
  .action(lazy(async () => (await import('./operators.ts')).createOperator));
operator
  .command('list')
  .description('list operator tokens (names and roles, never tokens)')
  .option('--json', 'print JSON')
  .action(lazy(async () => (await import('./operators.ts')).listOperators));
operator
  .command('revoke')
  .description('delete the tokens of an operator')
  .argument('<name>')
  .action(lazy(async () => (await import('./operators.ts')).revokeOperator));

withCameraOptions(program.command('simulate'))
  .description('play many cameras in this process until Ctrl-C')
  .option('--devices <n>', 'number of cameras', '100')
  .option('--prefix <prefix>', 'device id prefix', 'cam_')
  .option('--json', 'print the final totals as JSON')
  .action(lazy(async () => (await import('./simulate.ts')).simulateFleet));

program
  .command('demo')
  .description('run the main job on this machine: Redis, S3 store, a replica, simulated cameras, two patches')
  .option('--devices <n>', 'number of simulated cameras', '200')
  .option('--patch-mb <mb>', 'size of the first patch in MiB; the second is 25% larger', '3')
  .option('--failure-rate <fraction>', 'fraction of cameras that fail every apply', '0')
  .option('--disconnect-rate <fraction>', 'probability per attempt that a camera drops mid-download', '0')
  .option('--stall-timeout <seconds>', 'end the demo when no camera applies anything for this long', '60')
  .option('--replicas <n>', 'number of backend replicas; more than 1 puts haproxy in front of them', '1')
  .option('--kill-replica', 'kill replica 1 with SIGKILL once a quarter of the updates are applied')
  .option('--max-in-flight <n>', 'give each patch a rollout with at most n devices updating at once, in it and in the fleet')
  .option('--failure-threshold <n|n%>', 'give each patch a rollout that pauses once this many devices, or this share, failed')
  .option('--keep-running', 'leave everything running after the report, until Ctrl-C')
  .option('--json', 'print a JSON summary as the last line of stdout')
  .action(lazy(async () => (await import('./demo.ts')).runDemo));

program
  .command('local-s3')
  .description('for local use only: run the development S3 server (s3rver) with the patch bucket until Ctrl-C, for `fleet serve` on one machine')
  .option('--port <port>', 'TCP port on 127.0.0.1; 0 picks a free one', '9000')
  .option('--bucket <name>', 'bucket to create (default: S3_BUCKET, else fleet-patches)')
  .option('--dir <folder>', 'folder for the objects, kept after the stop (default: a temporary folder, deleted)')
  .action(lazy(async () => (await import('./local-s3.ts')).runLocalS3));

program
  .command('chaos')
  .description('run the fault scenarios: each starts Redis, an S3 store, replicas, HAProxy and cameras, injects a fault and checks the result')
  .option('--scenario <name...>', 'run only these scenarios (default: all)')
  .option('--devices <n>', 'number of simulated cameras per scenario', '200')
  .option('--json', 'print one JSON array with an entry per scenario as the last line of stdout')
  .action(lazy(async () => (await import('./chaos.ts')).runChaosCommand));

addHelpHints(program);

try {
  await program.parseAsync();
} catch (err) {
  // Commander has already printed its message, or the help or version that was asked for.
  const commanderCode = commanderExitCode(err);
  if (commanderCode !== null) process.exit(commanderCode);
  if (err instanceof CliError) {
    process.stderr.write(`fleet: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`fleet: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(EXIT.failure);
}
