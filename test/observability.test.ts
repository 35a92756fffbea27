/** GET /health and GET /metrics (docs/protocol.md#health, #metrics) follow what the broker does. */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import express from 'express';
import { register as globalRegistry } from 'prom-client';
import { HealthCheck, type RedisStateSource } from '../src/http/health.ts';
import { createMetrics, UNROUTED_LABEL } from '../src/http/metrics.ts';
import { NAME, VERSION } from '../src/package-info.ts';
import type { RedisState } from '../src/protocol.ts';
import { notify, request, startBroker } from './helpers/broker.ts';
import { closeAll, connect, flush } from './helpers/clients.ts';
import { parseMetrics, type Metrics } from './helpers/metrics.ts';

const broker = await startBroker();

async function scrape(url = broker.url): Promise<Metrics> {
  const answer = await request(`${url}/metrics`);
  assert.equal(answer.status, 200);
  assert.match(answer.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseMetrics(answer.body as string);
}

/** A stand-in for the cluster's Redis link: the interface health and metrics read. */
class FakeRedisLink extends EventEmitter implements RedisStateSource {
  state: RedisState = 'up';
  set(state: RedisState): void {
    this.state = state;
    this.emit('state', state);
  }
}

describe('GET /health', () => {
  it('answers 200 with name, version, uptime, connections and redis off', async () => {
    const clients = await Promise.all([connect('v1', broker.url), connect('v4', broker.url)]);
    try {
      const answer = await request(`${broker.url}/health`);
      assert.equal(answer.status, 200);
      assert.equal(answer.headers.get('cache-control'), 'no-store');
      const { uptime, ...rest } = answer.body as { uptime: number };
      assert.deepEqual(rest, { ok: true, name: NAME, version: VERSION, connections: 2, redis: 'off' });
      assert.ok(typeof uptime === 'number' && uptime > 0);
    } finally {
      closeAll(clients);
    }
  });

  it('turns 503 with ok: false as soon as the broker starts shutting down', async () => {
    const other = await startBroker();
    assert.equal(other.health.phase, 'ready');
    const closing = other.close();
    assert.equal(other.health.phase, 'stopping');
    assert.deepEqual({ status: other.health.report().status, ok: other.health.report().body.ok }, { status: 503, ok: false });
    await closing;
  });

  it('answers 503 over HTTP while starting and while stopping, and reports the Redis link', async () => {
    const link = new FakeRedisLink();
    const health = new HealthCheck({ name: NAME, version: VERSION, connections: () => 7, redis: link });
    const app = express();
    app.get('/health', health.handler);
    const server = createServer(app).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    after(() => server.close());
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
    const starting = await request(url);
    assert.equal(starting.status, 503);
    assert.equal(starting.body.ok, false);
    assert.equal(starting.body.phase, 'starting');
    health.ready();
    assert.deepEqual([(await request(url)).status, (await request(url)).body.redis, (await request(url)).body.connections], [200, 'up', 7]);
    link.set('down');
    const down = await request(url);
    assert.deepEqual([down.status, down.body.ok, down.body.redis], [200, true, 'down'], 'a Redis outage does not stop this node serving');
    health.stopping();
    const stopping = await request(url);
    assert.deepEqual([stopping.status, stopping.body.ok, stopping.body.phase], [503, false, 'stopping']);
    health.ready();
    assert.equal((await request(url)).status, 503, 'a stopping broker does not come back');
  });
});

describe('GET /metrics', () => {
  it('exposes every metric of the broker with HELP and TYPE, and the default process metrics', async () => {
    const metrics = await scrape();
    const expected: Record<string, string> = {
      spicy_action_connected_sockets: 'gauge',
      spicy_action_connections_total: 'counter',
      spicy_action_events_received_total: 'counter',
      spicy_action_deliveries_total: 'counter',
      spicy_action_unrouted_events_total: 'counter',
      spicy_action_notify_requests_total: 'counter',
      spicy_action_routes: 'gauge',
      spicy_action_refused_total: 'counter',
      spicy_action_redis_state: 'gauge',
      spicy_action_cluster_undelivered_events_total: 'counter',
      spicy_action_cluster_missed_entries_total: 'counter',
      spicy_action_slow_consumers_disconnected_total: 'counter',
      process_resident_memory_bytes: 'gauge',
      process_cpu_seconds_total: 'counter',
      nodejs_eventloop_lag_seconds: 'gauge',
    };
    for (const [name, type] of Object.entries(expected)) {
      assert.equal(metrics.types.get(name), type, `${name} is a ${type}`);
      assert.ok(metrics.help.get(name), `${name} has HELP`);
    }
    assert.equal(metrics.value('spicy_action_redis_state', { state: 'off' }), 1);
    assert.equal(metrics.value('spicy_action_redis_state', { state: 'up' }), 0);
    assert.ok(metrics.value('process_resident_memory_bytes') > 1e6);
    assert.equal(
      (await globalRegistry.metrics()).includes('spicy_action_'),
      false,
      'the broker uses its own Registry, not the global one',
    );
  });

  it('counts exactly the traffic sent: connections, events by name, deliveries by bus, unrouted, /_notify, refusals', async () => {
    const before = await scrape();
    const sender = await connect('v2', broker.url);
    const listener = await connect('v4', broker.url, { transports: ['websocket'] });
    try {
      assert.equal(await listener.ack('join', 'calls'), true);
      assert.equal(await listener.ack('join', 'support'), true);
      for (let i = 0; i < 7; i++) sender.emit('call', { i, _in: ['endpoint:alice@example.net'] });
      for (let i = 0; i < 3; i++) sender.emit('report_ops', { error: 'x', i });
      for (let i = 0; i < 4; i++) sender.emit(`no-such-event-${i}`, { i });
      assert.deepEqual(await sender.ack('register', { event: 'only-in', default_room: null }), { ok: true, event: 'only-in', bus: null });
      sender.emit('only-in', { _in: 'endpoint:bob@example.net' });
      assert.equal(await listener.ack('join', ''), false);
      await listener.receive('call', 7);
      await listener.receive('report_ops', 3);
      await flush(sender, [listener]);
      for (let i = 0; i < 2; i++) assert.equal((await notify(broker.url, 'script_register', { name: 'invalid_source', endpoint: 'alice@example.net' })).status, 200);
      assert.equal((await notify(broker.url, 'secret-unrouted-msg', { x: 1 })).status, 200);
      assert.equal((await notify(broker.url, 'report_csr', '[1,2]')).status, 400);

      const after = await scrape();
      const delta = (name: string, labels?: Record<string, string>): number => after.value(name, labels) - before.value(name, labels);
      assert.equal(after.value('spicy_action_connected_sockets'), 2);
      assert.equal(delta('spicy_action_connections_total'), 2);
      assert.equal(delta('spicy_action_events_received_total', { event: 'call' }), 7);
      assert.equal(delta('spicy_action_events_received_total', { event: 'report_ops' }), 3);
      assert.equal(delta('spicy_action_events_received_total', { event: 'only-in' }), 1);
      assert.equal(delta('spicy_action_events_received_total', { event: 'script_register' }), 2, '/_notify pushes are events received too');
      assert.equal(delta('spicy_action_deliveries_total', { bus: 'calls' }), 7);
      assert.equal(delta('spicy_action_deliveries_total', { bus: 'support' }), 3 + 2);
      assert.equal(delta('spicy_action_unrouted_events_total'), 4);
      assert.equal(delta('spicy_action_notify_requests_total', { msg: 'script_register', status: '200' }), 2);
      assert.equal(delta('spicy_action_notify_requests_total', { msg: UNROUTED_LABEL, status: '200' }), 1);
      assert.equal(delta('spicy_action_notify_requests_total', { msg: 'report_csr', status: '400' }), 1);
      assert.equal(delta('spicy_action_refused_total', { reason: 'bad_room' }), 1);
      assert.equal(after.value('spicy_action_routes'), broker.broker.routes.size);
      assert.ok(broker.broker.routes.size > before.value('spicy_action_routes'), 'the registered route is counted');
      // Label values stay bounded: names of unrouted events never become labels.
      const text = (await request(`${broker.url}/metrics`)).body as string;
      assert.ok(!text.includes('no-such-event'), 'unrouted socket events are counted without their name');
      assert.ok(!text.includes('secret-unrouted-msg'), 'unrouted /_notify messages are counted without their name');
    } finally {
      closeAll([sender, listener]);
    }
  });

  it('follows the Redis link and the events that could not reach the cluster', async () => {
    const running = await startBroker();
    const link = new FakeRedisLink();
    const registry = createMetrics({ broker: running.broker, connections: () => 0, redis: link, processMetrics: false });
    const read = async (): Promise<Metrics> => parseMetrics(await registry.metrics());
    assert.equal((await read()).value('spicy_action_redis_state', { state: 'up' }), 1);
    link.set('down');
    link.emit('undelivered', 3);
    link.emit('undelivered', 2);
    const down = await read();
    assert.deepEqual(
      ['off', 'up', 'down'].map((state) => down.value('spicy_action_redis_state', { state })),
      [0, 0, 1],
    );
    assert.equal(down.value('spicy_action_cluster_undelivered_events_total'), 5);
    assert.equal(down.all('process_resident_memory_bytes').length, 0, 'process metrics can be left out');
  });
});
