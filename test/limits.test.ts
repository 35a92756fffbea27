/**
 * Limits (docs/protocol.md#limits): each is a setting, and a client past it gets a clear refusal (or 413, or a
 * disconnection for an oversized Socket.IO message) that is counted; nobody else notices.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_ROUTES } from '../src/routes.ts';
import { notify, request, startBroker } from './helpers/broker.ts';
import { closeAll, connect, flush, GENERATIONS, withTimeout } from './helpers/clients.ts';
import { parseMetrics } from './helpers/metrics.ts';
import { until } from './helpers/wait.ts';

const broker = await startBroker({
  maxRoomNameLength: 40,
  maxRoomsPerSocket: 3,
  maxInRooms: 2,
  maxBodyBytes: 2_000,
  maxMessageBytes: 20_000,
});

async function refused(reason: string): Promise<number> {
  return parseMetrics((await request(`${broker.url}/metrics`)).body as string).value('spicy_action_refused_total', { reason });
}

describe('limits', () => {
  it('refuses room names past MAX_ROOM_NAME_LENGTH, with false or a failed event', async () => {
    const client = await connect('v4', broker.url);
    const legacy = await connect('v1', broker.url);
    try {
      const before = await refused('bad_room');
      const long = `endpoint:${'a'.repeat(40 - 9 + 1)}`;
      assert.equal(long.length, 41);
      assert.equal(await client.ack('join', long), false);
      assert.equal(await client.ack('join', long.slice(0, 40)), true, '40 characters are fine');
      const failed = legacy.next('failed');
      legacy.emit('subscribe', long);
      assert.deepEqual((await failed)[0], { event: 'subscribe', msg: 'room must be a non-empty string of at most 40 characters' });
      assert.equal(await refused('bad_room'), before + 2);
      assert.ok(!broker.io.sockets.adapter.rooms.has(long), 'nothing joined');
    } finally {
      closeAll([client, legacy]);
    }
  });

  it('refuses a room past MAX_ROOMS_PER_SOCKET, and lets the socket rejoin, leave, and join again', async () => {
    const client = await connect('v2', broker.url);
    try {
      const before = await refused('too_many_rooms');
      for (const room of ['a:1', 'a:2', 'a:3']) assert.equal(await client.ack('join', room), true);
      assert.equal(await client.ack('join', 'a:4'), false);
      assert.equal(await client.ack('join', 'a:2'), true, 'a room it is already in does not count twice');
      assert.equal(await client.ack('leave', 'a:1'), true);
      assert.equal(await client.ack('join', 'a:4'), true);
      assert.equal(await refused('too_many_rooms'), before + 1);
      const rooms = broker.io.sockets.sockets.get(client.id)!.rooms;
      assert.deepEqual([...rooms].filter((r) => r !== client.id).sort(), ['a:2', 'a:3', 'a:4']);
    } finally {
      client.close();
    }
  });

  it('refuses a route past MAX_ROUTES; replacing a route still works', async () => {
    const small = await startBroker({ maxRoutes: DEFAULT_ROUTES.size + 2 });
    const client = await connect('v4', small.url);
    try {
      assert.deepEqual(await client.ack('register', { event: 'lim-1', default_room: 'calls' }), { ok: true, event: 'lim-1', bus: 'calls' });
      assert.deepEqual(await client.ack('register', { event: 'lim-2', default_room: null }), { ok: true, event: 'lim-2', bus: null });
      const full = await client.ack<{ ok: boolean; error: string }>('register', { event: 'lim-3', default_room: 'calls' });
      assert.equal(full.ok, false);
      assert.match(full.error, /route table is full/);
      assert.equal(small.broker.routes.get('lim-3'), undefined);
      assert.deepEqual(await client.ack('register', { event: 'lim-2', default_room: 'support' }), { ok: true, event: 'lim-2', bus: 'support' });
      assert.deepEqual(await client.ack('register', { event: 'call', default_room: 'internal' }), { ok: true, event: 'call', bus: 'internal' });
      assert.deepEqual(await client.ack('register', { event: 'call', default_room: 'calls' }), { ok: true, event: 'call', bus: 'calls' });
      const metrics = parseMetrics((await request(`${small.url}/metrics`)).body as string);
      assert.equal(metrics.value('spicy_action_refused_total', { reason: 'too_many_routes' }), 1);
      assert.equal(metrics.value('spicy_action_routes'), DEFAULT_ROUTES.size + 2);
    } finally {
      client.close();
    }
  });

  it('uses at most MAX_IN_ROOMS _in rooms of an event, counts the rest, and still delivers the event', async () => {
    const sender = await connect('v1', broker.url);
    const inRoom = await connect('v4', broker.url);
    const pastLimit = await connect('v4', broker.url);
    try {
      const before = await refused('in_overflow');
      assert.equal(await inRoom.ack('join', 'endpoint:b'), true);
      assert.equal(await pastLimit.ack('join', 'endpoint:c'), true);
      sender.emit('location:update', { aor: 'x', _in: ['endpoint:a', 'endpoint:b', 'endpoint:c', 'endpoint:d'] });
      await inRoom.receive('location:update', 1);
      await flush(sender, [inRoom, pastLimit]);
      assert.equal(pastLimit.count('location:update'), 0, 'the third _in room is past the limit');
      assert.equal(await refused('in_overflow'), before + 1);
    } finally {
      closeAll([sender, inRoom, pastLimit]);
    }
  });

  it('answers 413 to a /_notify body past MAX_BODY_BYTES, and counts it', async () => {
    const before = await refused('too_large');
    const answer = await notify(broker.url, 'report_ops', { error: 'x'.repeat(3_000) });
    assert.equal(answer.status, 413);
    assert.equal(answer.body.ok, false);
    assert.match(answer.body.error, /too large/);
    assert.equal((await notify(broker.url, 'report_ops', { error: 'x'.repeat(1_000) })).status, 200);
    assert.equal(await refused('too_large'), before + 1);
  });

  for (const generation of GENERATIONS) {
    for (const transport of ['polling', 'websocket']) {
      it(`drops a socket.io-client ${generation} message past MAX_MESSAGE_BYTES over ${transport}: the sender is disconnected, others are not`, async () => {
        const sender = await connect(generation, broker.url, { transports: [transport] });
        const other = await connect('v4', broker.url);
        const witness = await connect('v2', broker.url);
        try {
          const before = await refused('too_large');
          assert.equal(await other.ack('join', 'calls'), true);
          sender.emit('call', { n: 1, pad: 'x'.repeat(15_000) });
          await other.receive('call', 1);
          const gone = withTimeout(new Promise((resolve) => sender.raw.on('disconnect', resolve)), `${generation} disconnect`, 10_000);
          sender.emit('call', { n: 2, pad: 'x'.repeat(25_000) });
          await gone;
          // The refusal is counted once the broker notices it (at once over WebSocket, at the POST over polling).
          await until('the refusal is counted', async () => (await refused('too_large')) >= before + 1, 5_000);
          assert.equal(await refused('too_large'), before + 1);
          await flush(witness, [other]);
          assert.deepEqual(other.payloads('call').map((p) => (p as { n: number }).n), [1], 'the oversized message reached nobody');
          assert.ok(broker.io.sockets.sockets.has(other.id), 'the other client stays connected');
        } finally {
          closeAll([sender, other, witness]);
        }
      });
    }
  }
});
