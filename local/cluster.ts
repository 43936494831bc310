import { join } from 'node:path';
import { startBackendProcess, type BackendProcess } from './backend-process.ts';
import { startLoadBalancer, type LoadBalancer } from './load-balancer.ts';
import { freePort } from './redis-server.ts';

export interface Cluster {
  balancer: LoadBalancer;
  /** Device endpoint through the balancer. */
  url: string;
  /** Replica slots; null where no replica runs now. */
  replicas: (BackendProcess | null)[];
  running(): BackendProcess[];
  /** Starts a replica in a free slot and resolves when it is ready. */
  addReplica(): Promise<BackendProcess>;
  /** Stops replica `index` with SIGTERM (graceful drain) and frees its slot. */
  stopReplica(index: number): Promise<void>;
  /** Kills replica `index` with SIGKILL and frees its slot. */
  killReplica(index: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Several replicas behind HAProxy on loopback, for the demo, the tests and the benchmarks. `slots` replica
 * ports are reserved up front and listed in the balancer, so replicas can come and go without reloading it.
 */
export async function startCluster(options: {
  replicas: number;
  slots?: number;
  env: Record<string, string>;
  logDir: string;
}): Promise<Cluster> {
  const slots = Math.max(options.slots ?? options.replicas, options.replicas);
  const ports = await Promise.all(Array.from({ length: slots }, () => freePort()));
  const balancer = await startLoadBalancer(ports);
  const replicas: (BackendProcess | null)[] = ports.map(() => null);
  let started = 0;

  const startIn = async (index: number) => {
    started += 1;
    const replica = await startBackendProcess(
      { ...options.env, FLEET_REPLICA_ID: `replica-${index + 1}-${started}` },
      join(options.logDir, `replica-${index + 1}.log`),
      ports[index],
    );
    replicas[index] = replica;
    return replica;
  };

  const cluster: Cluster = {
    balancer,
    url: balancer.url,
    replicas,
    running: () => replicas.filter((r): r is BackendProcess => r !== null),
    async addReplica() {
      const index = replicas.indexOf(null);
      if (index < 0) throw new Error(`all ${slots} replica slots are in use`);
      const replica = await startIn(index);
      await waitBalancerSees(balancer.port, replica);
      return replica;
    },
    async stopReplica(index) {
      await replicas[index]?.stop();
      replicas[index] = null;
    },
    async killReplica(index) {
      await replicas[index]?.kill();
      replicas[index] = null;
    },
    async stop() {
      await Promise.all(replicas.map((r) => r?.stop()));
      await balancer.stop();
    },
  };
  try {
    for (let i = 0; i < options.replicas; i++) await startIn(i);
    await Promise.all(cluster.running().map((r) => waitBalancerSees(balancer.port, r)));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/**
 * Waits until the balancer routes to `replica`: its health check runs every 300 ms, so a replica that just
 * turned ready may get no traffic for a moment. Each replica reports its id on /healthz.
 */
async function waitBalancerSees(balancerPort: number, replica: BackendProcess): Promise<void> {
  const own = (await (await fetch(`${replica.baseUrl}/healthz`)).json()) as { replica: string };
  for (let tries = 0; tries < 200; tries++) {
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) {
      try {
        const body = (await (await fetch(`http://127.0.0.1:${balancerPort}/healthz`)).json()) as { replica: string };
        seen.add(body.replica);
      } catch {
        // The balancer has no server up yet.
      }
    }
    if (seen.has(own.replica)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the load balancer did not route to replica ${own.replica} within 20 s`);
}
