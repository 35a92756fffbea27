/**
 * One total order (docs/cluster.md#order): with publishers on both nodes of a
 * cluster, every subscriber on every node, of every client generation,
 * receives a bus's events in one sequence, the stream's (read back with
 * XRANGE as the ground truth), and a 4.x client's recovery offset only ever
 * moves forward.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startBroker } from './helpers/broker.ts';
import { clientsClosedAfter, type Generation, type TestClient } from './helpers/clients.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';

/** Publishers per node, and events each one sends. */
const PUBLISHERS_PER_NODE = 2;
const EVENTS_PER_PUBLISHER = 1_000;
const TOTAL = 2 * PUBLISHERS_PER_NODE * EVENTS_PER_PUBLISHER;
/** Events a publisher sends before it waits for an acknowledgement (keeps several nodes' writes interleaved). */
const BURST = 50;
const STREAM = 'spicy-action:events';
const TIMEOUT_MS = 60_000;

/** One published call: who sent it, and its number for that publisher. */
interface Call {
  readonly from: string;
  readonly seq: number;
}

const key = (call: Call): string => `${call.from}#${call.seq}`;

/** The calls in the stream, in stream order (the stream entries' own encoding: JSON `data` holding the packet). */
async function streamOrder(url: string): Promise<string[]> {
  const redis = new Redis(url);
  try {
    const order: string[] = [];
    let start = '-';
    for (;;) {
      const entries = (await redis.xrange(STREAM, start, '+', 'COUNT', 1_000)) as [string, string[]][];
      const fresh = start === '-' ? entries : entries.slice(1);
      if (fresh.length === 0) return order;
      for (const [, fields] of fresh) {
        const raw: Record<string, string> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) raw[fields[i] as string] = fields[i + 1] as string;
        if (raw.type !== '3' || raw.data === undefined) continue;
        const data = JSON.parse(raw.data) as { packet?: { data?: unknown[] } };
        const [event, payload] = data.packet?.data ?? [];
        if (event === 'call') order.push(key(payload as Call));
      }
      start = (fresh[fresh.length - 1] as [string, string[]])[0];
    }
  } finally {
    redis.disconnect();
  }
}

/** The calls a client received, in order. */
function received(client: TestClient): string[] {
  return client.received.filter((r) => r[0] === 'call').map((r) => key(r[1] as Call));
}

/** Positions where `seen` leaves the order of `truth`: events seen before one that precedes them in the stream. */
function inversions(seen: readonly string[], truth: readonly string[]): number {
  const rank = new Map(truth.map((k, i) => [k, i]));
  let count = 0;
  let highest = -1;
  for (const k of seen) {
    const r = rank.get(k) ?? -1;
    if (r < highest) count++;
    else highest = r;
  }
  return count;
}

describe('one total order across nodes', { skip: redisMissing() }, async () => {
  const redis = await RedisServer.start();
  const [a, b] = await Promise.all([startBroker({ redisUrl: redis.url }), startBroker({ redisUrl: redis.url })]);
  const open = clientsClosedAfter();

  it('gives every subscriber of every generation, on both nodes, the stream order of events published on both', { timeout: TIMEOUT_MS }, async () => {
    const generations: Generation[] = ['v4', 'v2', 'v1'];
    const subscribers: { client: TestClient; node: string }[] = [];
    for (const [node, url] of [['A', a.url], ['B', b.url]] as const) {
      for (const generation of generations) {
        const client = await open(generation, url);
        assert.equal(await client.ack('join', 'calls'), true);
        subscribers.push({ client, node });
      }
    }
    const publishers: TestClient[] = [];
    for (const url of [a.url, b.url]) for (let p = 0; p < PUBLISHERS_PER_NODE; p++) publishers.push(await open('v4', url));

    // Every publisher at once, in bursts: the nodes' writes interleave in the stream.
    await Promise.all(
      publishers.map(async (publisher, p) => {
        for (let seq = 0; seq < EVENTS_PER_PUBLISHER; seq++) {
          const call: Call = { from: `p${p}`, seq };
          if ((seq + 1) % BURST === 0) assert.deepEqual(await publisher.ack('call', call), { ok: true, rooms: 1 });
          else publisher.emit('call', call);
        }
      }),
    );
    for (const { client } of subscribers) await client.receive('call', TOTAL, TIMEOUT_MS / 2);

    const truth = await streamOrder(redis.url);
    assert.equal(truth.length, TOTAL, 'every call is in the stream once');
    for (const { client, node } of subscribers) {
      const seen = received(client);
      const where = `${client.generation} on node ${node}`;
      assert.equal(inversions(seen, truth), 0, `no inversion of stream order for ${where}`);
      assert.deepEqual(seen, truth, `the stream's sequence for ${where}`);
    }
    // A 4.x client's recovery offset (the last argument of each event) only moves forward.
    for (const { client, node } of subscribers.filter((s) => s.client.generation === 'v4')) {
      const offsets = client.received.filter((r) => r[0] === 'call').map((r) => r[r.length - 1] as string);
      assert.equal(offsets.length, TOTAL);
      for (let i = 1; i < offsets.length; i++) {
        const [pm, ps] = (offsets[i - 1] as string).split('-').map(Number) as [number, number];
        const [m, s] = (offsets[i] as string).split('-').map(Number) as [number, number];
        assert.ok(m > pm || (m === pm && s > ps), `offset ${offsets[i]} after ${offsets[i - 1]} on node ${node}`);
      }
    }
  });
});
