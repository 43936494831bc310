import { ConfigError, loadConfig } from '../runtime/config.ts';
import { createLogger } from '../runtime/logger.ts';
import { startReplica } from '../runtime/replica.ts';

/** Runs one replica until SIGTERM or SIGINT. Exit codes: 0 stopped cleanly, 2 bad configuration, 1 failure. */
export async function serve(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`fleet serve: invalid configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  let replica;
  try {
    replica = await startReplica(config, log);
  } catch (err) {
    log.fatal({ err }, 'replica failed to start');
    process.stderr.write(`fleet serve: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const shutdown = (signal: string) => {
    log.info({ signal, drainMs: config.drainMs, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
    // The hard limit stays below the pod's grace period, so the replica exits on its own terms.
    setTimeout(() => {
      log.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out, exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    replica.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
