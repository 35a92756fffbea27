/**
 * The private parts of Socket.IO, Engine.IO and socket.io-adapter the broker
 * relies on (src/internals.ts) are still there and still shaped as expected. When an upgrade changes one,
 * this fails and names it.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { engineBacklog, engineIdle, internalsProblems, recoveryOptions, waitingSessions } from '../src/internals.ts';
import { ROOT, startBroker } from './helpers/broker.ts';
import { closeAll, connect, type TestClient } from './helpers/clients.ts';
import { until } from './helpers/wait.ts';

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
    assert.ok(Array.isArray(backlog.packets));
    assert.equal(typeof backlog.writable, 'boolean');
    assert.equal(typeof backlog.bufferedAmount, 'number');
  });

  it('reads what waits on an Engine.IO connection: the packets behind a batch the WebSocket has not yet taken', async () => {
    // Recovery off: no offset is added to the events.
    const broker = await startBroker({ recoveryWindowMs: 0 });
    const client = await connect('v4', broker.url, { transports: ['websocket'] });
    clients.push(client);
    const socket = broker.io.of('/').sockets.get(client.id);
    assert.ok(socket, 'the socket on the server');
    assert.deepEqual(engineBacklog(socket.conn).packets, [], 'nothing waits on an idle connection');
    assert.equal(engineIdle(socket.conn), true);
    // The first emit goes to the transport at once, which is then not writable until `ws` has sent it;
    // the next two wait in the write buffer, each an Engine.IO message holding the encoded Socket.IO packet.
    for (const n of [1, 2, 3]) socket.emit('probe', `payload ${n}`);
    const backlog = engineBacklog(socket.conn);
    assert.equal(backlog.writable, false);
    assert.equal(engineIdle(socket.conn), false);
    assert.deepEqual(
      backlog.packets.map((packet) => packet.data),
      ['2["probe","payload 2"]', '2["probe","payload 3"]'],
    );
    assert.equal(typeof backlog.bufferedAmount, 'number');
    // Once `ws` has handed everything to the kernel, the connection is idle again.
    await until('the connection drained', () => engineIdle(socket.conn));
  });
});

describe("Engine.IO's write buffer", () => {
  it('is read by src/internals.ts alone (engineBacklog), outside comments', () => {
    const src = join(ROOT, 'src');
    const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'));
    const code = (file: string): string => readFileSync(join(src, file), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    const readers = files.filter((file) => /\bwriteBuffer\b/.test(code(file)));
    assert.deepEqual(readers, ['internals.ts']);
  });
});
