/**
 * docs/cluster.md#when-redis-fails: Redis failing in the ways a closed connection does not
 * show: a Redis that stops answering (SIGSTOP: a hung process, or a
 * partition), a Redis that answers but refuses writes (maxmemory with
 * noeviction), and a node stopping while its events are held for Redis.
 */
import assert from 'node:assert/strict';
import { createServer, connect as tcpConnect, type Socket as TcpSocket } from 'node:net';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { notify, request, spawnBroker, startBroker } from '../helpers/broker.ts';
import { clientsClosedAfter, connect, flush, type TestClient } from '../helpers/clients.ts';
import { parseMetrics } from '../helpers/metrics.ts';
import { freePort, RedisServer, redisMissing } from '../helpers/redis.ts';
import { StartError, type RunningBroker } from '../../src/server.ts';
import type { Settings } from '../../src/settings.ts';
import { MAX_CONCURRENT_RESTORES } from '../../src/cluster/recovery.ts';
import { captureLog } from '../helpers/logs.ts';
import { sleep, until, watched } from '../helpers/wait.ts';


/** A Redis the test can freeze (SIGSTOP), thaw (SIGCONT) and configure, beside the helper's process control. */
async function control(redis: RedisServer): Promise<{ admin: Redis; freeze(): void; thaw(): void }> {
  const admin = new Redis(redis.url, { maxRetriesPerRequest: null, lazyConnect: true });
  admin.on('error', () => {});
  await admin.connect();
  const info = await admin.info('server');
  const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
  assert.ok(pid > 0, 'redis-server pid from INFO');
  let frozen = false;
  const thaw = (): void => {
    if (!frozen) return;
    frozen = false;
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // already gone
    }
  };
  // A frozen Redis would hold up the helper's SIGTERM at the end of the file.
  after(() => {
    thaw();
    admin.disconnect();
  });
  return {
    admin,
    freeze() {
      frozen = true;
      process.kill(pid, 'SIGSTOP');
    },
    thaw,
  };
}


/**
 * A TCP relay to `port` that passes everything, until a client sends `trigger`
 * (as RESP: `$<n>\r\n<trigger>`): from then on, Redis's replies on that
 * connection are no longer passed on (a partition right after it), while
 * other connections go on. Resolves with the relay's port.
 */
async function stallingRelay(port: number, trigger: string): Promise<{ port: number; stalled: () => boolean }> {
  let stalled = false;
  const sockets: TcpSocket[] = [];
  const server = createServer((client) => {
    const upstream = tcpConnect(port, '127.0.0.1');
    sockets.push(client, upstream);
    let cut = false;
    client.on('data', (chunk) => {
      if (chunk.toString('latin1').toLowerCase().includes(`\r\n${trigger.toLowerCase()}\r\n`)) cut = stalled = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!cut) client.write(chunk);
    });
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, stalled: () => stalled };
}

