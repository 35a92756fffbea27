/**
 * Issue 19, item 3: strangers' handshakes were held without bound (each
 * Engine.IO session about 6 KB for 45 s, uncapped). Sessions that have not
 * joined the namespace (authenticated) are now capped per client address
 * (`MAX_PENDING_HANDSHAKES_PER_ADDRESS`: 429) and in total
 * (`MAX_PENDING_HANDSHAKES`: 503), and closed after `HANDSHAKE_TIMEOUT`; the
 * refusals are counted (`pending_handshakes`) and logged once per episode.
 * The floods come from other loopback addresses (127.0.0.2, ...) than the
 * clients that must still be served (127.0.0.1).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, describe, it } from 'node:test';
import { Server } from 'socket.io';
import { request, startBroker } from './helpers/broker.ts';
import { socketOptions } from '../src/server.ts';
import { DEFAULT_SETTINGS } from '../src/settings.ts';
import { closeAll, connect, connectRefused, flush, GENERATIONS, type TestClient } from './helpers/clients.ts';
import { captureLog } from './helpers/logs.ts';
import { parseMetrics } from './helpers/metrics.ts';
import { sleep, until } from './helpers/wait.ts';

const TOKEN = 'handshake-test-token';

/** One raw Engine.IO polling handshake from `from`: its status, headers and body. */
function handshake(url: string, from: string, eio = 4): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}/socket.io/?EIO=${eio}&transport=polling`, { localAddress: from, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
}

/** A raw WebSocket handshake from `from`: the status of the answer (101 when it was accepted). */
function websocketHandshake(url: string, from: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}/socket.io/?EIO=4&transport=websocket`, {
      localAddress: from,
      agent: false,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
  });
}

