import { readFileSync } from 'node:fs';
import test from 'ava';
import { ReplicaMetrics } from '../runtime/metrics.ts';

const doc = readFileSync(new URL('../docs/observability.md', import.meta.url), 'utf8');

test('every fleet metric is documented and no documented metric is missing', async (t) => {
  const metrics = new ReplicaMetrics();
  const exported = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name).filter((name) => name.startsWith('fleet_'));
  const documented = [...doc.matchAll(/^\| `(fleet_[a-z_]+)` \|/gm)].map((m) => m[1]);
  t.deepEqual([...documented].sort(), [...exported].sort());
});

test('the Grafana dashboard parses and queries only exported metrics', async (t) => {
  const dashboard = JSON.parse(readFileSync(new URL('../k8s/grafana/fleet-dashboard.json', import.meta.url), 'utf8')) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  const metrics = new ReplicaMetrics();
  const names = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
  t.true(dashboard.panels.length > 5);
  for (const panel of dashboard.panels) {
    for (const target of panel.targets) {
      for (const [name] of target.expr.matchAll(/\b(fleet_[a-z_]+|process_[a-z_]+)\b/g)) {
        const base = name.replace(/_(bucket|sum|count)$/, '');
        t.true(names.has(base), `${panel.title}: ${name}`);
      }
    }
  }
});
