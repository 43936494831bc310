import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../local/redis-server.ts';
import { exited, stopChild } from './processes.ts';
import { sleep } from './stats.ts';

/** One backend replica started from the JavaScript build. */
export interface BuiltReplica {
  port: number;
  pid: number;
  /** Device endpoint. */
  url: string;
  process: ChildProcess;
  /** Sends SIGTERM and waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Starts `node BUILD/cli/main.js serve` on free loopback ports and waits until /readyz answers 200, as
 * local/backend-process.ts does for the sources. That helper cannot start a build: it names
 * `../cli/main.ts` in a string, which the compiler leaves as it is, so from dist/ it looks for a .ts file.
 * The replica's output goes to `logFile`.
 */
export async function startBuiltReplica(buildDir: string, env: Record<string, string>, logFile: string): Promise<BuiltReplica> {
  // A port that freePort() found free can be taken before the replica binds it, by any process on the
  // machine; the replica then exits at once, and another pair of ports is tried.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(buildDir, env, logFile);
    } catch (err) {
      const taken = err instanceof PortTakenError;
      if (!taken || attempt === 3) throw err;
    }
  }
}

class PortTakenError extends Error {}

async function startOnce(buildDir: string, env: Record<string, string>, logFile: string): Promise<BuiltReplica> {
  const port = await freePort();
  const apiPort = await freePort();
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, [join(buildDir, 'cli/main.js'), 'serve'], {
    env: {
      ...process.env,
      ...env,
      FLEET_HOST: '127.0.0.1',
      FLEET_PORT: String(port),
      FLEET_API_PORT: String(apiPort),
      LOG_FORMAT: 'json',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  child.stderr?.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-2000);
  });
  for (let tries = 0; ; tries++) {
    if (child.exitCode !== null) {
      await exited(child);
      if (/port is taken/.test(output)) throw new PortTakenError(output);
      throw new Error(`the backend exited with code ${child.exitCode} before it was ready; see ${logFile}`);
    }
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (tries >= 300) {
      await stopChild(child, 'SIGKILL');
      throw new Error(`the backend was not ready within 30 s; see ${logFile}`);
    }
    await sleep(100);
  }
  return {
    port,
    pid: child.pid ?? 0,
    url: `ws://127.0.0.1:${port}/device`,
    process: child,
    async stop() {
      await stopChild(child, 'SIGTERM', 30_000);
      await exited(child);
    },
  };
}