function tally(statuses: readonly number[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

describe('pending handshakes', () => {
  const clients: TestClient[] = [];
  after(() => closeAll(clients));

  it('are capped per address (429) and in total (503), counted, logged once, and other clients are served', async (t) => {
    const log = captureLog(t, 'spicy-action:handshakes');
    const broker = await startBroker({ token: TOKEN, maxPendingHandshakesPerAddress: 20, maxPendingHandshakes: 30, handshakeTimeoutMs: 30_000 });
    const refused = async (): Promise<number> => {
      const text = (await request(`${broker.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).body as string;
      return parseMetrics(text).value('spicy_action_refused_total', { reason: 'pending_handshakes' });
    };

    // A stranger without the token: 40 handshakes (both Engine.IO revisions), never followed up.
    const flood = await Promise.all(Array.from({ length: 40 }, (_, i) => handshake(broker.url, '127.0.0.2', i % 2 ? 3 : 4)));
    assert.deepEqual(tally(flood.map((a) => a.status)), { 200: 20, 429: 20 });
    const answer = flood.find((a) => a.status === 429)!;
    assert.equal(answer.headers['content-type'], 'application/json');
    assert.equal(answer.headers['retry-after'], '30');
    assert.deepEqual(JSON.parse(answer.body), { ok: false, error: 'too many handshakes from this address have not joined yet; retry later' });
    assert.equal(broker.pendingHandshakes.state().pending, 20);

    // The clients of every generation, from another address, are served meanwhile.
    const served = await Promise.all(GENERATIONS.map((g) => connect(g, broker.url, { token: TOKEN })));
    clients.push(...served);
    const [publisher, ...receivers] = served as [TestClient, ...TestClient[]];
    for (const receiver of receivers) receiver.emit('join', 'calls');
    await flush(publisher, receivers);
    publisher.emit('call', { state: 'ringing' });
    for (const receiver of receivers) await receiver.receive('call', 1);
    assert.equal(broker.pendingHandshakes.state().pending, 20, 'joined clients are not pending');

    // A second stranger fills the total: 503, for polling and WebSocket alike.
    const second = await Promise.all(Array.from({ length: 15 }, () => handshake(broker.url, '127.0.0.3')));
    assert.deepEqual(tally(second.map((a) => a.status)), { 200: 10, 503: 5 });
    assert.deepEqual(JSON.parse(second.find((a) => a.status === 503)!.body), { ok: false, error: 'too many handshakes have not joined yet; retry later' });
    assert.equal(await websocketHandshake(broker.url, '127.0.0.4'), 503);
    assert.equal(broker.pendingHandshakes.state().pending, 30);

    assert.equal(await refused(), 26);
    assert.equal(log.filter((line) => line.includes('refusing handshakes')).length, 1, log.join('\n'));
  });

  it('leave nothing on a session once it joined: its close listeners are bare Socket.IO\'s', async () => {
    const broker = await startBroker({ token: TOKEN });
    const bareHttp = http.createServer();
    const bare = new Server(bareHttp, socketOptions(DEFAULT_SETTINGS));
    bare.on('connection', (socket) => socket.emit('welcome', { id: socket.id }));
    await new Promise<void>((resolve) => bareHttp.listen(0, '127.0.0.1', resolve));
    after(() => bare.close());
    const bareUrl = `http://127.0.0.1:${(bareHttp.address() as { port: number }).port}`;
    const clients = await Promise.all([connect('v4', broker.url, { token: TOKEN }), connect('v4', bareUrl)]);
    after(() => closeAll(clients));
    const closeListeners = (io: { of(name: string): { sockets: Map<string, { conn: { listenerCount(event: string): number } }> } }): number[] =>
      [...io.of('/').sockets.values()].map((socket) => socket.conn.listenerCount('close'));
    // Engine.IO holds a `close` listener of its own while a connection upgrades from polling: compare once both have.
    const upgraded = (io: { of(name: string): { sockets: Map<string, { conn: { transport: { name: string } } }> } }): boolean =>
      [...io.of('/').sockets.values()].every((socket) => socket.conn.transport.name === 'websocket');
    await until('both connections upgraded', () => upgraded(broker.io) && upgraded(bare));
    const [ours] = closeListeners(broker.io);
    assert.ok(ours !== undefined, 'the broker has the client');
    assert.deepEqual(closeListeners(broker.io), closeListeners(bare), 'the pending-handshake guard let go of the session when it joined');
  });

  it('are closed after HANDSHAKE_TIMEOUT, refused or silent, which frees their places', async () => {
    const timeoutMs = 1_000;
    const broker = await startBroker({ token: TOKEN, maxPendingHandshakesPerAddress: 5, maxPendingHandshakes: 100, handshakeTimeoutMs: timeoutMs });
    const opened = Date.now();
    const flood = await Promise.all(Array.from({ length: 5 }, () => handshake(broker.url, '127.0.0.2')));
    assert.ok(flood.every((a) => a.status === 200));
    // Still held: the address is at its cap.
    assert.equal((await handshake(broker.url, '127.0.0.2')).status, 429);
    // Real clients without the token: refused at their CONNECT (4.x) or as they join (1.x, 2.x).
    await Promise.all(GENERATIONS.map(async (generation) => assert.equal(await connectRefused(generation, broker.url), 'unauthorized')));
    await until('every pending session closed', () => broker.pendingHandshakes.state().pending === 0, 15_000);
    // Closed by the timeout, not before it: every session opened after `opened`.
    assert.ok(Date.now() - opened >= timeoutMs, `closed ${Date.now() - opened} ms after they opened`);
    assert.equal(broker.io.engine.clientsCount, 0);
    assert.equal((await handshake(broker.url, '127.0.0.2')).status, 200);
  });

  it('hold the heap to the cap under a flood of three times it, from several addresses', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const perAddress = 100;
    const total = 200;
    const broker = await startBroker({ token: TOKEN, maxPendingHandshakesPerAddress: perAddress, maxPendingHandshakes: total, handshakeTimeoutMs: 60_000 });
    const client = await connect('v4', broker.url, { token: TOKEN });
    clients.push(client);
    gc();
    const before = process.memoryUsage().heapUsed;
    const addresses = Array.from({ length: 4 }, (_, i) => `127.0.0.${i + 2}`);
    const statuses: number[] = [];
    // 600 handshakes, 150 from each address, 50 at a time.
    for (let round = 0; round < 3; round++) {
      for (const from of addresses) {
        const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => handshake(broker.url, from, i % 2 ? 3 : 4)));
        statuses.push(...answers.map((a) => a.status));
        assert.ok(broker.pendingHandshakes.state().pending <= total);
      }
    }
    await sleep(100);
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    // The first round takes 50 from each address (under their cap), the second fills the total; the rest are refused.
    assert.deepEqual(tally(statuses), { 200: total, 503: 400 });
    // The docs' figure: about 12 KB per pending session on a connection of its own.
    assert.ok(grown < total * 16_000, `heap grew ${grown} bytes for ${total} pending sessions`);
    // The broker still serves its client.
    assert.deepEqual(await client.ack('join', 'calls'), true);
  });
});
