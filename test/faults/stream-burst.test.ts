/**
 * A real redis-server under `maxmemory` with `noeviction`, as production runs
 * it: a burst of big events to a room nobody is in fills it, every event then
 * reaches only its own node (Redis refuses the XADD, and so the trim inside
 * it), `/health` says the stream is full, and once the burst is older than
 * what the stream keeps, cross-node delivery works again by itself.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { streamKeepMs } from '../../src/cluster/stream-bounds.ts';
import { request, startBroker } from '../helpers/broker.ts';
import { clientsClosedAfter } from '../helpers/clients.ts';
import { RedisServer, redisMissing } from '../helpers/redis.ts';
import { sleep, until } from '../helpers/wait.ts';

/** Bytes of each event of the burst. */
const BIG_EVENT_BYTES = 512 * 1024;
/** Events in the burst. */
const BURST_EVENTS = 24;

describe('a burst under maxmemory + noeviction', { skip: redisMissing() }, () => {
  const open = clientsClosedAfter();

  it('splits the cluster only until the burst is older than the stream keeps, says so in /health, and recovers by itself', async (t) => {
    const redis = await RedisServer.start({ appendOnly: false });
    const admin = new Redis(redis.url);
    admin.on('error', () => {});
    after(() => admin.disconnect());
    const settings = { redisUrl: redis.url, recoveryWindowMs: 8_000, redisOutageGraceMs: 1_000 };
    const [a, b] = await Promise.all([startBroker(settings), startBroker(settings)]);
    const keepMs = streamKeepMs(settings);
    const receiver = await open('v4', b.url);
    assert.equal(await receiver.ack('join', 'calls'), true);
    const publisher = await open('v4', a.url);
    assert.deepEqual(await publisher.ack('call', { seq: 0 }), { ok: true, rooms: 1 });
    await receiver.receive('call', 1);

    const before = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
    // A burst of big events to a room nobody is in: all taken, then Redis is past its memory limit
    // (production's Redis: maxmemory, and no eviction). Every XADD is refused from then on, and the trim inside it.
    const big = 'x'.repeat(BIG_EVENT_BYTES);
    const burster = await open('v4', a.url);
    const answers = await Promise.all(Array.from({ length: BURST_EVENTS }, (_, i) => burster.ack<{ ok: boolean }>('report_ops', { big, i })));
    assert.ok(answers.some((answer) => answer.ok), 'the burst was taken');
    // The limit: what Redis held before the burst, and half of what the burst takes in the stream.
    const burst = Number(await admin.memory('USAGE', 'spicy-action:events'));
    assert.ok(burst > BIG_EVENT_BYTES, `the stream holds the burst (${burst} bytes)`);
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', String(before + Math.floor(burst / 2)));
    const fullAt = Date.now();
    const refused = await publisher.ack<{ ok: boolean; error?: string }>('call', { seq: 1 });
    assert.equal(refused.ok, false);
    assert.match(String(refused.error), /OOM/, 'Redis refuses events for memory');

    // /health says the stream is full (trimmed by the broker on its own) while Redis refuses events for memory.
    const health = await request(`${a.url}/health`);
    assert.equal(health.body.redis, 'degraded');
    assert.equal(health.body.stream, 'full');

    // By itself, once the burst is older than what the stream keeps: cross-node delivery works again.
    let seq = 2;
    await until(
      'an event from node A reaches node B again',
      async () => {
        await publisher.ack('call', { seq: seq++ });
        await sleep(200);
        return receiver.count('call') > 1;
      },
      keepMs + 30_000,
    );
    const back = Date.now() - fullAt;
    t.diagnostic(`split for ${back} ms after the burst (the stream keeps ${keepMs} ms)`);
    await until('/health no longer says the stream is full', async () => (await request(`${a.url}/health`)).body.stream === undefined);
    assert.equal((await request(`${a.url}/health`)).body.redis, 'up');
  });
});
