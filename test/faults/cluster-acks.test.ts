/**
 * Answers that wait for Redis hold nothing once answered: acknowledgements of
 * routed events (and `register`, and the cluster's `/_notify` answers) wait
 * for Redis to take the write, and a node answers millions of them between
 * two outages. Measured on the real `startCluster` against a real
 * redis-server: the heap's slope over 20,000 tracked emits against the same
 * emits untracked (`ACK_HEAP_EVENTS=25000` for a run of 100,000). And with
 * `REDIS_TIMEOUT=0` (no watchdog), an answer on a hung Redis (SIGSTOP) still
 * comes, within its bound.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Server } from 'socket.io';
import { DEFAULT_BUSES } from '../../src/buses.ts';
import { startCluster, UNWATCHED_WRITE_WAIT_MS, type Cluster } from '../../src/cluster/cluster.ts';
import type { PublicationOutcome } from '../../src/protocol.ts';
import { RouteTable } from '../../src/routes.ts';
import { DEFAULT_SETTINGS } from '../../src/settings.ts';
import { slope } from '../../bench/slope.ts';
import { redisMissing, RedisServer } from '../helpers/redis.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Events between two heap checkpoints, tracked and untracked alike (`ACK_HEAP_EVENTS` for a longer run). */
const EVENTS = Number(process.env.ACK_HEAP_EVENTS ?? 5_000);
/**
 * Heap checkpoints after the first: a leak is a slope, and one reading after
 * a run also holds what the collector has not given back yet.
 */
const CHECKPOINTS = 4;
/** Emits in flight at once. */
const BATCH = 1_000;
/**
 * Heap an answered acknowledgement may keep, above a plain emit: generous
 * (heap figures move with the collector); a leak of one promise reaction per
 * answer is about 340 bytes.
 */
const MAX_BYTES_PER_ANSWER = 150;

/** Lets the node's stream reader catch up with what was written (it reads the node's own entries too). */
const SETTLE_MS = 300;

async function heapAfterGc(): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}


describe('acknowledgements on a cluster', { skip: redisMissing() }, () => {

  /** A node on a Redis of its own, closed (node, then Redis) when the test ends. */
  async function node(t: TestContext, overrides: Partial<typeof DEFAULT_SETTINGS> = {}): Promise<{ cluster: Cluster; io: Server; redis: RedisServer }> {
    const redis = await RedisServer.start({ appendOnly: false, cleanup: (server) => t.after(() => server.remove()) });
    const buses = DEFAULT_BUSES;
    const cluster = await startCluster({ ...DEFAULT_SETTINGS, redisUrl: redis.url, streamMaxLen: 1_000, ...overrides }, new RouteTable(buses), buses);
    const io = new Server({ adapter: cluster.adapter });
    t.after(async () => {
      // Never attached to an HTTP server, so io.close() has no engine to close: close the adapter itself.
      await io.of('/').adapter.close();
      await cluster.close();
    });
    return { cluster, io, redis };
  }

  it('hold nothing once answered: the heap does not grow with tracked emits', async (t) => {
    const { cluster, io } = await node(t);
    const emit = (i: number): void => void io.to('calls').emit('call', { i });
    /** Emits `count` events, every one tracked or (but the last of each batch) none; the heap after, collected. */
    const emitAll = async (tracked: boolean, count: number): Promise<number> => {
      for (let i = 0; i < count; i += BATCH) {
        const outcomes: Promise<PublicationOutcome | undefined>[] = [];
        for (let j = i; j < i + BATCH; j++) {
          if (tracked || j === i + BATCH - 1) outcomes.push(cluster.track(() => emit(j)) ?? Promise.resolve(undefined));
          else emit(j);
        }
        // The last of each batch is tracked in both runs: Redis took the whole batch once it is answered.
        for (const outcome of await Promise.all(outcomes)) assert.deepEqual(outcome, { ok: true });
      }
      return heapAfterGc();
    };
    /** Bytes of heap kept per event: the slope of the heap over checkpoints, after a warm-up. */
    const perEvent = async (tracked: boolean): Promise<number> => {
      await emitAll(tracked, EVENTS); // warm-up: code compiled, buffers and the collector's heap sized
      const sent: number[] = [];
      const heap: number[] = [];
      for (let checkpoint = 0; checkpoint <= CHECKPOINTS; checkpoint++) {
        sent.push(checkpoint * EVENTS);
        heap.push(await emitAll(tracked, checkpoint === 0 ? 0 : EVENTS));
      }
      return slope(sent, heap);
    };
    const untracked = await perEvent(false);
    const tracked = await perEvent(true);
    console.log(`heap per event: tracked ${tracked.toFixed(1)} B, untracked ${untracked.toFixed(1)} B (slope over ${CHECKPOINTS} × ${EVENTS} events each)`);
    assert.ok(tracked - untracked < MAX_BYTES_PER_ANSWER, `each answered acknowledgement keeps ${(tracked - untracked).toFixed(0)} bytes`);
  });

  it('with REDIS_TIMEOUT=0, an acknowledgement on a hung Redis is answered within its bound', async (t) => {
    const { cluster, io, redis } = await node(t, { redisTimeoutMs: 0 });
    assert.deepEqual(await cluster.track(() => io.to('calls').emit('call', 1)), { ok: true });
    process.kill(redis.pid as number, 'SIGSTOP');
    try {
      const started = Date.now();
      const outcome = await cluster.track(() => io.to('calls').emit('call', 2));
      const waited = Date.now() - started;
      assert.equal(outcome?.ok, false);
      assert.match(outcome.error, /has not answered within 7\.5 s \(REDIS_TIMEOUT=0: no watchdog\)/);
      assert.ok(waited >= UNWATCHED_WRITE_WAIT_MS - 50, `answered after ${waited} ms`);
    } finally {
      process.kill(redis.pid as number, 'SIGCONT');
    }
    // The event waited to be written, as its answer said: Redis takes it, then the next one.
    assert.deepEqual(await cluster.track(() => io.to('calls').emit('call', 3)), { ok: true });
  });
});
