/**
 * The pure parts of the cluster's fault handling: refusal episodes, stream
 * offset order, the grace's release of held events at shutdown, and the waits of
 * answers for Redis.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplyError } from 'ioredis';
import { MissedClusterError, OutageGrace } from '../src/cluster/outage-grace.ts';
import { compareOffsets } from '../src/cluster/stream-format.ts';
import { causeOf, refusalReason, WriteRefusals } from '../src/cluster/refusals.ts';
import { WriteWaits } from '../src/cluster/write-waits.ts';
import type { PublicationOutcome } from '../src/protocol.ts';
import { DEFAULT_SETTINGS, loadSettings } from '../src/settings.ts';

describe('refused writes', () => {
  it('reads the reason from the error reply, and nothing from a lost connection', () => {
    const reply = (message: string): Error => new (ReplyError as new (message: string) => Error)(message);
    assert.equal(refusalReason(reply("OOM command not allowed when used memory > 'maxmemory'.")), 'oom');
    assert.equal(refusalReason(reply("READONLY You can't write against a read only replica.")), 'readonly');
    assert.equal(refusalReason(reply('MISCONF Redis is configured to save RDB snapshots, but it is currently not able to persist on disk.')), 'misconf');
    assert.equal(refusalReason(reply('NOREPLICAS Not enough good replicas to write.')), 'noreplicas');
    assert.equal(refusalReason(reply('WRONGTYPE Operation against a key holding the wrong kind of value')), 'other');
    assert.equal(refusalReason(new Error('Connection is closed.')), undefined);
    assert.equal(refusalReason('OOM'), undefined);
    const aborted = Object.assign(reply('EXECABORT Transaction discarded because of previous errors.'), { previousErrors: [reply('OOM command not allowed')] });
    assert.equal(causeOf(aborted).message, 'OOM command not allowed');
    assert.equal(causeOf('text').message, 'text');
  });

  it('frames refusals in episodes: one start, one end, every refusal counted by reason', () => {
    const refusals = new WriteRefusals();
    const told: string[] = [];
    refusals.on('refusing', (reason) => told.push(`refusing ${reason}`));
    refusals.on('accepting', (refused) => told.push(`accepting after ${refused}`));
    refusals.accepted();
    for (let i = 0; i < 3; i++) refusals.refused('oom', 'OOM');
    refusals.refused('readonly', 'READONLY');
    assert.equal(refusals.refusing, true);
    assert.equal(refusals.reason, 'oom');
    refusals.accepted();
    refusals.accepted();
    refusals.refused('oom', 'OOM');
    assert.deepEqual(told, ['refusing oom', 'accepting after 4', 'refusing oom']);
    assert.deepEqual([...refusals.counts], [['oom', 4], ['readonly', 1]]);
  });
});

describe('stream offsets', () => {
  it('orders offsets as Redis does, not as strings', () => {
    const sorted = ['9-0', '10-0', '10-2', '10-10', '100-0', '1700000000000-5', '1700000000001-0'];
    const shuffled = [...sorted].reverse();
    assert.deepEqual(shuffled.sort(compareOffsets), sorted);
    assert.equal(compareOffsets('5-3', '5-3'), 0);
  });
});

describe('the grace at shutdown', () => {
  it('releases what it holds for local delivery, in order, counting each event', async () => {
    const grace = new OutageGrace(60_000);
    let counted = 0;
    grace.on('undelivered', (n) => (counted += n));
    grace.down();
    const order: string[] = [];
    const held = ['a', 'b', 'c'].map((name) =>
      grace.publish('event', () => Promise.resolve(name)).catch((error: unknown) => {
        assert.ok(error instanceof MissedClusterError);
        order.push(name);
      }),
    );
    const other = grace.publish('other', () => Promise.resolve('heartbeat'));
    assert.equal(grace.holding, 3);
    assert.equal(grace.close(), 3);
    await Promise.all(held);
    assert.deepEqual(order, ['a', 'b', 'c']);
    assert.equal(counted, 3);
    assert.equal(await other, 'heartbeat', 'cluster messages pass through untouched');
    // After close, an event is released at once.
    await assert.rejects(grace.publish('event', () => Promise.resolve('late')), MissedClusterError);
    assert.equal(counted, 4);
  });
});

describe('REDIS_TIMEOUT', () => {
  it('is 5 s by default, read from the variable or the flag, and 0 turns the watchdog off', () => {
    assert.equal(DEFAULT_SETTINGS.redisTimeoutMs, 5_000);
    assert.equal(loadSettings([], { REDIS_TIMEOUT: '2s' }).redisTimeoutMs, 2_000);
    assert.equal(loadSettings(['--redis-timeout', '750ms'], { REDIS_TIMEOUT: '2s' }).redisTimeoutMs, 750);
    assert.equal(loadSettings(['--redis-timeout=0'], {}).redisTimeoutMs, 0);
    assert.throws(() => loadSettings(['--redis-timeout', 'soon'], {}), /--redis-timeout/);
  });
});

describe('write waits (pure)', () => {
  it('answers with the write, with Redis seen down when it has a down answer, or with the bound; keeps nothing once answered', async () => {
    const late: PublicationOutcome = { ok: false, error: 'late' };
    const waits = new WriteWaits();
    const written = waits.wait(Promise.resolve({ ok: true }), { late });
    assert.deepEqual(await written, { ok: true });
    assert.equal(waits.size, 0);

    let refuse!: (error: Error) => void;
    const refused = waits.wait(new Promise<PublicationOutcome>((_, reject) => (refuse = reject)), { late });
    refuse(new Error('OOM'));
    assert.deepEqual(await refused, { ok: false, error: 'OOM' });

    let write!: (outcome: PublicationOutcome) => void;
    const pending = new Promise<PublicationOutcome>((resolve) => (write = resolve));
    const push = waits.wait(pending, { late, down: { ok: true, held: true } });
    const ack = waits.wait(pending, { late });
    assert.equal(waits.size, 2);
    waits.down();
    assert.deepEqual(await push, { ok: true, held: true });
    assert.equal(waits.size, 1, 'the acknowledgement waits on for its write');
    write({ ok: false, error: 'OOM' });
    assert.deepEqual(await ack, { ok: false, error: 'OOM' });
    assert.equal(waits.size, 0);

    const bounded = new WriteWaits(20);
    const answeredLate = bounded.wait(new Promise<PublicationOutcome>(() => {}), { late });
    // The bound's timer does not keep a process alive (a broker has its server for that): this test holds the loop.
    const alive = setTimeout(() => undefined, 10_000);
    assert.deepEqual(await answeredLate, late);
    clearTimeout(alive);
    assert.equal(bounded.size, 0);
  });
});
