import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { chromium, type Browser, type Page } from 'playwright-core';
import { fleetDeviceIds, SimulatedFleet, type FleetOptions } from '../simulator/index.ts';
import { startBackend, TEST_SECURITY, type TestBackend } from './helpers/backend.ts';
import type { FleetSummary } from '../storage/summary.ts';
import type { DeviceRecord, TimelineEntry } from '../storage/state-store.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = new URL('../test-artifacts/', import.meta.url);

let browser: Browser | undefined;

test.before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing, and the dashboard test drives it. Install it with: apt-get install -y chromium`);
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  await mkdir(ARTIFACTS, { recursive: true });
});

test.after.always(async () => {
  await browser?.close();
});

/**
 * Opens a fresh browser context on the dashboard at `url` (the replica's API by default) and collects the
 * page's uncaught script errors.
 */
async function openDashboard(t: ExecutionContext, backend: TestBackend, url = backend.apiUrl): Promise<{ page: Page; pageErrors: string[] }> {
  if (!browser) throw new Error('the browser is not running because the before hook failed. Its error is reported above.');
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light', reducedMotion: 'reduce' });
  // Waits end on conditions only, and ava's inactivity timeout stops a test that never gets there.
  context.setDefaultTimeout(0);
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  t.teardown(async () => {
    await context.close();
  });
  await page.goto(`${url}/`);
  return { page, pageErrors };
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.getByLabel('Operator token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/**
 * Starts a TCP proxy to the API on 127.0.0.1. `cut()` drops every connection and refuses new ones until
 * `restore()`, like a network outage between the browser and the replica.
 */
async function startCuttableProxy(t: ExecutionContext, target: string): Promise<{ url: string; cut(): void; restore(): void }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let isCut = false;
  const server = createServer((client) => {
    if (isCut) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(port), hostname);
    for (const [socket, peer] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(socket);
      socket.on('error', () => peer.destroy());
      socket.on('close', () => {
        sockets.delete(socket);
        peer.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    cut() {
      isCut = true;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      isCut = false;
    },
  };
}

async function getApi<T>(backend: TestBackend, token: string, path: string): Promise<T> {
  const response = await fetch(`${backend.apiUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`GET ${path} returned ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

async function startFleet(t: ExecutionContext, backend: TestBackend, tokens: Map<string, string>, options: Omit<FleetOptions, 'url'>) {
  const fleet = new SimulatedFleet({
    url: backend.url,
    connectsPerSecond: 500,
    signingPublicKey: TEST_SECURITY.publicKey,
    tokenFor: (id) => tokens.get(id) ?? '',
    ...options,
  });
  t.teardown(() => fleet.stop());
  await fleet.start();
  await fleet.waitFor((stats) => stats.online === options.count);
  return fleet;
}

// The callbacks below run in the page. They use only the element playwright passes in, because the project's
// tsconfig has no DOM library. They declare no named functions, because tsx (esbuild with keepNames) wraps
// those in a `__name` helper that does not exist in the browser.

/** Reads `data-<key>` → `data-<value>` pairs from the elements matching `selector`. */
async function readPairs(page: Page, selector: string, key: string, value: string): Promise<Record<string, number>> {
  const pairs = await page.$$eval(
    selector,
    (nodes, names) => nodes.map((node) => [node.getAttribute(names[0]), Number(node.getAttribute(names[1]))]),
    [key, value] as const,
  );
  return Object.fromEntries(pairs) as Record<string, number>;
}

/** Reads the numbers that the overview and the two distribution charts show. */
async function readOverview(page: Page) {
  return {
    counts: await readPairs(page, '[data-count]', 'data-count', 'data-value'),
    firmware: await readPairs(page, '#firmware-chart li', 'data-key', 'data-count'),
    models: await readPairs(page, '#models-chart li', 'data-key', 'data-count'),
  };
}

function patchRow(page: Page, patchId: string) {
  return page.locator(`#patches li[data-patch-id="${patchId}"]`);
}

/** Returns the width of the patch bar's applied segment, in percent of the bar. */
function appliedSegmentWidth(page: Page, patchId: string): Promise<number> {
  return patchRow(page, patchId)
    .locator('.stack span')
    .first()
    .evaluate((segment) => parseFloat(segment.style.width));
}

