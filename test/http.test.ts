/** HTTP (docs/protocol.md#http-api): GET / and OpenSIPS pushes through POST /_notify/:msg. */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { NAME, VERSION } from '../src/package-info.ts';
import { notify, request, startBroker } from './helpers/broker.ts';
import { closeAll, connect, flush, GENERATIONS, type TestClient } from './helpers/clients.ts';

const broker = await startBroker();
const open: TestClient[] = [];
afterEach(() => closeAll(open.splice(0)));
async function listener(rooms: string[], generation: (typeof GENERATIONS)[number] = 'v4'): Promise<TestClient> {
  const c = await connect(generation, broker.url);
  open.push(c);
  for (const room of rooms) assert.equal(await c.ack('join', room), true);
  return c;
}

/** What OpenSIPS posts. */
const PUSHES: [msg: string, body: Record<string, unknown>, bus: string][] = [
  ['report_ops', { error: 'core_threshold', application: 'opensips:core', host: 'sbc1.example.net', stamp: '2017-05-01T10:00:00.000Z' }, 'support'],
  ['report_csr', { error: 'endpoint_rate_limit', direction: 'ingress', endpoint: 'alice@example.net', limit: 10, ip: '192.0.2.7' }, 'support'],
  ['script_register', { name: 'invalid_source', endpoint: 'alice@example.net', ip: '192.0.2.7' }, 'support'],
  ['location', { hostname: 'sbc1', endpoint: 'alice@example.net', aor: 'alice@example.net', contact: '<sip:alice@192.0.2.7>', expires: 3600 }, 'locations'],
  ['pike_blocked', { type: 'pike_blocked', host: 'sbc1.example.net', ip: '198.51.100.9' }, 'support'],
  ['pipe_blocked', { type: 'pipe_blocked', host: 'sbc1.example.net', ip: '198.51.100.9' }, 'support'],
];

describe('GET /', () => {
  it('answers name and version', async () => {
    const answer = await request(`${broker.url}/`);
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { ok: true, name: NAME, version: VERSION });
  });

  it('answers unknown paths with a JSON 404', async () => {
    const answer = await request(`${broker.url}/nope`);
    assert.equal(answer.status, 404);
    assert.deepEqual(answer.body, { ok: false, error: 'not found' });
  });
});

