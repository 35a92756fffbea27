/**
 * The route table on the monitor page (docs/protocol.md#monitor): its model in
 * Node, and the page in headless Chromium against a real broker, with routes
 * registered over a real socket.io-client and removed over HTTP.
 */
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { formatStamp, routeTable } from '../../monitor/model.js';
import { DEFAULT_ROUTES } from '../../src/routes.ts';
import { request, startBroker } from '../helpers/broker.ts';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';
import { connect } from '../helpers/clients.ts';
import { until } from '../helpers/wait.ts';

describe('route table model', () => {
  it('orders registered routes first, then changed built-in ones, and says where each comes from', () => {
    const { rows, summary } = routeTable({
      ok: true,
      routes: [
        { event: 'call', bus: 'calls', kind: 'built-in', default: 'calls' },
        { event: 'report_dev', bus: 'internal', kind: 'built-in', default: 'support', set_at: '2026-11-27T00:40:00.500Z', set_on: 'b2:7' },
        { event: 'zeta', bus: null, kind: 'registered', set_at: '2026-11-27T00:42:01.123Z', set_by: 'call-handler', set_on: 'b1:42' },
        { event: 'alpha', bus: 'calls', kind: 'registered' },
        { bus: 'calls', kind: 'registered' },
        'not a route',
      ],
    });
    assert.deepEqual(rows, [
      { event: 'alpha', bus: 'calls', origin: 'registered', set: '' },
      { event: 'zeta', bus: '(_in only)', origin: 'registered', set: 'set 2026-11-27 00:42:01Z by call-handler on b1:42' },
      { event: 'report_dev', bus: 'internal', origin: 'built-in, changed', set: 'set 2026-11-27 00:40:00Z on b2:7' },
      { event: 'call', bus: 'calls', origin: 'built-in', set: '' },
    ]);
    assert.equal(summary, '4 routes: 2 registered, 2 built-in (1 changed)');
  });

  it('copes with an answer that is not a route list', () => {
    for (const answer of [undefined, null, {}, { routes: 'x' }, 'text']) assert.deepEqual(routeTable(answer), { rows: [], summary: '0 routes: 0 registered, 0 built-in' });
    assert.equal(formatStamp('not a time'), 'not a time');
  });
});

const missing = chromiumMissing();
if (missing) console.log(`# route table page tests skipped: ${missing}`);

describe('route table on the monitor page', { skip: missing }, async () => {
  const browser: Browser = await launchChromium();
  const NODE = `${hostname()}:${process.pid}`;

  /** The rows shown: [event, bus, origin (with its stamp line)] each. */
  const shown = (page: Page): Promise<string[][]> =>
    page.$$eval('#routes tbody tr', (trs) => trs.map((tr) => Array.from(tr.children).map((td) => (td.textContent ?? '').trim())));
  const refresh = async (page: Page, until: string): Promise<void> => {
    await page.click('#routes-refresh');
    await page.waitForFunction((text) => document.getElementById('routes-status')?.textContent?.includes(text), until);
  };

  it('shows the table, registered routes first with when and where, and follows changes on Refresh', async () => {
    const broker = await startBroker();
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
    page.on('pageerror', (error) => errors.push(error.message));
    const handler = await connect('v4', broker.url);
    try {
      await page.goto(`${broker.url}/monitor`);
      await page.waitForFunction(() => document.querySelectorAll('#routes tbody tr').length > 0);
      assert.equal(await page.textContent('#routes-status'), `${DEFAULT_ROUTES.size} routes: 0 registered, ${DEFAULT_ROUTES.size} built-in, from ${NODE}.`);
      const initial = await shown(page);
      assert.equal(initial.length, DEFAULT_ROUTES.size);
      assert.ok(initial.some((row) => row.join('|') === 'call|calls|built-in'));
      assert.ok(initial.some((row) => row.join('|') === 'location:update|internal|built-in'));

      await handler.ack('register', { event: 'queuer', default_room: 'calls' });
      await handler.ack('register', { event: 'report_dev', default_room: 'internal' });
      await handler.ack('register', { event: '__proto__', default_room: null });
      await refresh(page, '2 registered');
      const rows = await shown(page);
      assert.deepEqual(rows.slice(0, 3).map((row) => row.slice(0, 2)), [['__proto__', '(_in only)'], ['queuer', 'calls'], ['report_dev', 'internal']]);
      assert.match(rows[1]![2]!, new RegExp(`^registered\\s*set \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ by anonymous on ${NODE}$`));
      assert.match(rows[2]![2]!, /^built-in, changed\s*set .* by /);
      assert.equal(await page.textContent('#routes-status'), `${DEFAULT_ROUTES.size + 2} routes: 2 registered, ${DEFAULT_ROUTES.size} built-in (1 changed), from ${NODE}.`);

      // Removed by an operator: gone from the page at the next refresh.
      assert.equal((await request(`${broker.url}/routes/queuer`, { method: 'DELETE' })).status, 200);
      assert.equal((await request(`${broker.url}/routes/report_dev`, { method: 'DELETE' })).status, 200);
      await refresh(page, '1 registered');
      const after = await shown(page);
      assert.equal(after.some((row) => row[0] === 'queuer'), false);
      assert.ok(after.some((row) => row.join('|') === 'report_dev|support|built-in'));
      assert.deepEqual(errors, []);
    } finally {
      handler.close();
      await context.close();
    }
  });

  it('asks for the token, then shows the table of a broker that has one', async () => {
    const TOKEN = 'routes-page-token';
    const broker = await startBroker({ token: TOKEN });
    const context = await browser.newContext();
    const page = await context.newPage();
    const authorizations: (string | undefined)[] = [];
    broker.httpServer.on('request', (req: { url?: string; headers: Record<string, string | string[] | undefined> }) => {
      if (req.url === '/routes') authorizations.push(req.headers.authorization as string | undefined);
    });
    try {
      await page.goto(`${broker.url}/monitor`);
      await page.waitForSelector('#connection[data-state="unauthorized"]');
      assert.equal(await page.textContent('#routes-status'), 'The broker asks for a token to show its routes.');
      assert.equal(await page.locator('#routes tbody tr').count(), 0);
      await page.fill('#token', TOKEN);
      await page.press('#token', 'Enter');
      await page.waitForSelector('#connection[data-state="connected"]');
      await until('the table shown', async () => (await page.locator('#routes tbody tr').count()) === DEFAULT_ROUTES.size);
      assert.ok(authorizations.includes(`Bearer ${TOKEN}`));
      // The button asks again, with the token.
      await refresh(page, 'routes:');
      assert.ok(authorizations.filter((a) => a === `Bearer ${TOKEN}`).length >= 2);
    } finally {
      await context.close();
    }
  });
});
