/**
 * One route table for the cluster (docs/protocol.md#register): `MAX_ROUTES`
 * caps the cluster's table, checked and written in one atomic step in Redis,
 * so that clients registering on two nodes at once get no more routes
 * accepted than the cap. A real redis-server and two real brokers, one in
 * its own process.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { REDIS_PREFIX } from '../src/cluster/cluster.ts';
import { DEFAULT_ROUTES } from '../src/routes.ts';
import { spawnBroker, startBroker } from './helpers/broker.ts';
import { closeAll, connect, type TestClient } from './helpers/clients.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';
import { until } from './helpers/wait.ts';

/** Routes the cap leaves for registered events. */
const ROOM = 7;
const MAX_ROUTES = DEFAULT_ROUTES.size + ROOM;
/** Events each client registers, on each node: together far past the cap. */
const EACH = 3 * ROOM;

describe('one route table for the cluster', { skip: redisMissing() }, async () => {
  const redis = await RedisServer.start();
  const spawned = spawnBroker({ REDIS_URL: redis.url, MAX_ROUTES: String(MAX_ROUTES) });
  const [a, bUrl] = await Promise.all([startBroker({ redisUrl: redis.url, maxRoutes: MAX_ROUTES }), spawned.ready]);
  const inspector = new Redis(redis.url);
  inspector.on('error', () => {});
  const clients: TestClient[] = [];
  after(() => {
    closeAll(clients);
    inspector.disconnect();
  });

  it('caps the routes registered on two nodes at once at MAX_ROUTES once, not once per node', async () => {
    const [onA, onB] = await Promise.all([connect('v4', a.url, { transports: ['websocket'] }), connect('v4', bUrl, { transports: ['websocket'] })]);
    clients.push(onA, onB);
    const register = (client: TestClient, prefix: string): Promise<{ ok: boolean; error?: string }[]> =>
      Promise.all(Array.from({ length: EACH }, (_, i) => client.ack<{ ok: boolean; error?: string }>('register', { event: `${prefix}_${i}`, default_room: 'calls' })));
    const [fromA, fromB] = await Promise.all([register(onA, 'from_a'), register(onB, 'from_b')]);
    const accepted = [...fromA, ...fromB].filter((answer) => answer.ok).length;
    assert.equal(accepted, ROOM, 'as many accepted as the cap leaves room for, across both nodes');
    for (const refused of [...fromA, ...fromB].filter((answer) => !answer.ok)) assert.match(refused.error ?? '', /full/);
    assert.equal(await inspector.hlen(`${REDIS_PREFIX}:routes`), ROOM, 'Redis holds no more');
    await until('both tables hold the cap', () => a.broker.routes.size === MAX_ROUTES, 10_000);
    // A route already there may still change, at the cap.
    const registered = (await inspector.hkeys(`${REDIS_PREFIX}:routes`))[0] as string;
    assert.deepEqual(await onB.ack('register', { event: registered, default_room: 'support' }), { ok: true, event: registered, bus: 'support' });
  });
});
