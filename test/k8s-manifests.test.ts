import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import type { IDeployment, IStatefulSet } from 'kubernetes-models/apps/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import type { IJob } from 'kubernetes-models/batch/v1';
import { Job } from 'kubernetes-models/batch/v1';
import type { IIngress } from 'kubernetes-models/networking.k8s.io/v1';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IConfigMap, IContainer, IPodSpec, ISecret, IService } from 'kubernetes-models/v1';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import YAML from 'yaml';
import { ConfigError, loadConfig } from '../runtime/config.ts';
import { DEVICE_PATH } from '../runtime/replica.ts';
import { generateSigningKeys } from '../security/patch-signing.ts';

// Renders each overlay in k8s/overlays/ without kubectl, validates every object against the Kubernetes
// 1.27 schemas of kubernetes-models 4.5.1 and checks the manifests against the code: environment variables,
// port, probe paths and the shutdown timing.
// NOTE: kubernetes-models' validators accept unknown fields, so a misspelt optional field passes the schema
// check. The cross-checks below read the fields that matter by their real names and fail when one is missing.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const K8S_DIR = join(ROOT, 'k8s');
const OVERLAYS = ['local', 'production'] as const;
const BACKEND = 'fleet-backend';
const CONFIG_SOURCE = readFileSync(join(ROOT, 'runtime/config.ts'), 'utf8');
const ROUTES_SOURCE = readFileSync(join(ROOT, 'runtime/http-routes.ts'), 'utf8');

/** Device token secret and signing public key as `fleet keys create` makes them, for loadConfig to accept. */
const SECURITY_STAND_INS = {
  FLEET_DEVICE_TOKEN_SECRET: randomBytes(48).toString('base64'),
  FLEET_SIGNING_PUBLIC_KEY: generateSigningKeys().publicKey,
};

/**
 * Stand-in contents of the Secrets that an overlay leaves to the operator, so loadConfig can run on the
 * rendered environment. Both overlays leave fleet-security to the operator, and production leaves all three.
 */
const OPERATOR_SECRETS: Record<string, Record<string, string>> = {
  'fleet-s3-credentials': { S3_ACCESS_KEY: 'operator-provided', S3_SECRET_KEY: 'operator-provided' },
  'fleet-security': SECURITY_STAND_INS,
};

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

// ---------------------------------------------------------------------------------------------------------
// A small kustomize. It supports the Kustomization fields the overlays use and rejects every other one, so
// an overlay cannot rely on a feature this loader would silently skip:
// - resources: YAML files, or folders that contain a kustomization.yaml;
// - patches: `- path: FILE` only, each document a strategic-merge patch found by apiVersion, kind and name,
//   or `$patch: delete` to remove that object;
// - images: name, newName, newTag; replicas: name, count.
// Strategic merge here merges maps, merges lists whose items all have a `name` by that name, and replaces
// every other list. Kubernetes merges container ports by containerPort and Service ports by port instead.
// Both agree while a patch keeps those numbers, and mergeByName rejects a patch that changes them.

const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'patches', 'images', 'replicas']);

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses YAML the way Kubernetes does: YAML 1.1, where a bare yes, no, on or off is a boolean. */
function parseYamlFile(path: string): JsonObject[] {
  const documents = YAML.parseAllDocuments(readFileSync(path, 'utf8'), { version: '1.1' });
  return documents.map((document, index) => {
    if (document.errors.length > 0) throw new Error(`${path} document ${index}: ${document.errors[0]?.message}`);
    const value: unknown = document.toJS();
    if (!isObject(value)) throw new Error(`${path} document ${index}: expected a mapping`);
    return value;
  });
}

function objectId(object: { apiVersion?: unknown; kind?: unknown; metadata?: unknown }): string {
  const name = isObject(object.metadata) ? object.metadata.name : undefined;
  return `${String(object.apiVersion)}/${String(object.kind)}/${String(name)}`;
}

