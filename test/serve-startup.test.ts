import { spawn } from 'node:child_process';
import test from 'ava';
import { localS3, REDIS_URL, securityEnv, uniqueName } from './helpers/backend.ts';

function runServe(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'serve'], {
      env: { ...process.env, LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

test('serve exits 2 naming the variable when configuration is invalid', async (t) => {
  const { code, stderr } = await runServe({ S3_ENDPOINT: '', S3_ACCESS_KEY: 'a', S3_SECRET_KEY: 'b' });
  t.is(code, 2);
  t.regex(stderr, /S3_ENDPOINT: is required/);
});

test('serve refuses the uWebSockets.js JavaScript fallback', async (t) => {
  const s3 = await localS3();
  const { code, stderr } = await runServe({
    UWS_USE_FALLBACK: '1',
    REDIS_URL,
    S3_ENDPOINT: s3.endpoint,
    S3_ACCESS_KEY: s3.accessKey,
    S3_SECRET_KEY: s3.secretKey,
    FLEET_KEY_PREFIX: `test:${uniqueName('fallback')}:`,
    FLEET_PORT: '0',
    ...securityEnv(),
  });
  t.is(code, 1);
  t.regex(stderr, /native uWebSockets\.js binary did not load/);
});
