import { API_ERRORS } from '../../handlers/operator/errors.ts';
import { ROUTES } from '../../handlers/operator/routes.ts';

/** Routes outside the route table, served by the API server itself. */
export const EXTRA_ROUTES = [
  { method: 'get', path: '/v1/events', role: 'read', summary: 'Server-sent events: a `summary` event every second' },
  { method: 'get', path: '/v1/openapi.json', role: null, summary: 'This document' },
  { method: 'get', path: '/metrics', role: null, summary: 'Prometheus metrics of this replica' },
  { method: 'get', path: '/', role: null, summary: 'The dashboard page (it asks for an operator token)' },
] as const;

const ErrorBody = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: Object.keys(API_ERRORS) },
        message: { type: 'string' },
        value: {},
      },
    },
  },
};

/** Builds the OpenAPI 3.1 document of the operator API from the route table. */
export function buildOpenApi(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const all = [
    ...ROUTES.map((r) => ({
      method: r.method,
      path: r.path,
      role: r.role as string | null,
      summary: r.summary,
      query: r.query ?? [],
      body: r.body,
      created: r.created ?? (r.method === 'post' && r.path.endsWith('}')),
    })),
    ...EXTRA_ROUTES.map((r) => ({ method: r.method, path: r.path, role: r.role as string | null, summary: r.summary, query: [], body: undefined, created: false })),
  ];
  for (const route of all) {
    const parameters = [
      ...[...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$' } })),
      ...route.query.map((q) => ({ name: q.name, in: 'query', required: false, description: q.description, schema: { type: 'string' } })),
    ];
    const operation: Record<string, unknown> = {
      summary: route.summary,
      ...(route.role ? { security: [{ operatorToken: [] }], 'x-required-role': route.role } : { security: [] }),
      ...(parameters.length > 0 ? { parameters } : {}),
      responses: {
        [route.created ? '201' : '200']: { description: 'Success' },
        default: { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    };
    if (route.body === 'stream') {
      operation.requestBody = { required: true, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } };
    } else if (route.body === 'json') {
      operation.requestBody = { required: true, content: { 'application/json': { schema: { type: 'object' } } } };
    }
    paths[route.path] = { ...paths[route.path], [route.method]: operation };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'camera-fleet operator API',
      version: '1',
      description: 'Errors: ' + Object.entries(API_ERRORS).map(([code, e]) => `${code} (${e.status})`).join(', '),
    },
    paths,
    components: {
      securitySchemes: { operatorToken: { type: 'http', scheme: 'bearer', description: 'Operator token from `fleet operator create`' } },
      schemas: { Error: ErrorBody },
    },
  };
}
