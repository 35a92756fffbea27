/**
 * Several brokers (docs/protocol.md#several-brokers), when Redis fails: a short outage (a restart) delays events
 * and loses none on any node; an outage past the grace leaves every node
 * serving its own clients and counts what missed the cluster; Redis missing at
 * start is retried for a bounded time, then the start fails in one line.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { notify, request, spawnBroker, startBroker } from '../helpers/broker.ts';
import { clientsClosedAfter, connect, flush, type TestClient } from '../helpers/clients.ts';
import { parseMetrics } from '../helpers/metrics.ts';
import { freePort, RedisServer, redisMissing } from '../helpers/redis.ts';
import { captureLog } from '../helpers/logs.ts';
import { sleep, until } from '../helpers/wait.ts';

interface Call {
  src: string;
  seq: number;
  t: number;
}

describe('Redis outages', { skip: redisMissing() }, async () => {
  const open = clientsClosedAfter();

  it('loses nothing on any node when Redis restarts in the middle of a stream of events', async (t) => {
    const redis = await RedisServer.start();
    const [a, b] = await Promise.all([startBroker({ redisUrl: redis.url }), startBroker({ redisUrl: redis.url })]);
    const receivers = [await open('v1', a.url), await open('v4', a.url), await open('v2', b.url), await open('v4', b.url)];
    for (const r of receivers) assert.equal(await r.ack('join', 'calls'), true);
    const delays: number[] = [];
    receivers[3]!.raw.on('call', (call: Call) => delays.push(Date.now() - call.t));
    const publishers = { A: await open('v4', a.url), B: await open('v2', b.url) };
    const states: string[] = [];
    a.cluster.on('state', (state) => states.push(state));

    const COUNT = 320;
    let sent = 0; // rounds sent, one event per publisher each
    const streaming = (async () => {
      for (let seq = 0; seq < COUNT; seq++) {
        for (const [src, publisher] of Object.entries(publishers)) publisher.emit('call', { src, seq, t: Date.now() });
        sent = seq + 1;
        await sleep(25);
      }
    })();

    // The stream flows through Redis to both nodes before the outage...
    await until('the first events reach every receiver', () => receivers.every((r) => r.count('call') >= 2 * 20));
    await redis.stop();
    await until('both nodes see Redis down', () => a.cluster.state === 'down' && b.cluster.state === 'down');
    // Still accepting connections, and greeting them at once.
    const newcomer = await open('v4', a.url);
    assert.equal(newcomer.generation, 'v4');
    // ... and goes on while Redis is down: those events are held, not lost.
    const sentAtDown = sent;
    await until('80 more events published while Redis is down', () => sent >= sentAtDown + 40);
    assert.ok(sent < COUNT, 'the stream is still running when Redis comes back');
    await redis.start();
    await until('both nodes see Redis up again', () => a.cluster.state === 'up' && b.cluster.state === 'up', 15_000);
    await streaming;

    for (const r of receivers) await r.receive('call', 2 * COUNT, 20_000);
    await flush(publishers.A, receivers);
    await flush(publishers.B, receivers);
    const expected = Array.from({ length: COUNT }, (_, i) => i);
    for (const [i, r] of receivers.entries()) {
      const calls = r.payloads('call') as Call[];
      for (const src of ['A', 'B']) {
        const seqs = calls.filter((c) => c.src === src).map((c) => c.seq);
        assert.deepEqual(seqs, expected, `receiver ${i} (${r.generation}) got every event of ${src} once, in order`);
      }
    }
    assert.deepEqual(states, ['down', 'up']);
    assert.equal(a.cluster.undelivered + b.cluster.undelivered, 0, 'nothing counted as missed within the grace');
    t.diagnostic(`longest delivery delay across the restart: ${Math.max(...delays)} ms`);
  });

  it('serves local clients and counts what missed the cluster when Redis stays down past the grace', async (t) => {
    const logged = captureLog(t);

    const redis = await RedisServer.start();
    const settings = { redisUrl: redis.url, redisOutageGraceMs: 2_000 };
    const [c, d] = await Promise.all([startBroker(settings), startBroker(settings)]);
    const local = [await open('v1', c.url), await open('v4', c.url)];
    const remote = await open('v2', d.url);
    for (const r of [...local, remote]) assert.equal(await r.ack('join', 'calls'), true);
    const publisher = await open('v4', c.url);
    let counted = 0;
    c.cluster.on('undelivered', (n) => (counted += n));

    const dropping = await connect('v4', c.url, { transports: ['websocket'], reconnection: false });
    open.keep(dropping);
    publisher.emit('call', { seq: 0 });
    for (const r of [...local, remote]) await r.receive('call', 1);

    await redis.stop();
    await until('node C sees Redis down', () => c.cluster.state === 'down');
    // A 4.x client coming back while Redis is down is not kept waiting for its session: it gets a fresh one.
    const gone = new Promise((resolve) => dropping.raw.on('disconnect', resolve));
    (dropping.raw.io as { engine: { close(): void } }).engine.close();
    await gone;
    const welcomed = dropping.next('welcome');
    (dropping.raw as unknown as { connect(): void }).connect();
    await welcomed;
    assert.ok(!dropping.raw.recovered);
    for (let seq = 1; seq <= 10; seq++) publisher.emit('call', { seq }); // held in the grace
    await until('the grace runs out and the 10 held events are counted', () => counted === 10);
    for (const r of local) await r.receive('call', 11);
    // Past the grace: served locally at once, and counted one by one. New clients are still let in.
    const latecomer = await open('v2', c.url);
    assert.equal(await latecomer.ack('join', 'calls'), true);
    for (let seq = 11; seq <= 20; seq++) publisher.emit('call', { seq });
    for (const r of local) await r.receive('call', 21);
    await latecomer.receive('call', 10);
    assert.equal(c.cluster.undelivered, 20);
    assert.equal(counted, 20);
    assert.equal(c.cluster.state, 'down');
    // What an operator sees: the broker is up and serving, Redis is down, and the loss is counted.
    const health = await request(`${c.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.body.redis, 'down');
    const metrics = parseMetrics((await request(`${c.url}/metrics`)).body as string);
    assert.equal(metrics.value('spicy_action_cluster_undelivered_events_total'), 20);
    assert.equal(metrics.value('spicy_action_redis_state', { state: 'down' }), 1);
    assert.equal(metrics.value('spicy_action_redis_state', { state: 'up' }), 0);

    await redis.start();
    await until('Redis back on both nodes', () => c.cluster.state === 'up' && d.cluster.state === 'up', 15_000);
    assert.equal((await request(`${c.url}/health`)).body.redis, 'up');
    publisher.emit('call', { seq: 21 });
    await remote.receive('call', 2);
    await flush(publisher, [...local, remote]);
    const seqs = (r: TestClient): number[] => (r.payloads('call') as { seq: number }[]).map((p) => p.seq);
    for (const r of local) assert.deepEqual(seqs(r), Array.from({ length: 22 }, (_, i) => i), `${r.generation} on the publishing node got all, in order`);
    assert.deepEqual(seqs(remote), [0, 21], 'the other node never got what missed the cluster, not even late');
    assert.equal(c.cluster.undelivered, 20, 'nothing counted once Redis is back');

    // Logged once per outage, not once per event.
    const expired = logged.filter((line) => line.includes('down for more than 2 s'));
    assert.equal(expired.length, 2, `each node says once that the grace ran out:\n${logged.join('\n')}`);
    const summary = logged.filter((line) => line.includes('20 events published meanwhile reached only this node'));
    assert.equal(summary.length, 1, `node C says once how many events missed the cluster:\n${logged.join('\n')}`);
    assert.ok(logged.length < 20, `a few lines per outage, not one per event:\n${logged.join('\n')}`);
  });

  it('fails the start in one line when Redis stays unreachable past REDIS_CONNECT_TIMEOUT', async () => {
    const port = await freePort();
    const started = Date.now();
    const broker = spawnBroker({ REDIS_URL: `redis://:s3cret@127.0.0.1:${port}`, REDIS_CONNECT_TIMEOUT: '1s' });
    await assert.rejects(broker.ready);
    const { code } = await broker.exited;
    assert.notEqual(code, 0);
    assert.ok(Date.now() - started < 15_000);
    const lines = broker.stderr().trim().split('\n');
    assert.equal(lines.length, 1, broker.stderr());
    assert.match(lines[0]!, new RegExp(`cannot reach Redis at redis://127\\.0\\.0\\.1:${port} within 1 s`));
    assert.ok(!broker.stderr().includes('s3cret') && !broker.stdout().includes('s3cret'), 'the password is never printed');
  });

  it('fails the start at once on a malformed REDIS_URL', async () => {
    const broker = spawnBroker({ REDIS_URL: 'localhost:6379' });
    await assert.rejects(broker.ready);
    assert.notEqual((await broker.exited).code, 0);
    assert.match(broker.stderr().trim(), /^spicy-action: REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL/);
  });

  it('answers /health 503 while it waits for Redis, and starts once Redis comes up within REDIS_CONNECT_TIMEOUT', async () => {
    const redis = await RedisServer.prepare();
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const broker = spawnBroker({ REDIS_URL: redis.url, REDIS_CONNECT_TIMEOUT: '15s', PORT: String(port) });
    // A load balancer sees a broker that is starting (once the process listens), and nothing else is served yet.
    const starting = await until('the broker listens while it waits for Redis', () => request(`${base}/health`).catch(() => undefined));
    assert.equal(broker.child.exitCode, null, 'still trying');
    assert.equal(starting.status, 503);
    assert.equal(starting.body.ok, false);
    assert.equal(starting.body.phase, 'starting');
    assert.equal(starting.body.redis, 'down');
    assert.deepEqual((await notify(base, 'report_ops', { error: 'early' })).body, { ok: false, error: 'starting' });

    await redis.start();
    assert.equal(await broker.ready, base);
    const ready = await request(`${base}/health`);
    assert.equal(ready.status, 200);
    assert.equal(ready.body.redis, 'up');
    const client = await open('v4', base);
    assert.deepEqual(await client.ack('register', { event: 'late', default_room: 'calls' }), { ok: true, event: 'late', bus: 'calls' });
  });
});
