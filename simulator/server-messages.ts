import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { SERVER_MESSAGES, type ServerMessage } from '../protocol/messages.ts';

export type ServerParseOutcome = { ok: true; message: ServerMessage } | { ok: false; details: string };

const checkers = new Map<string, TypeCheck<TSchema>>(
  Object.entries(SERVER_MESSAGES).map(([type, schema]) => [type, TypeCompiler.Compile(schema)]),
);

/**
 * Parses one text frame from the server and validates it against the protocol schema of its `type`, so a
 * server that breaks the protocol shows up in the simulator's logs and counters instead of as odd behaviour.
 */
export function parseServerMessage(text: string): ServerParseOutcome {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, details: 'the frame is not valid JSON' };
  }
  const type = typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
  const checker = typeof type === 'string' && Object.hasOwn(SERVER_MESSAGES, type) ? checkers.get(type) : undefined;
  if (!checker) {
    return { ok: false, details: `unknown message type ${JSON.stringify(type)}` };
  }
  if (!checker.Check(value)) {
    const first = checker.Errors(value).First();
    return { ok: false, details: first ? `${type}${first.path}: ${first.message}` : `${type}: schema mismatch` };
  }
  return { ok: true, message: value as ServerMessage };
}
