/**
 * Web pages cannot push (docs/security.md#origins): a browser may POST
 * `/_notify` as a `text/plain` simple request, without a CORS preflight, and
 * names the page in `Origin`. Such a request is refused unless its origin is
 * in CORS_ORIGINS; OpenSIPS and curl send no Origin and keep working.
 * Handshakes refused for their origin are logged and counted.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, describe, it } from 'node:test';
import express from 'express';
import { Server } from 'socket.io';
import { io as ioV4 } from 'socket.io-client';
import { attachBroker, BAD_ORIGIN, DEFAULT_BUSES, errorHandler } from '../src/index.ts';
import type { RunningBroker } from '../src/server.ts';
import { notify, request, spawnBroker, startBroker } from './helpers/broker.ts';
import { closeAll, connect, ConnectError, flush, GENERATIONS, withTimeout, type Generation, type TestClient } from './helpers/clients.ts';
import { parseMetrics } from './helpers/metrics.ts';

const EVIL = 'https://evil.example';
const ADMIN = 'https://admin.example.net';
const BODY = { name: 'invalid_source', endpoint: 'alice@example.net', ip: '192.0.2.7' };

const open: TestClient[] = [];
afterEach(() => closeAll(open.splice(0)));

/** A client in `support`, the bus of `script_register`. */
async function listener(url: string, token?: string): Promise<TestClient> {
  const client = await connect('v4', url, token ? { token } : {});
  open.push(client);
  assert.equal(await client.ack('join', 'support'), true);
  return client;
}

/** What a page's `fetch(url, {method: 'POST', mode: 'no-cors', body})` sends: text/plain, with the page's Origin. */
function crossSitePush(url: string, origin: string | undefined, query = ''): Promise<{ status: number; body: any }> {
  return request(`${url}/_notify/script_register${query}`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain;charset=UTF-8', ...(origin === undefined ? {} : { Origin: origin }) },
    body: JSON.stringify(BODY),
  });
}

async function refusedFor(url: string, reason: string, headers: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers })).text();
  return parseMetrics(text).value('spicy_action_refused_total', { reason });
}

describe('POST /_notify with an Origin', () => {
  it('is refused with 403 by default (CORS_ORIGINS unset: any origin connects, none pushes), emits nothing, and is counted', async () => {
    const broker = await startBroker();
    const bus = await listener(broker.url);
    const before = await refusedFor(broker.url, 'bad_origin');
    const port = new URL(broker.url).port;
    for (const origin of [EVIL, 'null', `http://localhost:${port}`, `${broker.url}.evil.example`, 'not a url']) {
      const answer = await crossSitePush(broker.url, origin);
      assert.equal(answer.status, 403, origin);
      assert.equal(answer.body.ok, false);
      assert.match(answer.body.error, /origin is not in CORS_ORIGINS$/, 'the setting that lists them');
    }
    await flush(bus, [bus]);
    assert.equal(bus.count('script_register'), 0, 'nothing was emitted');
    assert.equal(await refusedFor(broker.url, 'bad_origin'), before + 5);
  });

  it("is let through from the broker's own pages (the monitor page's test push): Origin names the Host it was sent to", async () => {
    const broker = await startBroker();
    const bus = await listener(broker.url);
    assert.deepEqual((await crossSitePush(broker.url, broker.url)).body, { ok: true });
    assert.deepEqual(await bus.receive('script_register', 1), [BODY]);
  });

  it('is let through without an Origin, as OpenSIPS and curl send it, whatever the Content-Type', async () => {
    const broker = await startBroker();
    const bus = await listener(broker.url);
    assert.deepEqual((await crossSitePush(broker.url, undefined)).body, { ok: true });
    assert.deepEqual((await notify(broker.url, 'script_register', BODY)).body, { ok: true });
    assert.deepEqual(await bus.receive('script_register', 2), [BODY, BODY]);
  });

  it('is let through from an origin in CORS_ORIGINS, and refused from any other', async () => {
    const broker = await startBroker({ corsOrigins: [ADMIN] });
    const bus = await listener(broker.url);
    assert.equal((await crossSitePush(broker.url, EVIL)).status, 403);
    assert.equal((await crossSitePush(broker.url, `${ADMIN}.evil.example`)).status, 403);
    assert.deepEqual((await crossSitePush(broker.url, ADMIN)).body, { ok: true });
    assert.deepEqual(await bus.receive('script_register', 1), [BODY]);
    await flush(bus, [bus]);
    assert.equal(bus.count('script_register'), 1);
  });

  it('is refused even with the right token (a page may hold a URL with ?token=)', async () => {
    const token = 'origin-token';
    const broker = await startBroker({ token });
    const bus = await listener(broker.url, token);
    assert.equal((await crossSitePush(broker.url, EVIL, `?token=${token}`)).status, 403);
    assert.deepEqual((await crossSitePush(broker.url, undefined, `?token=${token}`)).body, { ok: true });
    assert.equal((await bus.receive('script_register', 1)).length, 1);
    assert.equal(await refusedFor(broker.url, 'bad_origin', { Authorization: `Bearer ${token}` }), 1);
  });

  it('leaves the other routes to CORS and the token: GET / and /metrics answer a page of any origin', async () => {
    const broker: RunningBroker = await startBroker();
    assert.equal((await request(`${broker.url}/`, { headers: { Origin: EVIL } })).status, 200);
    assert.equal((await request(`${broker.url}/metrics`, { headers: { Origin: EVIL } })).status, 200);
  });
});

