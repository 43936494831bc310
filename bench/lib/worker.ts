import { fork, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exited, stopChild } from './processes.ts';

/**
 * Request/reply over the IPC channel of a forked benchmark process. A command map names each command with
 * its parameter and result types, and both sides are typed by the same map.
 */
export type CommandMap = Record<string, { params: unknown; result: unknown }>;

interface Request {
  id: number;
  command: string;
  params: unknown;
}

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

interface Ready {
  ready: true;
  info: Record<string, unknown>;
}

/** Lifetime after which a worker exits by itself, so no load loop outlives a crashed harness. */
export const DEFAULT_MAX_LIFETIME_S = 1800;

/** Parent side: a child process that runs commands and replies. */
export class Worker<C extends CommandMap> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private exitError: Error | null = null;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
    readonly info: Record<string, unknown>,
  ) {
    child.on('message', (message: Reply) => {
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.result);
      else waiter.reject(new Error(`${name}: ${message.error}`));
    });
    child.once('exit', (code, signal) => {
      this.exitError = new Error(`${name} exited (code ${code}, signal ${signal}); see ${logFile}`);
      for (const waiter of this.pending.values()) waiter.reject(this.exitError);
      this.pending.clear();
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /**
   * Forks `script` under tsx with an IPC channel, sends its output to a log file in `logDir` and resolves
   * when the worker reports that it is ready.
   */
  static async start<C extends CommandMap>(
    name: string,
    script: URL,
    options: { logDir: string; args?: string[]; env?: Record<string, string>; execArgv?: string[] },
  ): Promise<Worker<C>> {
    const logFile = join(options.logDir, `${name}.log`);
    const child = fork(fileURLToPath(script), options.args ?? [], {
      execArgv: ['--import', 'tsx', ...(options.execArgv ?? [])],
      env: { ...process.env, BENCH_MAX_LIFETIME_S: String(DEFAULT_MAX_LIFETIME_S), ...options.env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const log = createWriteStream(logFile, { flags: 'a' });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    const info = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start within 30 s; see ${logFile}`)), 30_000);
      child.once('message', (message: Ready) => {
        clearTimeout(timer);
        resolve(message.info);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited with code ${code} while starting; see ${logFile}`));
      });
    });
    return new Worker<C>(name, child, logFile, info);
  }

  /** Sends a command and resolves with its result; rejects after `timeoutMs` or when the worker exits. */
  request<K extends keyof C & string>(command: K, params: C[K]['params'], timeoutMs = 120_000): Promise<C[K]['result']> {
    if (this.exitError) return Promise.reject(this.exitError);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: ${command} timed out after ${timeoutMs} ms; see ${this.logFile}`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as C[K]['result']);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.child.send({ id, command, params } satisfies Request);
    });
  }

  /** Closes the IPC channel, which makes the worker exit, and waits; SIGTERM if it has not exited in 10 s. */
  async stop(): Promise<void> {
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => void stopChild(this.child), 10_000);
    await exited(this.child);
    clearTimeout(timer);
  }
}

export type CommandHandlers<C extends CommandMap> = {
  [K in keyof C]: (params: C[K]['params']) => Promise<C[K]['result']> | C[K]['result'];
};

/**
 * Child side: runs the handlers on request and reports ready with `info`. The process runs `cleanup` and
 * exits when the parent closes the channel or dies, and exits in any case after BENCH_MAX_LIFETIME_S.
 */
export function serveCommands<C extends CommandMap>(
  handlers: CommandHandlers<C>,
  info: Record<string, unknown> = {},
  cleanup: () => Promise<void> = async () => undefined,
): void {
  const send = process.send?.bind(process);
  if (!send) {
    process.stderr.write('this program is a benchmark worker: run it through `npm run bench`\n');
    process.exit(2);
  }
  process.on('message', (request: Request) => {
    const handler = handlers[request.command as keyof C];
    if (!handler) {
      send({ id: request.id, ok: false, error: `unknown command ${request.command}` } satisfies Reply);
      return;
    }
    Promise.resolve()
      .then(() => handler(request.params as never))
      .then(
        (result) => send({ id: request.id, ok: true, result } satisfies Reply),
        (err: unknown) => {
          process.stderr.write(`${request.command} failed: ${(err as Error).stack ?? String(err)}\n`);
          send({ id: request.id, ok: false, error: `${request.command} failed: ${(err as Error).message}` } satisfies Reply);
        },
      );
  });
  process.on('disconnect', () => {
    const forced = setTimeout(() => process.exit(1), 10_000);
    cleanup().then(
      () => process.exit(0),
      (err: unknown) => {
        clearTimeout(forced);
        process.stderr.write(`cleanup failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  });
  const lifetimeS = Number(process.env.BENCH_MAX_LIFETIME_S ?? DEFAULT_MAX_LIFETIME_S);
  setTimeout(() => {
    process.stderr.write(`benchmark worker still running after ${lifetimeS} s, exiting\n`);
    process.exit(3);
  }, lifetimeS * 1000).unref();
  send({ ready: true, info } satisfies Ready);
}
