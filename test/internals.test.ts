/**
 * The private parts of Socket.IO, Engine.IO and socket.io-adapter the broker
 * relies on (src/internals.ts) are still there and still shaped as expected. When an upgrade changes one,
 * this fails and names it.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { engineBacklog, internalsProblems, recoveryOptions, waitingSessions } from '../src/internals.ts';
import { startBroker } from './helpers/broker.ts';
import { closeAll, connect, type TestClient } from './helpers/clients.ts';

describe('internals the broker relies on', () => {
  const clients: TestClient[] = [];
  after(() => closeAll(clients));

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
});
