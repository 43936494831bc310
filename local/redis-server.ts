import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export interface LocalRedis {
  url: string;
  port: number;
  pid: number;
  dir: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Returns a TCP port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function redisServerInstalled(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Starts a private redis-server on a free loopback port, with its files in a fresh temporary folder.
 * `appendonly` turns on AOF persistence, for tests that restart Redis and expect the data back.
 */
export async function startLocalRedis(options: { port?: number; appendonly?: boolean; dir?: string } = {}): Promise<LocalRedis> {
  if (!redisServerInstalled()) {
    throw new Error(
      'redis-server is not installed and REDIS_URL is not set; install it (Debian: apt-get install redis-server) ' +
        'or point REDIS_URL at a running Redis',
    );
  }
  const port = options.port ?? (await freePort());
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'fleet-redis-')));
  const child = spawn(
    'redis-server',
    [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', options.appendonly ? 'yes' : 'no',
      '--dir', dir,
      '--daemonize', 'no',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const url = `redis://127.0.0.1:${port}`;
  await waitForRedis(url, child);
  return {
    url,
    port,
    pid: child.pid ?? 0,
    dir,
    process: child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      if (!options.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

async function waitForRedis(url: string, child: ChildProcess): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  for (let tries = 0; tries < 100; tries++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}: ${stderr.trim()}`);
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined); // connect() rejects with the same error; retried below.
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      probe.disconnect();
    }
  }
  throw new Error(`redis-server on ${url} did not answer within 5 s`);
}