function waitForApplied(page: Page, patchId: string, applied: number): Promise<void> {
  return page.locator(`#patches li[data-patch-id="${patchId}"][data-applied="${applied}"]`).waitFor();
}

function visibleDeviceIds(page: Page): Promise<string[]> {
  return page.$$eval('#device-rows tr', (rows) => rows.map((row) => row.getAttribute('data-id') ?? ''));
}

function waitForFirstRow(page: Page, deviceId: string): Promise<void> {
  return page.locator(`#device-rows tr:first-child[data-id="${deviceId}"]`).waitFor();
}

test('dashboard tracks rollout and device timeline', async (t) => {
  const backend = await startBackend(t);
  const ids = fleetDeviceIds({ count: 30 });
  const tokens = await backend.tokens(ids);
  // Two thirds of the fleet come online first, so the patch bar stops at 20 of 30 until the rest connect.
  await startFleet(t, backend, tokens, { count: 20, applyMs: 1500 });
  const operatorToken = await backend.operatorToken('read');
  const { page, pageErrors } = await openDashboard(t, backend);

  await signIn(page, 'not-a-token');
  await page.locator('#sign-in-error').filter({ hasText: 'rejected' }).waitFor();
  t.regex(await page.locator('#sign-in-error').innerText(), /rejected this token: unknown or revoked operator token/);

  await signIn(page, operatorToken);
  await page.locator('#connection[data-state="live"]').waitFor();
  await page.locator('[data-count="online"][data-value="20"]').waitFor();
  const summary = await getApi<FleetSummary>(backend, operatorToken, '/v1/summary');
  const onPage = await readOverview(page);
  t.is(onPage.counts.devices, summary.devices);
  t.is(onPage.counts.online, summary.online);
  t.is(onPage.counts.offline, summary.devices - summary.online);
  t.is(onPage.counts.inFlight, summary.inFlight);
  t.deepEqual(onPage.firmware, summary.firmware);
  t.deepEqual(onPage.models, summary.models);
  t.is(summary.devices, 30);

  await backend.upload('dash-a.bin', randomBytes(200_000));
  await waitForApplied(page, 'dash-a.bin', 20);
  const widthAt20 = await appliedSegmentWidth(page, 'dash-a.bin');
  // The table refreshes on its own and shows the patch on the devices that applied it.
  await page.locator('#device-rows tr[data-applied="1"]').nth(19).waitFor();
  t.is(await page.locator('#device-rows tr[data-applied="1"]').count(), 20);
  await page.screenshot({ path: new URL('dashboard.png', ARTIFACTS).pathname, fullPage: true });

  // Record every applied count the row shows from here on, to check that the bar only moves forward.
  await patchRow(page, 'dash-a.bin').evaluate((row) => {
    row.appliedSeen = [];
    const observer = new row.ownerDocument.defaultView.MutationObserver(() => row.appliedSeen.push(Number(row.dataset.applied)));
    observer.observe(row, { attributes: true, attributeFilter: ['data-applied'] });
  });
  await startFleet(t, backend, tokens, { count: 10, firstIndex: 21, applyMs: 1500 });
  await waitForApplied(page, 'dash-a.bin', 30);
  const widthAt30 = await appliedSegmentWidth(page, 'dash-a.bin');
  t.true(widthAt30 > widthAt20, `applied segment width went from ${widthAt20}% to ${widthAt30}%`);
  t.is(widthAt30, 100);
  const seen: number[] = await patchRow(page, 'dash-a.bin').evaluate((row) => row.appliedSeen);
  t.deepEqual(seen, [...seen].sort((a, b) => a - b), `applied counts shown: ${seen.join(', ')}`);
  t.is(seen.at(-1), 30);

  await page.getByLabel('Search device id').fill('cam_0007');
  await page.locator('#device-rows tr[data-id="cam_0007"]').waitFor();
  await page.locator('#device-rows tr:not([data-id="cam_0007"])').first().waitFor({ state: 'detached' });
  t.deepEqual(await visibleDeviceIds(page), ['cam_0007']);

  await page.getByRole('button', { name: 'Show timeline of cam_0007' }).click();
  await page.locator('#device-dialog[open]').waitFor();
  await page.locator('#timeline-rows tr[data-patch-id="dash-a.bin"][data-state="applied"]').waitFor();
  const device = await getApi<DeviceRecord & { timeline: TimelineEntry[] }>(backend, operatorToken, '/v1/devices/cam_0007');
  const states = await page.$$eval('#timeline-rows tr', (rows) => rows.map((row) => row.getAttribute('data-state')));
  t.deepEqual(states, device.timeline.map((entry) => entry.state));
  t.is(await page.locator('#device-title').innerText(), 'cam_0007');
  await page.screenshot({ path: new URL('dashboard-timeline.png', ARTIFACTS).pathname });

  await page.keyboard.press('Escape');
  await page.locator('#device-dialog').waitFor({ state: 'hidden' });
  t.deepEqual(pageErrors, [], 'script errors on the dashboard page');
});

