import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from './redis-server.ts';

export interface BackendProcess {
  port: number;
  pid: number;
  url: string;
  baseUrl: string;
  /** Operator API, dashboard and /metrics. */
  apiBaseUrl: string;
  process: ChildProcess;
  /** Sends SIGTERM and waits for the exit. */
  stop(): Promise<void>;
  /** Sends SIGKILL and waits for the exit. */
  kill(): Promise<void>;
}

// From source this module is main.ts's sibling in TypeScript, run through tsx; from a build both are .js.
const runningFromSource = import.meta.url.endsWith('.ts');
const cliEntry = fileURLToPath(new URL(runningFromSource ? '../cli/main.ts' : '../cli/main.js', import.meta.url));

/**
 * Starts `fleet serve` as a child process on a free loopback port and waits until /readyz answers 200.
 * Its JSON log lines go to `logFile`.
 */
export async function startBackendProcess(
  env: Record<string, string>,
  logFile: string,
  port?: number,
): Promise<BackendProcess> {
  port ??= await freePort();
  const apiPort = await freePort();
  const args = runningFromSource ? ['--import', 'tsx', cliEntry, 'serve'] : [cliEntry, 'serve'];
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, args, {
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
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitReady(baseUrl, child, logFile);
  const signal = async (name: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
    await exited;
  };
  return {
    port,
    pid: child.pid ?? 0,
    url: `ws://127.0.0.1:${port}/device`,
    baseUrl,
    apiBaseUrl: `http://127.0.0.1:${apiPort}`,
    process: child,
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
  };
}

async function waitReady(baseUrl: string, child: ChildProcess, logFile: string): Promise<void> {
  for (let tries = 0; tries < 300; tries++) {
    if (child.exitCode !== null) {
      throw new Error(`the backend exited with code ${child.exitCode} before it was ready; see ${logFile}`);
    }
    try {
      const response = await fetch(`${baseUrl}/readyz`);
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`the backend was not ready within 30 s; see ${logFile}`);
}
