/**
 * Property-based fuzzing of the broker's two doors, on one process and on a
 * two-node cluster (real redis-server): socket events (any name, payloads of
 * every shape including deep nesting, `_in` of any type, with or without a
 * callback, sometimes binary) and `/_notify` requests (any method, path,
 * headers and body). Whatever comes in, the broker stays alive, answers
 * every request with a documented status (every callback with a documented
 * shape), and still routes a fresh event afterwards.
 *
 * `npm test` runs FUZZ_RUNS (default 100) cases per property and setup, a few
 * hundred in all; `npm run test:fuzz` runs many more.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { CONTROL_EVENTS, isObject } from '../src/protocol.ts';
import type { RunningBroker } from '../src/server.ts';
import { notify, request, startBroker } from './helpers/broker.ts';
import { closeAll, connect, withTimeout, type Generation, type TestClient } from './helpers/clients.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';

/** Cases per property and setup. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 100);
/** A fixed seed unless told otherwise, so that a failure in CI can be replayed. */
const SEED = process.env.FUZZ_SEED === undefined ? 42 : Number(process.env.FUZZ_SEED);
/** Statuses docs/protocol.md documents for HTTP requests (401 needs a token set; 503 a broker shutting down). */
const DOCUMENTED_STATUSES = new Set([200, 400, 401, 404, 413, 415, 503]);
/** Control events whose callback gets a boolean. */
const BOOLEAN_ACKS = new Set(['join', 'subscribe', 'leave', 'unsubscribe']);
/** Names each client generation keeps for itself: 4.x throws on them, 2.x emits them locally (2.x's own `ping`, `pong`...). */
const CLIENT_RESERVED: Record<Generation, ReadonlySet<string>> = {
  v1: new Set(),
  v2: new Set(['connect', 'connect_error', 'connect_timeout', 'connecting', 'disconnect', 'error', 'reconnect', 'reconnect_attempt', 'reconnect_failed', 'reconnect_error', 'reconnecting', 'ping', 'pong', 'newListener', 'removeListener']),
  v4: new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']),
};

/** True when Express can decode `path` (a malformed percent-escape is answered by Express's own error handler). */
function decodable(path: string): boolean {
  try {
    decodeURIComponent(path);
    return true;
  } catch {
    return false;
  }
}

/** A value nested `levels` deep. */
const nested = (levels: number): unknown => JSON.parse('['.repeat(levels) + ']'.repeat(levels));

const json = fc.jsonValue({ maxDepth: 4 });
const rooms = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.array(fc.oneof(fc.string({ maxLength: 40 }), fc.integer(), fc.constant(null), fc.constant('endpoint:fuzz@example.net')), { maxLength: 150 }),
  json,
);
const payload = fc.oneof(
  { weight: 4, arbitrary: json },
  { weight: 1, arbitrary: fc.integer({ min: 60, max: 2_000 }).map(nested) },
  { weight: 2, arbitrary: fc.record({ call: fc.string(), _in: rooms, endpoint: fc.oneof(fc.string({ maxLength: 300 }), json) }, { requiredKeys: ['_in'] }) },
);
const eventName = fc.oneof(
  fc.constantFrom(...CONTROL_EVENTS, 'call', 'trace', 'report_ops', 'location:update', 'statistics:add', 'unrouted-event'),
  fc.string({ maxLength: 300 }),
);
const socketCase = fc.record({
  generation: fc.constantFrom<Generation>('v2', 'v4'),
  event: eventName,
  args: fc.array(payload, { maxLength: 3 }),
  callback: fc.boolean(),
  // Now and then: a binary attachment, or a payload nested past what any client encoder can walk,
  // written straight to the transport as an attacker would.
  binary: fc.integer({ min: 0, max: 19 }).map((n) => n === 0),
  rawDepth: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 5_000, max: 20_000 }) }),
});

const notifyPath = fc.oneof(
  fc.string({ maxLength: 40 }).map((msg) => `/_notify/${encodeURIComponent(msg)}`),
  { weight: 2, arbitrary: fc.constantFrom('/_notify/call', '/_notify/report_ops', '/_notify/script_register') },
  fc.constantFrom('/_notify/call', '/_notify/report_ops', '/_notify/script_register', '/_notify/', '/_notify', '/_notify/a/b', '/', '/metrics', '/health', '/nope', '/_notify/%E0%A4%A'),
);
const body = fc.oneof(
  json.map((value) => JSON.stringify(value)),
  { weight: 2, arbitrary: fc.integer({ min: 60, max: 20_000 }).map((levels) => '{"a":'.repeat(levels) + '1' + '}'.repeat(levels)) },
  fc.record({ name: fc.string(), endpoint: fc.string({ maxLength: 400 }), _in: rooms }).map((value) => JSON.stringify(value)),
  fc.string({ maxLength: 200 }),
  fc.constant(''),
);
const httpCase = fc.record({
  method: fc.constantFrom('POST', 'POST', 'POST', 'GET', 'PUT', 'DELETE'),
  path: notifyPath,
  contentType: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', 'application/json; charset=utf-16'),
  encoding: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, fc.constantFrom('gzip', 'identity', 'br', 'bogus')),
  body,
});

