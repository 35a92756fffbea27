/**
 * `npm run screenshot`: draws docs/monitor.png, the monitor page with some
 * traffic of the shapes real clients send. Needs Chromium, as the
 * page tests do. Not a test: run it when the page changes.
 */
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { io } from 'socket.io-client';
import { DEFAULT_SETTINGS } from '../src/settings.ts';
import { startServer } from '../src/server.ts';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './helpers/chromium.ts';
import { tangibleReport } from './helpers/payloads.ts';
import { sleep, until } from './helpers/wait.ts';

const OUTPUT = new URL('../docs/monitor.png', import.meta.url);

const running = await startServer({ ...DEFAULT_SETTINGS, port: 0, host: '127.0.0.1' });
const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: [...CHROMIUM_ARGS] });
const server = io(running.url, { forceNew: true });
try {
  const page = await browser.newPage({ viewport: { width: 1360, height: 860 }, colorScheme: 'light' });
  await page.goto(`${running.url}/monitor`);
  await page.waitForSelector('#connection[data-state="connected"]');
  await page.waitForSelector('#buses input[value="calls"]');
  for (const bus of ['calls', 'support', 'internal']) await page.check(`#buses input[value="${bus}"]`);
  await page.fill('#room', 'endpoint:alice@example.net');
  await page.press('#room', 'Enter');
  const rooms = running.io.sockets.adapter.rooms;
  await until('the page is in its rooms', () => ['calls', 'support', 'internal', 'endpoint:alice@example.net'].every((room) => rooms.get(room)?.size));

  const post = (msg: string, body: unknown): Promise<Response> =>
    fetch(`${running.url}/_notify/${msg}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const stamp = (): string => new Date().toISOString();
  for (let i = 0; i < 20; i++) {
    const call = `5f0c${i}a1e-8b1d-4c43-9a4f-0c2d7e3b${1000 + i}`;
    server.emit('call', {
      state: i % 3 === 0 ? 'end' : 'answer', call, source: `3312345${6700 + i}`, destination: '33987654321', direction: 'ingress',
      host: 'sbc1.example.net', number_domain: 'example.net',
      _in: ['endpoint:alice@example.net', `number:3312345${6700 + i}`, 'number_domain:example.net'],
      data: { duration: 40 + i, billable: 38 + i, progress: 2, answer: 2, wait: 0 },
    });
    server.emit('location:update', {
      _in: ['domain:example.net', 'endpoint:bob@example.net'], aor: 'bob@example.net', username: 'bob', domain: 'example.net',
      contact: `sip:bob@192.0.2.${20 + i}:5060`, expires: 3600, user_agent: 'Yealink SIP-T46S', hostname: 'opensips1', query_type: 'insert', query_time: stamp(),
    });
    if (i % 4 === 1) await post('script_register', { name: 'invalid_source', endpoint: 'alice@example.net', ip: `192.0.2.${100 + i}` });
    if (i % 5 === 2) server.emit('report_ops', tangibleReport('ops', i));
    if (i === 7) await post('report_csr', { error: 'endpoint_rate_limit', direction: 'egress', endpoint: 'alice@example.net', limit: 10, ip: '198.51.100.4' });
    await sleep(70);
  }
  // Unfold the newest call, as an operator would.
  const call = page.locator('#events tbody').filter({ has: page.locator('td.event', { hasText: /^call$/ }) }).first();
  await call.locator('button.fold').click();
  await call.locator('button.fold').blur();
  await sleep(200);
  mkdirSync(new URL('.', OUTPUT), { recursive: true });
  await page.screenshot({ path: OUTPUT.pathname });
  console.log(`wrote ${OUTPUT.pathname}`);
} finally {
  server.close();
  await browser.close();
  await running.close();
}
