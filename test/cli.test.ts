import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { securityEnv, startBackend, TEST_SECURITY, type TestBackend } from './helpers/backend.ts';

const signingKeyFile = join(tmpdir(), `fleet-cli-signing-${process.pid}.key`);
test.before(() => writeFile(signingKeyFile, TEST_SECURITY.privateKey, { mode: 0o600 }));
test.after.always(() => rm(signingKeyFile, { force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cliEnv(backend: TestBackend): Record<string, string> {
  const { config } = backend;
  return {
    REDIS_URL: config.redisUrl,
    FLEET_KEY_PREFIX: config.keyPrefix,
    S3_ENDPOINT: config.s3.endpoint,
    S3_BUCKET: config.s3.bucket,
    S3_ACCESS_KEY: config.s3.accessKey,
    S3_SECRET_KEY: config.s3.secretKey,
    ...securityEnv(),
    FLEET_SIGNING_KEY_FILE: signingKeyFile,
  };
}

function fleet(args: string[], env: Record<string, string>, until?: (stdout: string, stderr: string) => boolean): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    // One SIGINT only: like a second Ctrl-C, another one would end the process before it cleans up.
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

test('patch upload, list, devices and status in both output modes', async (t) => {
  const backend = await startBackend(t);
  const env = cliEnv(backend);
  const dir = await mkdtemp(join(tmpdir(), 'fleet-cli-'));
  const file = join(dir, 'cli-fix-1.bin');
  await writeFile(file, randomBytes(100_000));

  const upload = await fleet(['patch', 'upload', file, '--json'], env);
  t.is(upload.code, 0, upload.stderr);
  const uploaded = JSON.parse(upload.stdout) as { id: string; size: number; sha256: string };
  t.is(uploaded.id, 'cli-fix-1.bin');
  t.is(uploaded.size, 100_000);

  const again = await fleet(['patch', 'upload', file], env);
  t.is(again.code, 4);
  t.regex(again.stderr, /already exists/);

  const list = await fleet(['patch', 'list', '--json'], env);
  t.is(list.code, 0);
  const patches = JSON.parse(list.stdout) as { id: string; sha256: string; state: string }[];
  t.deepEqual(patches.map((p) => [p.id, p.sha256, p.state]), [['cli-fix-1.bin', uploaded.sha256, 'ready']]);
  const listText = await fleet(['patch', 'list'], env);
  t.regex(listText.stdout, /PATCH\s+STATE\s+SIZE/);
  t.regex(listText.stdout, /cli-fix-1\.bin\s+ready\s+97\.7 KiB/);

  // One camera played by `fleet device`, stopped once it applied the patch.
  const stateFile = join(dir, 'cam_cli_1.json');
  const device = await fleet(
    ['device', 'cam_cli_1', '--url', backend.url, '--state', stateFile, '--apply-ms', '10'],
    env,
    (stdout) => stdout.includes('patch applied'),
  );
  t.is(device.code, 0, device.stderr);
  const saved = JSON.parse(await readFile(stateFile, 'utf8')) as { applied: string[] };
  t.deepEqual(saved.applied, ['cli-fix-1.bin']);

  const devices = await fleet(['devices', '--json'], env);
  const records = JSON.parse(devices.stdout) as { id: string; applied: string[] }[];
  t.deepEqual(records.map((d) => [d.id, d.applied]), [['cam_cli_1', ['cli-fix-1.bin']]]);
  const devicesText = await fleet(['devices'], env);
  t.regex(devicesText.stdout, /DEVICE\s+ONLINE\s+LAST SEEN/);
  t.regex(devicesText.stdout, /cam_cli_1\s+no\s+/);

  const status = await fleet(['status', '--json'], env);
  const summary = JSON.parse(status.stdout) as { devices: number; patches: { id: string; counts: Record<string, number> }[] };
  t.is(summary.devices, 1);
  t.deepEqual(summary.patches[0]?.counts, { applied: 1 });
  const statusText = await fleet(['status'], env);
  t.regex(statusText.stdout, /1\/1 applied/);

  // Restarted with the same state file, the camera reports the patch in hello and applies nothing again.
  const restarted = await fleet(
    ['device', 'cam_cli_1', '--url', backend.url, '--state', stateFile],
    env,
    (stdout) => stdout.includes('camera started'),
  );
  t.notRegex(restarted.stdout, /patch applied/);
});

test('CLI errors name the problem and use documented exit codes', async (t) => {
  const backend = await startBackend(t);
  const env = cliEnv(backend);
  const missing = await fleet(['patch', 'upload', '/nonexistent/file.bin'], env);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /cannot read \/nonexistent\/file\.bin/);

  const dir = await mkdtemp(join(tmpdir(), 'fleet-cli-'));
  const file = join(dir, 'ok.bin');
  await writeFile(file, 'x');
  const badId = await fleet(['patch', 'upload', file, '--id', '../up.bin'], env);
  t.is(badId.code, 2);
  t.regex(badId.stderr, /invalid patch id/);

  const noRedis = await fleet(['status'], { ...env, REDIS_URL: 'redis://127.0.0.1:1' });
  t.is(noRedis.code, 3);
  t.regex(noRedis.stderr, /cannot reach Redis/);

  const noConfig = await fleet(['status'], { ...env, S3_ENDPOINT: 'not a url' });
  t.is(noConfig.code, 2);
  t.regex(noConfig.stderr, /S3_ENDPOINT/);
});
