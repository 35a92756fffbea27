/**
 * docs/cluster.md#when-redis-fails: exact recovery: 4.x subscribers dropped every half second while
 * a publisher sends 2,000 events a second, coming back alternately on the
 * other node; every session told `recovered: true` has every event once, in
 * order. The long version (over 100 recoveries) is test/faults/long.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startBroker } from '../helpers/broker.ts';
import { RedisServer, redisMissing } from '../helpers/redis.ts';
import { churn } from './churn.ts';

describe('exact recovery under churn', { skip: redisMissing() }, () => {
  it('loses, duplicates and reorders nothing over 20 recoveries across two nodes at 2,000 events/s', async (t) => {
    const redis = await RedisServer.start();
    const settings = { redisUrl: redis.url };
    const nodes = await Promise.all([startBroker(settings), startBroker(settings)]);
    const result = await churn({ nodes: [nodes[0], nodes[1]], redisUrl: redis.url, rate: 2_000, subscribers: 4, dropsEach: 5, dropEveryMs: 500 });
    t.diagnostic(JSON.stringify(result));
    assert.equal(result.recoveries + result.fresh, 20);
    assert.ok(result.recoveries >= 15, `most reconnections recover (${result.recoveries} of 20)`);
    assert.deepEqual({ lost: result.lost, duplicated: result.duplicated, reordered: result.reordered }, { lost: 0, duplicated: 0, reordered: 0 });
  });
});