describe('POST /_notify/:msg', () => {
  for (const [msg, body, bus] of PUSHES) {
    it(`re-emits ${msg} on ${bus}${body.endpoint ? ' and endpoint:<endpoint>' : ''}`, async () => {
      const onBus = await listener([bus], 'v1');
      const customer = await listener(['endpoint:alice@example.net'], 'v2');
      const other = await listener(['calls']);
      const answer = await notify(broker.url, msg, body);
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.body, { ok: true });
      assert.deepEqual((await onBus.receive(msg, 1))[0], body);
      await flush(other, [onBus, customer, other]);
      assert.equal(onBus.count(msg), 1);
      assert.equal(customer.count(msg), body.endpoint ? 1 : 0);
      assert.equal(other.count(msg), 0);
    });
  }

  it('reaches a socket in the bus and the endpoint room once', async () => {
    const both = await listener(['support', 'endpoint:alice@example.net']);
    await notify(broker.url, 'script_register', { name: 'invalid_source', endpoint: 'alice@example.net' });
    await flush(both, [both]);
    assert.equal(both.count('script_register'), 1);
  });

  it('does not use _in, nor an endpoint that is not a non-empty string', async () => {
    const rooms = await listener(['endpoint:bob@example.net', 'endpoint:', 'endpoint:42']);
    const support = await listener(['support']);
    for (const body of [{ _in: ['endpoint:bob@example.net'] }, { endpoint: '' }, { endpoint: 42 }, { endpoint: ['bob@example.net'] }]) {
      assert.equal((await notify(broker.url, 'report_ops', body)).status, 200);
    }
    await support.receive('report_ops', 4);
    await flush(support, [rooms]);
    assert.equal(rooms.count('report_ops'), 0);
  });

  it('routes a message registered at run time, with a colon in its name', async () => {
    const handler = await listener(['calls']);
    await handler.ack('register', { event: 'conference:participants', default_room: 'calls' });
    assert.deepEqual((await notify(broker.url, 'conference:participants', { count: 2 })).body, { ok: true });
    assert.deepEqual((await handler.receive('conference:participants', 1))[0], { count: 2 });
  });

  it('ignores a message without a route, emitting nothing', async () => {
    const everywhere = await listener([...broker.broker.buses.known, 'endpoint:alice@example.net']);
    for (const msg of ['no_such_event', '__proto__', 'constructor', 'join']) {
      const answer = await notify(broker.url, msg, { endpoint: 'alice@example.net' });
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.body, { ok: false, ignore: true }, msg);
    }
    await flush(everywhere, [everywhere]);
    assert.deepEqual(everywhere.received.filter(([e]) => e !== 'welcome' && e !== 'flush'), []);
  });

  it('ignores a message with a null route, emitting nothing (not even to the endpoint room)', async () => {
    const customer = await listener(['endpoint:alice@example.net']);
    await customer.ack('register', { event: 'quiet', default_room: null });
    assert.deepEqual((await notify(broker.url, 'quiet', { endpoint: 'alice@example.net' })).body, { ok: false, ignore: true });
    await flush(customer, [customer]);
    assert.equal(customer.count('quiet'), 0);
  });

  it('reads the body as JSON whatever its Content-Type', async () => {
    const support = await listener(['support']);
    const answer = await notify(broker.url, 'report_ops', '{"error":"invalid"}', { 'Content-Type': 'text/plain' });
    assert.deepEqual(answer.body, { ok: true });
    assert.deepEqual((await support.receive('report_ops', 1))[0], { error: 'invalid' });
  });

  const invalid: [string, string, string][] = [
    ['not valid JSON', '{"error": ', 'body is not valid JSON'],
    ['an array', '[{"error":"x"}]', 'body must be a JSON object'],
    ['a string', '"report"', 'body must be a JSON object'],
    ['null', 'null', 'body must be a JSON object'],
    ['a number', '42', 'body must be a JSON object'],
    ['empty', '', 'body must be a JSON object'],
  ];
  for (const [what, body, error] of invalid) {
    it(`answers 400 to a body that is ${what}, emitting nothing`, async () => {
      const support = await listener(['support']);
      const answer = await notify(broker.url, 'report_ops', body);
      assert.equal(answer.status, 400);
      assert.deepEqual(answer.body, { ok: false, error });
      await flush(support, [support]);
      assert.equal(support.count('report_ops'), 0);
    });
  }

  it('answers 413 to a body over 1 MB, and accepts one just under', async () => {
    const support = await listener(['support']);
    const big = JSON.stringify({ error: 'registrant_failure', sip: 'x'.repeat(1_000_001) });
    const answer = await notify(broker.url, 'report_ops', big);
    assert.equal(answer.status, 413);
    assert.equal(answer.body.ok, false);
    assert.match(answer.body.error, /too large \(limit 1000000 bytes\)/);

    const fits = { error: 'registrant_failure', sip: 'x'.repeat(999_000) };
    assert.deepEqual((await notify(broker.url, 'report_ops', fits)).body, { ok: true });
    assert.deepEqual((await support.receive('report_ops', 1))[0], fits);
  });

  it('answers 404 to other methods and to /_notify without a message', async () => {
    assert.equal((await request(`${broker.url}/_notify/report_ops`)).status, 404);
    assert.equal((await request(`${broker.url}/_notify`, { method: 'POST', body: '{}' })).status, 404);
  });

  it('keeps serving sockets while malformed requests come in', async () => {
    const [publisher, calls] = [await listener([]), await listener(['calls'], 'v1')];
    const bad = Array.from({ length: 50 }, (_, i) => notify(broker.url, 'report_ops', i % 2 ? '{' : '[1]'));
    for (let i = 0; i < 50; i++) publisher.emit('call', { i });
    const answers = await Promise.all(bad);
    assert.ok(answers.every((a) => a.status === 400));
    const calls50 = await calls.receive('call', 50);
    assert.deepEqual(calls50, Array.from({ length: 50 }, (_, i) => ({ i })), 'every event, in order');
  });
});
