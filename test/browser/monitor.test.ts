/**
 * The monitor page (docs/protocol.md#monitor), driven in headless Chromium against a
 * real broker, with real socket.io-client subscribers and real /_notify pushes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { NAME, VERSION } from '../../src/package-info.ts';
import { notify, request, startBroker } from '../helpers/broker.ts';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';
import { connect, flush, withTimeout } from '../helpers/clients.ts';
import { until } from '../helpers/wait.ts';


const missing = chromiumMissing();
if (missing) console.log(`# monitor page tests skipped: ${missing}`);

const broker = await startBroker();
const browser: Browser | undefined = missing ? undefined : await launchChromium();

/** A monitor page, open and connected, with what it complained about. */
interface Monitor {
  page: Page;
  /** Console errors and uncaught exceptions. */
  errors: string[];
  /** Every URL the page requested. */
  requests: string[];
  /** `<status> <url>` of every answer of 400 or more. */
  failures: string[];
  /** The page's socket id, from `welcome`. */
  socketId(): Promise<string>;
  close(): Promise<void>;
}

async function openMonitor(base = broker.url, connected = true): Promise<Monitor> {
  const context = await browser!.newContext();
  const page = await context.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  const failures: string[] = [];
  page.on('response', (res) => {
    if (res.status() >= 400) failures.push(`${res.status()} ${res.url()}`);
  });
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('request', (req) => requests.push(req.url()));
  await page.goto(`${base}/monitor`);
  if (connected) {
    await page.waitForSelector('#connection[data-state="connected"]');
    await page.waitForSelector('#buses input[value="calls"]');
  }
  const socketId = async (): Promise<string> => {
    await page.waitForSelector('#broker-info[data-socket-id]:not([data-socket-id=""])');
    return (await page.getAttribute('#broker-info', 'data-socket-id')) as string;
  };
  return { page, errors, requests, failures, socketId, close: () => context.close() };
}

/** True when the broker has socket `id` in `room`. */
const inRoom = (room: string, id: string): boolean => broker.io.sockets.adapter.rooms.get(room)?.has(id) ?? false;

async function join(monitor: Monitor, room: string): Promise<void> {
  const id = await monitor.socketId();
  await until(`page in ${room}`, () => inRoom(room, id));
}

/** Ticks the bus's checkbox on the page and waits until the broker has the page in that bus. */
async function tick(monitor: Monitor, bus: string): Promise<void> {
  await monitor.page.check(`#buses input[value="${bus}"]`);
  await join(monitor, bus);
}

/** The rows shown: [time, event, rooms, payload] each. */
function rows(page: Page): Promise<string[][]> {
  return page.$$eval('#events tbody > tr:first-child', (trs) => trs.map((tr) => Array.from(tr.children).map((td) => (td.textContent ?? '').trim())));
}

async function count(page: Page, event: string): Promise<number> {
  const text = await page.$$eval(
    '#counts tbody tr',
    (trs, name) => trs.find((tr) => tr.querySelector('button')?.textContent === name)?.children[1]?.textContent ?? '0',
    event,
  );
  return Number(text.replace(/,/g, ''));
}

/**
 * Runs in the page: every visible element holding text whose colour has less
 * than 4.5:1 contrast with the background behind it (WCAG AA for body text).
 * A string, so that no helper of the test's compiler leaks into the page.
 */
const CONTRAST_CHECK = `(() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || c[3] > 0) return c; }
    return [255, 255, 255];
  };
  const poor = [];
  for (const el of document.querySelectorAll('body *')) {
    const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent.trim()).join('');
    if (!text || el.getClientRects().length === 0 || el.closest('.visually-hidden')) continue;
    const style = getComputedStyle(el);
    if (style.visibility !== 'visible') continue;
    const [a, b] = [lum(rgb(style.color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) poor.push(el.tagName + '.' + el.className + ' "' + text.slice(0, 20) + '" ' + ratio.toFixed(2));
  }
  return poor;
})()`;

