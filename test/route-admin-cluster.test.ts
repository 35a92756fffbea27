/**
 * Route administration across a cluster (docs/protocol.md#routes): a route
 * removed on one node is removed on every node and in Redis, so that a node
 * started afterwards does not load it; stamps (when, which node) are the same
 * everywhere. A real redis-server, a broker in this process and one in its
 * own process (so the two have different names).
 */
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { REDIS_PREFIX } from '../src/cluster/cluster.ts';
import { listedRoute, request, spawnBroker, startBroker } from './helpers/broker.ts';
import { closeAll, connect, type TestClient } from './helpers/clients.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';
import { until } from './helpers/wait.ts';



const remove = (url: string, event: string): ReturnType<typeof request> =>
  request(`${url}/routes/${encodeURIComponent(event)}`, { method: 'DELETE' });

describe('route administration on a cluster', { skip: redisMissing() }, async () => {
  const redis = await RedisServer.start();
  const spawned = spawnBroker({ REDIS_URL: redis.url });
  const [a, bUrl] = await Promise.all([startBroker({ redisUrl: redis.url }), spawned.ready]);
  const nodeA = `${hostname()}:${process.pid}`;
  const nodeB = `${hostname()}:${spawned.child.pid}`;
  const inspector = new Redis(redis.url);
  const clients: TestClient[] = [];
  after(() => {
    closeAll(clients);
    inspector.disconnect();
  });
  const open = async (url: string): Promise<TestClient> => {
    const client = await connect('v4', url, { transports: ['websocket'] });
    clients.push(client);
    return client;
  };
  /**
   * A node started now. It is closed when its test ends, so wait until its adapter has
   * subscribed: the Streams adapter does not handle the promise of its SUBSCRIBE, which a close
   * before Redis answered turns into an unhandled rejection (a fault of the cluster's shutdown,
   * not of what is tested here).
   */
  const startLate = async (): Promise<Awaited<ReturnType<typeof startBroker>>> => {
    const channel = `${REDIS_PREFIX}#/#`;
    const subscribers = async (): Promise<number> => Number(((await inspector.pubsub('NUMSUB', channel)) as [string, number])[1]);
    const before = await subscribers();
    const late = await startBroker({ redisUrl: redis.url });
    await until('the late node subscribed', async () => (await subscribers()) > before, 5_000);
    return late;
  };
  const HASH = `${REDIS_PREFIX}:routes`;
  const META = `${REDIS_PREFIX}:routes:meta`;

  it('removes on every node and in Redis a route deleted on one node; a node started afterwards does not load it', async () => {
    const onA = await open(a.url);
    const onB = await open(bUrl);
    assert.deepEqual(await onA.ack('register', { event: 'mistake', default_room: 'calls' }), { ok: true, event: 'mistake', bus: 'calls' });
    // Node B lists it with node A's name and the time node A set it.
    const onNodeA = await listedRoute(a.url, 'mistake');
    const onNodeB = await until('node B lists the route', () => listedRoute(bUrl, 'mistake'), 5_000);
    assert.equal(onNodeA?.set_on, nodeA);
    assert.deepEqual(onNodeB, onNodeA, 'the same listing, stamp included, on both nodes');
    assert.equal(await inspector.hget(HASH, 'mistake'), '"calls"');
    assert.deepEqual(JSON.parse((await inspector.hget(META, 'mistake')) ?? 'null'), { at: Date.parse(onNodeA!.set_at!), node: nodeA, by: 'anonymous' });

    const answer = await remove(a.url, 'mistake');
    assert.deepEqual([answer.status, answer.body], [200, { ok: true, event: 'mistake' }]);
    await until('node B no longer routes it', async () => (await onB.ack<{ ok: boolean }>('mistake', {})).ok === false, 5_000);
    assert.deepEqual(await onB.ack('mistake', {}), { ok: false, error: 'no route for "mistake"' });
    assert.equal(await listedRoute(bUrl, 'mistake'), undefined);
    assert.equal(await inspector.hexists(HASH, 'mistake'), 0, 'gone from the route hash');
    assert.equal(await inspector.hexists(META, 'mistake'), 0, 'gone from the stamps');
    const [[, fields] = ['', []]] = (await inspector.xrevrange(`${HASH}:log`, '+', '-', 'COUNT', 1)) as [string, string[]][];
    const entry = Object.fromEntries(fields.flatMap((_, i) => (i % 2 ? [] : [[fields[i], fields[i + 1]]])));
    assert.equal(entry.event, 'mistake');
    assert.equal(entry.removed, '1');
    assert.equal(entry.name, nodeA);

    const late = await startLate();
    assert.equal(late.broker.routes.get('mistake'), undefined);
    assert.equal(await listedRoute(late.url, 'mistake'), undefined);
    // The other node's answer for a route it no longer has.
    assert.equal((await remove(bUrl, 'mistake')).status, 404);
  });

  it('returns a changed built-in route to its default everywhere, for later nodes too', async () => {
    const onB = await open(bUrl);
    assert.deepEqual(await onB.ack('register', { event: 'report_dev', default_room: 'internal' }), { ok: true, event: 'report_dev', bus: 'internal' });
    const changed = await until('node A has the change', async () => {
      const listing = await listedRoute(a.url, 'report_dev');
      return listing?.bus === 'internal' && listing;
    }, 5_000);
    assert.equal(changed.set_on, nodeB, "node B's name");
    assert.equal(changed.kind, 'built-in');

    // Deleted on node B, the node that changed it.
    assert.deepEqual((await remove(bUrl, 'report_dev')).body, { ok: true, event: 'report_dev', bus: 'support' });
    const builtIn = { event: 'report_dev', bus: 'support', kind: 'built-in', default: 'support' };
    await until('node A back to the default', async () => (await listedRoute(a.url, 'report_dev'))?.bus === 'support', 5_000);
    assert.deepEqual(await listedRoute(a.url, 'report_dev'), builtIn, 'no stamp: as if never changed');
    assert.equal(await inspector.hexists(HASH, 'report_dev'), 0);
    const late = await startLate();
    assert.deepEqual(await listedRoute(late.url, 'report_dev'), builtIn);
  });

  it('gives a node started later the stamps of the routes it loads', async () => {
    const onA = await open(a.url);
    await onA.ack('register', { event: 'kept', default_room: null });
    const original = await listedRoute(a.url, 'kept');
    await until('node B has it', () => listedRoute(bUrl, 'kept'), 5_000);
    const late = await startLate();
    assert.deepEqual(await listedRoute(late.url, 'kept'), original);
    assert.equal(original?.set_on, nodeA);
    // And a removal on the late node reaches the others.
    assert.equal((await remove(late.url, 'kept')).status, 200);
    await until('gone on A and B', async () => a.broker.routes.get('kept') === undefined && (await listedRoute(bUrl, 'kept')) === undefined, 5_000);
  });
});