/** Checks one setup: `a` takes the fuzz, `b` (the other node in a cluster) must still deliver. */
function fuzzSuite(nodes: () => { a: RunningBroker; b: RunningBroker }): void {
  const clients = new Map<Generation, TestClient>();
  const all: TestClient[] = [];
  after(() => closeAll(all));
  /** A connected client of `generation` on node a: a fresh one after the broker closed the last (binary). */
  const sender = async (generation: Generation): Promise<TestClient> => {
    const existing = clients.get(generation);
    if (existing?.raw.connected) return existing;
    const client = await connect(generation, nodes().a.url, { transports: ['websocket'] });
    all.push(client);
    clients.set(generation, client);
    return client;
  };

  /** A subscriber on node b receives a fresh `call` pushed to node a. */
  const stillRoutes = async (): Promise<void> => {
    const { a, b } = nodes();
    assert.equal((await request(`${a.url}/health`)).status, 200);
    const subscriber = await connect('v4', b.url);
    all.push(subscriber);
    try {
      assert.equal(await subscriber.ack('join', 'calls'), true);
      const arrival = subscriber.next('call', 10_000);
      assert.deepEqual((await notify(a.url, 'call', { call: 'fresh' })).body, { ok: true });
      assert.deepEqual((await arrival)[0], { call: 'fresh' });
    } finally {
      subscriber.close();
    }
  };

  it(`answers any socket event with a documented acknowledgement (${RUNS} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(socketCase, async ({ generation, event, args, callback, binary, rawDepth }) => {
        if (CLIENT_RESERVED[generation].has(event)) return;
        const client = await sender(generation);
        if (rawDepth > 0) {
          // Socket.IO packet type 2 (EVENT), the name, then the deep payload; the answer is a `failed` event.
          const packet = `2[${JSON.stringify(event)},${'['.repeat(rawDepth)}${']'.repeat(rawDepth)}]`;
          (client.raw.io as { engine: { write(data: string): void } }).engine.write(packet);
          // Earlier cases without a callback may still have `failed` answers on the way: wait for this one.
          const mine = (): boolean =>
            client.payloads('failed').some((f) => isObject(f) && f.event === event && typeof f.msg === 'string' && f.msg.includes('nested deeper'));
          const deadline = Date.now() + 5_000;
          while (!mine()) {
            assert.ok(Date.now() < deadline, `a failed event for the deep ${event}`);
            await new Promise((r) => setTimeout(r, 5));
          }
          client.received.length = 0;
          return;
        }
        const sent = binary ? [...args, Buffer.from('fuzz')] : args;
        if (binary) {
          const gone = withTimeout(new Promise((resolve) => client.raw.on('disconnect', resolve)), 'the broker to close a binary sender');
          client.emit(event, ...sent);
          await gone;
          return;
        }
        if (!callback) {
          client.emit(event, ...sent);
          return;
        }
        const answer = await client.ack<unknown>(event, ...sent);
        if (BOOLEAN_ACKS.has(event)) {
          assert.equal(typeof answer, 'boolean', `${event} answers a boolean`);
        } else {
          assert.ok(isObject(answer) && typeof answer.ok === 'boolean', `${event} answers {ok}: ${JSON.stringify(answer)}`);
          if (answer.ok === false) assert.equal(typeof answer.error, 'string');
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
    await stillRoutes();
  });

  it(`answers any HTTP request with a documented status (${RUNS} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(httpCase, async ({ method, path, contentType, encoding, body: text }) => {
        const headers: Record<string, string> = { 'Content-Type': contentType };
        if (encoding) headers['Content-Encoding'] = encoding;
        const init: RequestInit = { method, headers };
        if (method !== 'GET') init.body = text;
        const answer = await request(`${nodes().a.url}${path}`, init);
        assert.ok(DOCUMENTED_STATUSES.has(answer.status), `${method} ${path}: ${answer.status}`);
        if (path.startsWith('/_notify/') && method === 'POST' && answer.status !== 404 && decodable(path)) {
          assert.ok(isObject(answer.body) && typeof answer.body.ok === 'boolean', `${path}: a JSON answer {ok}`);
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
    await stillRoutes();
  });
}

describe('fuzz, one process', async () => {
  const broker = await startBroker();
  fuzzSuite(() => ({ a: broker, b: broker }));
});

describe('fuzz, two-node cluster', { skip: redisMissing() }, async () => {
  const redis = await RedisServer.start();
  const [a, b] = await Promise.all([startBroker({ redisUrl: redis.url }), startBroker({ redisUrl: redis.url })]);
  fuzzSuite(() => ({ a, b }));
});