describe('Socket.IO handshakes from an origin not listed', () => {
  it('are refused, logged with the origin and counted as bad_origin; listed origins and programs connect', async () => {
    const proc = spawnBroker({ CORS_ORIGINS: ADMIN, DEBUG: 'spicy-action:origin' });
    const url = await proc.ready;
    for (const transports of [['polling'], ['websocket']]) {
      const socket = ioV4(url, { transports, reconnection: false, extraHeaders: { Origin: EVIL } });
      const refused = await withTimeout(
        new Promise<Error>((resolve) => socket.once('connect_error', resolve)),
        `a ${transports[0]} handshake from ${EVIL} to be refused`,
      );
      socket.close();
      assert.ok(refused instanceof Error);
    }
    const admin = await connect('v4', url, { extra: { extraHeaders: { Origin: ADMIN } } });
    const program = await connect('v2', url);
    open.push(admin, program);
    assert.equal(await refusedFor(url, 'bad_origin'), 2);
    assert.equal((proc.stderr().match(/refused socket\.io handshake from \S+: origin https:\/\/evil\.example/g) ?? []).length, 2, proc.stderr());
  });
});

/** What a handshake from a page of `origin` meets: 'connected' or the refusal the client saw. */
async function handshakeFrom(generation: Generation, url: string, origin: string | undefined, transports: string[], token?: string): Promise<string> {
  const extra = origin === undefined ? {} : { extraHeaders: { Origin: origin } };
  try {
    open.push(await connect(generation, url, { transports, extra, ...(token === undefined ? {} : { token }) }));
    return 'connected';
  } catch (error) {
    if (error instanceof ConnectError) return 'refused';
    throw error;
  }
}

