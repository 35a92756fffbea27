/**
 * One deeply nested payload must not end a broker. Socket.IO's encoder
 * (`hasBinary`) recurses once per level; in a cluster it runs inside the
 * adapter's asynchronous broadcast, where a RangeError would be uncaught and
 * end the process after `/_notify` had answered 200. Payloads past
 * MAX_PAYLOAD_DEPTH are refused like any bad input, socket and HTTP, on one
 * process and in a cluster; and a broadcast that throws asynchronously is
 * caught all the same.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { DEFAULT_LIMITS } from '../src/limits.ts';
import { depthRefusal, tooDeep } from '../src/protocol.ts';
import type { RunningBroker } from '../src/server.ts';
import { notify, request, startBroker } from './helpers/broker.ts';
import { closeAll, connect, GENERATIONS, withTimeout, type TestClient } from './helpers/clients.ts';
import { parseMetrics } from './helpers/metrics.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';

/** The attack: about 20 KB of JSON nested 10,000 deep. */
const DEEP_LEVELS = 10_000;
const deepJson = (levels: number): string => '{"a":'.repeat(levels - 1) + '[]' + '}'.repeat(levels - 1);
/** A value nested exactly `levels` deep: objects around an empty array. */
const nested = (levels: number): unknown => JSON.parse(deepJson(levels));

/** Writes an encoded Socket.IO packet straight to the client's Engine.IO connection, past its encoder. */
function sendRaw(client: TestClient, packet: string): void {
  (client.raw.io as { engine: { write(data: string): void } }).engine.write(packet);
}

async function refused(broker: RunningBroker, reason: string): Promise<number> {
  return parseMetrics((await request(`${broker.url}/metrics`)).body as string).value('spicy_action_refused_total', { reason });
}

describe('payload depth (pure)', () => {
  it('measures depth iteratively and stops at the limit', () => {
    assert.equal(tooDeep('text', 1), false);
    assert.equal(tooDeep({}, 1), false);
    assert.equal(tooDeep({ a: [] }, 1), true);
    assert.equal(tooDeep(nested(64), 64), false);
    assert.equal(tooDeep(nested(65), 64), true);
    // Far past any stack: no RangeError.
    assert.equal(tooDeep(JSON.parse('['.repeat(200_000) + ']'.repeat(200_000)), 64), true);
    assert.equal(depthRefusal([1, nested(70)], 64)?.reason, 'too_deep');
    assert.equal(DEFAULT_LIMITS.maxPayloadDepth, 64);
  });
});

/** Checks one broker (or, given `other`, a pair in a cluster) against deep payloads. */
function depthSuite(name: string, nodes: () => { a: RunningBroker; b: RunningBroker }): void {
  describe(name, () => {
    const clients: TestClient[] = [];
    after(() => closeAll(clients));

    it('answers a 20 KB /_notify body nested 10,000 deep with 400, counts it, and goes on routing', async () => {
      const { a, b } = nodes();
      const subscriber = await connect('v4', b.url);
      clients.push(subscriber);
      assert.equal(await subscriber.ack('join', 'calls'), true);
      const before = await refused(a, 'too_deep');
      const body = deepJson(DEEP_LEVELS);
      assert.ok(body.length > 20_000 && body.length < 60_000);
      const answer = await notify(a.url, 'call', body);
      assert.equal(answer.status, 400);
      assert.deepEqual(answer.body, { ok: false, error: `payload nested deeper than ${DEFAULT_LIMITS.maxPayloadDepth} levels` });
      assert.equal(await refused(a, 'too_deep'), before + 1);
      // Still alive, and a fresh event goes through (across nodes in a cluster).
      const arrival = subscriber.next('call');
      assert.deepEqual((await notify(a.url, 'call', { call: 'after' })).body, { ok: true });
      assert.deepEqual((await arrival)[0], { call: 'after' });
      assert.equal(subscriber.count('call'), 1, 'the deep one reached nobody');
    });

    it('takes a payload exactly MAX_PAYLOAD_DEPTH deep', async () => {
      const { a } = nodes();
      assert.deepEqual((await notify(a.url, 'call', deepJson(DEFAULT_LIMITS.maxPayloadDepth))).body, { ok: true });
      assert.equal((await notify(a.url, 'call', deepJson(DEFAULT_LIMITS.maxPayloadDepth + 1))).status, 400);
    });

    for (const generation of GENERATIONS) {
      it(`refuses a deep socket event from ${generation}: a failed ack, or a failed event, and nothing routed`, async () => {
        const { a, b } = nodes();
        const [sender, subscriber] = await Promise.all([connect(generation, a.url, { transports: ['websocket'] }), connect('v4', b.url)]);
        clients.push(sender, subscriber);
        assert.equal(await subscriber.ack('join', 'calls'), true);
        const before = await refused(a, 'too_deep');
        // 1,000 deep: past the limit, and still within what the clients' own encoders can walk.
        const deep = nested(1_000);
        const error = `payload nested deeper than ${DEFAULT_LIMITS.maxPayloadDepth} levels`;
        assert.deepEqual(await sender.ack('call', deep), { ok: false, error });
        assert.equal(await sender.ack('join', { deep }), false, 'join answers false, as for any bad room');
        // A deep value in a second argument is refused too.
        assert.deepEqual(await sender.ack('call', { call: 'x' }, deep), { ok: false, error });
        // 10,000 deep, written to the transport as an attacker would (no client encodes it).
        const failed = sender.next('failed');
        sendRaw(sender, `2${JSON.stringify(['shout'])}`.slice(0, -1) + `,${deepJson(DEEP_LEVELS)}]`);
        assert.deepEqual((await failed)[0], { event: 'shout', msg: error });
        assert.equal(await refused(a, 'too_deep'), before + 4);
        const arrival = subscriber.next('call');
        assert.deepEqual(await sender.ack('call', { call: 'fine' }), { ok: true, rooms: 1 });
        assert.deepEqual((await arrival)[0], { call: 'fine' });
        assert.equal(subscriber.count('call'), 1);
      });
    }
  });
}

describe('one process', async () => {
  const broker = await startBroker();
  depthSuite('one process', () => ({ a: broker, b: broker }));
});

describe('cluster on Redis', { skip: redisMissing() }, async () => {
  const redis = await RedisServer.start();
  const [a, b] = await Promise.all([startBroker({ redisUrl: redis.url }), startBroker({ redisUrl: redis.url })]);
  depthSuite('two nodes', () => ({ a, b }));

  it('survives a broadcast that throws after its asynchronous publish (the last resort)', async () => {
    // Straight to Socket.IO, past the broker's checks: the cluster adapter publishes to Redis,
    // then encodes for local sockets inside its async broadcast, where the encoder overflows.
    const subscriber = await connect('v4', a.url);
    try {
      assert.equal(await subscriber.ack('join', 'calls'), true);
      let unhandled: unknown;
      const onUnhandled = (reason: unknown): void => {
        unhandled = reason;
      };
      process.on('unhandledRejection', onUnhandled);
      try {
        a.io.to('calls').emit('call', nested(50_000));
        // The rejection would surface within a few turns of the event loop; leave it time to.
        const arrival = subscriber.next('call');
        assert.deepEqual((await notify(a.url, 'call', { call: 'after' })).body, { ok: true });
        await withTimeout(arrival, 'a fresh call after the failed broadcast');
        assert.equal(unhandled, undefined, 'no unhandled rejection');
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    } finally {
      subscriber.close();
    }
  });
});