function mergeByName(target: Json[], patch: Json[]): Json[] {
  const merged = [...target];
  for (const item of patch) {
    const name = (item as JsonObject).name;
    const index = merged.findIndex((existing) => (existing as JsonObject).name === name);
    if (index === -1) {
      merged.push(item);
      continue;
    }
    const existing = merged[index] as JsonObject;
    for (const key of ['port', 'containerPort']) {
      const patched = (item as JsonObject)[key];
      if (patched !== undefined && patched !== existing[key]) {
        throw new Error(`patch changes ${key} of list item ${String(name)}, which Kubernetes would add as a new item`);
      }
    }
    merged[index] = strategicMerge(existing, item as JsonObject);
  }
  return merged;
}

function strategicMerge(target: JsonObject, patch: JsonObject): JsonObject {
  const merged: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) throw new Error(`unsupported strategic-merge directive ${key}`);
    const current = merged[key];
    if (value === null) {
      delete merged[key];
    } else if (isObject(current) && isObject(value)) {
      merged[key] = strategicMerge(current, value);
    } else if (Array.isArray(current) && Array.isArray(value) && [...current, ...value].every((i) => isObject(i) && typeof i.name === 'string')) {
      merged[key] = mergeByName(current, value);
    } else {
      merged[key] = value;
    }
  }
  return merged;
}

function podSpecOf(object: JsonObject): JsonObject | undefined {
  const spec = object.spec;
  if (!isObject(spec)) return undefined;
  const template = spec.template;
  if (isObject(template) && isObject(template.spec)) return template.spec;
  return undefined;
}

function setImages(objects: JsonObject[], images: JsonObject[]): void {
  for (const image of images) {
    for (const object of objects) {
      const podSpec = podSpecOf(object);
      const containers = [...((podSpec?.initContainers as JsonObject[]) ?? []), ...((podSpec?.containers as JsonObject[]) ?? [])];
      for (const container of containers) {
        const [, name, tag] = /^(.+?)(?::([^:/]+))?$/.exec(String(container.image)) ?? [];
        if (name !== image.name) continue;
        const newTag = image.newTag ?? tag;
        container.image = `${String(image.newName ?? name)}${newTag === undefined ? '' : `:${String(newTag)}`}`;
      }
    }
  }
}

/** Renders a kustomization folder into its list of objects. */
function renderKustomization(dir: string): Manifest[] {
  const kustomizationPath = join(dir, 'kustomization.yaml');
  const [kustomization] = parseYamlFile(kustomizationPath);
  if (!kustomization) throw new Error(`${kustomizationPath} is empty`);
  for (const field of Object.keys(kustomization)) {
    if (!KUSTOMIZATION_FIELDS.has(field)) throw new Error(`${kustomizationPath}: field ${field} is not supported by this loader`);
  }

  let objects: JsonObject[] = [];
  for (const resource of (kustomization.resources as string[] | undefined) ?? []) {
    const path = join(dir, resource);
    objects.push(...(statSync(path).isDirectory() ? (renderKustomization(path) as unknown as JsonObject[]) : parseYamlFile(path)));
  }

  for (const entry of (kustomization.patches as JsonObject[] | undefined) ?? []) {
    if (Object.keys(entry).join() !== 'path') throw new Error(`${kustomizationPath}: only patches with a path alone are supported`);
    for (const patch of parseYamlFile(join(dir, String(entry.path)))) {
      const id = objectId(patch);
      const index = objects.findIndex((object) => objectId(object) === id);
      if (index === -1) throw new Error(`${kustomizationPath}: patch ${String(entry.path)} targets ${id}, which is not rendered`);
      if (patch.$patch === 'delete') {
        objects = objects.filter((_, i) => i !== index);
      } else {
        objects[index] = strategicMerge(objects[index] as JsonObject, patch);
      }
    }
  }

  setImages(objects, (kustomization.images as JsonObject[] | undefined) ?? []);
  for (const { name, count } of (kustomization.replicas as JsonObject[] | undefined) ?? []) {
    const targets = objects.filter((o) => ['Deployment', 'StatefulSet'].includes(String(o.kind)) && isObject(o.metadata) && o.metadata.name === name);
    if (targets.length === 0) throw new Error(`${kustomizationPath}: replicas entry ${String(name)} matches no Deployment or StatefulSet`);
    for (const target of targets) (target.spec as JsonObject).replicas = count as number;
  }

  const ids = objects.map(objectId);
  const duplicate = ids.find((id, index) => ids.indexOf(id) !== index);
  if (duplicate) throw new Error(`${kustomizationPath}: ${duplicate} is defined twice`);
  return objects as unknown as Manifest[];
}

