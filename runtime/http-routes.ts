import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { ReplicaServices } from './services.ts';

function json(res: HttpResponse, status: string, body: unknown): void {
  res.cork(() => {
    res.writeStatus(status).writeHeader('content-type', 'application/json').end(JSON.stringify(body));
  });
}

/**
 * Probe endpoints. /healthz says the process serves requests (liveness); /readyz says Redis and the bucket
 * answered the last dependency check, which runs every second, and that the replica is not shutting down.
 */
export function registerHttpRoutes(app: TemplatedApp, services: ReplicaServices): void {
  app.get('/healthz', (res) => {
    json(res, '200 OK', { status: 'ok', replica: services.config.replicaId });
  });
  app.get('/readyz', (res) => {
    const ready = services.ready && !services.draining;
    json(res, ready ? '200 OK' : '503 Service Unavailable', {
      status: ready ? 'ready' : 'not_ready',
      accepting: services.accepting,
      devices: services.registry.size,
      ...services.metrics.snapshot(),
    });
  });
  app.any('/*', (res, req) => {
    json(res, '404 Not Found', { error: 'not_found', message: `no route for ${req.getMethod()} ${req.getUrl()}` });
  });
}
