/**
 * The private parts of Socket.IO, Engine.IO, socket.io-adapter, the Redis
 * Streams adapter and ioredis the broker relies on (src/internals.ts)
 * are still there and still shaped as expected. When an upgrade changes one,
 * this fails and names it.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MessageType } from 'socket.io-adapter';
import { Redis } from 'ioredis';
import {
  ADAPTER_BROADCAST,
  decodeSession,
  engineBacklog,
  internalsProblems,
  recoveryOptions,
  waitingSessions,
} from '../src/internals.ts';
import { causeOf, refusalReason } from '../src/cluster/refusals.ts';
import { startBroker } from './helpers/broker.ts';
import { closeAll, connect, type TestClient } from './helpers/clients.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';

describe('internals the broker relies on', () => {
  const clients: TestClient[] = [];
  after(() => closeAll(clients));

  it('socket.io-adapter still numbers BROADCAST as the cluster expects', () => {
    assert.equal(MessageType.BROADCAST, ADAPTER_BROADCAST);
  });

  it('finds the server options, the session table and the Engine.IO write buffer on one process', async () => {
    const broker = await startBroker();
    const client = await connect('v4', broker.url, { transports: ['websocket'] });
    clients.push(client);
    const socket = broker.io.of('/').sockets.get(client.id);
    assert.ok(socket, 'the socket on the server');
    assert.deepEqual(internalsProblems({ io: broker.io, conn: socket.conn, inMemoryAdapter: true }), []);
    assert.ok(recoveryOptions(broker.io), 'recovery on by default');
    assert.ok(waitingSessions(broker.io) instanceof Map);
    const backlog = engineBacklog(socket.conn);
    assert.ok(Array.isArray(backlog.writeBuffer));
    assert.equal(typeof backlog.writable, 'boolean');
    assert.equal(typeof backlog.bufferedAmount, 'number');
  });

  describe('with Redis', { skip: redisMissing() }, () => {
    it('finds the Streams adapter methods, the ioredis methods, the session format and the reply errors', async () => {
      const redis = await RedisServer.start();
      const broker = await startBroker({ redisUrl: redis.url });
      const admin = new Redis(redis.url);
      after(() => admin.disconnect());
      assert.deepEqual(internalsProblems({ io: broker.io, clusterAdapter: true, redis: admin }), []);
      assert.equal(waitingSessions(broker.io), undefined, 'no session table on this node: they are in Redis');
      // The ClusterAdapter calls doPublish synchronously inside emit: that is how an acknowledgement learns the outcome.
      const outcome = broker.cluster.track(() => broker.io.to('nobody').emit('internals', 1));
      assert.ok(outcome instanceof Promise, 'the publication is seen inside the emit');
      assert.deepEqual(await outcome, { ok: true });

      // A session saved by the adapter reads back with its rooms.
      const client = await connect('v4', broker.url, { transports: ['websocket'], reconnection: false });
      clients.push(client);
      assert.equal(await client.ack('join', 'calls'), true);
      const pid = (client.raw as unknown as { _pid: string })._pid;
      const gone = new Promise((resolve) => client.raw.on('disconnect', resolve));
      (client.raw.io as { engine: { close(): void } }).engine.close();
      await gone;
      let raw: string | null = null;
      for (let tries = 0; raw === null && tries < 250; tries++) {
        raw = await admin.get(`spicy-action:session:${pid}`);
        if (raw === null) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(raw, 'the session is saved');
      const session = decodeSession(raw);
      assert.equal(session.pid, pid);
      assert.ok(session.rooms.includes('calls'));

      // Refusals read from real replies: a command and a MULTI (EXECABORT with the cause kept).
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'maxmemory', '1');
      try {
        const single = await admin.set('k', 'v').catch((error: unknown) => error);
        assert.equal(refusalReason(single), 'oom');
        const multi = await admin.multi().set('k', 'v').exec().catch((error: unknown) => error);
        assert.equal(refusalReason(causeOf(multi)), 'oom');
        assert.match(causeOf(multi).message, /^OOM/);
      } finally {
        await admin.config('SET', 'maxmemory', '0');
      }
      assert.equal(refusalReason(new Error('Connection is closed.')), undefined);
    });
  });
});
