/**
 * One route table (docs/cluster.md#running-several-brokers): a node that falls behind the route
 * change log while it is trimmed (`MAXLEN ~10000`) reloads the whole table from Redis, so that
 * its table is Redis's again. A real redis-server, a broker in this process making the changes,
 * and one in its own process held with SIGSTOP while they are made.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { REDIS_PREFIX } from '../../src/cluster/cluster.ts';
import { request, spawnBroker, startBroker } from '../helpers/broker.ts';
import { RedisServer } from '../helpers/redis.ts';
import { until } from '../helpers/wait.ts';

/** More changes than the log keeps. */
const CHANGES = 12_000;

describe('a node behind the route log', () => {
  it('reloads the table from Redis when the log was trimmed past what it had read', async () => {
    const redis = await RedisServer.start();
    const inspector = new Redis(redis.url);
    try {
      const a = await startBroker({ redisUrl: redis.url });
      const b = spawnBroker({ REDIS_URL: redis.url });
      const bUrl = await b.ready;
      const routesOf = async (url: string): Promise<Map<string, unknown>> => {
        const listed = (await request(`${url}/routes`)).body as { routes: { event: string; bus: unknown }[] };
        return new Map(listed.routes.map((r) => [r.event, r.bus]));
      };
      a.broker.routes.register({ event: 'before', default_room: 'calls' });
      await until('node B has the first route', async () => (await routesOf(bUrl)).get('before') === 'calls');

      b.child.kill('SIGSTOP');
      try {
        for (let i = 1; i <= 5; i++) a.broker.routes.register({ event: `gap-${i}`, default_room: 'support' });
        a.broker.routes.register({ event: 'report_dev', default_room: 'internal' });
        for (let i = 0; i < CHANGES; i++) a.broker.routes.register({ event: 'flip', default_room: i % 2 === 0 ? 'calls' : 'support' });
        a.broker.routes.remove('before');
        const log = `${REDIS_PREFIX}:routes:log`;
        await until('the log is trimmed past the gap routes', async () => {
          const info = (await inspector.xinfo('STREAM', log)) as unknown[];
          const first = (info[info.indexOf('first-entry') + 1] as [string, string[]] | null)?.[1];
          return (await inspector.xlen(log)) >= 10_000 && first !== undefined && !first.includes('gap-1') && (await inspector.hget(`${REDIS_PREFIX}:routes`, 'flip')) === '"support"';
        }, 30_000);
      } finally {
        b.child.kill('SIGCONT');
      }

      const expected = await routesOf(a.url);
      assert.equal(expected.get('flip'), 'support');
      assert.equal(expected.has('before'), false);
      await until('node B has the table of node A and of Redis', async () => {
        const onB = await routesOf(bUrl);
        return [...expected].every(([event, bus]) => onB.get(event) === bus) && onB.size === expected.size;
      }, 30_000);
      assert.match(b.stderr(), /the route log was trimmed past what this node had read; the route table was reloaded from Redis/);
      b.child.kill('SIGTERM');
      await b.exited;
    } finally {
      inspector.disconnect();
    }
  });
});
