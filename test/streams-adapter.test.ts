/**
 * The broker's own cluster adapter (src/cluster/streams-adapter.ts) and the
 * format it writes (src/cluster/stream-format.ts): entries and sessions as
 * `@socket.io/redis-streams-adapter` 0.3 writes them, so that a node of the
 * previous release and one of this release serve one cluster during a
 * rolling upgrade; every broadcast delivered from the stream, once, the
 * publisher's own included; a publication seen inside the `emit` that made it.
 */
import assert from 'node:assert/strict';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { io as ioV4, type Socket as ClientSocket } from 'socket.io-client';
import { causeOf, refusalReason } from '../src/cluster/refusals.ts';
import {
  broadcastOf,
  compareOffsets,
  decodeEntry,
  decodeSession,
  encodeEntry,
  encodeSession,
  reaches,
} from '../src/cluster/stream-format.ts';
import { StreamsHub, type PublicationPolicy } from '../src/cluster/streams-adapter.ts';
import { startBroker } from './helpers/broker.ts';
import { closeAll, connect, type TestClient } from './helpers/clients.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';
import { until } from './helpers/wait.ts';

const STREAM = 'spicy-action:events';
const PREFIX = 'spicy-action';
const SESSIONS = 'spicy-action:session:';
const RECOVERY_MS = 60_000;

