/**
 * `join` must not accept another socket's id. With recovery on, Socket.IO
 * sends what is meant for one socket through that socket's own room, so a
 * joiner would read the other's `configured` and `failed`. Room names shaped like a
 * socket id are refused (buses and `prefix:` rooms never are), on one process
 * and across a cluster, where the other socket is not even local.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { RunningBroker } from '../src/server.ts';
import { startBroker } from './helpers/broker.ts';
import { closeAll, connect, flush, GENERATIONS, type TestClient } from './helpers/clients.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';

function ownRoomSuite(nodes: () => { a: RunningBroker; b: RunningBroker }): void {
  const clients: TestClient[] = [];
  after(() => closeAll(clients));

  for (const generation of GENERATIONS) {
    it(`refuses a ${generation} client joining another socket's own room, and it reads nothing meant for that socket`, async () => {
      const { a, b } = nodes();
      const [victim, attacker, legacyVictim] = await Promise.all([
        connect('v4', a.url),
        connect(generation, b.url),
        connect('v1', a.url),
      ]);
      clients.push(victim, attacker, legacyVictim);
      assert.equal(await attacker.ack('join', victim.id), false);
      assert.equal(await attacker.ack('subscribe', legacyVictim.id), false, 'a 1.x id (its Engine.IO id) too');
      const failed = attacker.next('failed');
      attacker.emit('join', victim.id);
      assert.deepEqual((await failed)[0], { event: 'join', msg: "a socket cannot join another socket's own room" });
      // What the victims get alone: `configured`, and `failed` for bad input without a callback.
      victim.emit('configure', { calls: true, secret: 'victim-only' });
      legacyVictim.emit('join', 42);
      await victim.receive('configured', 1);
      await legacyVictim.receive('failed', 1);
      await flush(victim, [attacker]);
      assert.equal(attacker.count('configured'), 0);
      assert.equal(attacker.count('failed'), 1, 'only its own refusal');
      // Its own room, buses and notification rooms stay open.
      assert.equal(await attacker.ack('join', attacker.id), true);
      for (const room of ['calls', 'internal', 'everyone', 'dial_calls', 'endpoint:alice@example.net', 'number:33123456789']) {
        assert.equal(await attacker.ack('join', room), true, room);
      }
    });
  }
}

describe('own rooms, one process with recovery on', async () => {
  const broker = await startBroker();
  ownRoomSuite(() => ({ a: broker, b: broker }));
});

describe('own rooms, across a cluster', { skip: redisMissing() }, async () => {
  const redis = await RedisServer.start();
  const [a, b] = await Promise.all([startBroker({ redisUrl: redis.url }), startBroker({ redisUrl: redis.url })]);
  ownRoomSuite(() => ({ a, b }));
});
