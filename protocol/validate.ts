import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import { DEVICE_MESSAGES, type DeviceMessage, type DeviceMessageType } from './messages.ts';
import type { DeviceErrorCode } from './errors.ts';

export type ParseOutcome =
  | { ok: true; message: DeviceMessage }
  | { ok: false; code: DeviceErrorCode; details?: string };

const checkers = new Map<string, TypeCheck<TSchema>>(
  Object.entries(DEVICE_MESSAGES).map(([type, schema]) => [type, TypeCompiler.Compile(schema)]),
);

/**
 * Parses one text frame and validates it against the schema of its `type`. JSON.parse never assigns
 * `__proto__` through the prototype chain, and the schemas reject unknown fields, so a parsed message cannot
 * carry prototype-polluting keys past this point.
 */
export function parseDeviceMessage(text: string): ParseOutcome {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, code: 'invalid_json' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'invalid_message', details: 'the message must be a JSON object' };
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') {
    return { ok: false, code: 'invalid_message', details: '/type: expected a string' };
  }
  const checker = Object.hasOwn(DEVICE_MESSAGES, type) ? checkers.get(type) : undefined;
  if (!checker) {
    return { ok: false, code: 'unknown_type', details: `type ${JSON.stringify(type.slice(0, 64))}` };
  }
  if (!checker.Check(value)) {
    const first = checker.Errors(value).First();
    const details = first ? `${first.path || '/'}: ${first.message}` : 'schema mismatch';
    return { ok: false, code: 'invalid_message', details };
  }
  return { ok: true, message: value as DeviceMessage };
}

export function isDeviceMessageType(type: string): type is DeviceMessageType {
  return Object.hasOwn(DEVICE_MESSAGES, type);
}
