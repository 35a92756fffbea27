/**
 * What src/internals.ts relies on, for the guards, of Socket.IO, Engine.IO,
 * socket.io-parser and the in-memory adapter, checked against the installed
 * versions on real servers. A failure here means an upgrade changed one of
 * them: a guard (session binding, the binary refusal, the backlog cap, the
 * waiting-room index, own-room joins) may be off until the module is fixed.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { Server, type Socket } from 'socket.io';
import { Decoder, Encoder, PacketType } from 'socket.io-parser';
import {
  engineSession,
  GENERATED_ID,
  isBinaryHeader,
  jsonOnlyParser,
  looksLikeSocketId,
  NO_FLAGS,
  NO_ROOMS,
  OneRoom,
  onAnyEvent,
  onEngineSession,
  recoveryEnabled,
  replaceSessionTable,
  useEngineMiddleware,
  watchBacklog,
  type EngineSession,
  type KeptPacket,
  type WaitingSession,
} from '../src/internals.ts';
import { startBroker } from './helpers/broker.ts';
import { closeAll, connect, GENERATIONS, withTimeout, type TestClient } from './helpers/clients.ts';

describe('Socket.IO internals the guards rely on', async () => {
  const broker = await startBroker({ recoveryWindowMs: 0 });
  const clients: TestClient[] = [];
  after(() => closeAll(clients));

  it('socket ids and Engine.IO ids have the shape own-room joins are refused by', async () => {
    for (const generation of GENERATIONS) {
      const client = await connect(generation, broker.url);
      clients.push(client);
      const engineId = (client.raw.io as { engine: { id: string } }).engine.id;
      assert.match(client.id, GENERATED_ID, `${generation} socket id`);
      assert.match(engineId, GENERATED_ID, `${generation} Engine.IO id`);
      assert.ok(looksLikeSocketId(client.id));
      if (generation !== 'v4') assert.equal(client.id, engineId, '1.x/2.x socket ids are Engine.IO ids');
    }
    for (const bus of ['calls', 'internal', 'endpoint:alice@example.net', 'trace:r0.42']) assert.equal(looksLikeSocketId(bus), false);
  });

  it('Engine.IO runs use() middlewares on every request and upgrade, and names sessions in clients', async () => {
    const seen: { sid: string | undefined; upgrade: boolean }[] = [];
    const sessions: EngineSession[] = [];
    onEngineSession(broker.io, (session) => sessions.push(session));
    useEngineMiddleware(broker.io, (req, _res, next) => {
      seen.push({ sid: req._query.sid, upgrade: req._query.transport === 'websocket' });
      next();
    });
    const client = await connect('v2', broker.url);
    clients.push(client);
    const engine = (client.raw.io as { engine: { transport: { name: string }; once(e: string, l: () => void): void } }).engine;
    if (engine.transport.name !== 'websocket') await withTimeout(new Promise<void>((r) => engine.once('upgrade', r)), 'upgrade');
    assert.ok(seen.some((r) => r.sid === undefined), 'the handshake went through the middleware');
    assert.ok(seen.some((r) => r.sid === client.id && r.upgrade), 'the upgrade of the session went through the middleware');
    const session = sessions.find((s) => s.id === client.id);
    assert.ok(session, 'the connection event gives the Engine.IO session');
    assert.equal(session.protocol, 3);
    assert.equal(typeof session.remoteAddress, 'string');
    assert.match(session.request.url ?? '', /EIO=3/, 'the handshake request is kept, with its query');
    assert.equal(engineSession(broker.io, client.id), session);
    assert.equal(engineSession(broker.io, 'no-such-session'), undefined);
    assert.equal(engineSession(broker.io, 'constructor'), undefined, 'no inherited property is a session');
  });

  it('socket.io-parser numbers binary packets 5 and 6, and its Decoder takes strings through add()', () => {
    assert.equal(PacketType.BINARY_EVENT, 5);
    assert.equal(PacketType.BINARY_ACK, 6);
    assert.equal(isBinaryHeader('51-["call",{"_placeholder":true,"num":0}]'), true);
    assert.equal(isBinaryHeader('2["call",{}]'), false);
    let refusals = 0;
    const { Decoder: JsonOnly } = jsonOnlyParser(() => refusals++);
    const decoder = new JsonOnly();
    assert.ok(decoder instanceof Decoder);
    const decoded: unknown[] = [];
    decoder.on('decoded', (packet: unknown) => decoded.push(packet));
    decoder.add('2["call",{"a":1}]');
    assert.equal(decoded.length, 1);
    assert.throws(() => decoder.add('51-["call",{"_placeholder":true,"num":0}]'), /binary/);
    assert.throws(() => decoder.add(Buffer.alloc(4)), /binary/);
    assert.equal(refusals, 2);
  });

  it('the in-memory adapter keeps sessions in a Map, packets in an array, and encodes each broadcast once through _encode', async () => {
    const recovering = await startBroker();
    assert.equal(recoveryEnabled(recovering.io), true);
    assert.equal(recoveryEnabled(broker.io), false, 'RECOVERY_WINDOW=0 turns it off');
    const sets: string[] = [];
    class Watched extends Map<string, WaitingSession> {
      override set(pid: string, session: WaitingSession): this {
        sets.push(pid);
        return super.set(pid, session);
      }
    }
    // The broker replaced the table already (its waiting-room index); a second replacement copies it.
    assert.equal(replaceSessionTable(recovering.io, new Watched()), true);
    const kept: number[] = [];
    assert.ok(watchBacklog(recovering.io, (_packet, bytes) => kept.push(bytes)));
    const client = await connect('v4', recovering.url);
    assert.equal(await client.ack('join', 'calls'), true);
    recovering.io.to('calls').emit('call', { call: 'x'.repeat(1_000) });
    await client.receive('call', 1);
    // With recovery on, Socket.IO sends even `welcome` through the socket's own room: kept too.
    assert.equal(kept.length, 2, 'the kept broadcasts (welcome, call) were reported');
    assert.ok(kept[1]! > 1_000 && kept[1]! < 1_100, `the call's encoded size (${kept[1]})`);
    // A dropped transport (not a clean disconnect) is what Socket.IO keeps a session for.
    (client.raw.io as { engine: { close(): void } }).engine.close();
    const deadline = Date.now() + 5_000;
    while (sets.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(sets.length, 1, 'a dropped session was kept through set()');
  });

  it('the broker\'s encoder writes what socket.io-parser writes for a packet without binary parts, skipping its walk', () => {
    const { Encoder: JsonOnlyEncoder } = jsonOnlyParser(() => undefined);
    const ours = new JsonOnlyEncoder();
    const theirs = new Encoder();
    const payload = JSON.parse(JSON.stringify({ call: 'x', _in: ['endpoint:a'], data: { n: [1, 2, { deep: null }] }, text: 'é "quoted" </script>' })) as unknown;
    for (const packet of [
      { type: PacketType.EVENT, nsp: '/', data: ['call', payload, 'offset-1'] },
      { type: PacketType.EVENT, nsp: '/', data: ['welcome', { id: 'x' }] },
      { type: PacketType.ACK, nsp: '/', id: 7, data: [{ ok: true, rooms: 2 }] },
      { type: PacketType.ACK, nsp: '/', id: 8, data: [false] },
      { type: PacketType.CONNECT, nsp: '/', data: { sid: 'abc', pid: 'def' } },
      { type: PacketType.DISCONNECT, nsp: '/' },
      { type: PacketType.CONNECT_ERROR, nsp: '/', data: { message: 'unauthorized' } },
    ]) {
      assert.deepEqual(ours.encode(packet), theirs.encode(packet), `packet type ${packet.type}`);
    }
  });

  it('any-listeners live in _anyListeners and are called with this = the socket: one function serves every socket', async () => {
    const httpServer = createServer();
    const io = new Server(httpServer, { allowEIO3: true }); // 2.x clients speak Engine.IO 3
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    try {
      const seen: { self: Socket; event: string; args: unknown[] }[] = [];
      const shared = function (this: Socket, event: string, ...args: unknown[]): void {
        seen.push({ self: this, event, args });
      };
      const second = (): void => undefined;
      const sockets: Socket[] = [];
      io.on('connection', (socket) => {
        onAnyEvent(socket, shared);
        onAnyEvent(socket, second);
        sockets.push(socket);
        socket.emit('welcome', { id: socket.id }); // what the test clients wait for
      });
      const url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
      const a = await connect('v4', url);
      const b = await connect('v2', url);
      clients.push(a, b);
      a.raw.emit('hello', 1);
      b.raw.emit('hello', 2);
      const deadline = Date.now() + 5_000;
      while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(seen.map((s) => [s.event, s.args]).sort(), [['hello', [1]], ['hello', [2]]]);
      for (const s of seen) assert.ok(sockets.includes(s.self), 'this is the socket that received the event');
      assert.notEqual(seen[0]!.self, seen[1]!.self);
      for (const socket of sockets) {
        assert.deepEqual(socket.listenersAny(), [shared, second], 'listenersAny sees both, in order');
        socket.offAny(shared);
        assert.deepEqual(socket.listenersAny(), [second], 'offAny removes it');
      }
    } finally {
      io.close();
    }
  });

  it('the adapter reads a kept packet\'s except only with has: a shared empty set keeps recovery exact', async () => {
    const recovering = await startBroker();
    const kept: KeptPacket[] = [];
    assert.ok(watchBacklog(recovering.io, (packet) => kept.push(packet)));
    const client = await connect('v4', recovering.url, { transports: ['websocket'], reconnection: false });
    clients.push(client);
    assert.equal(await client.ack('join', 'calls'), true);
    recovering.io.to('calls').emit('call', { n: 0 });
    await client.receive('call', 1);
    const gone = new Promise((resolve) => client.raw.on('disconnect', resolve));
    (client.raw.io as { engine: { close(): void } }).engine.close();
    await gone;
    // Missed: one event for `calls`, one for `calls` but not its own room, one for `calls` again.
    recovering.io.to('calls').emit('call', { n: 1 });
    recovering.io.to('calls').except(client.id).emit('call', { n: 2 });
    recovering.io.to('calls').emit('call', { n: 3 });
    const plain = kept.filter((packet) => packet.opts.except.size === 0);
    assert.ok(plain.length >= 3 && plain.every((packet) => packet.opts.except === NO_ROOMS), 'kept packets that exclude nobody share one empty set');
    assert.ok(kept.every((packet) => packet.opts.flags === NO_FLAGS), 'and kept packets without flags one empty object');
    assert.ok(kept.every((packet) => packet.opts.rooms instanceof OneRoom), 'kept packets sent to one room hold it alone');
    recovering.io.to(['calls', 'everyone']).emit('call', { n: 4 });
    assert.ok(kept.at(-1)!.opts.rooms instanceof Set, 'a packet sent to several rooms keeps their Set');
    assert.ok(kept.some((packet) => packet.opts.except.has(client.id)), 'a real except is kept as it was');
    const welcomed = client.next('welcome');
    (client.raw as unknown as { connect(): void }).connect();
    await welcomed;
    assert.equal(client.raw.recovered, true);
    assert.deepEqual((client.payloads('call') as { n: number }[]).map((p) => p.n), [0, 1, 3, 4], 'what it missed, but what excluded it');
  });
});
