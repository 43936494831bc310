import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { CliError, EXIT } from './errors.ts';

/** Operator API of a replica on this machine, used when neither --server nor FLEET_SERVER is set. */
export const DEFAULT_SERVER = 'http://127.0.0.1:8081';
/** Time limit of one JSON request, from connecting to the end of the response body. */
const REQUEST_TIMEOUT_MS = 30_000;
/**
 * An upload fails when its socket moves no bytes for this long. After the last byte the server still
 * finishes the bucket upload before it responds, so this is longer than a JSON request's limit.
 */
const UPLOAD_IDLE_TIMEOUT_MS = 60_000;

/** An error response of the operator API: the HTTP status and, when the body had one, the API's error code. */
export class ApiRequestError extends CliError {
  constructor(
    message: string,
    exitCode: number,
    readonly status: number,
    readonly code: string | null,
  ) {
    super(message, exitCode);
  }
}

/** One server-sent event: its `event:` name (default `message`) and its `data:` lines joined by newlines. */
export interface ServerSentEvent {
  event: string;
  data: string;
}

/** Maps an HTTP status to the CLI exit code that docs/operators.md documents for it. */
export function exitCodeFor(status: number): number {
  if (status === 401 || status === 403) return EXIT.auth;
  if (status === 409) return EXIT.conflict;
  if (status >= 500) return EXIT.unavailable;
  if (status === 404) return EXIT.failure;
  if (status >= 400) return EXIT.usage;
  return EXIT.failure;
}

function parseServer(text: string, source: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError(`invalid ${source} ${JSON.stringify(text)}: expected a URL such as ${DEFAULT_SERVER}`, EXIT.usage);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(`invalid ${source} ${JSON.stringify(text)}: expected an http:// or https:// URL such as ${DEFAULT_SERVER}`, EXIT.usage);
  }
  if (url.search || url.hash) {
    throw new CliError(`invalid ${source} ${JSON.stringify(text)}: leave out the query and the fragment`, EXIT.usage);
  }
  return url;
}

/** Reads the API body `{"error": {"code", "message", "value"?}}`; null when the body has another shape. */
function parseErrorBody(text: string): { code: string; message: string; value?: unknown } | null {
  try {
    const error = (JSON.parse(text) as { error?: unknown }).error as { code?: unknown; message?: unknown } | undefined;
    if (typeof error?.code === 'string' && typeof error.message === 'string') {
      return error as { code: string; message: string; value?: unknown };
    }
  } catch {
    // Not JSON; the caller reports the status alone.
  }
  return null;
}

/**
 * A client of the operator HTTP API of one replica (handlers/operator/routes.ts). Every failure becomes a
 * CliError whose exit code follows the table in docs/operators.md.
 */
export class ApiClient {
  readonly base: URL;

  constructor(
    server: string,
    private readonly token: string | undefined,
    serverSource = '--server',
  ) {
    this.base = parseServer(server, serverSource);
  }

  /** The server address for messages, without a password. */
  get server(): string {
    const display = new URL(this.base.href);
    if (display.password) display.password = '***';
    return display.href.replace(/\/$/, '');
  }