describe('monitor page', { skip: missing }, () => {
  it('loads from the broker alone, without console errors, and shows the connection and the buses', async () => {
    const monitor = await openMonitor();
    try {
      const { page } = monitor;
      assert.equal(await page.textContent('#connection'), 'Connected');
      assert.match((await page.textContent('#broker-info')) ?? '', new RegExp(`^${NAME} ${VERSION} · socket \\S+$`));
      const buses = await page.$$eval('#buses input[type="checkbox"]', (boxes) => boxes.map((b) => (b as HTMLInputElement).value));
      assert.deepEqual(buses.sort(), ['calls', 'dial_calls', 'everyone', 'internal', 'locations', 'support', 'traces']);
      // Every control has a label a screen reader can read.
      const unlabelled = await page.$$eval('input, textarea, select', (fields) =>
        fields.filter((f) => (f as HTMLInputElement).labels?.length === 0 && !f.getAttribute('aria-label')).map((f) => f.outerHTML),
      );
      assert.deepEqual(unlabelled, []);
      await page.waitForTimeout(200); // late errors (a failed fetch, say) would show by now
      assert.deepEqual(monitor.errors, []);
      assert.ok(monitor.requests.length >= 5);
      for (const url of monitor.requests) assert.ok(url.startsWith(`${broker.url}/`), `${url} is not from the broker`);
      assert.ok(monitor.requests.includes(`${broker.url}/socket.io/socket.io.min.js`));
    } finally {
      await monitor.close();
    }
  });

  it('keeps text readable, in light and dark schemes (contrast of 4.5:1 at least)', async () => {
    const monitor = await openMonitor();
    try {
      const { page } = monitor;
      await tick(monitor, 'support');
      await notify(broker.url, 'report_ops', { error: 'core_threshold', host: 'sbc1.example.net' });
      await page.locator('#events tbody button.fold').first().click();
      await page.click('#pause'); // a pressed button, too
      for (const colorScheme of ['light', 'dark'] as const) {
        await page.emulateMedia({ colorScheme });
        const poor = (await page.evaluate(CONTRAST_CHECK)) as string[];
        assert.deepEqual(poor, [], `${colorScheme} scheme`);
      }
    } finally {
      await monitor.close();
    }
  });

  it('serves its files with a strict content policy, its configuration, and nothing else of its folder', async () => {
    const page = await request(`${broker.url}/monitor`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'.*connect-src 'self'/);
    assert.equal((await request(`${broker.url}/monitor/monitor.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8');
    for (const path of ['/monitor/model.d.ts', '/monitor/../package.json', '/monitor/index.html.bak']) {
      assert.equal((await request(`${broker.url}${path}`)).status, 404, path);
    }
    const slash = await fetch(`${broker.url}/monitor/`, { redirect: 'manual' });
    assert.equal(slash.status, 301);
    assert.equal(new URL(slash.headers.get('location')!, `${broker.url}/monitor/`).pathname, '/monitor');

    const config = await request(`${broker.url}/monitor/config.json`);
    assert.equal(config.status, 200);
    assert.deepEqual(config.body.buses, { public: ['everyone'], private: ['calls', 'internal', 'support'], host: ['dial_calls', 'locations', 'traces'] });
    assert.equal(config.body.notification_rooms, '^\\w+:');
    assert.equal(config.body.routes.call, 'calls');
    broker.broker.routes.register({ event: 'queuer', default_room: 'calls' });
    broker.broker.routes.register({ event: '__proto__', default_room: null });
    const again = await request(`${broker.url}/monitor/config.json`);
    assert.equal(again.body.routes.queuer, 'calls', 'routes registered at run time are listed');
    assert.ok(Object.hasOwn(again.body.routes, '__proto__'));
  });

  it('shows a /_notify push within a second of ticking its bus, and unfolds it', async () => {
    const monitor = await openMonitor();
    try {
      const { page } = monitor;
      await tick(monitor, 'calls');
      const body = { state: 'end', call: 'notify-1', source: '33123456789', data: { duration: 42 } };
      const sent = Date.now();
      assert.deepEqual((await notify(broker.url, 'call', body)).body, { ok: true });
      await page.locator('#events tbody', { hasText: 'notify-1' }).waitFor({ timeout: 5_000 });
      const elapsed = Date.now() - sent;
      assert.ok(elapsed < 1_000, `shown after ${elapsed} ms`);
      const [row] = await rows(page);
      assert.match(row![0]!, /^\d\d:\d\d:\d\d\.\d{3}$/);
      assert.deepEqual(row!.slice(1), ['call', 'calls', JSON.stringify(body)]);

      // Unfold with a click: pretty JSON; fold again.
      const fold = page.locator('#events tbody', { hasText: 'notify-1' }).locator('button.fold');
      await fold.click();
      assert.equal(await fold.getAttribute('aria-expanded'), 'true');
      const pre = page.locator('#events tbody', { hasText: 'notify-1' }).locator('pre');
      assert.equal(await pre.textContent(), JSON.stringify(body, null, 2));
      await fold.click();
      assert.equal(await pre.count(), 0);
      // And with the keyboard.
      await fold.focus();
      await page.keyboard.press('Enter');
      assert.equal(await fold.getAttribute('aria-expanded'), 'true');
      assert.deepEqual(monitor.errors, []);
    } finally {
      await monitor.close();
    }
  });

  it('joins any room, shows the rooms each event came through, and leaves', async () => {
    const monitor = await openMonitor();
    const server = await connect('v4', broker.url);
    try {
      const { page } = monitor;
      const id = await monitor.socketId();
      await page.check('#buses input[value="calls"]');
      await page.fill('#room', 'endpoint:alice@example.net');
      await page.press('#room', 'Enter');
      await until('page in calls and the endpoint room', () => inRoom('calls', id) && inRoom('endpoint:alice@example.net', id));
      assert.deepEqual(await page.$$eval('#rooms li span', (spans) => spans.map((s) => s.textContent)), ['endpoint:alice@example.net']);

      await server.ack('call', { state: 'ring', call: 'in-1', _in: ['endpoint:alice@example.net', 'number:33123456789'] });
      await server.ack('location:update', { aor: 'alice@example.net', _in: ['endpoint:alice@example.net'] });
      await page.locator('#events tbody', { hasText: 'location:update' }).waitFor();
      const shown = (await rows(page)).map((r) => r.slice(1, 3));
      assert.deepEqual(shown, [
        ['location:update', 'endpoint:alice@example.net'],
        ['call', 'calls endpoint:alice@example.net'],
      ]);

      await page.click('#rooms button[aria-label="Leave endpoint:alice@example.net"]');
      await page.uncheck('#buses input[value="calls"]');
      await until('page out of both rooms', () => !inRoom('calls', id) && !inRoom('endpoint:alice@example.net', id));
      assert.equal(await page.locator('#rooms li').count(), 0);
    } finally {
      server.close();
      await monitor.close();
    }
  });

  it('filters by event name and by text, counts per event name, pauses, resumes and clears', async () => {
    const monitor = await openMonitor();
    try {
      const { page } = monitor;
      await tick(monitor, 'calls');
      await tick(monitor, 'support');
      for (const call of ['f1', 'f2', 'f3']) await notify(broker.url, 'call', { state: 'end', call });
      await notify(broker.url, 'report_ops', { error: 'core_threshold', host: 'sbc1.example.net' });
      await notify(broker.url, 'report_csr', { error: 'endpoint_rate_limit', host: 'sbc2.example.net' });
      await until('5 rows', async () => (await rows(page)).length === 5);
      // The counters are drawn in their own batch, possibly a frame after the rows.
      const counts = async (): Promise<number[]> => [await count(page, 'call'), await count(page, 'report_ops'), await count(page, 'report_csr')];
      await until('counts', async () => (await counts()).join() === '3,1,1');
      assert.deepEqual(await counts(), [3, 1, 1]);

      await page.fill('#filter-event', 'report');
      assert.deepEqual((await rows(page)).map((r) => r[1]), ['report_csr', 'report_ops']);
      await page.fill('#filter-text', 'SBC2');
      assert.deepEqual((await rows(page)).map((r) => r[1]), ['report_csr']);
      await page.fill('#filter-event', '');
      await page.fill('#filter-text', '"f2"');
      assert.deepEqual((await rows(page)).map((r) => r[3]), ['{"state":"end","call":"f2"}']);
      await page.fill('#filter-text', '');
      // A counter's name shows only those events.
      await page.click('#counts button[data-event="call"]');
      assert.equal(await page.inputValue('#filter-event'), 'call');
      assert.deepEqual((await rows(page)).map((r) => r[1]), ['call', 'call', 'call']);
      await page.fill('#filter-event', '');
      assert.equal((await rows(page)).length, 5);

      // Pause: events are counted, not shown, until resumed.
      await page.click('#pause');
      assert.equal(await page.getAttribute('#pause', 'aria-pressed'), 'true');
      await notify(broker.url, 'call', { state: 'end', call: 'while-paused' });
      await until('counted while paused', async () => (await count(page, 'call')) === 4);
      assert.equal((await rows(page)).some((r) => r[3]!.includes('while-paused')), false);
      await until('paused status', async () => /paused, 1 new/.test((await page.textContent('#view-status')) ?? ''));
      // Filters still apply to what was shown when paused, and only to that.
      await page.fill('#filter-text', 'call');
      assert.deepEqual((await rows(page)).map((r) => r[3]), ['f3', 'f2', 'f1'].map((call) => `{"state":"end","call":"${call}"}`));
      await page.fill('#filter-text', '');
      assert.equal((await rows(page)).length, 5);
      await page.click('#pause');
      assert.equal(await page.getAttribute('#pause', 'aria-pressed'), 'false');
      assert.match((await rows(page))[0]![3]!, /while-paused/);
      assert.equal((await rows(page)).length, 6);

      await page.click('#clear');
      assert.equal((await rows(page)).length, 0);
      assert.equal(await page.locator('#counts tbody tr').count(), 0);
      assert.deepEqual(monitor.errors, []);
    } finally {
      await monitor.close();
    }
  });

  it('sends a test event and a test /_notify that reach a socket.io-client subscriber', async () => {
    const monitor = await openMonitor();
    const subscriber = await connect('v4', broker.url);
    try {
      const { page } = monitor;
      assert.equal(await subscriber.ack('join', 'calls'), true);
      assert.equal(await subscriber.ack('join', 'endpoint:alice@example.net'), true);

      await page.fill('#send-event', 'call');
      await page.fill('#send-payload', '{"state": "from-page", "_in": ["endpoint:alice@example.net"]}');
      const emitted = subscriber.next('call');
      await page.click('#send-socket');
      assert.deepEqual((await emitted)[0], { state: 'from-page', _in: ['endpoint:alice@example.net'] });
      await until('ack shown', async () => /call sent: \{"ok":true,"rooms":2\}/.test((await page.textContent('#send-result')) ?? ''));
      assert.equal(subscriber.count('call'), 1, 'once per socket, though in two target rooms');

      await page.fill('#send-event', 'script_register');
      await page.fill('#send-payload', '{"name": "invalid_source", "endpoint": "alice@example.net"}');
      const pushed = subscriber.next('script_register');
      await page.click('#send-notify');
      assert.deepEqual((await pushed)[0], { name: 'invalid_source', endpoint: 'alice@example.net' });
      await until('answer shown', async () => ((await page.textContent('#send-result')) ?? '').includes('POST /_notify/script_register: 200 {"ok":true}'));

      // Bad JSON: said so, nothing sent.
      await page.fill('#send-event', 'call');
      await page.fill('#send-payload', '{state: oops}');
      await page.click('#send-socket');
      assert.match((await page.textContent('#send-result')) ?? '', /not valid JSON/);
      assert.equal(await page.getAttribute('#send-payload', 'aria-invalid'), 'true');
      await flush(subscriber, [subscriber]);
      assert.equal(subscriber.count('call'), 1);
      assert.deepEqual(monitor.errors, []);
    } finally {
      subscriber.close();
      await monitor.close();
    }
  });

  it('uses the token typed in the page for its connection and its requests, for the rest of the session', async () => {
    const handshakes: unknown[] = [];
    const authorizations: (string | undefined)[] = [];
    const onConnection = (socket: { handshake: { auth: unknown } }): void => void handshakes.push(socket.handshake.auth);
    const onRequest = (req: { url?: string; headers: Record<string, string | string[] | undefined> }): void => {
      if (req.url?.startsWith('/monitor/config.json') || req.url?.startsWith('/_notify/')) authorizations.push(req.headers.authorization as string | undefined);
    };
    broker.io.on('connection', onConnection);
    broker.httpServer.on('request', onRequest);
    const monitor = await openMonitor();
    try {
      const { page } = monitor;
      assert.deepEqual(handshakes, [{}]);
      await page.fill('#token', 's3cret token');
      await page.click('#token-form button[type="submit"]');
      await until('a second connection', () => handshakes.length === 2);
      // Besides the token, a reconnecting 4.x client offers its session for recovery (pid, offset).
      assert.equal((handshakes[1] as { token?: string }).token, 's3cret token');
      await until('config asked with the token', () => authorizations.includes('Bearer s3cret token'));
      await page.fill('#send-event', 'call');
      await page.fill('#send-payload', '{"state": "with-token"}');
      authorizations.length = 0;
      await page.click('#send-notify');
      await until('notify sent with the token', () => authorizations.includes('Bearer s3cret token'));

      await page.reload();
      await page.waitForSelector('#connection[data-state="connected"]');
      assert.equal((handshakes[2] as { token?: string }).token, 's3cret token');
      assert.equal(await page.inputValue('#token'), 's3cret token');
      await page.click('#token-forget');
      await until('a connection without token', () => handshakes.length === 4);
      assert.equal((handshakes[3] as { token?: string }).token, undefined);
      assert.equal(await page.evaluate(() => sessionStorage.getItem('spicy-action.token')), null);
    } finally {
      broker.io.off('connection', onConnection);
      broker.httpServer.off('request', onRequest);
      await monitor.close();
    }
  });

  it('asks for the token of a broker that has one, then works with it', async () => {
    const TOKEN = 'page-token';
    const { url, io } = await startBroker({ token: TOKEN });

    const monitor = await openMonitor(url, false);
    try {
      const { page } = monitor;
      await page.waitForSelector('#connection[data-state="unauthorized"]');
      assert.equal(await page.getAttribute('#token', 'aria-invalid'), 'true');
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'token');
      await page.fill('#token', TOKEN);
      await page.press('#token', 'Enter');
      await page.waitForSelector('#connection[data-state="connected"]');
      await page.check('#buses input[value="calls"]');
      const id = await monitor.socketId();
      await until('page in calls', () => io.sockets.adapter.rooms.get('calls')?.has(id) ?? false);
      const pushed = await notify(url, 'call', { state: 'end', call: 'guarded' }, { Authorization: `Bearer ${TOKEN}` });
      assert.deepEqual(pushed.body, { ok: true });
      await page.locator('#events tbody', { hasText: 'guarded' }).waitFor();
      // Only refused requests complained: the configuration without the token, and a Socket.IO
      // long-polling request that the refused session's closing overtook (400 "Session ID unknown").
      assert.deepEqual(monitor.errors.filter((e) => !/^Failed to load resource: the server responded with a status of 40[01]/.test(e)), []);
      const expected = /^(401 http:\/\/[^/]+\/monitor\/config\.json|400 http:\/\/[^/]+\/socket\.io\/\?EIO=4&transport=polling&)/;
      assert.deepEqual(monitor.failures.filter((f) => !expected.test(f)), []);
      assert.ok(monitor.failures.some((f) => f.startsWith('401 ')), 'the configuration was refused without the token');
    } finally {
      await monitor.close();
    }
  });

  it('comes back after losing its connection, in the same rooms', async () => {
    const monitor = await openMonitor();
    try {
      const { page } = monitor;
      await tick(monitor, 'calls');
      const first = await monitor.socketId();
      const lost = broker.io.sockets.sockets.get(first)!;
      const gone = new Promise((resolve) => lost.once('disconnect', resolve));
      lost.conn.close();
      await gone;
      // Back in calls: as the same socket when its session is recovered, or as a new one that joined again.
      await until('a connected socket in calls', () => [...(broker.io.sockets.adapter.rooms.get('calls') ?? [])].some((id) => broker.io.sockets.sockets.has(id)), 15_000);
      await page.waitForSelector('#connection[data-state="connected"]');
      await notify(broker.url, 'call', { state: 'end', call: 'after-reconnect' });
      await page.locator('#events tbody', { hasText: 'after-reconnect' }).waitFor();
      assert.deepEqual(monitor.errors.filter((e) => !/ERR_CONNECTION|net::/.test(e)), []);
    } finally {
      await monitor.close();
    }
  });

  it('keeps the last N events and stays responsive at 2,000 events per second', async () => {
    const monitor = await openMonitor();
    try {
      const { page } = monitor;
      await page.fill('#limit', '200');
      await page.press('#limit', 'Enter');
      await page.locator('#limit').blur();
      await tick(monitor, 'calls');
      await page.fill('#filter-text', 'burst-');

      // 2,000 events per second for 3 seconds, as call handlers would report them.
      const total = 6_000;
      let sent = 0;
      const payload = (n: number): Record<string, unknown> => ({
        state: 'end', call: `burst-${n}`, source: '33123456789', destination: '33987654321', direction: 'ingress',
        host: 'sbc1.example.net', number_domain: 'example.net', data: { duration: 42, billable: 40, progress: 2, answer: 2, wait: 0 },
      });
      const pump = setInterval(() => {
        for (let i = 0; i < 40 && sent < total; i++) broker.broker.route('call', [payload(sent++)]);
        if (sent >= total) clearInterval(pump);
      }, 20);

      // Meanwhile the page answers, and a filter typed in it applies.
      const slowest = { ms: 0 };
      await until('burst half sent', () => sent >= total / 2, 20_000);
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        const drawn = await withTimeout(page.evaluate(() => document.querySelectorAll('#events tbody').length), 'page to answer during the burst', 5_000);
        slowest.ms = Math.max(slowest.ms, Date.now() - started);
        assert.ok(drawn <= 200, `${drawn} rows drawn during the burst`);
      }
      const typed = Date.now();
      await page.fill('#filter-text', 'sbc1.example');
      await withTimeout(page.locator('#events tbody').first().waitFor(), 'filter to apply during the burst', 5_000);
      slowest.ms = Math.max(slowest.ms, Date.now() - typed);
      await until('burst sent', () => sent >= total, 20_000);
      await until('every event counted', async () => (await count(page, 'call')) === total, 20_000);

      const shown = await page.locator('#events tbody').count();
      assert.ok(shown <= 200 && shown >= 150, `${shown} rows kept`);
      const newest = (await rows(page))[0]![3]!;
      assert.match(newest, new RegExp(`"call":"burst-${total - 1}"`));
      const status = (await page.textContent('#view-status')) ?? '';
      assert.match(status, /^\d+ shown of 200 kept/);
      // Still usable: unfold the newest.
      await page.locator('#events tbody').first().locator('button.fold').click({ timeout: 5_000 });
      assert.equal(await page.locator('#events pre').count(), 1);
      assert.deepEqual(monitor.errors, []);
      console.log(`# monitor: slowest answer during 2,000 events/s: ${slowest.ms} ms`);
    } finally {
      await monitor.close();
    }
  });
});