test('device table pages and sign-out clears token', async (t) => {
  const backend = await startBackend(t);
  const ids = fleetDeviceIds({ count: 250, prefix: 'page_' });
  await backend.tokens(ids);
  const operatorToken = await backend.operatorToken('read');
  const { page, pageErrors } = await openDashboard(t, backend);
  await signIn(page, operatorToken);

  await waitForFirstRow(page, 'page_0001');
  t.deepEqual(await visibleDeviceIds(page), ids.slice(0, 100));
  t.true(await page.getByRole('button', { name: 'Previous' }).isDisabled());

  await page.getByRole('button', { name: 'Next' }).click();
  await waitForFirstRow(page, 'page_0101');
  t.deepEqual(await visibleDeviceIds(page), ids.slice(100, 200));

  await page.getByRole('button', { name: 'Next' }).click();
  await waitForFirstRow(page, 'page_0201');
  t.deepEqual(await visibleDeviceIds(page), ids.slice(200));
  await page.locator('#page-next:disabled').waitFor();

  await page.getByRole('button', { name: 'Previous' }).click();
  await waitForFirstRow(page, 'page_0101');
  t.regex(await page.locator('#page-info').innerText(), /Page 2 · devices 101–200 of 250/);

  await page.getByLabel('Status').selectOption('true');
  await page.locator('#table-empty').filter({ hasText: 'No device matches these filters.' }).waitFor();
  t.deepEqual(await visibleDeviceIds(page), []);

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Operator token').waitFor();
  t.deepEqual(await visibleDeviceIds(page), []);
  // A reload shows the sign-in form again, so the token left local storage.
  await page.reload();
  await page.getByLabel('Operator token').waitFor();
  t.true(await page.locator('#dashboard').isHidden());
  t.deepEqual(pageErrors, [], 'script errors on the dashboard page');
});

test('dashboard reconnects after a network outage', async (t) => {
  const backend = await startBackend(t);
  await backend.tokens(['cam_lone']);
  const operatorToken = await backend.operatorToken('read');
  const proxy = await startCuttableProxy(t, backend.apiUrl);
  const { page, pageErrors } = await openDashboard(t, backend, proxy.url);
  await signIn(page, operatorToken);
  await page.locator('#connection[data-state="live"]').waitFor();
  await waitForFirstRow(page, 'cam_lone');

  proxy.cut();
  await page.locator('#connection[data-state="reconnecting"]').waitFor();
  t.regex((await page.locator('#connection').textContent()) ?? '', /^Reconnecting in \d+ s: .+/);
  await page.locator('#table-error').filter({ hasText: 'Could not load devices' }).waitFor();
  t.regex(await page.locator('#table-error').innerText(), /^Could not load devices: the server did not respond: .+ \(network_error\)$/);
  t.deepEqual(await visibleDeviceIds(page), ['cam_lone'], 'the last page stays on screen');
  await page.screenshot({ path: new URL('dashboard-reconnecting.png', ARTIFACTS).pathname });

  proxy.restore();
  await page.locator('#connection[data-state="live"]').waitFor();
  await page.locator('#table-error:empty').waitFor({ state: 'attached' });
  t.is(await page.locator('#table-error').innerText(), '');
  t.deepEqual(pageErrors, [], 'script errors on the dashboard page');
});