// ---------------------------------------------------------------------------------------------------------
// Helpers for the checks.

const MODELS: Record<string, { new (data: never): { validate(): void } }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/Ingress': Ingress,
};

function find<T>(objects: Manifest[], kind: string, name: string): T {
  const object = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!object) throw new Error(`${kind} ${name} is missing from the rendered manifests`);
  return object as unknown as T;
}

function all<T>(objects: Manifest[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as unknown as T[];
}

function backendContainer(objects: Manifest[]): IContainer {
  const container = find<IDeployment>(objects, 'Deployment', BACKEND).spec?.template.spec?.containers[0];
  if (!container) throw new Error(`Deployment ${BACKEND} has no container`);
  return container;
}

/**
 * Names of the environment variables runtime/config.ts reads, taken from its text(), integer(), url(),
 * choice() and flag() calls and from direct reads such as `env.FLEET_ADMIN_TOKEN`.
 */
function configVariableNames(): Set<string> {
  const reads = CONFIG_SOURCE.matchAll(/\b(?:text|integer|url|choice|flag)\(\s*env,\s*'([A-Z0-9_]+)'|\benv\.([A-Z][A-Z0-9_]*)\b/g);
  return new Set([...reads].map((m) => (m[1] ?? m[2]) as string));
}

/** Collects the environment a backend container starts with: its envFrom sources, then its env entries. */
function containerEnvironment(objects: Manifest[], container: IContainer): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) Object.assign(environment, find<IConfigMap>(objects, 'ConfigMap', source.configMapRef.name ?? '').data);
    if (source.secretRef) {
      const name = source.secretRef.name ?? '';
      const secret = objects.find((o) => o.kind === 'Secret' && o.metadata.name === name) as ISecret | undefined;
      const data = secret?.stringData ?? OPERATOR_SECRETS[name];
      if (!data) throw new Error(`Secret ${name} is neither rendered nor in OPERATOR_SECRETS`);
      Object.assign(environment, data);
    }
  }
  for (const variable of container.env ?? []) environment[variable.name] = variable.value ?? `<from ${Object.keys(variable.valueFrom ?? {}).join()}>`;
  return environment;
}

function containerPort(container: IContainer, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

function preStopSleepSeconds(container: IContainer): number {
  const command = container.lifecycle?.preStop?.exec?.command ?? [];
  if (command[0] !== 'sleep' || command.length !== 2) throw new Error(`preStop must be ["sleep", SECONDS], got ${JSON.stringify(command)}`);
  return Number(command[1]);
}

function podSpecs(objects: Manifest[]): { owner: string; labels: Record<string, string>; spec: IPodSpec }[] {
  return [...all<IDeployment>(objects, 'Deployment'), ...all<IStatefulSet>(objects, 'StatefulSet'), ...all<IJob>(objects, 'Job')].map((o) => ({
    owner: `${o.kind} ${o.metadata?.name}`,
    labels: o.spec?.template.metadata?.labels ?? {},
    spec: o.spec?.template.spec as IPodSpec,
  }));
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  return selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([key, value]) => labels[key] === value);
}