describe('the stream format', () => {
  it('writes a broadcast as upstream does (uid, nsp, type, JSON data), plus its seq, and reads it back', () => {
    const data = { packet: { type: 2, data: ['call', { n: 1 }], nsp: '/' }, opts: { rooms: ['calls'], except: [], flags: {} } };
    const fields = encodeEntry({ uid: 'a1', nsp: '/', type: 3, data }, 7);
    assert.deepEqual(fields, ['uid', 'a1', 'nsp', '/', 'type', '3', 'data', JSON.stringify(data), 'seq', '7']);
    const message = decodeEntry(fields);
    assert.deepEqual(message, { uid: 'a1', nsp: '/', type: 3, data, seq: 7 });
    assert.deepEqual(broadcastOf(message!)?.opts.rooms, ['calls']);
  });

  it('writes binary data as base64 msgpack, reads entries without a seq (an earlier release) and refuses other shapes', () => {
    const data = { packet: { type: 2, data: ['blob', new Uint8Array([1, 2, 3])] }, opts: { rooms: [], except: [] } };
    const fields = encodeEntry({ uid: 'b', nsp: '/', type: 3, data }, 1);
    assert.doesNotMatch(fields[7] as string, /^\{/);
    const decoded = decodeEntry(fields.slice(0, 8));
    assert.equal(decoded?.seq, undefined);
    assert.deepEqual([...((broadcastOf(decoded!)?.packet.data[1] as Uint8Array) ?? [])], [1, 2, 3]);
    assert.equal(decodeEntry(['nsp', '/']), undefined, 'no uid, no type');
    assert.equal(decodeEntry(['uid', 'a', 'nsp', '/', 'type', '3', 'data', '{broken']), undefined);
    assert.equal(broadcastOf({ type: 3, data: { packet: { type: 2, data: [] }, opts: { rooms: [], except: [] }, requestId: 'r' } }), undefined, 'a broadcast awaiting acks is not an event of the stream');
    assert.equal(broadcastOf({ type: 4, data: {} }), undefined);
  });

  it('saves a session as msgpack in base64, and reads it back; a session of another shape throws', () => {
    const session = { sid: 's', pid: 'p', rooms: ['s', 'calls'], data: { x: 1 } };
    assert.deepEqual(decodeSession(encodeSession(session)), session);
    assert.throws(() => decodeSession(Buffer.from([0xc0]).toString('base64')), /unknown shape/);
  });

  it('orders offsets numerically and applies rooms and except as upstream does', () => {
    assert.ok(compareOffsets('9-1', '10-0') < 0);
    assert.ok(compareOffsets('10-2', '10-10') < 0);
    assert.equal(compareOffsets('10-2', '10-2'), 0);
    assert.equal(reaches(['s1', 'calls'], { rooms: [], except: [] }), true, 'no room: everyone');
    assert.equal(reaches(['s1', 'calls'], { rooms: ['calls'], except: [] }), true);
    assert.equal(reaches(['s1', 'calls'], { rooms: ['calls'], except: ['s1'] }), false);
    assert.equal(reaches(['s1'], { rooms: new Set(['calls']), except: new Set() }), false);
  });
});

/** A Socket.IO server on an ephemeral port, with recovery on, closed when the file ends. */
async function socketServer(adapter: unknown): Promise<{ io: Server; url: string; http: HttpServer }> {
  const http = createServer();
  const io = new Server(http, { adapter: adapter as never, connectionStateRecovery: { maxDisconnectionDuration: RECOVERY_MS } });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  io.on('connection', (socket) => socket.on('join', (room: string, ack: () => void) => void Promise.resolve(socket.join(room)).then(ack)));
  after(() => io.close());
  return { io, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, http };
}

/** A 4.x client that records the `e` events it gets (arguments, the offset last). */
async function client(url: string, room: string): Promise<{ socket: ClientSocket; got: unknown[][] }> {
  const socket = ioV4(url, { transports: ['websocket'], reconnection: false, forceNew: true });
  const got: unknown[][] = [];
  socket.on('e', (...args: unknown[]) => got.push(args));
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  await socket.timeout(5_000).emitWithAck('join', room);
  after(() => socket.close());
  return { socket, got };
}

/** A policy that writes everything, or, while `givingUp`, starts each event's write and gives up on it at once. */
function policy(state: { givingUp: boolean }): PublicationPolicy {
  return {
    publish: (kind, write) => {
      if (!state.givingUp || kind !== 'event') return write();
      void write().catch(() => undefined);
      return Promise.reject(new Error('given up'));
    },
    failed: () => undefined,
    restorable: () => true,
  };
}

describe('the adapter on Redis', { skip: redisMissing() }, async () => {
  const redis = await RedisServer.start();
  const connections: Redis[] = [];
  const hubs: StreamsHub[] = [];
  after(() => {
    for (const hub of hubs) hub.close();
    for (const connection of connections) connection.disconnect();
  });
  const hub = async (state: { givingUp: boolean }): Promise<StreamsHub> => {
    const connection = new Redis(redis.url);
    connections.push(connection);
    const made = new StreamsHub(connection, { streamName: STREAM, maxLen: 10_000, channelPrefix: PREFIX, sessionKeyPrefix: SESSIONS }, policy(state));
    await made.start();
    hubs.push(made);
    return made;
  };

  it('delivers a publication given up on here once, at once, even when its write lands after all; the stream order otherwise', async () => {
    const stateA = { givingUp: false };
    const a = await socketServer((await hub(stateA)).Adapter);
    const b = await socketServer((await hub({ givingUp: false })).Adapter);
    const onA = await client(a.url, 'r');
    const onB = await client(b.url, 'r');
    stateA.givingUp = true;
    a.io.to('r').emit('e', 1);
    stateA.givingUp = false;
    a.io.to('r').emit('e', 2);
    b.io.to('r').emit('e', 3);
    await until('both clients have three events', () => onA.got.length >= 3 && onB.got.length >= 3, 5_000);
    // The write given up on landed: the other node gets it from the stream; here it was delivered at once, without an offset.
    assert.deepEqual(onA.got[0], [1]);
    assert.deepEqual(onB.got[0]?.[0], 1);
    const entries = (await connections[0]!.xrange(STREAM, '-', '+')) as [string, string[]][];
    const offsets = entries.map(([id]) => id);
    assert.deepEqual(onA.got.slice(1).map((args) => args[1]), offsets.slice(1), 'the rest in stream order, with their offsets');
    assert.deepEqual(onB.got.map((args) => args[1]), offsets);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(onA.got.length, 3, 'nothing twice');
  });

  it('serves one cluster with a node of @socket.io/redis-streams-adapter 0.3: events both ways, and its sessions recovered here', async () => {
    const upstreamRedis = new Redis(redis.url);
    connections.push(upstreamRedis);
    const old = await socketServer(createAdapter(upstreamRedis, { streamName: STREAM, channelPrefix: PREFIX, sessionKeyPrefix: SESSIONS, maxLen: 10_000 }));
    const ours = await socketServer((await hub({ givingUp: false })).Adapter);
    const onOld = await client(old.url, 'u');
    const onOurs = await client(ours.url, 'u');
    // The upstream reader starts reading once its connection is up: probe until it does.
    let probed = false;
    onOld.socket.on('probe', () => (probed = true));
    await until('the old node reads the stream', () => {
      ours.io.to('u').emit('probe');
      return probed;
    }, 5_000);
    old.io.to('u').emit('e', 'from old');
    ours.io.to('u').emit('e', 'from ours');
    await until('each client has both', () => onOld.got.length >= 2 && onOurs.got.length >= 2, 5_000);
    assert.deepEqual(new Set(onOurs.got.map((args) => args[0])), new Set(['from old', 'from ours']));
    assert.deepEqual(new Set(onOld.got.map((args) => args[0])), new Set(['from old', 'from ours']));

    // A session the old node saved, recovered on this one, with what it missed.
    const pid = (onOld.socket as unknown as { _pid: string })._pid;
    const gone = new Promise((resolve) => onOld.socket.once('disconnect', resolve));
    (onOld.socket.io as unknown as { engine: { close(): void } }).engine.close();
    await gone;
    await until('session saved', async () => (await upstreamRedis.exists(`${SESSIONS}${pid}`)) === 1, 5_000);
    ours.io.to('u').emit('e', 'missed');
    await until('in the stream', async () => ((await upstreamRedis.xrevrange(STREAM, '+', '-', 'COUNT', 1)) as [string, string[]][]).length === 1, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    (onOld.socket.io as unknown as { uri: string }).uri = ours.url;
    (onOld.socket.io as unknown as { engine?: unknown }).engine = undefined;
    const back = new Promise<void>((resolve) => onOld.socket.once('connect', () => resolve()));
    onOld.socket.connect();
    await back;
    assert.equal(onOld.socket.recovered, true, 'recovered on the new node');
    await until('the missed event', () => onOld.got.some((args) => args[0] === 'missed'), 5_000);
  });
});

describe('the adapter in a broker', { skip: redisMissing() }, async () => {
  const redis = await RedisServer.start();
  const broker = await startBroker({ redisUrl: redis.url });
  const admin = new Redis(redis.url);
  const clients: TestClient[] = [];
  after(() => {
    closeAll(clients);
    admin.disconnect();
  });

  it('publishes inside the emit (what Cluster#track relies on), saves sessions in the stream format, and reads refusals from real replies', async () => {
    // socket.io-adapter's publishAndReturnOffset calls doPublish synchronously: the acknowledgement learns the outcome.
    const outcome = broker.cluster.track(() => broker.io.to('nobody').emit('internals', 1));
    assert.ok(outcome instanceof Promise, 'the publication is seen inside the emit');
    assert.deepEqual(await outcome, { ok: true });

    const client = await connect('v4', broker.url, { transports: ['websocket'], reconnection: false });
    clients.push(client);
    assert.equal(await client.ack('join', 'calls'), true);
    const pid = (client.raw as unknown as { _pid: string })._pid;
    const gone = new Promise((resolve) => client.raw.on('disconnect', resolve));
    (client.raw.io as { engine: { close(): void } }).engine.close();
    await gone;
    let raw: string | null = null;
    for (let tries = 0; raw === null && tries < 250; tries++) {
      raw = await admin.get(`${SESSIONS}${pid}`);
      if (raw === null) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(raw, 'the session is saved');
    const session = decodeSession(raw);
    assert.equal(session.pid, pid);
    assert.ok(session.rooms.includes('calls'));

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
