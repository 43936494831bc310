import { spawn } from 'node:child_process';
import test from 'ava';

interface DemoReport {
  applied: number;
  inFlightAtEnd: number;
  maxInFlightSeen: number;
  rolloutState: string | null;
  rolloutReason: string | null;
  perPatch: { rolloutId: string | null }[];
}

/** Runs `fleet demo ARGS --json` with its own Redis and S3 store and returns its exit code and summary. */
function demo(args: string[]): Promise<{ code: number | null; report: DemoReport | null; stderr: string }> {
  const env: Record<string, string | undefined> = { ...process.env };
  // The demo starts a private Redis and S3 store when these are unset.
  for (const name of ['REDIS_URL', 'S3_ENDPOINT', 'FLEET_KEY_PREFIX']) delete env[name];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'demo', ...args, '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      resolve({ code, report: last.startsWith('{') ? (JSON.parse(last) as DemoReport) : null, stderr });
    });
  });
}

test('demo --max-in-flight stays under the cap', async (t) => {
  t.timeout(120_000);
  const { code, report, stderr } = await demo(['--devices', '40', '--patch-mb', '0.2', '--max-in-flight', '5']);
  t.is(code, 0, stderr);
  t.is(report?.applied, 80);
  t.true((report?.maxInFlightSeen ?? 99) <= 5, `max in flight ${report?.maxInFlightSeen}`);
  t.is(report?.rolloutState, 'completed');
  t.true(report?.perPatch.every((p) => p.rolloutId !== null));
});

test('demo --failure-threshold ends paused, exit 5', async (t) => {
  t.timeout(120_000);
  const { code, report, stderr } = await demo(['--devices', '40', '--patch-mb', '0.2', '--failure-rate', '0.3', '--failure-threshold', '10%']);
  t.is(code, 5, stderr);
  t.is(report?.rolloutState, 'paused');
  t.regex(report?.rolloutReason ?? '', /^failure threshold reached: \d+ of \d+ devices/);
  t.is(report?.inFlightAtEnd, 0);
  const invalid = await demo(['--devices', '2', '--failure-threshold', '0%']);
  t.is(invalid.code, 2);
  t.regex(invalid.stderr, /invalid --failure-threshold/);
});