function run(t: ExecutionContext, command: string, args: string[], input?: string): ReturnType<typeof spawnSync> | null {
  const result = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', input });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    t.log(`${command} is not installed; skipped this check`);
    return null;
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------
// Loader.

test('loader rejects unsupported fields', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-kustomize-'));
  writeFileSync(join(dir, 'kustomization.yaml'), 'resources: []\nnamespace: fleet\n');
  t.throws(() => renderKustomization(dir), { message: /field namespace is not supported/ });
  writeFileSync(join(dir, 'kustomization.yaml'), 'patches:\n  - path: p.yaml\n    target: {kind: Service}\n');
  t.throws(() => renderKustomization(dir), { message: /only patches with a path alone/ });
});

test('strategic merge merges lists by name', (t) => {
  const target: JsonObject = { containers: [{ name: 'a', image: 'x', args: ['1', '2'] }, { name: 'b', image: 'y' }] };
  const patch: JsonObject = { containers: [{ name: 'a', args: ['3'] }, { name: 'c', image: 'z' }] };
  t.deepEqual(strategicMerge(target, patch), {
    containers: [{ name: 'a', image: 'x', args: ['3'] }, { name: 'b', image: 'y' }, { name: 'c', image: 'z' }],
  });
  t.deepEqual(strategicMerge({ a: 1, b: 2 }, { b: null }), { a: 1 });
  t.throws(() => strategicMerge({ ports: [{ name: 'http', port: 80 }] }, { ports: [{ name: 'http', port: 81 }] }), { message: /changes port/ });
});

// ---------------------------------------------------------------------------------------------------------
// Checks that apply to every overlay.

