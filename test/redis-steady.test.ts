/**
 * A Redis client that never gives up (docs/cluster.md, when Redis fails): a
 * Sentinel that answers the primary's address with something Node cannot
 * connect to (an empty array, a port that is not a number or above 65535)
 * while the brokers reconnect leaves them down, not dead: `/health` answers,
 * the CPU is not taken, SIGTERM stops them, and once the Sentinel answers
 * well again they come back up by themselves and carry events. The Sentinel
 * is a small RESP server of the test's own (test/helpers/fake-sentinel.ts);
 * Redis is a real redis-server.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { request, spawnBroker, type BrokerProcess } from './helpers/broker.ts';
import { clientsClosedAfter } from './helpers/clients.ts';
import { FakeSentinel, type Resp } from './helpers/fake-sentinel.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';
import { sleep, until } from './helpers/wait.ts';

/** Answers to `get-master-addr-by-name` that name no address Node can connect to. */
const BAD_ANSWERS: readonly Resp[] = [[], ['127.0.0.1', 'not-a-port'], ['127.0.0.1', '70000'], ['127.0.0.1'], [['127.0.0.1'], 6379], ''];
/** How long each bad answer is given. */
const BAD_ANSWER_MS = 500;
/** How long the process's CPU time is measured while Redis is unusable. */
const CPU_WINDOW_MS = 3_000;
/** The share of one core a broker may use while it waits for Redis: far from the 100% of a spinning loop. */
const MAX_CPU_SHARE = 0.5;
/** Liveness bound on one `/health` answer while Redis is unusable. */
const HEALTH_ANSWER_MS = 2_000;
/** Liveness bound on a broker's exit after SIGTERM. */
const EXIT_TIMEOUT_MS = 10_000;
/** Clock ticks per second in /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU time (user + system) of process `pid` so far, in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces), counted from field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

/** `/health`'s `redis`, failing if it takes longer than {@link HEALTH_ANSWER_MS}. */
async function redisHealth(url: string): Promise<string> {
  const answer = await request(`${url}/health`, { signal: AbortSignal.timeout(HEALTH_ANSWER_MS) });
  return (answer.body as { redis: string }).redis;
}

/** Resolves with the exit once `proc` has ended; fails after {@link EXIT_TIMEOUT_MS}. */
async function exitOf(proc: BrokerProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('the broker did not exit within 10 s of SIGTERM')), EXIT_TIMEOUT_MS);
  });
  return Promise.race([proc.exited, timeout]).finally(() => clearTimeout(timer));
}

describe('a Sentinel that answers badly, then well', { skip: redisMissing() }, () => {
  const open = clientsClosedAfter();

  it('leaves the brokers down but responsive, obeying SIGTERM, and back up by themselves', async (t) => {
    const redis = await RedisServer.start();
    const admin = new Redis(redis.url, { lazyConnect: true });
    admin.on('error', () => {});
    after(() => admin.disconnect());
    const good: Resp = ['127.0.0.1', String(redis.port)];
    const sentinel = await FakeSentinel.start(good);
    const env = { REDIS_SENTINELS: sentinel.address, REDIS_OUTAGE_GRACE: '1s' };
    const [a, b] = [spawnBroker(env), spawnBroker(env)];
    const [urlA, urlB] = await Promise.all([a.ready, b.ready]);
    await until('both brokers report Redis up', async () => (await redisHealth(urlA)) === 'up' && (await redisHealth(urlB)) === 'up', 20_000);

    // The Sentinel turns bad, then every broker connection to Redis is cut: they reconnect, asking it.
    let answering = true;
    const answers = (async () => {
      for (let i = 0; answering; i++) {
        sentinel.primary = BAD_ANSWERS[i % BAD_ANSWERS.length] as Resp;
        // Each bad answer is given for a while, and at least once.
        const asked = sentinel.asked;
        await sleep(BAD_ANSWER_MS);
        await until('the Sentinel is asked', () => !answering || sentinel.asked > asked, 20_000);
      }
    })();
    t.after(() => (answering = false));
    await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    await admin.client('KILL', 'TYPE', 'pubsub');
    await until('both brokers report Redis down', async () => (await redisHealth(urlA)) === 'down' && (await redisHealth(urlB)) === 'down', 20_000);
    const askedBefore = sentinel.asked;

    // Down, not spinning: /health answers all along, and the CPU is mostly idle.
    const pid = a.child.pid as number;
    const cpuBefore = cpuMs(pid);
    const windowStart = Date.now();
    let answered = 0;
    while (Date.now() - windowStart < CPU_WINDOW_MS) {
      assert.equal(await redisHealth(urlA), 'down');
      answered++;
      await sleep(100);
    }
    const share = (cpuMs(pid) - cpuBefore) / (Date.now() - windowStart);
    t.diagnostic(`CPU while Redis is unusable: ${(share * 100).toFixed(1)}% of one core; /health answered ${answered} times`);
    assert.ok(share < MAX_CPU_SHARE, `the broker used ${(share * 100).toFixed(0)}% of a core while Redis was unusable`);
    assert.ok(sentinel.asked > askedBefore, 'the brokers kept asking the Sentinel');

    // SIGTERM is obeyed while Redis is unusable.
    b.child.kill('SIGTERM');
    assert.deepEqual(await exitOf(b), { code: 0, signal: null }, 'broker B exits 0 on SIGTERM with Redis unusable');

    // The Sentinel answers well again: A comes back by itself, and carries events through Redis.
    answering = false;
    await answers;
    sentinel.primary = good;
    await until('broker A reports Redis up again', async () => (await redisHealth(urlA)) === 'up', 20_000);
    const receiver = await open('v4', urlA);
    assert.equal(await receiver.ack('join', 'calls'), true);
    const publisher = await open('v2', urlA);
    assert.deepEqual(await publisher.ack('call', { seq: 1 }), { ok: true, rooms: 1 });
    assert.deepEqual(await receiver.receive('call', 1), [{ seq: 1 }]);

    // The log said what the Sentinel answered, not that it was unreachable.
    const log = a.stderr();
    assert.match(log, /Sentinel 127\.0\.0\.1:\d+ answered \[\] instead of \[host, port\]/);
    assert.match(log, /Sentinel 127\.0\.0\.1:\d+ answered \["127\.0\.0\.1","70000"\]: the port is not a number from 1 to 65535/);
    assert.doesNotMatch(log, /All sentinels are unreachable/);
    a.child.kill('SIGTERM');
    assert.deepEqual(await exitOf(a), { code: 0, signal: null }, 'broker A exits 0 on SIGTERM');
  });
});
