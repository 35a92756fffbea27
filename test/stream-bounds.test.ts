/**
 * The cluster's stream is bounded in time and bytes (docs/cluster.md): the
 * time bound and the per-client byte budget alone (pure), then the byte budget
 * of a real broker's client. A burst under `maxmemory` is a fault run:
 * test/faults/stream-burst.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ByteBudget, MIN_STREAM_KEEP_MS, minTrimId, streamKeepMs } from '../src/cluster/stream-bounds.ts';
import { request, startBroker } from './helpers/broker.ts';
import { clientsClosedAfter } from './helpers/clients.ts';
import { captureLog } from './helpers/logs.ts';
import { parseMetrics } from './helpers/metrics.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';
import { sleep, until } from './helpers/wait.ts';

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
