import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type uWS from 'uWebSockets.js';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { ApiError } from '../../handlers/operator/errors.ts';
import type { ApiRequest, OperatorContext } from '../../handlers/operator/context.ts';
import { ROUTES, type RouteSpec } from '../../handlers/operator/routes.ts';
import { roleAllows, sameToken, type OperatorRole } from '../../security/operator-tokens.ts';
import { bearerToken } from '../../security/device-tokens.ts';
import { RolloutStore } from '../../storage/rollouts.ts';
import { summarizeFleet, type FleetSummary } from '../../storage/summary.ts';
import type { ReplicaServices } from '../services.ts';
import { SummaryStream } from './events.ts';
import { readHeaders, readJsonBody, sendError, sendJson, startReply, streamBody, type Reply } from './http.ts';
import { buildOpenApi } from './openapi.ts';

const MAX_JSON_BODY = 64 * 1024;

/** Tells whether the request announces a body: a Content-Length above 0, or a chunked one. */
function hasBody(headers: Record<string, string>): boolean {
  return Number(headers['content-length'] ?? 0) > 0 || (headers['transfer-encoding'] ?? '') !== '';
}

/** Accepts application/json with or without parameters such as charset. */
function isJson(contentType: string | undefined): boolean {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() === 'application/json';
}
const DASHBOARD_FILE = new URL('../dashboard/index.html', import.meta.url);

export interface OperatorApi {
  port: number;
  close(): void;
}

/**
 * Shares one fleet summary among callers. A computation in progress is joined, not repeated. A result is
 * reused for a second, or for as long as it took to compute when that was longer, so slow summaries on a
 * large fleet never pile up.
 */
function cachedSummary(services: ReplicaServices): () => Promise<FleetSummary> {
  let current: Promise<FleetSummary> | null = null;
  let freshUntil = 0;
  return () => {
    const now = performance.now();
    if (current && now < freshUntil) return current;
    const started = now;
    const value = summarizeFleet(services.state);
    current = value;
    freshUntil = Infinity;
    value.then(
      () => {
        const took = performance.now() - started;
        freshUntil = performance.now() + Math.max(1000, took);
      },
      () => {
        current = null;
        freshUntil = 0;
      },
    );
    return value;
  };
}

/**
 * The operator HTTP API, the dashboard and /metrics, on their own port of the replica process. Every /v1
 * route needs an operator token, and the route table sets the least role.
 */