for (const overlay of OVERLAYS) {
  const overlayDir = join(K8S_DIR, 'overlays', overlay);
  const objects = renderKustomization(overlayDir);

  test(`${overlay}: objects pass the Kubernetes schemas`, (t) => {
    t.true(objects.length > 0);
    for (const object of objects) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      if (!Model) {
        t.fail(`${objectId(object)}: no schema in this test for ${object.apiVersion} ${object.kind}; add it to MODELS`);
        continue;
      }
      t.notThrows(() => new Model(object as never).validate(), objectId(object));
    }
  });

  test(`${overlay}: backend env is what config.ts reads`, (t) => {
    const names = configVariableNames();
    t.true(names.has('REDIS_URL') && names.has('FLEET_SHUTDOWN_TIMEOUT_MS'), 'the parser of runtime/config.ts found too few names');
    const container = backendContainer(objects);
    const environment = containerEnvironment(objects, container);
    for (const name of Object.keys(environment)) t.true(names.has(name), `${name} is set but runtime/config.ts does not read it`);
    for (const source of container.envFrom ?? []) {
      if (!source.configMapRef) continue;
      const data = find<IConfigMap>(objects, 'ConfigMap', source.configMapRef.name ?? '').data ?? {};
      for (const name of Object.keys(data)) t.true(names.has(name), `ConfigMap key ${name} is not read by runtime/config.ts`);
    }
    t.notThrows(() => loadConfig(environment), 'loadConfig rejects the rendered environment');
  });

  test(`${overlay}: backend port and probes match the code`, (t) => {
    const container = backendContainer(objects);
    const config = loadConfig(containerEnvironment(objects, container));
    const defaults = loadConfig({ S3_ENDPOINT: 'http://minio:9000', S3_ACCESS_KEY: 'a', S3_SECRET_KEY: 'b', ...SECURITY_STAND_INS });
    t.is(defaults.port, 8080);
    t.is(containerPort(container, 'http'), config.port);
    t.is(containerPort(container, 'http'), defaults.port);

    const routes = new Set([...ROUTES_SOURCE.matchAll(/app\.get\('([^']+)'/g)].map((m) => m[1]));
    t.is(container.readinessProbe?.httpGet?.path, '/readyz');
    t.is(container.livenessProbe?.httpGet?.path, '/healthz');
    t.is(container.startupProbe?.httpGet?.path, '/healthz');
    for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe]) {
      t.true(routes.has(probe?.httpGet?.path ?? ''), `${probe?.httpGet?.path} is not a route in runtime/http-routes.ts`);
      t.is(containerPort(container, probe?.httpGet?.port), config.port);
    }
  });

  test(`${overlay}: Service targets the container port`, (t) => {
    const container = backendContainer(objects);
    const service = find<IService>(objects, 'Service', BACKEND);
    const deployment = find<IDeployment>(objects, 'Deployment', BACKEND);
    t.true(selects(service.spec?.selector, deployment.spec?.template.metadata?.labels ?? {}));
    const port = service.spec?.ports?.[0];
    t.is(port?.port, 8080);
    t.is(containerPort(container, port?.targetPort), containerPort(container, 'http'));
  });

  test(`${overlay}: grace period covers the shutdown`, (t) => {
    const deployment = find<IDeployment>(objects, 'Deployment', BACKEND);
    const container = backendContainer(objects);
    const config = loadConfig(containerEnvironment(objects, container));
    const graceMs = (deployment.spec?.template.spec?.terminationGracePeriodSeconds ?? 30) * 1000;
    const preStopMs = preStopSleepSeconds(container) * 1000;
    t.true(preStopMs > 0, 'preStop must sleep so the Service stops routing before SIGTERM');
    t.true(config.drainMs < config.shutdownTimeoutMs);
    t.true(graceMs > config.shutdownTimeoutMs + preStopMs, `grace ${graceMs} ms <= shutdown ${config.shutdownTimeoutMs} ms + preStop ${preStopMs} ms`);
  });

  test(`${overlay}: selectors and references resolve`, (t) => {
    const deployment = find<IDeployment>(objects, 'Deployment', BACKEND);
    const labels = deployment.spec?.template.metadata?.labels ?? {};
    t.true(selects(deployment.spec?.selector.matchLabels, labels));
    t.true(selects(find<IPodDisruptionBudget>(objects, 'PodDisruptionBudget', BACKEND).spec?.selector?.matchLabels, labels));
    for (const constraint of deployment.spec?.template.spec?.topologySpreadConstraints ?? []) {
      t.is(constraint.topologyKey, 'kubernetes.io/hostname');
      t.true(selects(constraint.labelSelector?.matchLabels, labels));
    }
    for (const autoscaler of all<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler')) {
      t.is(autoscaler.spec?.scaleTargetRef.kind, 'Deployment');
      t.is(autoscaler.spec?.scaleTargetRef.name, BACKEND);
      t.true((autoscaler.spec?.minReplicas ?? 1) <= (autoscaler.spec?.maxReplicas ?? 0));
    }

    const pods = podSpecs(objects);
    for (const service of all<IService>(objects, 'Service')) {
      t.true(pods.some((pod) => selects(service.spec?.selector, pod.labels)), `Service ${service.metadata?.name} selects no pod`);
    }
    for (const statefulSet of all<IStatefulSet>(objects, 'StatefulSet')) {
      t.truthy(find<IService>(objects, 'Service', statefulSet.spec?.serviceName ?? ''));
    }
    const secretsFromOperator = overlay === 'production' ? ['minio-root', 'fleet-s3-credentials', 'fleet-security'] : ['fleet-security'];
    for (const { owner, spec } of pods) {
      for (const container of spec.containers) {
        const references = [
          ...(container.envFrom ?? []).map((s) => (s.configMapRef ? ['ConfigMap', s.configMapRef.name] : ['Secret', s.secretRef?.name])),
          ...(container.env ?? []).flatMap((e) => (e.valueFrom?.configMapKeyRef ? [['ConfigMap', e.valueFrom.configMapKeyRef.name]] : [])),
        ];
        for (const [kind, name] of references) {
          if (kind === 'Secret' && secretsFromOperator.includes(name ?? '')) continue;
          t.true(objects.some((o) => o.kind === kind && o.metadata.name === name), `${owner} refers to ${kind} ${name}, which is not rendered`);
        }
      }
    }
  });

  test(`${overlay}: matches kubectl kustomize`, (t) => {
    const result = run(t, 'kubectl', ['kustomize', overlayDir]);
    if (!result) {
      t.pass();
      return;
    }
    t.is(result.status, 0, String(result.stderr));
    const expected = YAML.parseAllDocuments(String(result.stdout), { version: '1.1' }).map((d) => d.toJS() as Manifest);
    const byId = (list: Manifest[]) => Object.fromEntries(list.map((o) => [objectId(o), o]));
    t.deepEqual(byId(objects), byId(expected));
  });
}

