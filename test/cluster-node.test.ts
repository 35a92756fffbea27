/**
 * A node's link state and its decisions around each write
 * (src/cluster/cluster-node.ts), without Redis: up, degraded and down as the
 * link, the watchdog and refusals say; events held within the grace and
 * written in order, released past it and counted; refused writes counted and
 * told to their sender; every answer its event's fate, through an outage too
 * (an HTTP push is told it is held); route changes answered; a drain that
 * releases what is held.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplyError } from 'ioredis';
import { ClusterNode, RefusedWriteError, type Watchdog } from '../src/cluster/cluster-node.ts';
import { MissedClusterError } from '../src/cluster/outage-grace.ts';
import type { PublicationOutcome, RedisState } from '../src/protocol.ts';
import { watched, type Watched } from './helpers/wait.ts';

const reply = (message: string): Error => new (ReplyError as new (message: string) => Error)(message);
const OOM = "OOM command not allowed when used memory > 'maxmemory'.";
const tick = (ms = 0): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Watches an outcome that must be there (an event was published). */
function answered(outcome: Promise<PublicationOutcome> | undefined): Watched<PublicationOutcome> {
  assert.ok(outcome instanceof Promise, 'an event was published');
  return watched(outcome);
}

/** A node that records what it tells, and the writes it is given, answered by hand. */
function node(options: { graceMs?: number; redisTimeoutMs?: number; unwatchedWaitMs?: number; watchdog?: Watchdog } = {}) {
  const trimmer = { accepted: 0, refusedForMemory: 0 };
  const made = new ClusterNode({
    graceMs: options.graceMs ?? 60_000,
    redisTimeoutMs: options.redisTimeoutMs ?? 1_000,
    unwatchedWaitMs: options.unwatchedWaitMs,
    watchdog: options.watchdog,
    trimmer: { accepted: () => trimmer.accepted++, refusedForMemory: () => trimmer.refusedForMemory++ },
  });
  const states: RedisState[] = [];
  let undelivered = 0;
  const refused: string[] = [];
  made.on('state', (state) => states.push(state));
  made.on('undelivered', (count) => (undelivered += count));
  made.on('refused', (reason) => refused.push(reason));
  /** Writes in the order they were started, each answered by `answer`. */
  const writes: { name: string; answer: (error?: Error) => void }[] = [];
  const write = (name: string) => (): Promise<string> =>
    new Promise<string>((resolve, reject) => writes.push({ name, answer: (error) => (error ? reject(error) : resolve(`1-${writes.length}`)) }));
  return { node: made, states, refused, trimmer, writes, write, undelivered: () => undelivered };
}

