/**
 * Several brokers (docs/protocol.md#several-brokers): several brokers on one Redis behave as one broker. Events of
 * every kind reach their subscribers on every node once, routes registered
 * anywhere apply everywhere (also on nodes started later), and a 4.x client
 * that drops recovers what it missed on another node.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { notify, spawnBroker, startBroker } from './helpers/broker.ts';
import { clientsClosedAfter, connect, flush, withTimeout, type Generation, type TestClient } from './helpers/clients.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';
import { until } from './helpers/wait.ts';

const ENTITY = 'endpoint:alice@example.net';
const TRACE = 'trace:r0.42';

describe('cluster on Redis', { skip: redisMissing() }, async () => {
  // Started here (not in a hook) so that the helpers' `after` closes them when the file ends.
  const redis = await RedisServer.start();
  const spawned = spawnBroker({ REDIS_URL: redis.url });
  const [a, b, cUrl] = await Promise.all([startBroker({ redisUrl: redis.url }), startBroker({ redisUrl: redis.url }), spawned.ready]);
  const open = clientsClosedAfter();

  it('starts every node with the link to Redis up', () => {
    assert.equal(a.cluster.state, 'up');
    assert.equal(b.cluster.state, 'up');
  });

  it('delivers routed, _in, /_notify, ping, shout and notify_users events to every node, once per socket', async () => {
    const urls = [a.url, b.url, cUrl];
    const generations: Generation[] = ['v1', 'v2', 'v4'];
    // On each node, one client of each generation; on each node one of them follows entity rooms only.
    const subscribers: TestClient[] = [];
    const entityOnly = new Set<TestClient>();
    for (const [n, url] of urls.entries()) {
      for (const [g, generation] of generations.entries()) {
        const client = await open(generation, url);
        const rooms = [ENTITY, TRACE];
        if (g === n) entityOnly.add(client);
        else rooms.push('calls', 'internal', 'support', 'everyone', 'dial_calls');
        for (const room of rooms) assert.equal(await client.ack('join', room), true);
        subscribers.push(client);
      }
    }
    const onBuses = subscribers.filter((c) => !entityOnly.has(c));
    const publisherA = await open('v4', a.url);
    const publisherB = await open('v2', b.url);
    const publisherC = await open('v1', cUrl);

    // A routed event on node A: its bus and its `_in` room; entity-only clients get it through `_in`.
    const call = { state: 'end', call: 'c-1', _in: [ENTITY, 'number:33123456789'] };
    publisherA.emit('call', call);
    // `_in` as a string (the trace collector's habit), on node C.
    publisherC.emit('trace_started', { host: 'sbc1', _in: TRACE });
    // OpenSIPS pushing to node B.
    assert.deepEqual((await notify(b.url, 'report_ops', { error: 'registrant_failure', endpoint: 'alice@example.net' })).body, { ok: true });
    // Control events fanning out: ping (4.x only can emit it), shout, notify_users.
    publisherA.emit('ping', { from: 'a' });
    publisherC.emit('shout', { note: 'hello admins' });
    publisherB.emit('notify_users', { msg: 'maintenance' });

    for (const client of subscribers) {
      await client.receive('call', 1);
      await client.receive('trace_started', 1);
      await client.receive('report_ops', 1);
    }
    for (const client of onBuses) {
      await client.receive('shouted', 1);
      await client.receive('notify', 1);
      if (client.generation === 'v4') await client.receive('ping', 1);
    }
    await flush(publisherA, subscribers);
    await flush(publisherB, subscribers);
    await flush(publisherC, subscribers);

    for (const client of subscribers) {
      const where = `${client.generation} on node ${Math.floor(subscribers.indexOf(client) / 3)}`;
      assert.deepEqual(client.payloads('call'), [call], `call once, payload first, to ${where}`);
      assert.deepEqual(client.payloads('trace_started'), [{ host: 'sbc1', _in: TRACE }], `trace_started to ${where}`);
      assert.deepEqual(client.payloads('report_ops'), [{ error: 'registrant_failure', endpoint: 'alice@example.net' }], `report_ops to ${where}`);
      const bus = onBuses.includes(client);
      assert.deepEqual(client.payloads('shouted'), bus ? [{ id: publisherC.welcome.publicId, data: { note: 'hello admins' } }] : [], `shouted to ${where}`);
      assert.deepEqual(client.payloads('notify'), bus ? [{ msg: 'maintenance' }] : [], `notify to ${where}`);
      if (client.generation === 'v4') assert.deepEqual(client.payloads('ping'), bus ? [{ from: 'a' }] : [], `ping to ${where}`);
    }
  });

  it('applies a register made on one node on every node, and on a node started later', async () => {
    const registrar = await open('v1', a.url);
    const onB = await open('v2', b.url);
    const onC = await open('v4', cUrl);
    const listenerA = await open('v4', a.url);
    assert.equal(await listenerA.ack('join', 'calls'), true);

    assert.deepEqual(await registrar.ack('register', { event: 'queuer', default_room: 'calls' }), { ok: true, event: 'queuer', bus: 'calls' });
    const started = Date.now();
    // Node B and node C (another process) route `queuer` as soon as the change reaches them.
    for (const client of [onB, onC]) {
      await until(`${client.generation} sees the route`, async () => (await client.ack<{ ok: boolean }>('queuer', { n: 1 })).ok, 5_000);
    }
    const propagation = Date.now() - started;
    await listenerA.receive('queuer', 2);
    assert.ok(propagation < 5_000);

    // A node started afterwards has the route before its first client connects.
    const d = await startBroker({ redisUrl: redis.url });
    assert.equal(d.broker.routes.get('queuer'), 'calls');
    const onD = await open('v4', d.url);
    assert.deepEqual(await onD.ack('queuer', { n: 3 }), { ok: true, rooms: 1 });
    await listenerA.receive('queuer', 3);

    // A change made on the late node reaches the others (a null route: `_in` only).
    assert.deepEqual(await onD.ack('register', { event: 'queuer', default_room: null }), { ok: true, event: 'queuer', bus: null });
    await until('null route on A and B', () => a.broker.routes.get('queuer') === null && b.broker.routes.get('queuer') === null, 5_000);
    await flush(onD, [listenerA]);
    const before = listenerA.count('queuer');
    onB.emit('queuer', { n: 4 });
    await flush(onB, [listenerA]);
    assert.equal(listenerA.count('queuer'), before, 'a null route no longer reaches the bus');
  });

  it('ends with the same route on every node when nodes change one event at once', async () => {
    const onA = await open('v4', a.url);
    const onB = await open('v4', b.url);
    const answers: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      answers.push(onA.ack('register', { event: 'race', default_room: i % 2 ? 'calls' : 'support' }));
      answers.push(onB.ack('register', { event: 'race', default_room: i % 2 ? 'internal' : null }));
    }
    await Promise.all(answers);
    const late = await startBroker({ redisUrl: redis.url });
    await until(
      'every node on the same route',
      () => a.broker.routes.get('race') === b.broker.routes.get('race') && b.broker.routes.get('race') === late.broker.routes.get('race'),
      5_000,
    );
    // And it stays so: nothing still in flight changes one node and not another.
    await flush(onA, [onB]);
    await flush(onB, [onA]);
    assert.equal(a.broker.routes.get('race'), b.broker.routes.get('race'));
    assert.equal(a.broker.routes.get('race'), late.broker.routes.get('race'));
  });

  it('does not flip a route back and forth on its own node when its changes come back from Redis', async () => {
    const onA = await open('v4', a.url);
    const onB = await open('v4', b.url);
    const seen: (string | null)[] = [];
    const stop = a.broker.routes.onChange(({ event, bus }) => event === 'flip' && seen.push(bus));
    try {
      for (const bus of ['support', 'calls', 'support']) onA.emit('register', { event: 'flip', default_room: bus });
      await onA.ack('register', { event: 'flip', default_room: 'internal' });
      // Once node B has the last change, anything B writes now comes after all of A's changes in the log:
      // when node A sees it, A has read its own changes back.
      await until('node B has the last change', () => b.broker.routes.get('flip') === 'internal', 5_000);
      assert.deepEqual(await onB.ack('register', { event: 'flip-marker', default_room: null }), { ok: true, event: 'flip-marker', bus: null });
      await until('node A read the log past its own changes', () => a.broker.routes.get('flip-marker') === null, 5_000);
      assert.deepEqual(seen, ['support', 'calls', 'support', 'internal'], 'only the changes its clients made');
      assert.equal(a.broker.routes.get('flip'), 'internal');
    } finally {
      stop();
    }
  });

  it('recovers a dropped 4.x client on another node with the 1,000 events it missed, in order', async () => {
    const dropped = await connect('v4', a.url, { transports: ['websocket'], reconnection: false });
    open.keep(dropped);
    assert.equal(await dropped.ack('join', 'calls'), true);
    const publisher = await open('v4', cUrl);
    const witness = await open('v4', b.url);
    assert.equal(await witness.ack('join', 'calls'), true);
    publisher.emit('call', { seq: -1 });
    await dropped.receive('call', 1);
    await witness.receive('call', 1);

    // The connection drops (not a client's own disconnect): node A keeps the session for the recovery window.
    const manager = dropped.raw.io as { engine: { close(): void }; uri: string };
    const gone = new Promise((resolve) => dropped.raw.on('disconnect', resolve));
    manager.engine.close();
    await gone;
    for (let seq = 0; seq < 1_000; seq++) publisher.emit('call', { seq });
    await witness.receive('call', 1_001, 30_000);

    // It comes back through the load balancer, to node B.
    manager.uri = b.url;
    const welcomed = dropped.next('welcome', 10_000);
    (dropped.raw as unknown as { connect(): void }).connect();
    await welcomed;
    assert.equal(dropped.raw.recovered, true, 'socket.recovered');
    const seqs = (dropped.payloads('call') as { seq: number }[]).map((p) => p.seq);
    assert.deepEqual(seqs, Array.from({ length: 1_001 }, (_, i) => i - 1), 'every missed event, once, in order');
    // Its rooms came back too: it still gets `calls`.
    publisher.emit('call', { seq: 1_000 });
    await withTimeout(dropped.receive('call', 1_002), 'an event after recovery');
  });

  it('lets a 4.x client of a node that shuts down recover on another node', async () => {
    const leaving = await startBroker({ redisUrl: redis.url });
    const client = await connect('v4', leaving.url, { transports: ['websocket'], reconnection: false });
    open.keep(client);
    assert.equal(await client.ack('join', 'support'), true);
    const publisher = await open('v4', b.url);
    publisher.emit('report_ops', { n: 0 });
    await client.receive('report_ops', 1);

    const gone = new Promise((resolve) => client.raw.on('disconnect', resolve));
    await leaving.close(); // a rolling restart: SIGTERM on this node
    await gone;
    for (let n = 1; n <= 10; n++) publisher.emit('report_ops', { n });
    await flush(publisher, [publisher]);

    (client.raw.io as { uri: string }).uri = a.url;
    const welcomed = client.next('welcome');
    (client.raw as unknown as { connect(): void }).connect();
    await welcomed;
    assert.equal(client.raw.recovered, true);
    assert.deepEqual((client.payloads('report_ops') as { n: number }[]).map((p) => p.n), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});
