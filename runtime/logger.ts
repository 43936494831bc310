import { pino, type Logger } from 'pino';

/**
 * The root logger. JSON lines by default, for log collectors; pretty output when a person runs the server
 * in a terminal. Signed URLs carry credentials in their query string, so they are redacted wherever they
 * appear in a log entry.
 */
export function createLogger(level: string, name = 'fleet'): Logger {
  const pretty = process.stdout.isTTY && process.env.LOG_FORMAT !== 'json';
  return pino({
    name,
    level,
    redact: { paths: ['url', '*.url', 'msg.url', 'secretKey', '*.secretKey'], censor: '[redacted]' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true } } } : {}),
  });
}

export type { Logger };