  /** Builds the URL of an API path such as `/v1/devices`, below any path prefix of the server URL (an Ingress). */
  url(path: string, query: Record<string, string | undefined> = {}): URL {
    const url = new URL(this.base.href);
    url.pathname = `${this.base.pathname.replace(/\/$/, '')}${path}`;
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(name, value);
    }
    return url;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...extra };
  }

  /**
   * Sends one request and resolves with the response once its status line arrives. A string body is sent
   * whole. A stream body is piped, and `onBytes` gets the bytes handed to the socket so far, of which the
   * request's write buffer may still hold up to 16 KiB. This uses node:http because fetch rejects the ports
   * on the Fetch standard's "bad port" list (6000, 6665-6669 and others), which a port-forward may pick.
   */
  private send(
    method: string,
    url: URL,
    options: {
      headers?: Record<string, string>;
      body?: string | Readable;
      /** Names a stream body in messages, such as the file path. */
      bodyName?: string;
      signal?: AbortSignal;
      idleTimeoutMs?: number;
      onBytes?: (sent: number) => void;
    },
  ): Promise<http.IncomingMessage> {
    const transport = url.protocol === 'https:' ? https : http;
    const operation = `${method} ${url.pathname}`;
    return new Promise((resolve, reject) => {
      const request = transport.request(url, {
        method,
        agent: false,
        headers: this.headers(options.headers),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      let answered = false;
      if (options.idleTimeoutMs) {
        const ms = options.idleTimeoutMs;
        request.setTimeout(ms, () => request.destroy(new IdleTimeoutError(`no bytes moved for ${ms / 1000} s`)));
      }
      let sent = 0;
      request.on('error', (err) => {
        // After an early rejection the server may reset the connection while the body is still being
        // sent; the response already read is the real outcome.
        if (answered) return;
        if (typeof body === 'object' && sent > 0) reject(this.brokenUpload(err, operation, sent));
        else reject(this.transportError(err, operation, options.signal));
      });
      request.on('response', (response) => {
        answered = true;
        resolve(response);
      });
      const body = options.body;
      if (body === undefined || typeof body === 'string') {
        request.end(body);
        return;
      }
      // The server may reject an upload (token, role, existing id) before it has read the whole body.
      request.once('response', () => {
        body.unpipe(request);
        body.destroy();
      });
      body.on('data', (chunk: Buffer) => {
        sent += chunk.length;
        options.onBytes?.(sent);
      });
      body.on('error', (err) => {
        request.destroy();
        reject(new CliError(`cannot read ${options.bodyName ?? 'the request body'}: ${err.message}`, EXIT.usage));
      });
      body.pipe(request);
    });
  }

  private async readText(response: http.IncomingMessage, operation: string, signal?: AbortSignal): Promise<string> {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of response) chunks.push(chunk as Buffer);
    } catch (err) {
      throw this.transportError(err, operation, signal);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** Sends a request with an optional JSON body and returns the parsed JSON response. */
  async request<T>(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    options: { query?: Record<string, string | undefined>; json?: unknown } = {},
  ): Promise<T> {
    const url = this.url(path, options.query);
    const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    const json = options.json === undefined ? undefined : JSON.stringify(options.json);
    const response = await this.send(method, url, {
      signal,
      ...(json === undefined ? {} : { body: json, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(json)) } }),
    });
    const text = await this.readText(response, `${method} ${url.pathname}`, signal);
    return this.parseResponse<T>(response.statusCode ?? 0, text);
  }

  /** Streams `file` as the body of a POST with Content-Length set, and returns the parsed JSON response. */
  async upload<T>(path: string, file: { path: string; size: number }, headers: Record<string, string>, onBytes: (sent: number) => void): Promise<T> {
    const url = this.url(path);
    const body = createReadStream(file.path);
    const response = await this.send('POST', url, {
      headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(file.size) },
      body,
      bodyName: file.path,
      idleTimeoutMs: UPLOAD_IDLE_TIMEOUT_MS,
      onBytes,
    });
    const text = await this.readText(response, `POST ${url.pathname}`);
    return this.parseResponse<T>(response.statusCode ?? 0, text);
  }

  /**
   * Follows GET /v1/events and yields each server-sent event until the server ends the stream or `signal`
   * aborts it. The server writes `\n` line ends only, so a `\r\n` split across two chunks is not handled.
   */
  async *events(signal: AbortSignal): AsyncGenerator<ServerSentEvent> {
    const url = this.url('/v1/events');
    const operation = `GET ${url.pathname}`;
    const response = await this.send('GET', url, { headers: { accept: 'text/event-stream' }, signal });
    if (response.statusCode !== 200) {
      throw this.failure(response.statusCode ?? 0, await this.readText(response, operation, signal));
    }
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response) {
        buffer += decoder.decode(chunk as Buffer, { stream: true }).replace(/\r\n/g, '\n');
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const event = parseEventBlock(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event) yield event;
          end = buffer.indexOf('\n\n');
        }
      }
    } catch (err) {
      throw this.transportError(err, operation, signal);
    } finally {
      response.destroy();
    }
  }

  private parseResponse<T>(status: number, text: string): T {
    if (status < 200 || status > 299) throw this.failure(status, text);
    return this.parseJson<T>(status, text);
  }

  private parseJson<T>(status: number, text: string): T {
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(
        `the server at ${this.server} returned HTTP ${status} with a body that is not JSON; ` +
          'check that --server points at the operator API port of a replica (8081 by default)',
        EXIT.failure,
      );
    }
  }

  /** Builds the CliError for an HTTP error response. */
  failure(status: number, text: string): ApiRequestError {
    const exitCode = exitCodeFor(status);
    const body = parseErrorBody(text);
    if (!body) {
      return new ApiRequestError(
        `the server at ${this.server} returned HTTP ${status} without an operator API error body; ` +
          'check that --server points at the operator API port of a replica (8081 by default)',
        exitCode,
        status,
        null,
      );
    }
    let message = `${body.code}: ${body.message}`;
    const value = body.value;
    if ((typeof value === 'string' || typeof value === 'number') && !body.message.includes(String(value))) {
      message += ` (got ${JSON.stringify(value)})`;
    }
    if (status === 401 && !this.token) {
      message += '; pass --token or set FLEET_TOKEN (`fleet operator create NAME --role read` prints one)';
    }
    return new ApiRequestError(message, exitCode, status, body.code);
  }

  /**
   * Builds the error for a connection that broke after part of a request body was sent. The API closes the
   * connection when it rejects an upload before reading all of it, and Node may then report the failed write
   * (EPIPE, ECONNRESET) before it has read the response.
   */
  private brokenUpload(err: unknown, operation: string, sent: number): CliError {
    const error = err as Error & { code?: string };
    return new CliError(
      `${operation} on ${this.server} failed: the server closed the connection after ${sent} bytes of the body ` +
        `without a readable response (${error.code ?? error.message}). It may have rejected the upload ` +
        '(a token without the operator role, a missing or invalid signature) or failed; see the replica log',
      EXIT.failure,
    );
  }

  private transportError(err: unknown, operation: string, signal?: AbortSignal): CliError {
    if (err instanceof CliError) return err;
    const reason = signal?.aborted ? (signal.reason as Error | undefined) : undefined;
    if (reason?.name === 'TimeoutError') {
      return new CliError(`${operation} on ${this.server} timed out after ${REQUEST_TIMEOUT_MS / 1000} s`, EXIT.unavailable);
    }
    if (signal?.aborted) return new CliError(`${operation} on ${this.server} was aborted`, EXIT.failure);
    const error = err as Error & { code?: string };
    if (error instanceof IdleTimeoutError) return new CliError(`${operation} on ${this.server} failed: ${error.message}`, EXIT.unavailable);
    return new CliError(
      `cannot reach the fleet API at ${this.server} (${operation}): ${error.code ?? error.message}. ` +
        'Start a replica, or point --server or FLEET_SERVER at the API port of one (docs/operators.md)',
      EXIT.unavailable,
    );
  }
}

class IdleTimeoutError extends Error {}

function parseEventBlock(block: string): ServerSentEvent | null {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return data.length > 0 ? { event, data: data.join('\n') } : null;
}

/** Options every API command takes; the same two exist before the command name, as global options. */
export interface ServerOptions {
  server?: string;
  token?: string;
}

/**
 * Builds the client of a command from --server and --token, given after the command name or before it,
 * else from FLEET_SERVER and FLEET_TOKEN.
 */
export function clientFor(command: Command): ApiClient {
  const chain: Command[] = [];
  for (let c: Command | null = command; c; c = c.parent) chain.unshift(c);
  // Options nearer the command win over the same option before the command name.
  const options = Object.assign({}, ...chain.map((c) => c.opts())) as ServerOptions;
  const token = options.token ?? (process.env.FLEET_TOKEN || undefined);
  if (options.server !== undefined) return new ApiClient(options.server, token, '--server');
  if (process.env.FLEET_SERVER) return new ApiClient(process.env.FLEET_SERVER, token, 'FLEET_SERVER');
  return new ApiClient(DEFAULT_SERVER, token);
}

/** Encodes one path segment (an id) for a route such as /v1/devices/{id}. */
export function segment(id: string): string {
  return encodeURIComponent(id);
}
