import { PassThrough } from 'node:stream';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { ApiError } from '../../handlers/operator/errors.ts';

/** A response that may have been aborted by the client; writes after that are skipped. */
export interface Reply {
  res: HttpResponse;
  aborted: boolean;
}

export function startReply(res: HttpResponse): Reply {
  const reply: Reply = { res, aborted: false };
  res.onAborted(() => {
    reply.aborted = true;
  });
  return reply;
}

export function sendJson(reply: Reply, status: number, body: unknown, statusText = ''): void {
  if (reply.aborted) return;
  reply.res.cork(() => {
    reply.res
      .writeStatus(`${status} ${statusText || STATUS_TEXT[status] || ''}`.trim())
      .writeHeader('content-type', 'application/json')
      .writeHeader('cache-control', 'no-store')
      .end(JSON.stringify(body));
  });
}

export function sendError(reply: Reply, error: ApiError): void {
  sendJson(reply, error.status, error.toBody());
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  411: 'Length Required',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Copies the headers a route may need; uWebSockets.js invalidates `req` when the handler returns. */
export function readHeaders(req: HttpRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  req.forEach((key, value) => {
    headers[key] = value;
  });
  return headers;
}

/** Reads a whole JSON body of at most `limit` bytes. */
export function readJsonBody(reply: Reply, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    reply.res.onData((chunk, isLast) => {
      size += chunk.byteLength;
      if (size > limit) {
        reject(new ApiError('payload_too_large', `the body may be at most ${limit} bytes`, size));
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0)));
      if (!isLast) return;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text === '') {
        resolve(undefined);
        return;
      }
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new ApiError('invalid_request', 'the body is not valid JSON', text.slice(0, 100)));
      }
    });
  });
}

/**
 * Exposes the request body as a Node stream. uWebSockets.js pushes chunks as they arrive; when the stream's
 * buffer is full the socket is paused until the consumer (the bucket upload) drains it, so a large upload
 * never sits in memory whole.
 */
export function streamBody(reply: Reply, length: number): PassThrough {
  const stream = new PassThrough({ highWaterMark: 1024 * 1024 });
  let received = 0;
  stream.on('drain', () => {
    if (!reply.aborted) reply.res.resume();
  });
  reply.res.onData((chunk, isLast) => {
    // After an early rejection the stream is destroyed and the response may be gone: drop what still arrives.
    if (stream.destroyed || reply.aborted) return;
    received += chunk.byteLength;
    // The ArrayBuffer is reused by uWebSockets.js after this callback, so it is copied.
    const more = stream.write(Buffer.from(chunk.slice(0)));
    if (isLast) {
      if (received !== length) stream.destroy(new ApiError('invalid_request', `body had ${received} bytes, Content-Length said ${length}`));
      else stream.end();
    } else if (!more) {
      reply.res.pause();
    }
  });
  reply.res.onAborted(() => {
    reply.aborted = true;
    stream.destroy(new Error('client aborted the upload'));
  });
  return stream;
}