// ---------------------------------------------------------------------------------------------------------
// Overlay-specific checks.

test('local: one replica on NodePorts', (t) => {
  const objects = renderKustomization(join(K8S_DIR, 'overlays/local'));
  t.is(find<IDeployment>(objects, 'Deployment', BACKEND).spec?.replicas, 1);
  t.is(backendContainer(objects).image, 'camera-fleet:dev');
  t.is(all(objects, 'HorizontalPodAutoscaler').length, 0, '`kubectl scale` must not be undone by an autoscaler');

  const devices = find<IService>(objects, 'Service', BACKEND);
  const minio = find<IService>(objects, 'Service', 'minio');
  t.is(devices.spec?.type, 'NodePort');
  t.is(minio.spec?.type, 'NodePort');
  const minioNodePort = minio.spec?.ports?.find((p) => p.port === 9000)?.nodePort ?? 0;
  t.true(minioNodePort > 0, 'the MinIO S3 port needs a nodePort');

  const publicEndpoint = new URL(find<IConfigMap>(objects, 'ConfigMap', 'fleet-config').data?.S3_PUBLIC_ENDPOINT ?? '');
  t.is(Number(publicEndpoint.port), minioNodePort, 'S3_PUBLIC_ENDPOINT must point at the MinIO NodePort');
});

