// The console end to end: headless Chromium, driven by Playwright, against a real master (with
// a tokens file) and a real worker, both started here from the release build. Every request
// to a host other than 127.0.0.1 is blocked and fails the test, as does any error the page
// logs. Screenshots of every page go to target/console/ (out of git).
//
//   node e2e/console/console.test.mjs     (from the repository; scripts/check-console.sh)

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'target/release');
const SHOTS = join(ROOT, 'target/console');
const TOKENS = { admin: 'console-admin-token', viewer: 'console-viewer-token', worker: 'console-worker-token' };
const WAIT_MS = 15000;

const dir = mkdtempSync(join(tmpdir(), 'leasehold-console-'));
const children = [];
const outside = [];
const pageErrors = [];

function start(binary, args, log) {
  const child = spawn(join(BIN, binary), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  child.stderr.on('data', (chunk) => { text += chunk; });
  child.log = () => text;
  children.push(child);
  writeFileSync(join(dir, log), '');
  return child;
}

async function until(what, check, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startMaster() {
  writeFileSync(join(dir, 'tokens.json'), JSON.stringify({ tokens: [
    { name: 'ops', token: TOKENS.admin, role: 'admin' },
    { name: 'grafana', token: TOKENS.viewer, role: 'read-only' },
    { name: 'workers', token: TOKENS.worker, role: 'worker' },
  ] }));
  const master = start('master-svc', ['--listen', '127.0.0.1:0', '--log-format', 'json',
    '--database-url', `sqlite:${join(dir, 'leasehold.db')}`, '--tokens-file', join(dir, 'tokens.json'),
    '--tick-ms', '100'], 'master.log');
  const addr = await until('the master to listen', () => {
    for (const line of master.log().split('\n')) {
      try {
        const fields = JSON.parse(line).fields || {};
        if (fields.message === 'master listening') return fields.addr;
      } catch { /* not a JSON line */ }
    }
    return null;
  });
  return `http://${addr}`;
}

function client(base, token) {
  return async (method, path, body) => {
    const response = await fetch(`${base}/${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = await response.json().catch(() => null);
    return { status: response.status, json };
  };
}

async function browser() {
  const b = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--proxy-server=http://127.0.0.1:9',
      '--proxy-bypass-list=127.0.0.1', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
  });
  return b;
}

async function newPage(b, options = {}) {
  const context = await b.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1') return route.continue();
    outside.push(url.href);
    return route.abort();
  });
  const page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // Every error counts, a failed API call too: no step of the test should provoke one, but
    // the console's first `GET /whoami`, without a token, which is how it learns it needs one.
    const signInProbe = message.location().url.endsWith('/whoami') && message.text().includes('401');
    if (message.type() === 'error' && !signInProbe) pageErrors.push(`console: ${message.text()} (${message.location().url})`);
  });
  return page;
}

async function signIn(page, base, token) {
  await page.goto(`${base}/ui`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor({ timeout: WAIT_MS });
}

const cellText = (page, queue, count) => page.locator(`tr[data-queue="${queue}"] td[data-count="${count}"]`).textContent({ timeout: WAIT_MS });

const accessibility = [];

/**
 * A screenshot of the page, and axe-core's accessibility check of it (WCAG 2 A and AA rules):
 * its serious and critical findings fail the test. axe is evaluated through the DevTools
 * protocol, which the page's Content-Security-Policy does not apply to.
 */
async function shot(page, name) {
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => (await window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] },
  })).violations.filter((v) => ['serious', 'critical'].includes(v.impact))
    .map((v) => `${v.id}: ${v.help} (${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')})`));
  accessibility.push(...violations.map((v) => `${name}: ${v}`));
}

async function run() {
  mkdirSync(SHOTS, { recursive: true });
  const base = await startMaster();
  const admin = client(base, TOKENS.admin);
  const worker = client(base, TOKENS.worker);

  // A task whose first worker stalls: leased for 1 s and never answered, so its lease expires;
  // the real worker finishes it; then the stalled worker's late result is refused.
  const stalled = (await admin('POST', 'tasks', { payload: 'stalled first', queue: 'default' })).json;
  const lease = (await worker('POST', 'tasks/lease', { worker_id: 'stalled-worker', lease_secs: 1 })).json;
  const stalledLease = lease.tasks[0].lease_id;
  await until('the stalled lease to expire', async () => (await admin('GET', `tasks/${stalled.id}`)).json.state === 'queued');
  // Tasks the uppercase handler fails for good: their payloads are not strings.
  const failing = [];
  for (let i = 0; i < 3; i++) failing.push((await admin('POST', 'tasks', { payload: { n: i }, queue: 'default', tags: ['console-bulk'] })).json.id);
  start('worker-svc', ['--master', base, '--worker-token', TOKENS.worker, '--id', 'console-worker',
    '--listen', '127.0.0.1:0', '--queues', 'default', '--handler', 'uppercase', '--concurrency', '4', '--wait-secs', '1'], 'worker.log');
  await until('the stalled task to succeed', async () => (await admin('GET', `tasks/${stalled.id}`)).json.state === 'succeeded');
  const late = await worker('POST', `tasks/${stalled.id}/result`, { lease_id: stalledLease, worker_id: 'stalled-worker', outcome: 'succeeded', result: 'too late' });
  if (late.status !== 409) throw new Error(`the late result was answered ${late.status}`);
  await until('the failing tasks to fail', async () => {
    const states = await Promise.all(failing.map(async (id) => (await admin('GET', `tasks/${id}`)).json.state));
    return states.every((s) => s === 'failed');
  });

  const b = await browser();
  const page = await newPage(b);
  await signIn(page, base, TOKENS.admin);
  await page.evaluate(() => { window.notReloaded = true; });

  // The overview's counts change without a reload.
  for (let i = 0; i < 5; i++) await admin('POST', 'tasks', { payload: `live ${i}`, queue: 'console-live' });
  await until('5 queued on the overview', async () => (await cellText(page, 'console-live', 'queued')).trim() === '5');
  for (let i = 0; i < 3; i++) await admin('POST', 'tasks', { payload: `more ${i}`, queue: 'console-live' });
  await until('8 queued on the overview', async () => (await cellText(page, 'console-live', 'queued')).trim() === '8');
  if (!(await page.evaluate(() => window.notReloaded))) throw new Error('the overview reloaded');
  await shot(page, 'overview');

  // The keyboard reaches a queue: Tab through the page to its link, Enter opens it.
  await page.locator('body').focus();
  await until('the queue link to take the focus', async () => {
    await page.keyboard.press('Tab');
    return page.evaluate(() => document.activeElement.textContent === 'console-live');
  }, 5000);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: /Queue console-live/ }).waitFor({ timeout: WAIT_MS });

  // Pause a queue with its button; the API reports it paused.
  await page.getByRole('button', { name: 'Pause' }).click();
  await until('the API to report console-live paused', async () => (await admin('GET', 'queues/console-live')).json.settings.paused === true);
  await page.getByRole('button', { name: 'Resume' }).waitFor({ timeout: WAIT_MS });
  await shot(page, 'queue');

  // The stalled task's attempt timeline, with the refused stale result.
  await page.goto(`${base}/ui/#/tasks/${stalled.id}`);
  await page.locator('ol.attempts li[data-attempt]').nth(1).waitFor({ timeout: WAIT_MS });
  const first = page.locator('ol.attempts li').first();
  await first.getByText('expired').first().waitFor({ timeout: WAIT_MS });
  await first.locator('[data-refused]').getByText(/result refused: /).waitFor({ timeout: WAIT_MS });
  await page.locator('svg.timeline .refused').first().waitFor({ state: 'attached', timeout: WAIT_MS });
  await shot(page, 'task');

  // Select the failed tasks and retry them in bulk: a count first, then the operation.
  await page.goto(`${base}/ui/#/tasks?queue=default&state=failed`);
  await page.locator('tr[data-task]').nth(2).waitFor({ timeout: WAIT_MS });
  await page.getByLabel('Select every task on this page').check();
  await page.locator('[data-action="bulk-count"]').click();
  await page.getByRole('button', { name: 'retry 3 tasks' }).click();
  await page.locator('.progress[data-state="done"]').getByText('3 done').waitFor({ timeout: WAIT_MS });
  // A retry starts the count of attempts over; the history keeps both leases.
  await until('the retried tasks to be leased again', async () => {
    const leases = await Promise.all(failing.map(async (id) => (await admin('GET', `tasks/${id}/attempts`)).json.attempts.length));
    return leases.every((n) => n >= 2);
  });
  await shot(page, 'tasks');

  await page.goto(`${base}/ui/#/workers`);
  await page.locator('tr[data-worker="console-worker"]').waitFor({ timeout: WAIT_MS });
  await shot(page, 'workers');
  await page.goto(`${base}/ui/#/audit`);
  await page.getByText('POST /queues/console-live/pause').waitFor({ timeout: WAIT_MS });
  await shot(page, 'audit');

  // Phone width, dark.
  const phone = await newPage(b, { viewport: { width: 390, height: 844 }, colorScheme: 'dark' });
  await signIn(phone, base, TOKENS.admin);
  await shot(phone, 'overview-phone-dark');
  await phone.goto(`${base}/ui/#/tasks/${stalled.id}`);
  await phone.locator('ol.attempts li').first().waitFor({ timeout: WAIT_MS });
  await shot(phone, 'task-phone-dark');

  // A read-only token sees no action buttons anywhere.
  const viewer = await newPage(b);
  await signIn(viewer, base, TOKENS.viewer);
  for (const at of ['#/', '#/queues/console-live', `#/tasks/${failing[0]}`, '#/tasks?queue=default', '#/workers']) {
    await viewer.goto(`${base}/ui/${at}`);
    await viewer.locator('main h1').waitFor({ timeout: WAIT_MS });
    await viewer.waitForLoadState('networkidle');
    await viewer.waitForTimeout(500);
    const actions = await viewer.locator('main [data-action], main input[type="checkbox"], main select:not([name])').count();
    if (actions) throw new Error(`a read-only token sees ${actions} action control(s) at ${at}`);
  }
  await viewer.getByRole('button', { name: 'Sign out' }).click();
  await viewer.getByLabel('API token').waitFor({ timeout: WAIT_MS });

  if (outside.length) throw new Error(`requests to other hosts: ${outside.join(', ')}`);
  if (pageErrors.length) throw new Error(`the page logged errors:\n${pageErrors.join('\n')}`);
  if (accessibility.length) throw new Error(`accessibility (axe-core):\n${accessibility.join('\n')}`);

  // The page says when the master cannot be reached (the browser logs each refused
  // connection from here on, which is expected).
  await page.goto(`${base}/ui/#/`);
  await page.locator('.conn.ok').waitFor({ timeout: WAIT_MS });
  children[0].kill('SIGTERM');
  await page.locator('.conn.lost').waitFor({ timeout: WAIT_MS });
  await b.close();
}

function stop() {
  for (const child of children) child.kill('SIGTERM');
}

const timer = setTimeout(() => { console.error('the console test ran out of time (180 s)'); stop(); process.exit(1); }, 180000);
try {
  await run();
  console.log(`console end to end: passed; screenshots in ${SHOTS}`);
} catch (error) {
  console.error(`console end to end: FAILED: ${error.stack || error}`);
  if (pageErrors.length) console.error(pageErrors.join('\n'));
  if (outside.length) console.error(`requests to other hosts: ${outside.join(', ')}`);
  if (accessibility.length) console.error(`accessibility (axe-core):\n${accessibility.join('\n')}`);
  for (const [i, child] of children.entries()) console.error(`--- process ${i} log (tail):\n${child.log().slice(-3000)}`);
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  stop();
  rmSync(dir, { recursive: true, force: true });
}