describe('Socket.IO handshakes with CORS_ORIGINS unset', () => {
  it('refuse a page of another origin over polling and WebSocket, from every generation, logged and counted; programs and the broker\'s own pages connect', async () => {
    const proc = spawnBroker({ DEBUG: 'spicy-action:origin' });
    const url = await proc.ready;
    let refusals = 0;
    for (const generation of GENERATIONS) {
      for (const transports of [['polling'], ['websocket']]) {
        const what = `${generation} over ${transports[0]}`;
        for (const origin of [EVIL, 'null', `${url}.evil.example`, `http://localhost:${new URL(url).port}`]) {
          assert.equal(await handshakeFrom(generation, url, origin, transports), 'refused', `${what} from ${origin}`);
          refusals++;
        }
        assert.equal(await handshakeFrom(generation, url, undefined, transports), 'connected', `${what} without Origin`);
        assert.equal(await handshakeFrom(generation, url, url, transports), 'connected', `${what} from the broker's own origin`);
      }
    }
    assert.equal(await refusedFor(url, 'bad_origin'), refusals);
    assert.equal((proc.stderr().match(/refused socket\.io handshake from \S+: origin /g) ?? []).length, refusals);
  });

  it('answer a refused polling handshake 403 with a JSON error, and let a session of its own origin poll on', async () => {
    const broker = await startBroker();
    const refused = await request(`${broker.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: EVIL } });
    assert.equal(refused.status, 403);
    assert.deepEqual(refused.body, { ok: false, error: BAD_ORIGIN.error });
    const own = await fetch(`${broker.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: broker.url } });
    assert.equal(own.status, 200);
    const sid = (JSON.parse((await own.text()).slice(1)) as { sid: string }).sid;
    // A request on an open session is not a handshake: the session's own checks apply, not this one.
    const post = await fetch(`${broker.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: '40', headers: { Origin: broker.url } });
    assert.equal(post.status, 200);
  });

  it('refuse a page of another origin that knows the token, as /_notify does', async () => {
    const token = 'origin-token';
    const broker = await startBroker({ token });
    for (const generation of GENERATIONS) {
      assert.equal(await handshakeFrom(generation, broker.url, EVIL, ['websocket'], token), 'refused', generation);
      assert.equal(await handshakeFrom(generation, broker.url, undefined, ['websocket'], token), 'connected', generation);
    }
  });
});

describe('an embedding host', () => {
  it('gets the same Origin rule from attachBroker by default, and JSON errors from the exported error handler, as docs/embedding.md shows', async () => {
    const app = express();
    const httpServer = createServer(app);
    const io = new Server(httpServer, { allowEIO3: true });
    const broker = attachBroker(io, app, { buses: DEFAULT_BUSES, corsOrigins: [ADMIN] });
    app.use(errorHandler((attempt, refusal) => broker.telemetry.refused(attempt.what, refusal)));
    httpServer.listen(0, '127.0.0.1');
    await once(httpServer, 'listening');
    after(() => io.close());
    const url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
    const bus = await listener(url);
    const refused = await crossSitePush(url, EVIL);
    assert.equal(refused.status, 403);
    assert.match(refused.body.error, /origin is not in corsOrigins$/, "the option that lists them, not the process's setting");
    assert.deepEqual((await crossSitePush(url, ADMIN)).body, { ok: true });
    assert.deepEqual(await bus.receive('script_register', 1), [BODY]);
    const broken = await request(`${url}/_notify/%E0%A4%A`, { method: 'POST', body: '{}' });
    assert.deepEqual([broken.status, broken.body], [400, { ok: false, error: 'the path is not valid: it holds a broken percent-escape' }]);
  });

  it('cannot attach a broker to a Socket.IO server that has no HTTP server yet (its handshakes could not be checked)', () => {
    assert.throws(() => attachBroker(new Server()), /has no HTTP server yet/);
  });

  it('refuses every cross-site push and handshake when attachBroker is given no origins', async () => {
    const app = express();
    const httpServer = createServer(app);
    const io = new Server(httpServer, { allowEIO3: true });
    attachBroker(io, app);
    httpServer.listen(0, '127.0.0.1');
    await once(httpServer, 'listening');
    after(() => io.close());
    const url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
    const bus = await listener(url);
    assert.equal(await handshakeFrom('v4', url, EVIL, ['websocket']), 'refused', 'a handshake from a page of another origin');
    assert.equal(await handshakeFrom('v2', url, EVIL, ['polling']), 'refused', 'a handshake from a page of another origin');
    assert.equal((await crossSitePush(url, ADMIN)).status, 403);
    assert.equal((await crossSitePush(url, EVIL)).status, 403);
    assert.deepEqual((await request(`${url}/_notify/script_register`, { method: 'POST', body: JSON.stringify(BODY) })).body, { ok: true });
    assert.deepEqual(await bus.receive('script_register', 1), [BODY]);
  });
});