const seqs = (r: TestClient, event = 'call'): number[] => (r.payloads(event) as { seq: number }[]).map((p) => p.seq);
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('Redis faults a closed connection does not show', { skip: redisMissing() }, async () => {
  const open = clientsClosedAfter();

  /** Two nodes, a subscriber to `calls` on each and a publisher on A, whose first event (seq 0) reached both. */
  async function twoNodes(settings: Partial<Settings>): Promise<{ a: RunningBroker; b: RunningBroker; local: TestClient; remote: TestClient; publisher: TestClient }> {
    const [a, b] = await Promise.all([startBroker(settings), startBroker(settings)]);
    const local = await open('v4', a.url);
    const remote = await open('v4', b.url);
    for (const r of [local, remote]) assert.equal(await r.ack('join', 'calls'), true);
    const publisher = await open('v4', a.url);
    assert.deepEqual(await publisher.ack('call', { seq: 0 }), { ok: true, rooms: 1 });
    await remote.receive('call', 1);
    return { a, b, local, remote, publisher };
  }

  it('sees a Redis that stops answering (SIGSTOP) as down within REDIS_TIMEOUT, holds events, and delivers them in order on SIGCONT', async (t) => {
    const logged = captureLog(t);
    const redis = await RedisServer.start();
    const { freeze, thaw } = await control(redis);
    const settings = { redisUrl: redis.url, redisTimeoutMs: 1_000, redisOutageGraceMs: 30_000 };
    const [a, b] = await Promise.all([startBroker(settings), startBroker(settings)]);
    const receivers = [await open('v4', a.url), await open('v2', a.url), await open('v4', b.url), await open('v1', b.url)];
    for (const r of receivers) assert.equal(await r.ack('join', 'calls'), true);
    const publisher = await open('v4', a.url);
    publisher.emit('call', { seq: 0 });
    for (const r of receivers) await r.receive('call', 1);
    assert.deepEqual(await publisher.ack('register', { event: 'kept', default_room: 'support' }), { ok: true, event: 'kept', bus: 'support' });
    await until('node B has the route', () => b.broker.routes.get('kept') === 'support', 20_000);

    freeze();
    const frozenAt = Date.now();
    // Events published while Redis hangs, before the node has noticed: in flight, answered on SIGCONT.
    for (let seq = 1; seq <= 5; seq++) publisher.emit('call', { seq });
    await until('both nodes see the hung Redis as down', () => a.cluster.state === 'down' && b.cluster.state === 'down', 20_000);
    const detection = Date.now() - frozenAt;
    // What an operator sees.
    const health = await request(`${a.url}/health`);
    assert.equal(health.status, 200, 'the broker still serves');
    assert.equal(health.body.redis, 'down');
    const metrics = parseMetrics((await request(`${a.url}/metrics`)).body as string);
    assert.equal(metrics.value('spicy_action_redis_state', { state: 'down' }), 1);
    // Within the grace: held. An acknowledgement waits for its event's fate; a push is told at once that it is held.
    const acks = range(6, 11).map((seq) => watched(publisher.ack('call', { seq })));
    const pushed = await notify(a.url, 'call', { seq: 11 });
    assert.deepEqual([pushed.status, pushed.body], [202, { ok: true, held: true }]);
    // So with route changes: a register waits for its write; a removal over HTTP is told it is held.
    const registered = watched(publisher.ack('register', { event: 'added', default_room: 'calls' }));
    const removed = await request(`${a.url}/routes/kept`, { method: 'DELETE' });
    assert.deepEqual([removed.status, removed.body], [202, { ok: true, held: true, event: 'kept' }]);
    // New clients are still let in and greeted.
    await open('v4', b.url);
    assert.deepEqual(acks.map((ack) => ack.answer), [undefined, undefined, undefined, undefined, undefined], 'not answered while held');
    assert.equal(registered.answer, undefined, 'the register waits for Redis');

    thaw();
    const frozenFor = Date.now() - frozenAt;
    await until('both nodes see Redis answering again', () => a.cluster.state === 'up' && b.cluster.state === 'up', 20_000);
    // The outage is counted from when Redis last answered, not from when the hang was seen.
    const reported = logged.map((line) => Number(/Redis is up again after ([\d.]+) s/.exec(line)?.[1])).filter((seconds) => seconds > 0);
    assert.equal(reported.length, 2, `each node logged the outage's end: ${logged.join(' | ')}`);
    for (const seconds of reported) assert.ok(seconds * 1000 >= frozenFor - 100, `outage of ${frozenFor} ms reported as ${seconds} s`);
    for (const ack of acks) assert.deepEqual(await ack.outcome, { ok: true, rooms: 1 }, 'written once Redis answered');
    assert.deepEqual(await registered.outcome, { ok: true, event: 'added', bus: 'calls' });
    await until('node B has both route changes', () => b.broker.routes.get('added') === 'calls' && b.broker.routes.get('kept') === undefined, 20_000);
    for (const r of receivers) await r.receive('call', 12);
    await flush(publisher, receivers);
    for (const [i, r] of receivers.entries()) assert.deepEqual(seqs(r), range(0, 12), `receiver ${i} (${r.generation}): every event once, in order`);
    assert.equal(a.cluster.undelivered + b.cluster.undelivered, 0, 'nothing missed the cluster within the grace');
    t.diagnostic(`SIGSTOP seen as down after ${detection} ms (REDIS_TIMEOUT 1 s)`);
    assert.ok(detection < 10_000, `detected in ${detection} ms`);
  });

  it('serves only local clients past the grace while Redis hangs, counting each event, and carries on when it answers', async () => {
    const redis = await RedisServer.start();
    const { freeze, thaw } = await control(redis);
    const settings = { redisUrl: redis.url, redisTimeoutMs: 500, redisOutageGraceMs: 1_000 };
    const [c, d] = await Promise.all([startBroker(settings), startBroker(settings)]);
    const local = await open('v4', c.url);
    const remote = await open('v4', d.url);
    for (const r of [local, remote]) assert.equal(await r.ack('join', 'calls'), true);
    const publisher = await open('v4', c.url);

    freeze();
    await until('node C sees Redis down', () => c.cluster.state === 'down', 20_000);
    publisher.emit('call', { seq: 0 });
    await until('the grace runs out and the held event is counted', () => c.cluster.undelivered === 1, 20_000);
    await local.receive('call', 1);
    // Past the grace, the sender is told its event reached this node's clients only.
    const answer = await publisher.ack<{ ok: boolean; error?: string }>('call', { seq: 1 });
    assert.equal(answer.ok, false);
    assert.match(answer.error ?? '', /Redis is down/);
    await local.receive('call', 2);
    assert.equal(c.cluster.undelivered, 2);
    const metrics = parseMetrics((await request(`${c.url}/metrics`)).body as string);
    assert.equal(metrics.value('spicy_action_cluster_undelivered_events_total'), 2);

    thaw();
    await until('Redis answering again on both nodes', () => c.cluster.state === 'up' && d.cluster.state === 'up', 20_000);
    assert.deepEqual(await publisher.ack('call', { seq: 2 }), { ok: true, rooms: 1 });
    await remote.receive('call', 1);
    await flush(publisher, [local, remote]);
    assert.deepEqual(seqs(local), [0, 1, 2]);
    assert.deepEqual(seqs(remote), [2], 'the other node never got what missed the cluster');
  });

  it('tells the senders of events held for a hung Redis {ok: false} when Redis, answering again, refuses them (model seed 41312671)', async () => {
    const redis = await RedisServer.start();
    const { admin, freeze, thaw } = await control(redis);
    const settings = { redisUrl: redis.url, redisTimeoutMs: 500, redisOutageGraceMs: 60_000 };
    const { a, b, local, remote, publisher } = await twoNodes(settings);

    // Redis will refuse every write once it answers again: the model checker saw this as a hang seen
    // on a starved CPU during an episode of maxmemory refusals.
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
    freeze();
    await until('node A sees Redis down', () => a.cluster.state === 'down', 20_000);
    const acks = range(1, 4).map((seq) => watched(publisher.ack<{ ok: boolean; error?: string }>('call', { seq })));
    const pushed = await notify(a.url, 'call', { seq: 4 });
    assert.deepEqual([pushed.status, pushed.body], [202, { ok: true, held: true }], 'a push is told it is held, no more');
    await sleep(300);
    assert.deepEqual(acks.map((ack) => ack.answer), [undefined, undefined, undefined], 'held: not answered yet');

    thaw();
    for (const [i, ack] of acks.entries()) {
      const answer = await ack.outcome;
      assert.equal(answer.ok, false, `event ${i + 1}: Redis refused it, so the sender must not hear ok`);
      assert.match(answer.error ?? '', /Redis refused the event \(OOM/);
    }
    // They reached this node's clients, in order, and no other node; each counted.
    await local.receive('call', 5);
    await until('the 4 held events counted as undelivered', () => a.cluster.undelivered === 4, 20_000);
    await admin.config('SET', 'maxmemory', '0');
    await until('node A sees Redis take writes again', () => a.cluster.state === 'up', 20_000);
    assert.deepEqual(await publisher.ack('call', { seq: 5 }), { ok: true, rooms: 1 });
    await remote.receive('call', 2);
    await flush(publisher, [local, remote]);
    assert.deepEqual(seqs(local), range(0, 6));
    assert.deepEqual(seqs(remote), [0, 5]);
  });

  it('counts every write Redis refuses (maxmemory, noeviction), says degraded, answers {ok:false} to sockets and /_notify, delivers locally, and recovers', async (t) => {
    const logged = captureLog(t);
    const redis = await RedisServer.start();
    const { admin } = await control(redis);
    const settings = { redisUrl: redis.url, redisTimeoutMs: 500 };
    const { a, b, local, remote, publisher } = await twoNodes(settings);

    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
    const REFUSED = 5;
    for (let seq = 1; seq <= REFUSED; seq++) {
      const answer = await publisher.ack<{ ok: boolean; error?: string }>('call', { seq });
      assert.equal(answer.ok, false, `event ${seq} refused`);
      assert.match(answer.error ?? '', /OOM/);
    }
    // A push through /_notify is answered the same way, once Redis has refused it.
    const pushed = await notify(a.url, 'call', { seq: REFUSED + 1 });
    assert.equal(pushed.status, 200);
    assert.equal(pushed.body.ok, false);
    assert.match(String(pushed.body.error), /OOM/);
    // Delivered to this node's clients, not to the other node.
    await local.receive('call', 2 + REFUSED);
    assert.equal(a.cluster.state, 'degraded');
    const health = await request(`${a.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.body.redis, 'degraded');
    const metrics = parseMetrics((await request(`${a.url}/metrics`)).body as string);
    assert.ok(metrics.value('spicy_action_cluster_refused_writes_total', { reason: 'oom' }) >= REFUSED);
    assert.equal(metrics.value('spicy_action_cluster_undelivered_events_total'), REFUSED + 1);
    assert.equal(metrics.value('spicy_action_redis_state', { state: 'degraded' }), 1);

    await admin.config('SET', 'maxmemory', '0');
    await until('node A sees Redis take writes again (its probe)', () => a.cluster.state === 'up', 20_000);
    assert.deepEqual(await publisher.ack('call', { seq: 7 }), { ok: true, rooms: 1 });
    assert.deepEqual((await notify(a.url, 'call', { seq: 8 })).body, { ok: true });
    await remote.receive('call', 3);
    await flush(publisher, [local, remote]);
    assert.deepEqual(seqs(local), range(0, 9));
    assert.deepEqual(seqs(remote), [0, 7, 8]);
    assert.equal(a.cluster.undelivered, REFUSED + 1);

    const starts = logged.filter((line) => line.includes('Redis refuses writes'));
    const ends = logged.filter((line) => line.includes('Redis takes writes again after'));
    assert.ok(starts.length >= 1 && starts.length <= 2, `once per node that saw it:\n${logged.join('\n')}`);
    assert.equal(starts.filter((line) => line.includes('oom')).length, starts.length);
    assert.equal(ends.length, starts.length, `each episode's end is told once:\n${logged.join('\n')}`);
    assert.ok(logged.length < 20, `a few lines per episode, not one per write:\n${logged.join('\n')}`);
  });

  it('treats a Redis turned read-only replica (READONLY) the same way, and recovers when it is a master again', async () => {
    const redis = await RedisServer.start();
    const { admin } = await control(redis);
    const node = await startBroker({ redisUrl: redis.url, redisTimeoutMs: 500 });
    const subscriber = await open('v4', node.url);
    assert.equal(await subscriber.ack('join', 'calls'), true);
    const publisher = await open('v4', node.url);
    // A replica of a master that is not there: it keeps its data and answers reads, and refuses writes.
    const nowhere = await freePort();
    await admin.call('REPLICAOF', '127.0.0.1', String(nowhere));
    const answer = await publisher.ack<{ ok: boolean; error?: string }>('call', { seq: 0 });
    assert.equal(answer.ok, false);
    assert.match(answer.error ?? '', /READONLY/);
    await subscriber.receive('call', 1);
    assert.equal((await request(`${node.url}/health`)).body.redis, 'degraded');
    const metrics = parseMetrics((await request(`${node.url}/metrics`)).body as string);
    assert.ok(metrics.value('spicy_action_cluster_refused_writes_total', { reason: 'readonly' }) >= 1);
    await admin.call('REPLICAOF', 'NO', 'ONE');
    await until('the node sees Redis take writes again', () => node.cluster.state === 'up', 20_000);
    assert.deepEqual(await publisher.ack('call', { seq: 1 }), { ok: true, rooms: 1 });
    await subscriber.receive('call', 2);
    assert.equal(node.cluster.undelivered, 1);
  });

  it('undoes a route change or removal Redis refuses and answers register {ok:false} and DELETE 503, so that no node keeps a route the others lack', async () => {
    const redis = await RedisServer.start();
    const { admin } = await control(redis);
    const settings = { redisUrl: redis.url, redisTimeoutMs: 500 };
    const [a, b] = await Promise.all([startBroker(settings), startBroker(settings)]);
    const registrar = await open('v4', a.url);
    assert.deepEqual(await registrar.ack('register', { event: 'kept', default_room: 'support' }), { ok: true, event: 'kept', bus: 'support' });
    await until('node B has the first route', () => b.broker.routes.get('kept') === 'support', 20_000);

    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
    const refusedNew = await registrar.ack<{ ok: boolean; error?: string }>('register', { event: 'refused-new', default_room: 'calls' });
    assert.equal(refusedNew.ok, false);
    assert.match(refusedNew.error ?? '', /OOM/);
    const refusedChange = await registrar.ack<{ ok: boolean; error?: string }>('register', { event: 'kept', default_room: 'calls' });
    assert.equal(refusedChange.ok, false);
    assert.equal(a.broker.routes.get('refused-new'), undefined, 'a new route Redis refused is removed');
    assert.equal(a.broker.routes.get('kept'), 'support', 'a changed route Redis refused goes back');
    assert.equal(b.broker.routes.get('kept'), 'support');
    assert.deepEqual(await registrar.ack('refused-new', {}), { ok: false, error: 'no route for "refused-new"' });
    const refusedRemoval = await request(`${a.url}/routes/kept`, { method: 'DELETE' });
    assert.equal(refusedRemoval.status, 503, 'answered once Redis refused it, not before');
    assert.equal(refusedRemoval.body.ok, false);
    assert.match(String(refusedRemoval.body.error), /OOM/);
    assert.equal(a.broker.routes.get('kept'), 'support', 'a removal Redis refused is undone');
    assert.equal(b.broker.routes.get('kept'), 'support');
    const metrics = parseMetrics((await request(`${a.url}/metrics`)).body as string);
    assert.ok(metrics.value('spicy_action_cluster_refused_writes_total', { reason: 'oom' }) >= 2);

    await admin.config('SET', 'maxmemory', '0');
    await until('node A sees Redis take writes again', () => a.cluster.state === 'up', 20_000);
    assert.deepEqual(await registrar.ack('register', { event: 'kept', default_room: 'calls' }), { ok: true, event: 'kept', bus: 'calls' });
    await until('node B has the change Redis took', () => b.broker.routes.get('kept') === 'calls', 20_000);
    const removed = await request(`${a.url}/routes/kept`, { method: 'DELETE' });
    assert.deepEqual([removed.status, removed.body], [200, { ok: true, event: 'kept' }]);
    assert.equal(await admin.hexists('spicy-action:routes', 'kept'), 0, 'Redis had taken the removal when it was answered');
    await until('node B has the removal', () => b.broker.routes.get('kept') === undefined, 20_000);
  });

  it('delivers the events it holds for Redis to its own clients when it stops, and counts and logs them', async (t) => {
    const logged = captureLog(t);
    const redis = await RedisServer.start();
    const { freeze, thaw } = await control(redis);
    const node = await startBroker({ redisUrl: redis.url, redisTimeoutMs: 500, redisOutageGraceMs: 60_000 });
    const subscriber = await connect('v4', node.url, { transports: ['websocket'], reconnection: false });
    open.keep(subscriber);
    assert.equal(await subscriber.ack('join', 'calls'), true);
    const publisher = await open('v2', node.url);

    freeze();
    await until('the node sees Redis down', () => node.cluster.state === 'down', 20_000);
    const acks = range(0, 5).map((seq) => watched(publisher.ack('call', { seq })));
    assert.equal(await publisher.ack('join', 'support'), true, 'answered after the 5 events were taken (one connection, in order)');
    assert.equal(subscriber.count('call'), 0, 'held within the grace');

    const gone = new Promise((resolve) => subscriber.raw.on('disconnect', resolve));
    await node.close(); // SIGTERM
    await gone;
    assert.deepEqual(seqs(subscriber), range(0, 5), 'the 5 held events, in order, before the connection closed');
    for (const ack of acks) assert.deepEqual(await ack.outcome, { ok: false, error: "Redis is down: delivered to this node's clients only" }, 'each sender told before its connection closed');
    assert.equal(node.cluster.undelivered, 5);
    thaw();
    assert.equal(logged.filter((line) => line.includes('5 held events delivered to this node')).length, 1, logged.join('\n'));
  });

  it('hands its sessions over on SIGTERM (its 4.x clients recover on another node without loss), not on SIGKILL (they start afresh)', async () => {
    const redis = await RedisServer.start();
    const other = await startBroker({ redisUrl: redis.url });
    const publisher = await open('v4', other.url);
    const outcomes: Record<string, { recovered: boolean; seqs: number[] }> = {};
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const leaving = spawnBroker({ REDIS_URL: redis.url });
      const url = await leaving.ready;
      const client = await connect('v4', url, { transports: ['websocket'], reconnection: false });
      open.keep(client);
      assert.equal(await client.ack('join', 'support'), true);
      const tag = signal;
      assert.deepEqual(await publisher.ack('report_ops', { tag, n: 0 }), { ok: true, rooms: 1 });
      await client.receive('report_ops', 1);
      const gone = new Promise((resolve) => client.raw.on('disconnect', resolve));
      leaving.child.kill(signal);
      await gone;
      await leaving.exited;
      for (let n = 1; n <= 10; n++) assert.deepEqual(await publisher.ack('report_ops', { tag, n }), { ok: true, rooms: 1 });
      (client.raw.io as { uri: string }).uri = other.url;
      const welcomed = client.next('welcome');
      (client.raw as unknown as { connect(): void }).connect();
      await welcomed;
      outcomes[signal] = { recovered: client.raw.recovered === true, seqs: (client.payloads('report_ops') as { n: number }[]).map((p) => p.n) };
    }
    assert.deepEqual(outcomes.SIGTERM, { recovered: true, seqs: range(0, 11) }, 'SIGTERM: saved sessions, every missed event once, in order');
    assert.deepEqual(outcomes.SIGKILL, { recovered: false, seqs: [0] }, 'SIGKILL: no session saved, a fresh one');
  });

  it('fails the start within REDIS_CONNECT_TIMEOUT when Redis stops answering between ready and the route table', { timeout: 30_000 }, async () => {
    const redis = await RedisServer.start();
    const relay = await stallingRelay(redis.port, 'MULTI');
    const started = Date.now();
    await assert.rejects(
      startBroker({ redisUrl: `redis://127.0.0.1:${relay.port}`, redisConnectTimeoutMs: 2_000 }),
      (error: Error) => error instanceof StartError && /timed out loading the route table within 2 s/.test(error.message),
    );
    assert.ok(relay.stalled(), 'the route load was sent, and its answer held back');
    const took = Date.now() - started;
    assert.ok(took < 15_000, `gave up after ${took} ms`);
  });

  it(`gives a fresh session to a client beyond the ${MAX_CONCURRENT_RESTORES} restores a node runs at once`, { timeout: 60_000 }, async () => {
    const redis = await RedisServer.start();
    const { admin, freeze, thaw } = await control(redis);
    // A long REDIS_TIMEOUT: the frozen Redis is not seen as down, so restores wait for it.
    const node = await startBroker({ redisUrl: redis.url, redisTimeoutMs: 60_000 });
    const publisher = await open('v4', node.url);
    const count = MAX_CONCURRENT_RESTORES + 1;
    const subscribers: TestClient[] = [];
    for (let i = 0; i < count; i++) {
      const client = await connect('v4', node.url, { transports: ['websocket'], reconnection: false });
      open.keep(client);
      assert.equal(await client.ack('join', 'calls'), true);
      subscribers.push(client);
    }
    assert.deepEqual(await publisher.ack('call', { seq: 0 }), { ok: true, rooms: 1 });
    for (const s of subscribers) await s.receive('call', 1);
    const pids = subscribers.map((s) => (s.raw as unknown as { _pid: string })._pid);
    const gone = subscribers.map((s) => new Promise((resolve) => s.raw.on('disconnect', resolve)));
    for (const s of subscribers) (s.raw.io as { engine: { close(): void } }).engine.close();
    await Promise.all(gone);
    await until('sessions saved', async () => (await Promise.all(pids.map((p) => admin.exists(`spicy-action:session:${p}`)))).every((n) => n === 1), 20_000);
    assert.deepEqual(await publisher.ack('call', { seq: 1 }), { ok: true, rooms: 1 });

    freeze();
    const connected = (s: TestClient): boolean => s.raw.connected;
    for (const s of subscribers) (s.raw as unknown as { connect(): void }).connect();
    // The restores wait for the frozen Redis; the one past the limit is answered at once, with a fresh session.
    await until('the client past the limit is let in', () => subscribers.some(connected), 20_000);
    thaw();
    await until('every client back', () => subscribers.every(connected), 20_000);
    const fresh = subscribers.filter((s) => !s.raw.recovered);
    assert.equal(fresh.length, 1, 'one fresh session');
    for (const s of subscribers.filter((c) => c.raw.recovered)) {
      await s.receive('call', 2);
      assert.deepEqual(seqs(s), [0, 1]);
    }
    assert.deepEqual(seqs(fresh[0]!), [0], 'the fresh session did not get the missed event');
  });
});
