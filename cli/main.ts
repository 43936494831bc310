#!/usr/bin/env node
import { Command } from 'commander';
import { runDemo } from './demo.ts';
import { acceptDevice, printDeviceToken, revokeDevice } from './device-admin.ts';
import { createKeys, signPatchFile } from './keys.ts';
import { createOperator, listOperators, revokeOperator } from './operators.ts';
import { listDevices } from './devices.ts';
import { listPatches, uploadPatch } from './patch.ts';
import { serve } from './serve.ts';
import { runDevice, simulateFleet } from './simulate.ts';
import { showStatus } from './status.ts';
import { CliError, EXIT } from './storage-access.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const program = new Command('fleet')
  .description('Keep a fleet of cameras connected, known and up to date.')
  .showHelpAfterError();

program
  .command('serve')
  .description('run one backend replica (configuration from environment variables, see docs/configuration.md)')
  .action(serve);

const patch = program.command('patch').description('manage the patch catalog');
patch
  .command('upload')
  .description('upload a patch file to the bucket and release it to every device')
  .argument('<file>', 'patch file to upload')
  .option('--id <id>', 'patch id and object key (default: the file name)')
  .option('--name <name>', 'human-readable name shown to operators (default: the id)')
  .option('--version <version>', 'version in the signed manifest (default: the id)')
  .option('--key <file>', 'Ed25519 signing key, PEM (default: FLEET_SIGNING_KEY_FILE)')
  .option('--json', 'print one JSON object instead of text')
  .action(uploadPatch);
patch
  .command('sign')
  .description('write FILE.sig, a detached signature, for a patch put into the bucket by another tool')
  .argument('<file>', 'patch file')
  .option('--id <id>', 'patch id and object key (default: the file name)')
  .option('--name <name>', 'human-readable name (default: the id)')
  .option('--version <version>', 'version (default: the id)')
  .option('--key <file>', 'Ed25519 signing key, PEM (default: FLEET_SIGNING_KEY_FILE)')
  .action(signPatchFile);
patch
  .command('list')
  .description('list the catalog in release order')
  .option('--json', 'print JSON instead of a table')
  .action(listPatches);

program
  .command('devices')
  .description('list known devices: id, online, last seen, patches applied')
  .option('--online', 'only devices that are online now')
  .option('--limit <n>', 'list at most n devices')
  .option('--json', 'print JSON instead of a table')
  .action(listDevices);

program
  .command('status')
  .description('show, per patch, how many devices are in each update state')
  .option('--json', 'print JSON instead of text')
  .action(showStatus);

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
  .action(runDevice);
device
  .command('token')
  .description('provision a device if needed and print a token for it')
  .argument('<id>', 'device id')
  .option('--ttl <seconds>', 'lifetime of the token; 0 or absent for no expiry (revocation still applies)')
  .option('--json', 'print JSON')
  .action(printDeviceToken);
device
  .command('revoke')
  .description('invalidate every token of a device and disconnect it')
  .argument('<id>', 'device id')
  .action(revokeDevice);
device
  .command('accept')
  .description('accept a pending device (auto-enrolment) so it gets patches')
  .argument('<id>', 'device id')
  .action(acceptDevice);

program
  .command('keys')
  .description('manage the fleet secrets')
  .command('create')
  .description('create a patch signing key pair and a device token secret')
  .option('--out <dir>', 'folder for the files', 'fleet-keys')
  .action(createKeys);

const operator = program.command('operator').description('manage operator tokens for the HTTP API and dashboard');
operator
  .command('create')
  .description('create an operator token and print it once')
  .argument('<name>', 'who the token is for')
  .requiredOption('--role <role>', 'read (read-only) or operator (read and change)')
  .option('--json', 'print JSON')
  .action(createOperator);
operator.command('list').description('list operator tokens (names and roles, never tokens)').option('--json', 'print JSON').action(listOperators);
operator.command('revoke').description('delete the tokens of an operator').argument('<name>').action(revokeOperator);

withCameraOptions(program.command('simulate'))
  .description('play many cameras in this process until Ctrl-C')
  .option('--devices <n>', 'number of cameras', '100')
  .option('--prefix <prefix>', 'device id prefix', 'cam_')
  .option('--json', 'print the final totals as JSON')
  .action(simulateFleet);

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
  .option('--keep-running', 'leave everything running after the report, until Ctrl-C')
  .option('--json', 'print a JSON summary as the last line of stdout')
  .action(runDemo);

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof CliError) {
    process.stderr.write(`fleet: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`fleet: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(EXIT.failure);
}
