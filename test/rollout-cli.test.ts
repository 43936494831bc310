import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import test from 'ava';
import type { Rollout } from '../storage/rollouts.ts';
import { startBackend, type TestBackend } from './helpers/backend.ts';
import { createRollout, finish, offersOf, readRollout, until, welcomeAll } from './helpers/rollouts.ts';
import { renderRollout } from '../cli/rollout.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Starts `fleet ARGS` against the backend's operator API, with Redis and S3 unreachable so that only the API
 * is used. `stdout()` returns what it printed so far.
 */
async function start(backend: TestBackend, args: string[]): Promise<{ stdout: () => string; done: Promise<Run> }> {
  const env = {
    ...process.env,
    FLEET_SERVER: backend.apiUrl,
    FLEET_TOKEN: await backend.operatorToken('operator'),
    REDIS_URL: 'redis://127.0.0.1:1',
    S3_ENDPOINT: 'http://127.0.0.1:1',
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<Run>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { stdout: () => stdout, done };
}

async function fleet(backend: TestBackend, args: string[]): Promise<Run> {
  return (await start(backend, args)).done;
}

test('rollout commands create and control', async (t) => {
  const backend = await startBackend(t);
  const devices = await welcomeAll(backend, ['cam_cli_r1', 'cam_cli_r2']);
  const bad = await fleet(backend, ['rollout', 'create', 'cli-r1.bin', '--waves', '50%,10%']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /invalid --waves: each wave must be larger than the one before/);

  const created = await fleet(backend, ['rollout', 'create', 'cli-r1.bin', '--max-in-flight', '1', '--failure-threshold', '50%', '--json']);
  t.is(created.code, 0, created.stderr);
  const rollout = JSON.parse(created.stdout) as Rollout;
  t.is(rollout.strategy.maxInFlight, 1);
  t.is(rollout.strategy.failureThreshold, '50%');
  const again = await fleet(backend, ['rollout', 'create', 'cli-r1.bin']);
  t.is(again.code, 4, 'a second rollout of the patch is a conflict');

  const list = await fleet(backend, ['rollout', 'list']);
  t.regex(list.stdout, new RegExp(`^${rollout.id}\\s+cli-r1\\.bin\\s+running\\s+0/2`, 'm'));
  t.is((await fleet(backend, ['rollout', 'pause', rollout.id, '--reason', 'lunch'])).stdout, `rollout ${rollout.id} is paused\n`);
  const shown = await fleet(backend, ['rollout', 'show', 'cli-r1.bin']);
  t.regex(shown.stdout, /: paused \(lunch\)/);
  t.regex(shown.stdout, /not started +\[#+\.*\] 2/);
  t.is((await fleet(backend, ['rollout', 'resume', rollout.id, '--failure-threshold', '2'])).stdout, `rollout ${rollout.id} is running\n`);
  t.is((await fleet(backend, ['rollout', 'cancel', rollout.id])).stdout, `rollout ${rollout.id} is cancelled\n`);
  const resumeCancelled = await fleet(backend, ['rollout', 'resume', rollout.id]);
  t.is(resumeCancelled.code, 4);
  t.regex(resumeCancelled.stderr, /rollout_cancelled/);
  t.is((await fleet(backend, ['rollout', 'show', 'r999'])).code, 1);
  for (const device of devices) device.close();
});

test('rollout watch ends on completion or pause', async (t) => {
  const backend = await startBackend(t);
  const devices = await welcomeAll(backend, ['cam_watch_1', 'cam_watch_2', 'cam_watch_3']);
  const created = JSON.parse((await fleet(backend, ['rollout', 'create', 'watch-1.bin', '--max-in-flight', '2', '--json'])).stdout) as Rollout;
  await backend.upload('watch-1.bin', randomBytes(500));
  const watching = await start(backend, ['rollout', 'watch', created.id, '--interval-ms', '200']);
  await until(t, 'the first drawing', () => watching.stdout(), (text) => /waiting +\[#+\.*\] 1/.test(text));
  // Apply every offer as it comes; the third device gets its offer once a slot frees.
  const finished = new Set<unknown>();
  await until(t, 'three applied', async () => {
    for (const { device, offer } of offersOf(devices)) {
      if (finished.has(offer)) continue;
      finished.add(offer);
      await finish(device, offer, 'applied');
    }
    return finished.size;
  }, (n) => n === 3);
  const watched = await watching.done;
  t.is(watched.code, 0, watched.stderr);
  t.regex(watched.stdout, /: completed\n/);
  t.regex(watched.stdout, /applied +\[#{30}\] 3\n\n$/);

  const failing = JSON.parse((await fleet(backend, ['rollout', 'create', 'watch-2.bin', '--failure-threshold', '1', '--json'])).stdout) as Rollout;
  await backend.upload('watch-2.bin', randomBytes(500));
  const [first] = await until(t, 'an offer', () => offersOf(devices, 'watch-2.bin'), (o) => o.length > 0);
  if (first) await finish(first.device, first.offer, 'rejected');
  const paused = await fleet(backend, ['rollout', 'watch', failing.id, '--interval-ms', '200']);
  t.is(paused.code, 5);
  t.regex(paused.stderr, /is paused: failure threshold reached/);
  for (const device of devices) device.close();
});

test('rollout create counts targets and warns on none', async (t) => {
  const backend = await startBackend(t);
  const devices = await welcomeAll(backend, ['cam_cli_one']);

  const all = await fleet(backend, ['rollout', 'create', 'one.bin']);
  t.is(all.code, 0, all.stderr);
  t.regex(all.stdout, /^targets 1 device; no limits$/m);
  t.is(all.stderr, '', 'no warning for a rollout that targets a device');

  const none = await fleet(backend, ['rollout', 'create', 'tagged.bin', '--tags', 'nowhere']);
  t.is(none.code, 0, none.stderr);
  t.regex(none.stdout, /^targets 0 devices; no limits$/m);
  t.regex(none.stderr, /^fleet: warning: no known device that lacks tagged\.bin matches the --devices, --tags, --models or --firmware of rollout \S+$/m);
  for (const device of devices) device.close();
});

test('rollout show names waves and late targets plainly', async (t) => {
  const backend = await startBackend(t);
  await backend.state.provisionDevice('cam_show_1');
  const created = await createRollout(backend, { patchId: 'show-1.bin', waves: ['1'] });
  const rollout = await readRollout(backend, created.id);
  t.regex(renderRollout(rollout), /^targets 1 device; waves 1 \(1 devices\), wave 1 of 1 open$/m);
  t.regex(renderRollout({ ...rollout, wave: 2 }), /waves 1 \(1 devices\), all waves open$/m);
  const grown = { ...rollout, counts: { ...rollout.counts, applied: 8 } };
  t.regex(renderRollout(grown), /^targets 1 device at creation, 8 counted since; /m);
});
