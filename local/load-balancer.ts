import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.ts';

export interface LoadBalancer {
  port: number;
  pid: number;
  /** Device endpoint through the balancer. */
  url: string;
  stop(): Promise<void>;
}

export function haproxyInstalled(): boolean {
  return spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0;
}

/**
 * Writes the HAProxy configuration: WebSocket-friendly timeouts, least-connections balancing, and a health
 * check on /readyz every 300 ms, so a replica that is not ready (starting, draining, or gone) gets no new
 * devices, as behind a Kubernetes Service.
 */
export function haproxyConfig(port: number, replicaPorts: number[]): string {
  const servers = replicaPorts.map((p, i) => `  server replica${i + 1} 127.0.0.1:${p} check`).join('\n');
  // Each proxied connection holds two sockets, and one process may open at most 20,000 files here.
  return `global
  maxconn 9500

defaults
  mode http
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  timeout http-request 10s

frontend devices
  bind 127.0.0.1:${port}
  default_backend replicas

backend replicas
  balance leastconn
  option httpchk
  http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost
  http-check expect status 200
  default-server inter 300ms fall 2 rise 1
${servers}
`;
}

/**
 * Starts HAProxy in front of replicas listening on `replicaPorts` of 127.0.0.1. Ports of replicas that are
 * not running yet may be listed: they count as down until they answer /readyz, which is how tests and the
 * demo scale the number of replicas up and down without reloading the balancer.
 */
export async function startLoadBalancer(replicaPorts: number[]): Promise<LoadBalancer> {
  if (!haproxyInstalled()) {
    throw new Error('haproxy is not installed; several replicas need it (Debian: apt-get install haproxy)');
  }
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'fleet-lb-'));
  const configFile = join(dir, 'haproxy.cfg');
  await writeFile(configFile, haproxyConfig(port, replicaPorts));
  const check = spawnSync('haproxy', ['-c', '-q', '-f', configFile], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy rejected its configuration: ${check.stderr || check.stdout}`);

  const child: ChildProcess = spawn('haproxy', ['-db', '-f', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitListening(port, child, () => stderr);
  return {
    port,
    pid: child.pid ?? 0,
    url: `ws://127.0.0.1:${port}/device`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function waitListening(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  for (let tries = 0; tries < 100; tries++) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with code ${child.exitCode}: ${stderr()}`);
    try {
      await fetch(`http://127.0.0.1:${port}/healthz`);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`haproxy did not listen on 127.0.0.1:${port} within 5 s`);
}
