/** The outage grace on its own: what is held, released, written and counted while Redis is down. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MissedClusterError, OutageGrace } from '../src/cluster/outage-grace.ts';
import { sleep, until } from './helpers/wait.ts';

/** A stand-in for XADD: records what was written, answers when told to. */
function stream() {
  const written: string[] = [];
  const answers: (() => void)[] = [];
  return {
    written,
    /** Writes `name`; the offset comes back when `answer()` is called (or at once with `auto`). */
    send: (name: string, auto = true) => () => {
      written.push(name);
      return new Promise<string>((resolve) => {
        const answer = (): void => resolve(`offset-${name}`);
        if (auto) answer();
        else answers.push(answer);
      });
    },
    answerAll: () => answers.splice(0).forEach((answer) => answer()),
  };
}

const settled = (promises: Promise<string>[]) =>
  Promise.allSettled(promises).then((results) => results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).name)));

describe('OutageGrace', () => {
  it('writes at once while the link is up', async () => {
    const grace = new OutageGrace(1_000);
    const redis = stream();
    assert.equal(await grace.publish('event', redis.send('a')), 'offset-a');
    assert.equal(await grace.publish('direct', redis.send('b')), 'offset-b');
    assert.deepEqual(redis.written, ['a', 'b']);
  });

  it('holds events while the link is down and writes them in order when it is back', async () => {
    const grace = new OutageGrace(1_000);
    const redis = stream();
    const counted: number[] = [];
    grace.on('undelivered', (n) => counted.push(n));
    grace.down();
    const held = ['a', 'b', 'c'].map((name) => grace.publish('event', redis.send(name)));
    await sleep(20);
    assert.deepEqual(redis.written, [], 'nothing written while down');
    grace.up();
    const later = grace.publish('event', redis.send('d'));
    assert.deepEqual(await settled([...held, later]), ['offset-a', 'offset-b', 'offset-c', 'offset-d']);
    assert.deepEqual(redis.written, ['a', 'b', 'c', 'd']);
    assert.deepEqual(counted, []);
  });

  it('delivers messages for one local socket at once while down, without counting them', async () => {
    const grace = new OutageGrace(1_000);
    const redis = stream();
    let counted = 0;
    grace.on('undelivered', (n) => (counted += n));
    grace.down();
    await assert.rejects(grace.publish('direct', redis.send('welcome')), MissedClusterError);
    assert.deepEqual(redis.written, []);
    assert.equal(counted, 0);
    grace.up();
  });

  it('passes other cluster messages straight to Redis', async () => {
    const grace = new OutageGrace(1_000);
    const redis = stream();
    grace.down();
    assert.equal(await grace.publish('other', redis.send('heartbeat')), 'offset-heartbeat');
    grace.up();
  });

  it('past the grace, releases what is held or in flight in order, then every event at once, and counts them all', async () => {
    // A grace long enough that a loaded machine's timer slips cannot end it before the first check.
    const grace = new OutageGrace(1_000);
    const redis = stream();
    const counted: number[] = [];
    let expired = 0;
    grace.on('undelivered', (n) => counted.push(n));
    grace.on('expired', () => expired++);
    const inflight = grace.publish('event', redis.send('a', false)); // written, no answer: the link just dropped
    grace.down();
    const held = [grace.publish('event', redis.send('b')), grace.publish('event', redis.send('c'))];
    const order: string[] = [];
    for (const [name, p] of [['a', inflight], ['b', held[0]!], ['c', held[1]!]] as const) p.catch(() => order.push(name));
    await sleep(20);
    assert.deepEqual(order, [], 'held within the grace');
    await until('the grace runs out', () => expired > 0);
    assert.equal(expired, 1);
    assert.equal(grace.expired, true);
    assert.deepEqual(await settled([inflight, ...held]), ['MissedClusterError', 'MissedClusterError', 'MissedClusterError']);
    assert.deepEqual(order, ['a', 'b', 'c'], 'released oldest first');
    assert.deepEqual(counted, [3], 'counted together');
    await assert.rejects(grace.publish('event', redis.send('d')), MissedClusterError);
    assert.deepEqual(counted, [3, 1]);
    assert.equal(grace.missedThisOutage, 4);
    assert.deepEqual(redis.written, ['a'], 'nothing more written while down');
    // A late answer for a released event changes nothing.
    redis.answerAll();

    grace.up();
    assert.equal(grace.expired, false);
    assert.equal(await grace.publish('event', redis.send('e')), 'offset-e');
    assert.deepEqual(counted, [3, 1]);
    // A new outage starts a new count and a new grace.
    grace.down();
    assert.equal(grace.missedThisOutage, 0);
    const next = grace.publish('event', redis.send('f'));
    grace.up();
    assert.equal(await next, 'offset-f');
    grace.close();
  });
});
