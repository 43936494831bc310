import type { IncomingMessage } from 'node:http';

/** Error code and message from the JSON body that the server sends when it rejects an upgrade. */
export interface UpgradeRejection {
  status: number;
  error: string | null;
  message: string | null;
}

/** A longer body is not parsed. The rejection bodies of runtime/device-socket.ts are well under 1 KiB. */
const MAX_BODY_BYTES = 4096;

/**
 * Reads the body of a rejected upgrade response, `{"error": CODE, "message": TEXT}`, within `timeoutMs`.
 * A body that is missing, too long, late or not that JSON leaves `error` and `message` null.
 */
export function readUpgradeRejection(response: IncomingMessage, timeoutMs: number): Promise<UpgradeRejection> {
  const status = response.statusCode ?? 0;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let settled = false;
    const finish = (complete: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, ...(complete ? parseBody(Buffer.concat(chunks).toString('utf8')) : { error: null, message: null }) });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);

    response.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length > MAX_BODY_BYTES) finish(false);
      else chunks.push(chunk);
    });
    response.on('end', () => finish(true));
    response.on('error', () => finish(false));
    response.on('close', () => finish(false));
  });
}

function parseBody(text: string): { error: string | null; message: string | null } {
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown };
    return {
      error: typeof body.error === 'string' ? body.error : null,
      message: typeof body.message === 'string' ? body.message : null,
    };
  } catch {
    return { error: null, message: null };
  }
}