export async function startOperatorApi(native: typeof uWS, services: ReplicaServices, log: Logger): Promise<OperatorApi> {
  const { config } = services;
  const summary = cachedSummary(services);
  const ctx: OperatorContext = {
    state: services.state,
    rollouts: new RolloutStore(services.state),
    catalog: services.catalog,
    bucket: services.bucket,
    deviceTokens: services.deviceTokens,
    summary,
    requireSignatures: config.security.requireSignatures,
    log: log.child({ component: 'operator-api' }),
  };
  const stream = new SummaryStream(summary);
  const app: TemplatedApp = native.App();
  const openApi = JSON.stringify(buildOpenApi());
  const dashboard = await readFile(DASHBOARD_FILE, 'utf8').catch(() => '<!doctype html><p>dashboard missing from this build</p>');

  async function authenticate(headers: Record<string, string>): Promise<{ name: string; role: OperatorRole }> {
    const token = bearerToken(headers.authorization ?? '');
    if (!token) throw new ApiError('unauthorized', 'send Authorization: Bearer <operator token>');
    if (config.security.adminToken && sameToken(token, config.security.adminToken)) return { name: 'admin', role: 'operator' };
    const record = await services.operators.authenticate(token);
    if (!record) throw new ApiError('unauthorized', 'unknown or revoked operator token');
    return { name: record.name, role: record.role };
  }

  function register(route: RouteSpec): void {
    const uwsPath = route.path.replace(/\{(\w+)\}/g, ':$1');
    const paramNames = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string);
    const method = route.method === 'delete' ? 'del' : route.method;
    app[method](uwsPath, (res: HttpResponse, req: HttpRequest) => {
      const reply = startReply(res);
      const headers = readHeaders(req);
      const params = decodeParams(paramNames.map((name, i) => [name, req.getParameter(i)]));
      const query = new URLSearchParams(req.getQuery() ?? '');
      // The body must be claimed before the handler returns, or uWebSockets.js drops it.
      let json: Promise<unknown> | undefined;
      let body: ApiRequest['body'];
      if (route.body === 'json') {
        json = readJsonBody(reply, MAX_JSON_BODY);
        // Until handle() awaits it after the token check, a rejected read must not count as unhandled.
        json.catch(() => undefined);
      }
      if (route.body === 'stream') {
        const length = Number(headers['content-length']);
        // Claimed now and checked after the token; meanwhile the pause in streamBody keeps the bytes back.
        if (headers['content-length'] && Number.isInteger(length) && length >= 0) body = { stream: streamBody(reply, length), length };
      }
      void handle(route, reply, { headers, params, query, json, body });
    });
  }

  /** Decodes percent-encoded path parameters, or returns the error that handle() sends for a malformed one. */
  function decodeParams(raw: [string, string][]): Record<string, string> | ApiError {
    const params: Record<string, string> = {};
    for (const [name, value] of raw) {
      try {
        params[name] = decodeURIComponent(value);
      } catch {
        return new ApiError('invalid_request', `the {${name}} part of the path is not valid percent-encoding`, value);
      }
    }
    return params;
  }

  async function handle(
    route: RouteSpec,
    reply: Reply,
    input: {
      headers: Record<string, string>;
      params: Record<string, string> | ApiError;
      query: URLSearchParams;
      json?: Promise<unknown>;
      body?: ApiRequest['body'];
    },
  ): Promise<void> {
    try {
      const operator = await authenticate(input.headers);
      if (!roleAllows(operator.role, route.role)) {
        throw new ApiError('forbidden', `this needs the ${route.role} role; the token has ${operator.role}`);
      }
      if (input.params instanceof ApiError) throw input.params;
      if (route.body === 'json' && hasBody(input.headers) && !isJson(input.headers['content-type'])) {
        throw new ApiError('unsupported_media_type', 'send the body as application/json', input.headers['content-type'] ?? '');
      }
      if (route.body === 'stream') {
        if ((input.headers['content-type'] ?? '') !== 'application/octet-stream') {
          throw new ApiError('unsupported_media_type', 'send the file as application/octet-stream', input.headers['content-type']);
        }
        if (!input.body) throw new ApiError('length_required', 'send a Content-Length header');
      }
      const request: ApiRequest = { params: input.params, query: input.query, operator, headers: input.headers };
      if (input.json) request.json = await input.json;
      if (input.body) request.body = input.body;
      const response = await route.handler(ctx, request);
      sendJson(reply, response.status, response.body);
    } catch (err) {
      input.body?.stream.destroy();
      if (err instanceof ApiError) {
        (err.status >= 500 ? ctx.log.error : ctx.log.info).call(ctx.log, { code: err.code, route: route.path }, 'operator request rejected');
        sendError(reply, err);
        return;
      }
      ctx.log.error({ err, route: route.path }, 'operator request failed');
      sendError(reply, new ApiError('internal', 'the server failed; see its log'));
    }
  }

  for (const route of ROUTES) register(route);

  app.get('/v1/events', (res, req) => {
    const headers = readHeaders(req);
    const reply = startReply(res);
    authenticate(headers).then(
      () => {
        if (!reply.aborted) stream.add(res);
      },
      (err: unknown) => sendError(reply, err instanceof ApiError ? err : new ApiError('internal', 'the server failed')),
    );
  });
  app.get('/v1/openapi.json', (res) => sendJson(startReply(res), 200, JSON.parse(openApi)));
  app.get('/metrics', (res) => {
    const reply = startReply(res);
    services.metrics.inFlight.set(0);
    void Promise.all([services.state.inFlightCount(), services.metrics.registry.metrics()]).then(async ([inFlight]) => {
      services.metrics.inFlight.set(inFlight);
      const text = await services.metrics.registry.metrics();
      if (reply.aborted) return;
      res.cork(() => res.writeStatus('200 OK').writeHeader('content-type', services.metrics.registry.contentType).end(text));
    }, (err: unknown) => {
      ctx.log.error({ err }, 'metrics failed');
      sendError(reply, new ApiError('internal', 'metrics failed'));
    });
  });
  app.get('/', (res) => {
    res.cork(() => res.writeStatus('200 OK').writeHeader('content-type', 'text/html; charset=utf-8').end(dashboard));
  });
  app.any('/*', (res, req) => {
    const url = req.getUrl();
    const method = req.getMethod();
    const known = ROUTES.some((r) => new RegExp(`^${r.path.replace(/\{\w+\}/g, '[^/]+')}$`).test(url));
    const error = known
      ? new ApiError('method_not_allowed', `${method.toUpperCase()} is not allowed on ${url}`)
      : new ApiError('not_found', `no route ${method.toUpperCase()} ${url}`);
    sendError(startReply(res), error);
  });

  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(config.host, config.apiPort, (socket) => {
      if (socket) resolve(socket);
      else reject(new Error(`cannot listen on ${config.host}:${config.apiPort} (FLEET_API_PORT): the port is taken`));
    });
  });
  const port = native.us_socket_local_port(listenSocket as unknown as uWS.us_socket);
  log.info({ port }, 'operator API listening');
  return {
    port,
    close() {
      stream.close();
      native.us_listen_socket_close(listenSocket);
    },
  };
}
