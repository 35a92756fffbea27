/**
 * Issue 19, item 4: `/_notify` bodies that stopped short of their
 * Content-Length were held (up to `MAX_BODY_BYTES` each) for Node's
 * `requestTimeout`, on as many connections as a client opened. Bodies being
 * read are now capped in total bytes (`MAX_BODIES_IN_FLIGHT_BYTES`: 503
 * before any of the body is read) and cut when slower than `MIN_BODY_RATE`
 * (408, connection closed); both counted. Raw TCP clients send the stalled
 * bodies; real socket.io clients and real pushes must still be served.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, describe, it } from 'node:test';
import { notify, request, startBroker } from './helpers/broker.ts';
import { closeAll, connect, type TestClient } from './helpers/clients.ts';
import { captureLog } from './helpers/logs.ts';
import { parseMetrics } from './helpers/metrics.ts';
import { until } from './helpers/wait.ts';

const TOKEN = 'bodies-test-token';
/** A notification the default routes know (the README's `script_register`). */
const MSG = 'script_register';

/** One filler shared by every stalled body, so that the test's own memory does not grow with them. */
const FILLER = Buffer.alloc(1_000_000, 0x20);

/** An HTTP answer read off a raw socket. */
interface RawAnswer {
  readonly status: number;
  readonly body: string;
}

/**
 * A `POST /_notify/<msg>` announcing `length` bytes and sending `sent` of
 * them (spaces: valid JSON whitespace), then nothing: `answer` resolves with
 * what the broker said once it closes the connection (status 0 if it said nothing).
 */
function stalledPost(url: string, length: number, sent: number): { readonly socket: net.Socket; readonly answer: Promise<RawAnswer> } {
  const { hostname, port } = new URL(url);
  const socket = net.connect({ host: hostname, port: Number(port) });
  socket.on('error', () => {});
  socket.write(`POST /_notify/${MSG} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`);
  socket.write(FILLER.subarray(0, sent));
  const answer = new Promise<RawAnswer>((resolve) => {
    let text = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
  });
  return { socket, answer };
}

describe('bodies in flight', () => {
  const clients: TestClient[] = [];
  const sockets: net.Socket[] = [];
  after(() => {
    closeAll(clients);
    for (const socket of sockets) socket.destroy();
  });

  it('are capped in total bytes (503, unread), counted, logged once; pushes are served again once they go', async (t) => {
    const log = captureLog(t, 'spicy-action:bodies');
    const broker = await startBroker({ token: TOKEN, maxBodyBytes: 20_000, maxBodiesInFlightBytes: 100_000, minBodyRate: 0 });
    const held = Array.from({ length: 5 }, () => stalledPost(broker.url, 20_000, 19_000));
    sockets.push(...held.map((h) => h.socket));
    await until('five bodies in flight', () => broker.bodiesInFlight.state().bodies === 5);
    assert.equal(broker.bodiesInFlight.state().bytes, 100_000);

    const refused = Array.from({ length: 5 }, () => stalledPost(broker.url, 20_000, 19_000));
    sockets.push(...refused.map((h) => h.socket));
    for (const { answer } of refused) {
      const { status, body } = await answer;
      assert.equal(status, 503);
      assert.deepEqual(JSON.parse(body), { ok: false, error: 'too many request bodies are being read; retry later' });
    }
    // A push needs room too while the cap is reached; a socket client is served.
    assert.equal((await notify(broker.url, MSG, { name: 'x' }, { Authorization: `Bearer ${TOKEN}` })).status, 503);
    const client = await connect('v4', broker.url, { token: TOKEN });
    clients.push(client);
    assert.equal(await client.ack('join', 'support'), true);

    const text = (await request(`${broker.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).body as string;
    assert.equal(parseMetrics(text).value('spicy_action_refused_total', { reason: 'bodies_in_flight' }), 6);
    assert.equal(log.filter((line) => line.includes('refusing bodies')).length, 1, log.join('\n'));

    for (const { socket } of held) socket.destroy();
    await until('no body in flight', () => broker.bodiesInFlight.state().bytes === 0);
    const pushed = client.next('script_register');
    assert.deepEqual((await notify(broker.url, MSG, { name: 'x' }, { Authorization: `Bearer ${TOKEN}` })).body, { ok: true });
    assert.deepEqual((await pushed)[0], { name: 'x' });
  });

  it('are cut with 408 when slower than MIN_BODY_RATE, which frees their room; a steady one is read whole', async () => {
    // The rate is measured over windows of 1 s (5 s by default), looked at every 100 ms.
    const timing = { bodies: { rateWindowMs: 1_000, checkEveryMs: 100 } };
    const broker = await startBroker({ token: TOKEN, maxBodyBytes: 20_000, maxBodiesInFlightBytes: 60_000, minBodyRate: 1_000 }, undefined, timing);
    const stalled = Array.from({ length: 2 }, () => stalledPost(broker.url, 20_000, 19_000));
    // Meanwhile, a body that keeps above the floor (5,000 bytes a second) is read whole, however long
    // it takes: here two windows.
    const steady = stalledPost(broker.url, 10_002, 0);
    sockets.push(steady.socket, ...stalled.map((s) => s.socket));
    await until('three bodies in flight', () => broker.bodiesInFlight.state().bodies === 3);
    steady.socket.write('{');
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 200));
      steady.socket.write(FILLER.subarray(0, 1_000));
    }
    steady.socket.end('}');
    for (const { answer } of stalled) {
      const { status, body } = await answer;
      assert.equal(status, 408);
      assert.deepEqual(JSON.parse(body), { ok: false, error: 'the body arrived slower than 1000 bytes per second' });
    }
    const { status, body } = await steady.answer;
    assert.equal(status, 200);
    assert.deepEqual(JSON.parse(body), { ok: true });
    await until('no body in flight', () => broker.bodiesInFlight.state().bytes === 0);
    const text = (await request(`${broker.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).body as string;
    assert.equal(parseMetrics(text).value('spicy_action_refused_total', { reason: 'slow_body' }), 2);
  });

  it('hold memory to the cap under a flood of bodies 1 KB short of 1 MB, at the default settings', async (t) => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const broker = await startBroker({ token: TOKEN });
    const cap = broker.bodiesInFlight.state().bytes + 32_000_000;
    const client = await connect('v4', broker.url, { token: TOKEN });
    clients.push(client);
    gc();
    const memory = (): number => {
      const { heapUsed, arrayBuffers } = process.memoryUsage();
      return heapUsed + arrayBuffers;
    };
    const before = memory();
    // Twice the cap: 64 bodies of 1 MB.
    const flood = Array.from({ length: 64 }, () => stalledPost(broker.url, 1_000_000, 999_000));
    sockets.push(...flood.map((f) => f.socket));
    await until('the cap is reached and the rest refused', async () => {
      const { bodies } = broker.bodiesInFlight.state();
      return bodies === 32 && broker.bodiesInFlight.state().bytes === cap;
    });
    let refused = 0;
    for (const { answer } of flood) void answer.then((a) => (refused += a.status === 503 ? 1 : 0));
    await until('the 32 past the cap refused', () => refused === 32);
    gc();
    const grown = memory() - before;
    t.diagnostic(`memory (heap and buffers) grew ${grown} bytes for 32 bodies held (32 MB)`);
    // The docs' figure: a body held is about its size (the parser keeps the chunks it read).
    assert.ok(grown < 1.5 * 32_000_000, `memory grew ${grown} bytes for 32 MB of bodies in flight`);
    assert.equal(await client.ack('join', 'support'), true);
  });
});
