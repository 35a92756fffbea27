/**
 * docs/cluster.md#order: a node that falls behind the stream's trim. Two
 * broker processes on one Redis, the smallest stream the settings accept
 * (`REDIS_STREAM_MAXLEN` 1,000); a 1.x subscriber of `calls` on node B. Node
 * B is stopped (SIGSTOP) while OpenSIPS-style pushes to node A put five
 * times what the stream keeps in it; once B runs again, its subscriber gets
 * what B's reader had been handed as it stopped and the events still in the
 * stream, in order, and B counts exactly the ones trimmed before it read them (`spicy_action_cluster_missed_entries_total`),
 * and says so once in its log.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spawnBroker, type BrokerProcess } from '../helpers/broker.ts';
import { clientsClosedAfter } from '../helpers/clients.ts';
import { parseMetrics } from '../helpers/metrics.ts';
import { RedisServer, redisMissing } from '../helpers/redis.ts';
import { until } from '../helpers/wait.ts';

/** The smallest REDIS_STREAM_MAXLEN the settings accept. */
const SMALLEST_STREAM = 1_000;
/** Events pushed while node B is stopped. */
const PUSHED_WHILE_STOPPED = 5 * SMALLEST_STREAM;
/** Pushes in flight at once. */
const IN_FLIGHT = 50;

async function push(url: string, n: number): Promise<void> {
  const res = await fetch(`${url}/_notify/call`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n }) });
  assert.equal(res.status, 200, await res.text());
}

async function missedOn(url: string): Promise<number> {
  const metrics = parseMetrics(await (await fetch(`${url}/metrics`)).text());
  return metrics.value('spicy_action_cluster_missed_entries_total');
}

describe('a node behind the stream', { skip: redisMissing() }, () => {
  const open = clientsClosedAfter();

  it('gives its clients what is left, in order, and counts exactly what was trimmed before it read it', { timeout: 120_000 }, async (t) => {
    const redis = await RedisServer.start({ appendOnly: false, cleanup: (server) => t.after(() => server.remove()) });
    // Without recovery, nothing but the pushes is written to the stream while B is stopped.
    const env = { REDIS_URL: redis.url, REDIS_STREAM_MAXLEN: String(SMALLEST_STREAM), RECOVERY_WINDOW: '0', REDIS_STREAM_CLIENT_BYTES: '0' };
    const started: BrokerProcess[] = [spawnBroker(env), spawnBroker(env)];
    t.after(() => started.forEach((broker) => broker.child.kill('SIGKILL')));
    const [a, b] = await Promise.all(started.map((broker) => broker.ready));
    const nodeB = started[1]!;
    const subscriber = await open('v1', b!);
    assert.equal(await subscriber.ack('join', 'calls'), true);

    await push(a!, 0);
    await subscriber.receive('call', 1);

    nodeB.child.kill('SIGSTOP');
    try {
      for (let n = 1; n <= PUSHED_WHILE_STOPPED; n += IN_FLIGHT) {
        await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, PUSHED_WHILE_STOPPED - n + 1) }, (_, i) => push(a!, n + i)));
      }
    } finally {
      nodeB.child.kill('SIGCONT');
    }

    const numbers = (): number[] => subscriber.payloads('call').map((event) => (event as { n: number }).n);
    await until('the last event reaches the subscriber on B', () => numbers().at(-1) === PUSHED_WHILE_STOPPED, 60_000);
    await until('node B counted what it missed', async () => (await missedOn(b!)) > 0, 10_000);
    const got = numbers();
    const missed = await missedOn(b!);
    t.diagnostic(`node B got ${got.length - 1} of ${PUSHED_WHILE_STOPPED} events pushed while it was stopped, and counted ${missed} missed`);
    // In order, nothing twice (what B's reader had been handed as it stopped, then the tail the stream still held).
    assert.equal(got[0], 0);
    for (let i = 1; i < got.length; i++) assert.ok(got[i]! > got[i - 1]!, `in order: ${got[i - 1]} then ${got[i]}`);
    assert.ok(missed > 0, 'the stream was trimmed past what node B had read');
    // Every event it never got, counted: no more, no fewer.
    assert.equal(got.length - 1 + missed, PUSHED_WHILE_STOPPED);
    assert.equal(nodeB.stderr().match(/this node fell behind the cluster's stream/g)?.length ?? 0, 1, nodeB.stderr());
    assert.equal(await missedOn(a!), 0, 'node A read everything');
  });
});