test('production: replicas, image and Ingress', (t) => {
  const objects = renderKustomization(join(K8S_DIR, 'overlays/production'));
  const deployment = find<IDeployment>(objects, 'Deployment', BACKEND);
  t.is(deployment.spec?.replicas, 3);
  t.regex(backendContainer(objects).image ?? '', /^registry\.example\.com\/camera-fleet:/);
  t.true((find<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler', BACKEND).spec?.minReplicas ?? 0) >= 3);
  t.is(all(objects, 'Secret').length, 0, 'production Secrets are created by the operator, not from placeholders');

  const devices = find<IIngress>(objects, 'Ingress', 'fleet-devices');
  t.is(devices.spec?.ingressClassName, 'nginx');
  for (const annotation of ['proxy-read-timeout', 'proxy-send-timeout']) {
    t.true(Number(devices.metadata?.annotations?.[`nginx.ingress.kubernetes.io/${annotation}`]) >= 3600, annotation);
  }
  const devicePath = devices.spec?.rules?.[0]?.http?.paths[0];
  t.is(devicePath?.path, DEVICE_PATH);
  t.is(devicePath?.backend.service?.name, BACKEND);
  t.is(devicePath?.backend.service?.port?.name, find<IService>(objects, 'Service', BACKEND).spec?.ports?.[0]?.name);

  const config = find<IConfigMap>(objects, 'ConfigMap', 'fleet-config').data ?? {};
  t.is(config.FLEET_TRUST_FORWARDED_FOR, 'true', 'every device comes through ingress-nginx, so the upgrade limit needs X-Forwarded-For');
  const publicEndpoint = new URL(config.S3_PUBLIC_ENDPOINT ?? '');
  const minioRoute = all<IIngress>(objects, 'Ingress')
    .flatMap((ingress) => ingress.spec?.rules ?? [])
    .find((rule) => rule.host === publicEndpoint.hostname);
  t.is(minioRoute?.http?.paths[0]?.backend.service?.name, 'minio', 'S3_PUBLIC_ENDPOINT must be a host the Ingress routes to MinIO');
});

// ---------------------------------------------------------------------------------------------------------
// Base and overlays: the security Secret.

test('base: security placeholders fail loadConfig', (t) => {
  const objects = renderKustomization(join(K8S_DIR, 'base'));
  const placeholders = find<ISecret>(objects, 'Secret', 'fleet-security').stringData ?? {};
  t.deepEqual(Object.keys(placeholders).sort(), ['FLEET_DEVICE_TOKEN_SECRET', 'FLEET_SIGNING_PUBLIC_KEY']);
  t.true(backendContainer(objects).envFrom?.some((source) => source.secretRef?.name === 'fleet-security'));

  // A replica started from the placeholders must exit naming the variable, not run with a published secret.
  const environment = containerEnvironment(objects, backendContainer(objects));
  const secretError = t.throws(() => loadConfig(environment), { instanceOf: ConfigError });
  t.is(secretError?.variable, 'FLEET_DEVICE_TOKEN_SECRET');
  const keyError = t.throws(() => loadConfig({ ...environment, FLEET_DEVICE_TOKEN_SECRET: SECURITY_STAND_INS.FLEET_DEVICE_TOKEN_SECRET }), {
    instanceOf: ConfigError,
  });
  t.is(keyError?.variable, 'FLEET_SIGNING_PUBLIC_KEY');
});

test('overlays leave the security Secret to the operator', (t) => {
  for (const overlay of OVERLAYS) {
    const objects = renderKustomization(join(K8S_DIR, 'overlays', overlay));
    t.false(objects.some((o) => o.kind === 'Secret' && o.metadata.name === 'fleet-security'), overlay);
  }
});

// ---------------------------------------------------------------------------------------------------------
// Base: storage and the bucket Job.

test('base: Redis persists with AOF', (t) => {
  const objects = renderKustomization(join(K8S_DIR, 'overlays/local'));
  const redis = find<IStatefulSet>(objects, 'StatefulSet', 'redis');
  const args = redis.spec?.template.spec?.containers[0]?.args ?? [];
  const appendonly = args.indexOf('--appendonly');
  t.true(appendonly >= 0);
  t.is(args[appendonly + 1], 'yes');
  const dataVolume = redis.spec?.volumeClaimTemplates?.[0]?.metadata?.name;
  t.true(redis.spec?.template.spec?.containers[0]?.volumeMounts?.some((m) => m.name === dataVolume && m.mountPath === '/data'));
});

test('base: MinIO serves /data from a volume', (t) => {
  const objects = renderKustomization(join(K8S_DIR, 'overlays/local'));
  const minio = find<IStatefulSet>(objects, 'StatefulSet', 'minio');
  const container = minio.spec?.template.spec?.containers[0];
  t.regex(container?.image ?? '', /^minio\/minio:/);
  t.deepEqual(container?.args?.slice(0, 2), ['server', '/data']);
  t.truthy(minio.spec?.volumeClaimTemplates?.length);
});

test('base: bucket Job script is valid sh', (t) => {
  const objects = renderKustomization(join(K8S_DIR, 'overlays/local'));
  const job = find<IJob>(objects, 'Job', 'minio-bucket');
  const container = job.spec?.template.spec?.containers[0];
  t.regex(container?.image ?? '', /^minio\/mc:/);
  t.deepEqual(container?.command, ['/bin/sh', '-c']);
  const script = container?.args?.[0] ?? '';
  t.regex(script, /mc mb --ignore-existing "fleet\/\$S3_BUCKET"/);

  const syntax = run(t, 'sh', ['-n'], script);
  if (syntax) t.is(syntax.status, 0, String(syntax.stderr));
  const lint = run(t, 'shellcheck', ['--shell=sh', '-'], script);
  if (lint) t.is(lint.status, 0, String(lint.stdout));
});

test('manifests pass yamllint', (t) => {
  const result = run(t, 'yamllint', ['--strict', '-f', 'parsable', '-d', '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}', relative(ROOT, K8S_DIR)]);
  if (!result) {
    t.pass();
    return;
  }
  t.is(result.status, 0, String(result.stdout));
});
