import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Fields that carry secrets: signed URLs hold credentials in their query string, tokens and keys are
 * credentials. They are replaced wherever they appear in a log entry, at the top level or one level down.
 */
export const REDACTED_FIELDS = ['url', 'token', 'authorization', 'secretKey', 'secret', 'signingKey', 'password'];

/**
 * The root logger. JSON lines by default, for log collectors; pretty output when a person runs the server
 * in a terminal (LOG_FORMAT=json forces JSON there too). Levels: `error` for our own failures, `warn` and
 * `info` for what devices and operators do wrong, `debug` for the normal flow of each message.
 */
export function createLogger(level: string, name = 'fleet', destination?: DestinationStream): Logger {
  const pretty = destination === undefined && process.stdout.isTTY && process.env.LOG_FORMAT !== 'json';
  const options = {
    name,
    level,
    redact: { paths: REDACTED_FIELDS.flatMap((field) => [field, `*.${field}`]), censor: '[redacted]' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true } } } : {}),
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
