import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { generateSigningKeys, verifyManifest } from '../security/patch-signing.ts';
import { PatchBucket } from '../storage/bucket.ts';
import { fleetDeviceIds, SimulatedFleet } from '../simulator/index.ts';
import type { DeviceRecord, PatchRecord, TimelineEntry } from '../storage/state-store.ts';
import type { FleetSummary, PatchSummary } from '../storage/summary.ts';
import { securityEnv, startBackend, TEST_SECURITY, type TestBackend } from './helpers/backend.ts';
import { RawDevice } from './helpers/device-client.ts';

// Every command runs as its own `fleet` process against a real replica, as an operator would run it.
// API commands get an unreachable Redis and S3 address, so a test fails if one of them touches storage.

let keyDir = '';
let signingKeyFile = '';
let strangerKeyFile = '';
let emptyKeyFile = '';
test.before(async () => {
  keyDir = await mkdtemp(join(tmpdir(), 'fleet-cli-keys-'));
  signingKeyFile = join(keyDir, 'fleet-signing.key');
  strangerKeyFile = join(keyDir, 'stranger.key');
  emptyKeyFile = join(keyDir, 'empty.key');
  await writeFile(signingKeyFile, TEST_SECURITY.privateKey, { mode: 0o600 });
  await writeFile(strangerKeyFile, generateSigningKeys().privateKey, { mode: 0o600 });
  await writeFile(emptyKeyFile, '', { mode: 0o600 });
});
test.after.always(() => rm(keyDir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Variables of the commands that read Redis and the bucket directly (serve, simulate, operator, device play). */
function storageEnv(backend: TestBackend): Record<string, string> {
  const { config } = backend;
  return {
    REDIS_URL: config.redisUrl,
    FLEET_KEY_PREFIX: config.keyPrefix,
    S3_ENDPOINT: config.s3.endpoint,
    S3_BUCKET: config.s3.bucket,
    S3_ACCESS_KEY: config.s3.accessKey,
    S3_SECRET_KEY: config.s3.secretKey,
    ...securityEnv(),
  };
}

/** Variables of the API commands: the replica's API port and an operator token, and no storage. */
async function apiEnv(backend: TestBackend, role: 'read' | 'operator' = 'operator'): Promise<Record<string, string>> {
  return {
    FLEET_SERVER: backend.apiUrl,
    FLEET_TOKEN: await backend.operatorToken(role),
    FLEET_SIGNING_KEY_FILE: signingKeyFile,
    REDIS_URL: 'redis://127.0.0.1:1',
    S3_ENDPOINT: 'http://127.0.0.1:1',
  };
}

/**
 * Runs `fleet ARGS` with stdout and stderr piped (so not a terminal). When `until` turns true the process
 * gets one SIGINT, like a single Ctrl-C; a second one would end it before it cleans up.
 */
function fleet(args: string[], env: Record<string, string>, until?: (stdout: string, stderr: string) => boolean): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    const check = () => {
      if (!interrupted && until?.(stdout, stderr)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    };
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      check();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      check();
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Checks that the command succeeded and parses its stdout as JSON. */
function parsed<T>(t: ExecutionContext, run: Run): T {
  t.is(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as T;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function patchFile(t: ExecutionContext, name: string, size: number): Promise<{ file: string; bytes: Buffer }> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, name);
  const bytes = randomBytes(size);
  await writeFile(file, bytes);
  return { file, bytes };
}

/** Returns a loopback port that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/**
 * Sends a heartbeat every 5 s until the test ends, so the device stays online however long the CLI
 * processes take on a busy machine (the presence lease is 45 s, uWebSockets.js closes silent sockets at 60 s).
 */
function keepAlive(t: ExecutionContext, device: RawDevice): void {
  const timer = setInterval(() => device.send({ type: 'heartbeat' }), 5000);
  t.teardown(() => {
    clearInterval(timer);
    device.close();
  });
}

async function helloDevice(
  t: ExecutionContext,
  backend: TestBackend,
  deviceId: string,
  hello: { model: string; firmware: string; patches: string[] },
): Promise<RawDevice> {
  const device = await backend.connect(deviceId);
  device.send({ type: 'hello', protocol: 1, deviceId, ...hello });
  await device.next('welcome');
  keepAlive(t, device);
  return device;
}

test('patch upload, list, show and retire', async (t) => {
  const backend = await startBackend(t);
  const env = await apiEnv(backend);
  const first = await patchFile(t, 'cli-fix-1.bin', 100_000);
  const second = await patchFile(t, 'cli-fix-2.bin', 5_000);

  const upload = await fleet(['patch', 'upload', first.file], env);
  t.is(upload.code, 0, upload.stderr);
  t.is(upload.stdout, `released cli-fix-1.bin (97.7 KiB, sha256 ${sha256(first.bytes)}, signed, ready)\n`);
  t.regex(upload.stderr, /hashing {3}cli-fix-1\.bin \[-+\] 0% 0 B\/97\.7 KiB/);
  t.regex(upload.stderr, /uploading cli-fix-1\.bin \[=+\] 100% 97\.7 KiB\/97\.7 KiB/);

  const detail = parsed<PatchRecord & { counts: object }>(t, await fleet(['patch', 'show', 'cli-fix-1.bin', '--json'], env));
  t.is(detail.state, 'ready');
  t.is(detail.sha256, sha256(first.bytes));
  t.is(detail.size, 100_000);
  const manifest = { id: 'cli-fix-1.bin', name: 'cli-fix-1.bin', version: 'cli-fix-1.bin', size: 100_000, sha256: detail.sha256 };
  t.true(verifyManifest(TEST_SECURITY.publicKey, manifest, detail.signature ?? ''), 'the stored signature is the CLI’s');

  const uploadJson = await fleet(
    ['patch', 'upload', second.file, '--json', '--id', 'cli-fix-2.bin', '--name', 'Fix two', '--version', '2.0.1'],
    env,
  );
  t.deepEqual(parsed(t, uploadJson), { id: 'cli-fix-2.bin', size: 5_000, sha256: sha256(second.bytes), state: 'ready', signed: true });
  t.notRegex(uploadJson.stderr, /uploading/, 'with --json and no terminal, stderr has no progress');

  const showText = await fleet(['patch', 'show', 'cli-fix-2.bin'], env);
  t.regex(showText.stdout, /^name +Fix two$/m);
  t.regex(showText.stdout, /^version +2\.0\.1$/m);
  t.regex(showText.stdout, /^signed +yes$/m);
  t.regex(showText.stdout, /^devices +none yet$/m);

  const again = await fleet(['patch', 'upload', first.file], env);
  t.is(again.code, 4);
  t.regex(again.stderr, /patch cli-fix-1\.bin already exists/);
  t.notRegex(again.stderr, /uploading/, 'the conflict is found before the file is sent');

  const list = parsed<PatchSummary[]>(t, await fleet(['patch', 'list', '--json'], env));
  t.deepEqual(list.map((p) => [p.id, p.state, p.sha256]), [
    ['cli-fix-1.bin', 'ready', sha256(first.bytes)],
    ['cli-fix-2.bin', 'ready', sha256(second.bytes)],
  ]);
  const listText = await fleet(['patch', 'list'], env);
  t.regex(listText.stdout, /^# +PATCH +STATE +SIZE +SHA256 +APPLIED$/m);
  t.regex(listText.stdout, /^1 +cli-fix-1\.bin +ready +97\.7 KiB +[0-9a-f]{12} +0\/0$/m);

  const retire = await fleet(['patch', 'retire', 'cli-fix-1.bin'], env);
  t.is(retire.code, 0, retire.stderr);
  t.regex(retire.stdout, /^retired cli-fix-1\.bin/);
  t.deepEqual(parsed(t, await fleet(['patch', 'retire', 'cli-fix-2.bin', '--json'], env)), { id: 'cli-fix-2.bin', state: 'retired' });
  const afterRetire = parsed<PatchSummary[]>(t, await fleet(['patch', 'list', '--json'], env));
  t.deepEqual(afterRetire.map((p) => p.state), ['retired', 'retired']);

  const [retireUnknown, showUnknown] = await Promise.all([
    fleet(['patch', 'retire', 'nope.bin'], env),
    fleet(['patch', 'show', 'nope.bin'], env),
  ]);
  t.is(retireUnknown.code, 1);
  t.regex(retireUnknown.stderr, /not_found: no patch nope\.bin/);
  t.is(showUnknown.code, 1);
});

test('patch upload rejects bad files, ids, keys and roles', async (t) => {
  const backend = await startBackend(t);
  const env = await apiEnv(backend);
  const { file } = await patchFile(t, 'bad.bin', 20_000);
  // Larger than the replica's 1 MiB body buffer, so a rejection after streaming began would break the connection.
  const large = await patchFile(t, 'large.bin', 4 * 1024 * 1024);

  const [missing, badId, unsigned, stranger, emptyKey, readOnly] = await Promise.all([
    fleet(['patch', 'upload', '/nonexistent/file.bin'], env),
    fleet(['patch', 'upload', file, '--id', '../up.bin'], env),
    fleet(['patch', 'upload', file, '--id', 'unsigned.bin'], { ...env, FLEET_SIGNING_KEY_FILE: '' }),
    fleet(['patch', 'upload', file, '--id', 'stranger.bin', '--key', strangerKeyFile], env),
    fleet(['patch', 'upload', file, '--id', 'empty.bin', '--key', emptyKeyFile], env),
    fleet(['patch', 'upload', large.file, '--id', 'read-only.bin'], await apiEnv(backend, 'read')),
  ]);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /cannot read \/nonexistent\/file\.bin/);
  t.is(badId.code, 2);
  t.regex(badId.stderr, /invalid patch id "\.\.\/up\.bin"/);
  t.is(unsigned.code, 2);
  t.regex(unsigned.stderr, /signature_required: .*pass --key FILE or set FLEET_SIGNING_KEY_FILE/);
  t.is(stranger.code, 2);
  t.regex(stranger.stderr, /signature_invalid: /);
  t.is(emptyKey.code, 2);
  t.regex(emptyKey.stderr, /the signing key .*empty\.key is empty/);
  t.is(readOnly.code, 6);
  t.regex(readOnly.stderr, /forbidden: this needs the operator role; the token has read/);
  t.notRegex(readOnly.stderr, /uploading/, 'the role is checked before the file is sent');

  for (const id of ['unsigned.bin', 'stranger.bin', 'read-only.bin']) {
    t.is(await backend.state.getPatch(id), null, `${id} is not in the catalog`);
    t.is(await backend.bucket.head(id), null, `${id} is not in the bucket`);
  }
});

test('devices filters and pages through the API', async (t) => {
  const backend = await startBackend(t);
  const env = await apiEnv(backend);
  await backend.upload('fix-a.bin', randomBytes(1000));
  await helloDevice(t, backend, 'cam_a1', { model: 'dome', firmware: '1.0.0', patches: ['fix-a.bin'] });
  await helloDevice(t, backend, 'cam_a2', { model: 'bullet', firmware: '2.0.0', patches: [] });
  await backend.tokens(['cam_b1', 'cam_b2', 'cam_b3']);

  const tags = await fleet(['device', 'tags', 'cam_a1', 'lobby', 'door'], env);
  t.is(tags.code, 0, tags.stderr);
  t.is(tags.stdout, 'cam_a1 tags: door, lobby\n');
  t.deepEqual(parsed(t, await fleet(['device', 'tags', 'cam_b2', 'door', '--json'], env)), { deviceId: 'cam_b2', tags: ['door'] });

  const all = ['cam_a1', 'cam_a2', 'cam_b1', 'cam_b2', 'cam_b3'];
  const cases: [string[], string[]][] = [
    [[], all],
    [['--online'], ['cam_a1', 'cam_a2']],
    [['--offline'], ['cam_b1', 'cam_b2', 'cam_b3']],
    [['--model', 'bullet'], ['cam_a2']],
    [['--firmware', '1.0.0'], ['cam_a1']],
    [['--tag', 'door'], ['cam_a1', 'cam_b2']],
    [['--patch', 'fix-a.bin'], ['cam_a1']],
    [['--missing', 'fix-a.bin'], ['cam_a2', 'cam_b1', 'cam_b2', 'cam_b3']],
    [['--search', '_b'], ['cam_b1', 'cam_b2', 'cam_b3']],
    [['--limit', '2'], ['cam_a1', 'cam_a2']],
    [['--page-size', '2'], all],
    [['--page-size', '1', '--search', 'b2'], ['cam_b2']],
    [['--limit', '3', '--page-size', '2'], ['cam_a1', 'cam_a2', 'cam_b1']],
  ];
  const runs = await Promise.all(cases.map(([args]) => fleet(['devices', '--json', ...args], env)));
  cases.forEach(([args, expected], i) => {
    const devices = parsed<DeviceRecord[]>(t, runs[i] as Run);
    t.deepEqual(devices.map((d) => d.id), expected, `devices ${args.join(' ')}`);
  });

  const text = await fleet(['devices'], env);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^DEVICE +ONLINE +LAST SEEN +MODEL +FIRMWARE +TAGS +PATCHES APPLIED$/m);
  t.regex(text.stdout, /^cam_a1 +yes +\d+s ago +dome +1\.0\.0 +door,lobby +fix-a\.bin$/m);
  t.regex(text.stdout, /^cam_b1 +no +never +- +- +- +-$/m);
  t.is(text.stdout.trim().split('\n').length, 6);

  const [both, zero, pageTooLarge] = await Promise.all([
    fleet(['devices', '--online', '--offline'], env),
    fleet(['devices', '--limit', '0'], env),
    fleet(['devices', '--page-size', '501'], env),
  ]);
  t.is(both.code, 2);
  t.regex(both.stderr, /--online and --offline exclude each other/);
  t.is(zero.code, 2);
  t.regex(zero.stderr, /invalid --limit "0"/);
  t.is(pageTooLarge.code, 2);
  t.regex(pageTooLarge.stderr, /invalid --page-size "501": expected a whole number from 1 to 500/);
});

test('device show, token, revoke, accept and tags', async (t) => {
  const backend = await startBackend(t, { FLEET_ENROLLMENT: 'auto' });
  const env = await apiEnv(backend);

  const issued = parsed<{ deviceId: string; token: string; ttlSeconds: number }>(t, await fleet(['device', 'token', 'cam_t1', '--json'], env));
  t.is(issued.deviceId, 'cam_t1');
  t.is(issued.ttlSeconds, 0);
  const device = await RawDevice.connect(backend.url, issued.token);
  device.hello('cam_t1');
  t.is((await device.next('welcome')).enrollment, 'accepted', 'a device with an issued token is provisioned');
  keepAlive(t, device);
  const plainToken = await fleet(['device', 'token', 'cam_t1', '--ttl', '60'], env);
  t.regex(plainToken.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);

  const show = await fleet(['device', 'show', 'cam_t1'], env);
  t.is(show.code, 0, show.stderr);
  t.regex(show.stdout, /^device +cam_t1$/m);
  t.regex(show.stdout, /^enrollment +accepted$/m);
  t.regex(show.stdout, /^online +yes \(replica /m);
  t.regex(show.stdout, /^model +test-cam$/m);
  t.regex(show.stdout, /^no updates recorded yet$/m);
  const record = parsed<DeviceRecord & { timeline: TimelineEntry[] }>(t, await fleet(['device', 'show', 'cam_t1', '--json'], env));
  t.is(record.online, true);
  t.is(record.firmware, '1.0.0');
  t.deepEqual(record.timeline, []);

  const revoke = await fleet(['device', 'revoke', 'cam_t1'], env);
  t.is(revoke.stdout, 'revoked every token of cam_t1 (generation now 1)\n');
  await device.closed;
  await t.throwsAsync(RawDevice.connect(backend.url, issued.token), { message: /401/ }, 'the revoked token is rejected');
  t.deepEqual(parsed(t, await fleet(['device', 'revoke', 'cam_t1', '--json'], env)), { deviceId: 'cam_t1', tokenGeneration: 2 });

  // With auto-enrolment a device that was never provisioned connects and waits, pending.
  const pending = await RawDevice.connect(backend.url, await backend.deviceTokens.issue('cam_p1', 0));
  pending.hello('cam_p1');
  t.is((await pending.next('welcome')).enrollment, 'pending');
  keepAlive(t, pending);
  const accept = await fleet(['device', 'accept', 'cam_p1'], env);
  t.is(accept.stdout, 'cam_p1 accepted\n');
  t.is((await backend.state.getDevice('cam_p1'))?.enrollment, 'accepted');
  t.deepEqual(parsed(t, await fleet(['device', 'accept', 'cam_p1', '--json'], env)), {
    deviceId: 'cam_p1',
    enrollment: 'accepted',
    before: 'accepted',
  });

  const clear = await fleet(['device', 'tags', 'cam_p1', 'gate'], env);
  t.is(clear.code, 0, clear.stderr);
  t.deepEqual((await backend.state.getDevice('cam_p1'))?.tags, ['gate']);
  const cleared = await fleet(['device', 'tags', 'cam_p1', '--clear'], env);
  t.is(cleared.stdout, 'cam_p1 has no tags now\n');
  t.deepEqual((await backend.state.getDevice('cam_p1'))?.tags, []);

  const [unknown, badId, noTags, unknownTags, badTtl] = await Promise.all([
    fleet(['device', 'show', 'cam_nope'], env),
    fleet(['device', 'show', '../x'], env),
    fleet(['device', 'tags', 'cam_p1'], env),
    fleet(['device', 'tags', 'cam_nope', 'x'], env),
    fleet(['device', 'token', 'cam_t1', '--ttl', '1.5'], env),
  ]);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /not_found: no device cam_nope/);
  t.is(badId.code, 2);
  t.regex(badId.stderr, /invalid device id "\.\.\/x"/);
  t.is(noTags.code, 2);
  t.regex(noTags.stderr, /no tags given/);
  t.is(unknownTags.code, 1);
  t.is(badTtl.code, 2);
});

test('status and watch follow a fleet applying a patch', async (t) => {
  const backend = await startBackend(t);
  const env = await apiEnv(backend);
  const ids = fleetDeviceIds({ count: 4, prefix: 'cam_w' });
  const tokens = await backend.tokens(ids);
  const { file } = await patchFile(t, 'cli-watch.bin', 50_000);
  t.is((await fleet(['patch', 'upload', file, '--json'], env)).code, 0);

  const before = parsed<FleetSummary>(t, await fleet(['status', '--json'], env));
  t.is(before.devices, 4);
  t.is(before.inFlight, 0);
  t.deepEqual(before.patches.map((p) => [p.id, p.counts]), [['cli-watch.bin', {}]]);
  const statusText = await fleet(['status'], env);
  t.regex(statusText.stdout, /^devices 4 +online 0 +in flight 0$/m);
  t.regex(statusText.stdout, /^ +\[\.+\] 0\/4 applied/m);
  t.regex(statusText.stdout, /^firmware +-$/m);

  // Both watchers start before the fleet; each ends by itself once every camera applied the patch.
  const watchText = fleet(['status', '--watch', '--until-done'], env);
  const watchJson = fleet(['watch', '--until-done', '--json'], env);
  const simulated = new SimulatedFleet({
    url: backend.url,
    count: ids.length,
    prefix: 'cam_w',
    applyMs: 20,
    signingPublicKey: TEST_SECURITY.publicKey,
    tokenFor: (id) => tokens.get(id) ?? '',
  });
  t.teardown(() => simulated.stop());
  await simulated.start();

  const text = await watchText;
  t.is(text.code, 0, text.stderr);
  const lines = text.stdout.trim().split('\n');
  t.regex(lines.at(-1) ?? '', /devices 4 +online \d +in flight 0 +applied: cli-watch\.bin 4\/4$/);
  t.regex(text.stderr, /rollout done: all 4 devices applied every offered patch \(1\)/);

  const json = await watchJson;
  t.is(json.code, 0, json.stderr);
  const summaries = json.stdout.trim().split('\n').map((line) => JSON.parse(line) as FleetSummary);
  t.true(summaries.every((s) => s.devices === 4), 'one summary of the whole fleet per line');
  t.deepEqual(summaries.at(-1)?.patches.map((p) => p.counts), [{ applied: 4 }]);
  t.is(summaries.at(-1)?.inFlight, 0);

  const after = await fleet(['status'], env);
  t.regex(after.stdout, /\[#+\] 4\/4 applied/);
  const show = await fleet(['device', 'show', 'cam_w0001'], env);
  t.regex(show.stdout, /^TIME +PATCH +STATE +ATTEMPT +DETAIL$/m);
  t.regex(show.stdout, /^\S+ +cli-watch\.bin +applied +1$/m);
  const record = parsed<DeviceRecord & { timeline: TimelineEntry[] }>(t, await fleet(['device', 'show', 'cam_w0001', '--json'], env));
  t.deepEqual(record.applied, ['cli-watch.bin']);
  t.is(record.timeline[0]?.state, 'applied', 'the timeline is newest first');
  t.true(record.timeline.some((e) => e.state === 'offered'));

  // A device that never connects keeps the rollout open: Ctrl-C ends the watch, with exit 5 under --until-done.
  await backend.tokens(['cam_w_idle']);
  // The replica reuses a summary for up to a second, so wait until it counts the new device.
  while (parsed<FleetSummary>(t, await fleet(['status', '--json'], env)).devices !== 5);
  const firstLine = (stdout: string) => stdout.includes('\n');
  const [interrupted, watching] = await Promise.all([
    fleet(['watch', '--until-done'], env, firstLine),
    fleet(['watch'], env, firstLine),
  ]);
  t.is(interrupted.code, 5, interrupted.stderr);
  t.regex(interrupted.stdout, /devices 5 .* cli-watch\.bin 4\/5/);
  t.is(watching.code, 0, watching.stderr);

  const misuse = await fleet(['status', '--until-done'], env);
  t.is(misuse.code, 2);
  t.regex(misuse.stderr, /--until-done needs --watch/);
});

test('API errors map to documented exit codes', async (t) => {
  const backend = await startBackend(t);
  const env = await apiEnv(backend);
  const readEnv = await apiEnv(backend, 'read');
  const port = await closedPort();
  const { file } = await patchFile(t, 'unreachable.bin', 100);

  const [noToken, badToken, readStatus, readRetire, unreachable, unreachableUpload, badServer, ftpServer, badEnvServer, devicePort] =
    await Promise.all([
      fleet(['status'], { ...env, FLEET_TOKEN: '' }),
      fleet(['status'], { ...env, FLEET_TOKEN: 'fop_unknown' }),
      fleet(['status', '--json'], readEnv),
      fleet(['patch', 'retire', 'x.bin'], readEnv),
      fleet(['status'], { ...env, FLEET_SERVER: `http://127.0.0.1:${port}` }),
      fleet(['patch', 'upload', file], { ...env, FLEET_SERVER: `http://127.0.0.1:${port}` }),
      fleet(['status', '--server', 'not a url'], env),
      fleet(['status', '--server', 'ftp://127.0.0.1:8081'], env),
      fleet(['status'], { ...env, FLEET_SERVER: '127.0.0.1:8081' }),
      fleet(['status', '--server', backend.baseUrl], env),
    ]);
  t.is(noToken.code, 6);
  t.regex(noToken.stderr, /^fleet: unauthorized: .*pass --token or set FLEET_TOKEN/);
  t.is(badToken.code, 6);
  t.regex(badToken.stderr, /unauthorized: unknown or revoked operator token/);
  t.is(readStatus.code, 0, readStatus.stderr);
  t.is(readRetire.code, 6);
  t.regex(readRetire.stderr, /forbidden: /);
  t.is(unreachable.code, 3);
  t.regex(unreachable.stderr, new RegExp(`cannot reach the fleet API at http://127\\.0\\.0\\.1:${port} \\(GET /v1/summary\\): ECONNREFUSED`));
  t.is(unreachableUpload.code, 3);
  t.regex(unreachableUpload.stderr, /cannot reach the fleet API/);
  t.is(badServer.code, 2);
  t.regex(badServer.stderr, /invalid --server "not a url": expected a URL such as http:\/\/127\.0\.0\.1:8081/);
  t.is(ftpServer.code, 2);
  t.regex(ftpServer.stderr, /expected an http:\/\/ or https:\/\/ URL/);
  t.is(badEnvServer.code, 2);
  t.regex(badEnvServer.stderr, /invalid FLEET_SERVER "127\.0\.0\.1:8081"/);
  t.is(devicePort.code, 1);
  t.regex(devicePort.stderr, /returned HTTP 404 without an operator API error body; check that --server points at the operator API port/);

  // --server and --token work before the command name, and after it, where they win over the variables.
  const elsewhere = { ...env, FLEET_SERVER: `http://127.0.0.1:${port}`, FLEET_TOKEN: '' };
  const token = env.FLEET_TOKEN ?? '';
  const [globalOptions, commandOptions] = await Promise.all([
    fleet(['--server', backend.apiUrl, '--token', token, 'status', '--json'], elsewhere),
    fleet(['devices', '--server', backend.apiUrl, '--token', token, '--json'], elsewhere),
  ]);
  t.is(parsed<FleetSummary>(t, globalOptions).devices, 0);
  t.deepEqual(parsed(t, commandOptions), []);
});

test('storage commands bootstrap tokens and play a device', async (t) => {
  const backend = await startBackend(t);
  const storage = storageEnv(backend);
  const created = parsed<{ name: string; role: string; token: string }>(t, await fleet(['operator', 'create', 'ci', '--role', 'operator', '--json'], storage));
  t.is(created.role, 'operator');
  const listed = parsed<{ name: string }[]>(t, await fleet(['operator', 'list', '--json'], storage));
  t.deepEqual(listed.map((o) => o.name), ['ci']);

  const env = { FLEET_SERVER: backend.apiUrl, FLEET_TOKEN: created.token, FLEET_SIGNING_KEY_FILE: signingKeyFile };
  const { file } = await patchFile(t, 'cli-play.bin', 10_000);
  t.is((await fleet(['patch', 'upload', file], env)).code, 0);
  const token = (await fleet(['device', 'token', 'cam_play'], env)).stdout.trim();

  // `fleet device ID` plays one camera; with a token it needs no Redis. Stopped once it applied the patch.
  const stateFile = join(await mkdtemp(join(tmpdir(), 'fleet-cli-')), 'cam_play.json');
  t.teardown(() => rm(stateFile, { force: true }));
  const play = await fleet(
    ['device', 'cam_play', '--url', backend.url, '--state', stateFile, '--apply-ms', '10', '--token', token],
    { ...securityEnv(), REDIS_URL: 'redis://127.0.0.1:1' },
    (stdout) => stdout.includes('patch applied'),
  );
  t.is(play.code, 0, play.stderr);
  t.is(play.stdout.match(/patch applied/g)?.length, 1, 'one log line per applied patch');
  t.deepEqual((JSON.parse(await readFile(stateFile, 'utf8')) as { applied: string[] }).applied, ['cli-play.bin']);

  // The watch ends once the replica recorded the report, which may come after the camera logged it.
  const done = await fleet(['watch', '--until-done'], env);
  t.is(done.code, 0, done.stderr);
  const devices = parsed<DeviceRecord[]>(t, await fleet(['devices', '--json'], env));
  t.deepEqual(devices.map((d) => [d.id, d.applied]), [['cam_play', ['cli-play.bin']]]);

  const revoked = await fleet(['operator', 'revoke', 'ci'], storage);
  t.is(revoked.code, 0, revoked.stderr);
  const revokedAgain = await fleet(['operator', 'revoke', 'ci'], storage);
  t.is(revokedAgain.code, 1, 'an unknown operator is not found, not a usage error');
  t.regex(revokedAgain.stderr, /^fleet: not_found: no operator token named ci$/m);
  const rejected = await fleet(['status'], env);
  t.is(rejected.code, 6);
});

test('usage errors exit 2 with a short hint', async (t) => {
  const env = { FLEET_SERVER: 'http://127.0.0.1:1', REDIS_URL: 'redis://127.0.0.1:1' };
  const cases: [string[], RegExp, string][] = [
    [['patch', 'upload'], /^fleet: usage: missing required argument 'file'$/m, 'fleet patch upload'],
    [['operator', 'create', 'x'], /^fleet: usage: required option '--role <role>' not specified$/m, 'fleet operator create'],
    [['status', '--bogus'], /^fleet: usage: unknown option '--bogus'$/m, 'fleet status'],
    [['bogus'], /^fleet: usage: unknown command 'bogus'$/m, 'fleet'],
    [['devices', 'extra'], /^fleet: usage: too many arguments for 'devices'/m, 'fleet devices'],
  ];
  const runs = await Promise.all(cases.map(([args]) => fleet(args, env)));
  cases.forEach(([args, message, path], i) => {
    const run = runs[i] as Run;
    const name = `fleet ${args.join(' ')}`;
    t.is(run.code, 2, name);
    t.regex(run.stderr, message, name);
    t.true(run.stderr.includes(`run '${path} --help' for the usage`), `${name} names its --help`);
    t.notRegex(run.stderr, /Usage:|Options:/, `${name} prints no help text`);
    t.is(run.stdout, '', name);
  });

  const [help, commandHelp, version, noSubcommand] = await Promise.all([
    fleet(['--help'], env),
    fleet(['patch', 'upload', '--help'], env),
    fleet(['--version'], env),
    fleet(['patch'], env),
  ]);
  t.is(help.code, 0, help.stderr);
  t.regex(help.stdout, /^Usage: fleet /);
  t.is(commandHelp.code, 0, commandHelp.stderr);
  t.regex(commandHelp.stdout, /^Usage: fleet patch upload /);
  t.is(version.code, 0, version.stderr);
  t.regex(version.stdout, /^\d+\.\d+\.\d+\n$/);
  t.is(noSubcommand.code, 2, 'a command without its subcommand is invalid usage');
  t.regex(noSubcommand.stderr, /^Usage: fleet patch /);
});

test('device commands reject a non-WebSocket --url', async (t) => {
  const env = { REDIS_URL: 'redis://127.0.0.1:1' };
  const [http, garbage, simulate, fromEnv] = await Promise.all([
    fleet(['device', 'cam_url', '--url', 'http://127.0.0.1:8080/device', '--token', 't'], env),
    fleet(['device', 'cam_url', '--url', 'not a url', '--token', 't'], env),
    fleet(['simulate', '--url', 'https://127.0.0.1:8080/device'], env),
    fleet(['device', 'cam_url', '--token', 't'], { ...env, FLEET_DEVICE_URL: 'http://127.0.0.1:8080/device' }),
  ]);
  for (const run of [http, garbage, simulate, fromEnv]) {
    t.is(run.code, 2, run.stderr);
    t.regex(run.stderr, /^fleet: invalid device URL ".*" \(--url or FLEET_DEVICE_URL\): expected a ws:\/\/ or wss:\/\/ URL/);
    t.notRegex(run.stderr, /TypeError|\n +at /, 'no stack trace');
  }
});

test('device logs why its upgrade was rejected', async (t) => {
  const backend = await startBackend(t);
  const play = await fleet(
    ['device', 'cam_rejected', '--url', backend.url, '--token', 'not-a-token', '--state', join(keyDir, 'cam_rejected.json')],
    { ...securityEnv(), REDIS_URL: 'redis://127.0.0.1:1' },
    (stdout) => stdout.includes('"reason":"token_invalid'),
  );
  const line = play.stdout.split('\n').find((l) => l.includes('server rejected the WebSocket upgrade')) ?? '{}';
  const logged = JSON.parse(line) as { status?: number; error?: string; message?: string };
  t.is(logged.status, 401);
  t.is(logged.error, 'token_invalid');
  t.true((logged.message ?? '').length > 0, 'the server’s message is logged');
  t.regex(play.stdout, /"reason":"token_invalid: [^"]+"/, 'the close that follows carries the code as its reason');
});

/** Starts `fleet ARGS` and returns its process, with a promise that resolves once stdout passes `check`. */
function startFleet(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters: { check: (stdout: string) => boolean; resolve: () => void }[] = [];
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
    for (const waiter of waiters.filter((w) => w.check(stdout))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  });
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  const output = (check: (stdout: string) => boolean) =>
    new Promise<void>((resolve) => (check(stdout) ? resolve() : waiters.push({ check, resolve })));
  return { child, done, output, stdout: () => stdout };
}

const lineCount = (text: string) => text.split('\n').length - 1;

test('watch prints a line per change only', async (t) => {
  const backend = await startBackend(t);
  const env = await apiEnv(backend);

  // The text watcher subscribes first, so it gets every summary that the JSON watcher gets. Once the JSON
  // watcher printed three summaries of the unchanging fleet, the text watcher got them too.
  const text = startFleet(['watch'], env);
  await text.output((stdout) => lineCount(stdout) >= 1);
  const json = startFleet(['watch', '--json'], env);
  await json.output((stdout) => lineCount(stdout) >= 3);
  json.child.kill('SIGINT');
  text.child.kill('SIGINT');
  const [textRun, jsonRun] = await Promise.all([text.done, json.done]);

  t.is(jsonRun.code, 0, jsonRun.stderr);
  t.is(textRun.code, 0, textRun.stderr);
  t.is(lineCount(textRun.stdout), 1, `one line for an unchanging fleet, got:\n${textRun.stdout}`);
  t.regex(textRun.stdout, /devices 0 +online 0 +in flight 0/);
});

test('watch ends quietly when the reader closes stdout', async (t) => {
  const backend = await startBackend(t);
  const env = await apiEnv(backend);

  // Like `fleet watch --json | head -n 1`: the reader goes away after the first line, the next write fails.
  const watch = startFleet(['watch', '--json'], env);
  await watch.output((stdout) => lineCount(stdout) >= 1);
  watch.child.stdout.destroy();
  const run = await watch.done;
  t.is(run.code, 0);
  t.is(run.stderr, '', 'no EPIPE error or stack trace');
});

test('local-s3 serves a bucket until Ctrl-C', async (t) => {
  const local = startFleet(['local-s3', '--port', '0', '--bucket', 'cli-local'], {});
  await local.output((stdout) => stdout.includes('export S3_BUCKET='));
  const exports = new Map([...local.stdout().matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));
  t.is(exports.get('S3_BUCKET'), 'cli-local');
  t.regex(exports.get('S3_ENDPOINT') ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);

  const bucket = new PatchBucket({
    endpoint: exports.get('S3_ENDPOINT') ?? '',
    publicEndpoint: exports.get('S3_ENDPOINT') ?? '',
    region: 'us-east-1',
    bucket: 'cli-local',
    accessKey: exports.get('S3_ACCESS_KEY') ?? '',
    secretKey: exports.get('S3_SECRET_KEY') ?? '',
  });
  try {
    await t.notThrowsAsync(bucket.ping(), 'the bucket exists');
  } finally {
    bucket.destroy();
  }

  local.child.kill('SIGINT');
  const stopped = await local.done;
  t.is(stopped.code, 0, stopped.stderr);
  t.regex(stopped.stderr, /local S3 server \(s3rver, for local use only\)/);

  const [badPort, badBucket] = await Promise.all([
    fleet(['local-s3', '--port', '70000'], {}),
    fleet(['local-s3', '--port', '0', '--bucket', 'Bad_Name'], {}),
  ]);
  t.is(badPort.code, 2);
  t.regex(badPort.stderr, /invalid --port "70000"/);
  t.is(badBucket.code, 2);
  t.regex(badBucket.stderr, /invalid bucket name "Bad_Name"/);
});
