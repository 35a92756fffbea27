/**
 * What src/internals.ts relies on, for the guards, of Socket.IO, Engine.IO,
 * socket.io-parser and the in-memory adapter, checked against the installed
 * versions on real servers. A failure here means an upgrade changed one of
 * them: a guard (session binding, the binary refusal, the backlog cap, the
 * waiting-room index, own-room joins) may be off until the module is fixed.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Decoder, PacketType } from 'socket.io-parser';
import {
  catchAsyncBroadcast,
  engineSession,
  GENERATED_ID,
  isBinaryHeader,
  jsonOnlyParser,
  looksLikeSocketId,
  onEngineSession,
  recoveryEnabled,
  replaceSessionTable,
  useEngineMiddleware,
  watchBacklog,
  type EngineSession,
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

  it('a cluster-less adapter broadcasts synchronously: the async guard leaves its throws to the caller', () => {
    const fresh = broker.io.of('/');
    catchAsyncBroadcast(broker.io, () => assert.fail('nothing asynchronous here'));
    const deep = JSON.parse('['.repeat(20_000) + ']'.repeat(20_000)) as unknown;
    assert.throws(() => fresh.to('nobody').emit('call', deep), RangeError);
  });
});
