/**
 * The cluster's stream is bounded in time and bytes (docs/cluster.md): the
 * time bound and the per-client byte budget alone (pure), then a real
 * redis-server under `maxmemory` with `noeviction`, as production runs it:
 * a burst of big events to a room nobody is in fills it, every event then
 * reaches only its own node (Redis refuses the XADD, and so the trim inside
 * it), `/health` says the stream is full, and once the burst is older than
 * what the stream keeps, cross-node delivery works again by itself.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { ByteBudget, MIN_STREAM_KEEP_MS, minTrimId, streamKeepMs } from '../src/cluster/stream-bounds.ts';
import { request, startBroker } from './helpers/broker.ts';
import { clientsClosedAfter } from './helpers/clients.ts';
import { captureLog } from './helpers/logs.ts';
import { parseMetrics } from './helpers/metrics.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';
import { sleep, until } from './helpers/wait.ts';

/** Bytes of each event of the burst. */
const BIG_EVENT_BYTES = 512 * 1024;
/** Events in the burst. */
const BURST_EVENTS = 24;

describe('stream bounds (pure)', () => {
  it('keeps entries for the recovery window or the outage grace, whichever is longer, and never less than a floor', () => {
    assert.equal(streamKeepMs({ recoveryWindowMs: 120_000, redisOutageGraceMs: 30_000 }), 120_000);
    assert.equal(streamKeepMs({ recoveryWindowMs: 0, redisOutageGraceMs: 30_000 }), 30_000);
    assert.equal(streamKeepMs({ recoveryWindowMs: 0, redisOutageGraceMs: 0 }), MIN_STREAM_KEEP_MS);
    assert.equal(minTrimId(1_700_000_120_000, 120_000), '1700000000000-0');
    assert.equal(minTrimId(5, 120_000), '0-0');
  });

  it('lets each client put its bytes per second, refuses the rest, one episode at a time, and forgets idle clients (seeded)', () => {
    const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
    console.log(`# byte budget: seed ${seed}`);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.array(fc.record({ client: fc.constantFrom('a', 'b', 'c'), bytes: fc.integer({ min: 0, max: 2_000_000 }), gap: fc.integer({ min: 0, max: 1_500 }) }), { maxLength: 200 }),
        (rate, sends) => {
          const budget = new ByteBudget(rate);
          let now = 0;
          const taken = new Map<string, { at: number; bytes: number }[]>();
          for (const { client, bytes, gap } of sends) {
            now += gap;
            const decision = budget.take(client, bytes, now);
            if (bytes > rate) assert.notEqual(decision, 'taken', 'more than a second of budget in one event is refused');
            if (decision === 'taken') {
              const list = taken.get(client) ?? [];
              list.push({ at: now, bytes });
              taken.set(client, list);
              // Invariant: in any window of one second, a client put at most twice its rate (a full bucket plus a second's refill).
              const recent = list.filter((t) => t.at > now - 1_000).reduce((sum, t) => sum + t.bytes, 0);
              assert.ok(recent <= 2 * rate, `${recent} bytes in a second at ${rate}/s`);
            }
          }
          assert.ok(budget.clients <= 3);
        },
      ),
      { seed, numRuns: 300 },
    );
    const budget = new ByteBudget(1_000);
    assert.equal(budget.take('x', 800, 0), 'taken');
    assert.equal(budget.take('x', 800, 0), 'refused-first');
    assert.equal(budget.take('x', 800, 10), 'refused', 'the same episode');
    assert.equal(budget.take('x', 800, 1_000), 'taken', 'refilled after a second');
    assert.equal(budget.take('x', 900, 1_000), 'refused-first', 'a new episode');
    assert.equal(budget.refused, 3);
    assert.equal(new ByteBudget(0).take('x', 1e9, 0), 'taken', '0: no budget');
    budget.take('y', 1, 100_000);
    assert.equal(budget.clients, 1, 'idle clients forgotten');
  });
});

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

describe('the byte budget of a client in the stream', { skip: redisMissing() }, () => {
  const open = clientsClosedAfter();

  it('refuses the events of a socket past its bytes a second with a clear answer, counted and logged once, and not the others', async (t) => {
    const logged = captureLog(t, 'spicy-action:broker');
    const redis = await RedisServer.start({ appendOnly: false });
    const rate = 64 * 1024;
    const settings = { redisUrl: redis.url, streamBytesPerClient: rate };
    const [a, b] = await Promise.all([startBroker(settings), startBroker(settings)]);
    const receiver = await open('v4', b.url);
    assert.equal(await receiver.ack('join', 'calls'), true);
    const flooder = await open('v4', a.url);
    const neighbour = await open('v2', a.url);
    // Twelve events of exactly 16 KiB (as the budget measures them: the JSON of the arguments) at once: a
    // second's worth (64 KiB) is taken, the rest refused. Exactly: four fill the budget to the byte, so the
    // next one fits only after 250 ms of refill, not after the millisecond or two a loaded machine takes between
    // two events (a remainder short by a few bytes would start a second episode then).
    const EVENT_BYTES = 16 * 1024;
    const call = (seq: number): { seq: number; chunk: string } => ({ seq, chunk: 'x'.repeat(EVENT_BYTES - JSON.stringify([{ seq, chunk: '' }]).length) });
    const answers = await Promise.all(Array.from({ length: 12 }, (_, seq) => flooder.ack<{ ok: boolean; error?: string }>('call', call(seq))));
    const taken = answers.filter((answer) => answer.ok).length;
    assert.ok(taken >= 2 && taken <= 6, `about a second's worth taken (${taken} of 12 events of 16 KB at 64 KB/s)`);
    const refusal = answers.find((answer) => !answer.ok);
    assert.match(String(refusal?.error), /over the limit of 65536 bytes a second .* \(REDIS_STREAM_CLIENT_BYTES\): event not published/);
    // Refused events reach no one; the neighbour's events, from the same address, are not refused.
    assert.deepEqual(await neighbour.ack('call', { seq: 100 }), { ok: true, rooms: 1 });
    await until('the neighbour event reaches node B', () => receiver.count('call') >= taken + 1);
    await sleep(300);
    assert.equal(receiver.count('call'), taken + 1, 'refused events were not published');
    const metrics = parseMetrics((await request(`${a.url}/metrics`)).body as string);
    assert.equal(metrics.value('spicy_action_refused_total', { reason: 'stream_budget' }), 12 - taken);
    assert.equal(logged.filter((line) => line.includes('REDIS_STREAM_CLIENT_BYTES')).length, 1, `logged once per episode:\n${logged.join('\n')}`);
    // Within its budget again a second later.
    await sleep(1_100);
    assert.deepEqual(await flooder.ack('call', { seq: 200 }), { ok: true, rooms: 1 });
  });
});