describe('a cluster node without Redis', () => {
  it('is up, goes down when the link closes and up when it is ready; restores only while not down', () => {
    const t = node();
    assert.equal(t.node.state, 'up');
    assert.equal(t.node.restorable(), true);
    t.node.linkClosed();
    assert.equal(t.node.state, 'down');
    assert.equal(t.node.restorable(), false);
    t.node.linkClosed();
    t.node.linkReady();
    assert.deepEqual(t.states, ['down', 'up']);
  });

  it('goes down when the watchdog sees Redis hang, and up when it answers', () => {
    const watchdog: { hung: boolean; answeredAt: number; probeWrites: boolean } = { hung: false, answeredAt: Date.now(), probeWrites: false };
    const t = node({ watchdog });
    watchdog.hung = true;
    t.node.watchdogChanged();
    assert.equal(t.node.state, 'down');
    watchdog.hung = false;
    t.node.watchdogChanged();
    assert.deepEqual(t.states, ['down', 'up']);
  });

  it('writes an event at once while up, and tells its sender {ok: true} once Redis took it', async () => {
    const t = node();
    const outcome = t.node.track(() => void t.node.publish('event', t.write('e1')));
    assert.ok(outcome instanceof Promise);
    assert.equal(t.writes.length, 1, 'written at once');
    assert.equal(t.node.waiting, 1, 'the answer waits for Redis');
    t.writes[0]!.answer();
    assert.deepEqual(await outcome, { ok: true });
    assert.equal(t.node.waiting, 0);
  });

  it('holds events within the grace and writes them in order when the link is back; the sender is told {ok: true} only then', async () => {
    const t = node();
    t.node.linkClosed();
    const results = ['e1', 'e2', 'e3'].map((name) => t.node.publish('event', t.write(name)));
    const told = answered(t.node.track(() => void t.node.publish('event', t.write('e4'))));
    await tick();
    assert.equal(told.answer, undefined, 'held: its fate is not known yet');
    assert.equal(t.writes.length, 0, 'nothing written while down');
    assert.equal(t.node.holding, 4);
    t.node.linkReady();
    assert.deepEqual(t.writes.map((w) => w.name), ['e1', 'e2', 'e3', 'e4'], 'written in order once back');
    for (const w of t.writes) w.answer();
    assert.deepEqual(await Promise.all(results), ['1-4', '1-4', '1-4']);
    assert.deepEqual(await told.outcome, { ok: true });
    assert.equal(t.undelivered(), 0);
  });

  it('tells the sender of a held event that Redis refused once back {ok: false}, never {ok: true}', async () => {
    const t = node();
    const before = answered(t.node.track(() => void t.node.publish('event', t.write('in flight')).catch(() => undefined)));
    t.node.linkClosed();
    const held = answered(t.node.track(() => void t.node.publish('event', t.write('held')).catch(() => undefined)));
    await tick();
    assert.deepEqual([before.answer, held.answer], [undefined, undefined], 'seen down: both wait for their writes');
    t.node.linkReady();
    for (const w of t.writes) w.answer(reply(OOM));
    const refused = { ok: false, error: `Redis refused the event (${OOM}): delivered to this node's clients only` };
    assert.deepEqual(await before.outcome, refused);
    assert.deepEqual(await held.outcome, refused);
    assert.equal(t.undelivered(), 2);
  });

  it('answers a push held for Redis {ok: true, held: true} at once, and one already waiting as soon as Redis is seen down', async () => {
    const t = node();
    const waiting = t.node.track(() => void t.node.publish('event', t.write('e1')), true);
    t.node.linkClosed();
    assert.deepEqual(await waiting, { ok: true, held: true });
    assert.deepEqual(await t.node.track(() => void t.node.publish('event', t.write('e2')), true), { ok: true, held: true });
  });

  it('tells {ok: false} when the grace runs out on a held event, and follows a write already sent to its end', async (t0) => {
    const alive = setInterval(() => undefined, 1_000);
    t0.after(() => clearInterval(alive));
    const t = node({ graceMs: 30 });
    const sent = answered(t.node.track(() => void t.node.publish('event', t.write('sent')).catch(() => undefined)));
    t.node.linkClosed();
    const held = answered(t.node.track(() => void t.node.publish('event', t.write('held')).catch(() => undefined)));
    assert.deepEqual(await held.outcome, { ok: false, error: "Redis is down: delivered to this node's clients only" });
    assert.equal(t.undelivered(), 2, 'both released to this node\'s clients, and counted');
    assert.equal(sent.answer, undefined, 'its write may still reach the stream: it decides');
    t.writes[0]!.answer();
    assert.deepEqual(await sent.outcome, { ok: true });
  });

  it('tells {ok: false} to the sender of an event held when the node stops', async () => {
    const t = node();
    t.node.linkClosed();
    const held = answered(t.node.track(() => void t.node.publish('event', t.write('held')).catch(() => undefined)));
    assert.equal(await t.node.drain(), 1);
    assert.deepEqual(await held.outcome, { ok: false, error: "Redis is down: delivered to this node's clients only" });
  });

  it('past the grace, releases held events for local delivery, counts them, and refuses new ones at once with {ok: false}', async (t0) => {
    // The grace's timer does not hold the process open: this one does, for the test.
    const alive = setInterval(() => undefined, 1_000);
    t0.after(() => clearInterval(alive));
    const t = node({ graceMs: 30 });
    t.node.linkClosed();
    const held = t.node.publish('event', t.write('held'));
    await assert.rejects(held, MissedClusterError);
    assert.equal(t.undelivered(), 1);
    const outcome = t.node.track(() => void t.node.publish('event', t.write('late')).catch(() => undefined));
    assert.deepEqual(await outcome, { ok: false, error: "Redis is down: delivered to this node's clients only" });
    assert.equal(t.undelivered(), 2);
    assert.equal(t.writes.length, 0, 'never written');
  });

  it('never holds a message to one socket while down, nor counts it; passes anything else to the Redis client', async () => {
    const t = node();
    t.node.linkClosed();
    await assert.rejects(t.node.publish('direct', t.write('welcome')), MissedClusterError);
    void t.node.publish('other', t.write('join'));
    assert.deepEqual(t.writes.map((w) => w.name), ['join']);
    assert.equal(t.undelivered(), 0);
  });

  it('counts a refused event, tells its sender why, shows degraded, trims for memory, and is up again at the next write taken', async () => {
    const t = node();
    const outcome = t.node.track(() => void t.node.publish('event', t.write('e1')).catch((error: unknown) => assert.ok(error instanceof RefusedWriteError)));
    t.writes[0]!.answer(reply(OOM));
    assert.deepEqual(await outcome, { ok: false, error: `Redis refused the event (${OOM}): delivered to this node's clients only` });
    assert.equal(t.node.state, 'degraded');
    assert.deepEqual(t.refused, ['oom']);
    assert.equal(t.undelivered(), 1);
    assert.equal(t.trimmer.refusedForMemory, 1);
    void t.node.publish('event', t.write('e2'));
    t.writes[1]!.answer();
    await tick();
    assert.equal(t.node.state, 'up');
    assert.deepEqual(t.states, ['degraded', 'up']);
  });

  it('ends an episode of refusals when the watchdog\'s write probe is taken, but not one of a refusal that may concern the stream alone', () => {
    const watchdog: { hung: boolean; answeredAt: number; probeWrites: boolean } = { hung: false, answeredAt: Date.now(), probeWrites: false };
    const t = node({ watchdog });
    t.node.failed('SET', reply(OOM));
    assert.equal(t.node.state, 'degraded');
    assert.equal(watchdog.probeWrites, true, 'probing writes while refused');
    t.node.writable();
    assert.equal(t.node.state, 'up');
    assert.equal(watchdog.probeWrites, false);
    t.node.failed('XADD', reply('WRONGTYPE Operation against a key holding the wrong kind of value'));
    t.node.writable();
    assert.equal(t.node.state, 'degraded');
  });

  it('logs, without counting, a write that failed for another reason than a refusal', () => {
    const t = node();
    t.node.failed('PUBLISH', new Error('Connection is closed.'));
    assert.equal(t.node.state, 'up');
    assert.deepEqual(t.refused, []);
  });

  it('answers a route change {ok: true} once written, {ok: false} when refused, through an outage; a removal by HTTP held at once', async () => {
    const t = node();
    assert.deepEqual(await t.node.track(() => t.node.routeWritten(Promise.resolve())), { ok: true });
    assert.deepEqual(await t.node.track(() => t.node.routeWritten(Promise.reject(reply('ROUTESFULL full')))), {
      ok: false,
      error: 'Redis refused the route (ROUTESFULL full): the route is unchanged',
    });
    t.node.linkClosed();
    let write!: (error?: Error) => void;
    const queued = new Promise<void>((resolve, reject) => (write = (error) => (error ? reject(error) : resolve())));
    const told = answered(t.node.track(() => t.node.routeWritten(queued)));
    assert.deepEqual(await t.node.track(() => t.node.routeWritten(queued), true), { ok: true, held: true });
    await tick();
    assert.equal(told.answer, undefined, 'a register waits for its write');
    t.node.linkReady();
    write(reply(OOM));
    assert.deepEqual(await told.outcome, { ok: false, error: `Redis refused the route (${OOM}): the route is unchanged` });
  });

  it('tells nothing to track when nothing was written, and keeps the first outcome of one track', async () => {
    const t = node();
    assert.equal(t.node.track(() => undefined), undefined);
    const outcome = t.node.track(() => {
      void t.node.publish('event', t.write('first'));
      void t.node.publish('event', t.write('second')).catch(() => undefined);
    });
    t.writes[0]!.answer();
    t.writes[1]!.answer(reply(OOM));
    assert.deepEqual(await outcome, { ok: true });
  });

  it('bounds the wait for a write when no watchdog runs', async (t0) => {
    const alive = setInterval(() => undefined, 1_000);
    t0.after(() => clearInterval(alive));
    const t = node({ redisTimeoutMs: 0, unwatchedWaitMs: 300 });
    const started = Date.now();
    const outcome = t.node.track(() => void t.node.publish('event', t.write('hung')));
    const answer = (await outcome) as { ok: boolean; error?: string };
    assert.equal(answer.ok, false);
    assert.match(answer.error ?? '', /^Redis has not answered within 0\.3 s \(REDIS_TIMEOUT=0: no watchdog\): the event waits to be written/);
    assert.ok(Date.now() - started >= 290, 'answered once the bound passed, not before');
  });

  it('drains what it holds when stopping with Redis down, counting each; nothing with Redis up; and changes state no more once closed', async () => {
    const up = node();
    assert.equal(await up.node.drain(), 0);
    const t = node();
    t.node.linkClosed();
    const held = [t.node.publish('event', t.write('a')), t.node.publish('event', t.write('b'))];
    for (const h of held) h.catch(() => undefined);
    assert.equal(await t.node.drain(), 2);
    assert.equal(t.undelivered(), 2);
    t.node.close();
    t.node.linkReady();
    assert.equal(t.node.state, 'down', 'closed: no more transitions');
  });
});
