/**
 * Origins in a real browser (docs/security.md#origins): with
 * CORS_ORIGINS unset, a page served from another origin cannot open a
 * Socket.IO session to the broker, by long-polling nor by WebSocket, while
 * the broker's own monitor page connects and upgrades to WebSocket. Driven in
 * headless Chromium.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import type { RunningBroker } from '../../src/server.ts';
import { request, startBroker } from '../helpers/broker.ts';
import { chromiumMissing, launchChromium } from '../helpers/chromium.ts';
import { parseMetrics } from '../helpers/metrics.ts';
import { until } from '../helpers/wait.ts';

const missing = chromiumMissing();

/** Serves one page, from its own port (another origin), that loads the broker's client and tries to connect. */
async function foreignSite(): Promise<string> {
  const server = createServer((req, res) => {
    const broker = new URL(req.url ?? '/', 'http://x').searchParams.get('broker') ?? '';
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><title>elsewhere</title>
<script src="${broker}/socket.io/socket.io.min.js"></script>
<script>
  // 'connected' or 'refused', as a page of this origin sees it.
  window.attempt = (transports) => new Promise((resolve) => {
    const socket = io(${JSON.stringify(broker)}, { transports, reconnection: false, forceNew: true, timeout: 10000 });
    socket.on('welcome', () => { socket.close(); resolve('connected'); });
    socket.on('connect_error', () => { socket.close(); resolve('refused'); });
  });
</script>`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  after(() => server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function badOrigins(broker: RunningBroker): Promise<number> {
  return parseMetrics((await request(`${broker.url}/metrics`)).body as string).value('spicy_action_refused_total', { reason: 'bad_origin' });
}

describe('a browser page of another origin', { skip: missing }, async () => {
  const browser: Browser = await launchChromium();
  const site = await foreignSite();

  /** What the page at `site` gets from each transport against `broker`. */
  async function attempts(broker: RunningBroker): Promise<Record<string, string>> {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${site}/?broker=${encodeURIComponent(broker.url)}`);
      const result: Record<string, string> = {};
      for (const transport of ['polling', 'websocket']) {
        result[transport] = await page.evaluate((t) => (window as unknown as { attempt(t: string[]): Promise<string> }).attempt([t]), transport);
      }
      return result;
    } finally {
      await context.close();
    }
  }

  it('cannot connect by long-polling nor by WebSocket with CORS_ORIGINS unset; each attempt is counted', async () => {
    const broker = await startBroker();
    assert.deepEqual(await attempts(broker), { polling: 'refused', websocket: 'refused' });
    assert.equal(broker.io.of('/').sockets.size, 0, 'no socket was opened');
    assert.equal(await badOrigins(broker), 2);
  });

  it('connects both ways once CORS_ORIGINS lists its origin', async () => {
    const broker = await startBroker({ corsOrigins: [site] });
    assert.deepEqual(await attempts(broker), { polling: 'connected', websocket: 'connected' });
    assert.equal(await badOrigins(broker), 0);
  });

  it("leaves the broker's own monitor page working: it connects and upgrades to WebSocket", async () => {
    const broker = await startBroker();
    const context = await browser.newContext();
    after(() => context.close());
    const page = await context.newPage();
    await page.goto(`${broker.url}/monitor`);
    await page.waitForSelector('#connection[data-state="connected"]');
    const transports = (): string[] => [...broker.io.of('/').sockets.values()].map((s) => s.conn.transport.name);
    await until('the monitor page on WebSocket', () => transports().join() === 'websocket', 20_000);
    assert.equal(await badOrigins(broker), 0);
  });
});
