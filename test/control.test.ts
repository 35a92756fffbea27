/** Control events (docs/protocol.md#control-events), as each client generation sends them. */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { startBroker } from './helpers/broker.ts';
import { closeAll, connect, flush, GENERATIONS, type TestClient } from './helpers/clients.ts';

const broker = await startBroker();
const open: TestClient[] = [];
afterEach(() => closeAll(open.splice(0)));
async function client(generation: (typeof GENERATIONS)[number] = 'v4'): Promise<TestClient> {
  const c = await connect(generation, broker.url);
  open.push(c);
  return c;
}
/** The rooms the broker has this client in, its own id room left out. */
function roomsOf(c: TestClient): string[] {
  const socket = broker.io.sockets.sockets.get(c.id);
  assert.ok(socket, 'socket is connected');
  return [...socket.rooms].filter((r) => r !== c.id).sort();
}

describe('configure', () => {
  for (const generation of GENERATIONS) {
    it(`joins and leaves private and host buses, and answers configured (${generation})`, async () => {
      const c = await client(generation);
      const request = { locations: true, calls: true, everyone: true, endpoint: true, unknown: 1 };
      const configured = c.next('configured');
      c.emit('configure', request);
      assert.deepEqual((await configured)[0], request, 'configured echoes the request');
      assert.deepEqual(roomsOf(c), ['calls', 'locations'], 'public buses and unknown keys are ignored');

      const again = c.next('configured');
      c.emit('configure', { calls: false, traces: true, support: 'yes' });
      await again;
      assert.deepEqual(roomsOf(c), ['locations', 'traces'], 'false leaves; only true and false count');
    });
  }

  it('acknowledges with what it joined and left', async () => {
    const c = await client();
    assert.deepEqual(await c.ack('configure', { dial_calls: true, internal: false }), { ok: true, joined: ['dial_calls'], left: ['internal'] });
  });

  it('then delivers the bus traffic, as the OpenSIPS helper relies on', async () => {
    const helper = await client('v2');
    const dashboard = await client('v4');
    const configured = helper.next('configured');
    helper.emit('configure', { locations: true });
    await configured;
    const request = helper.next('location');
    dashboard.emit('location', 'alice@example.net');
    assert.equal((await request)[0], 'alice@example.net');
  });

  for (const payload of [undefined, null, 'calls', ['calls'], 42]) {
    it(`refuses ${JSON.stringify(payload) ?? 'no payload'} with a failed event and changes nothing`, async () => {
      const c = await client('v1');
      c.emit('configure', { support: true });
      await c.next('configured');
      const failed = c.next('failed');
      if (payload === undefined) c.emit('configure');
      else c.emit('configure', payload);
      assert.deepEqual((await failed)[0], { event: 'configure', msg: 'configure needs an object {<bus>: true|false}' });
      assert.deepEqual(roomsOf(c), ['support']);
      assert.equal(c.count('configured'), 1, 'no configured for the refused request');
    });
  }

  it('refuses through the callback when there is one', async () => {
    const c = await client();
    assert.deepEqual(await c.ack('configure', 'calls'), { ok: false, error: 'configure needs an object {<bus>: true|false}' });
    assert.equal(c.count('failed'), 0);
  });
});

describe('join and leave', () => {
  for (const [joinName, leaveName] of [['join', 'leave'], ['subscribe', 'unsubscribe']] as const) {
    for (const generation of GENERATIONS) {
      it(`${joinName} and ${leaveName} a room (${generation})`, async () => {
        const c = await client(generation);
        const publisher = await client();
        assert.equal(await c.ack(joinName, 'endpoint:alice@example.net'), true);
        assert.deepEqual(roomsOf(c), ['endpoint:alice@example.net']);
        const arrival = c.next('call');
        publisher.emit('call', { n: 1, _in: ['endpoint:alice@example.net'] });
        assert.equal(((await arrival)[0] as { n: number }).n, 1);

        assert.equal(await c.ack(leaveName, 'endpoint:alice@example.net'), true);
        assert.deepEqual(roomsOf(c), []);
        publisher.emit('call', { n: 2, _in: ['endpoint:alice@example.net'] });
        await flush(publisher, [c]);
        assert.deepEqual(c.payloads('call'), [{ n: 1, _in: ['endpoint:alice@example.net'] }], 'nothing after leaving');
      });
    }
  }

  it('joins without a callback, as internal servers do', async () => {
    const c = await client('v1');
    c.emit('join', 'calls');
    await flush(c, [c]);
    assert.deepEqual(roomsOf(c), ['calls']);
  });

  it('leaving a room one is not in is fine', async () => {
    const c = await client();
    assert.equal(await c.ack('leave', 'number:1'), true);
  });

  const badRooms: [string, unknown][] = [
    ['a number', 42],
    ['an empty name', ''],
    ['null', null],
    ['an object', { room: 'calls' }],
    ['a name of 257 characters', 'r'.repeat(257)],
  ];
  for (const [what, room] of badRooms) {
    for (const event of ['join', 'leave']) {
      it(`${event} refuses ${what}: false to a callback, failed otherwise`, async () => {
        const c = await client('v2');
        await c.ack('join', 'calls');
        assert.equal(await c.ack(event, room), false);
        const failed = c.next('failed');
        c.emit(event, room);
        assert.deepEqual((await failed)[0], { event, msg: 'room must be a non-empty string of at most 256 characters' });
        assert.deepEqual(roomsOf(c), ['calls'], 'rooms unchanged');
      });
    }
  }

  it('accepts a room name of exactly 256 characters', async () => {
    const c = await client();
    assert.equal(await c.ack('join', 'r'.repeat(256)), true);
  });

  it('a socket cannot leave its own room', async () => {
    const c = await client();
    assert.equal(await c.ack('leave', c.id), false);
    assert.ok(broker.io.sockets.sockets.get(c.id)!.rooms.has(c.id));
  });
});

describe('ping, shout and notify_users', () => {
  it('ping goes to every host bus, with its payload, once per socket', async () => {
    const [dialer, opensips, tracer, both, bystander, admin] = await Promise.all([client(), client(), client(), client(), client(), client()]);
    dialer.emit('configure', { dial_calls: true });
    opensips.emit('configure', { locations: true });
    tracer.emit('configure', { traces: true });
    both.emit('configure', { locations: true, traces: true });
    bystander.emit('configure', { calls: true, internal: true, support: true });
    await Promise.all([dialer, opensips, tracer, both, bystander].map((c) => c.next('configured')));

    assert.deepEqual(await admin.ack('ping', { at: 1 }), { ok: true });
    await flush(admin, [dialer, opensips, tracer, both, bystander]);
    for (const host of [dialer, opensips, tracer, both]) assert.deepEqual(host.payloads('ping'), [{ at: 1 }]);
    assert.equal(bystander.count('ping'), 0);
  });

  it('a host answers pong, routed to internal (4.x clients only: 1.x and 2.x reserve ping/pong)', async () => {
    const [host, admin] = await Promise.all([client(), client()]);
    await host.ack('configure', { traces: true });
    await admin.ack('join', 'internal');
    host.raw.on('ping', (data: unknown) => host.emit('pong', { host: 'tracer1', in_reply_to: data }));
    const pong = admin.next('pong');
    admin.emit('ping', 'r42');
    assert.deepEqual((await pong)[0], { host: 'tracer1', in_reply_to: 'r42' });
  });

  for (const generation of GENERATIONS) {
    it(`shout reaches internal as shouted {id, data} (${generation})`, async () => {
      const [admin, outsider, sender] = await Promise.all([client(), client(), client(generation)]);
      await admin.ack('join', 'internal');
      await outsider.ack('join', 'everyone');
      const shouted = admin.next('shouted');
      sender.emit('shout', { text: 'maintenance at 22:00' });
      assert.deepEqual((await shouted)[0], { id: sender.welcome.publicId, data: { text: 'maintenance at 22:00' } });
      await flush(sender, [outsider]);
      assert.equal(outsider.count('shouted'), 0);
    });
  }

  it('notify_users reaches internal and everyone, once for a socket in both', async () => {
    const [admin, user, both, other, sender] = await Promise.all([client(), client('v2'), client('v1'), client(), client()]);
    await admin.ack('join', 'internal');
    await user.ack('join', 'everyone');
    await both.ack('join', 'internal');
    await both.ack('join', 'everyone');
    await other.ack('join', 'support');
    assert.deepEqual(await sender.ack('notify_users', { text: 'hello' }), { ok: true });
    await flush(sender, [admin, user, both, other]);
    for (const c of [admin, user, both]) assert.deepEqual(c.payloads('notify'), [{ text: 'hello' }]);
    assert.equal(other.count('notify'), 0);
  });
});

describe('resilience', () => {
  it('bad input from one client does not disturb another', async () => {
    const [bad, good, publisher] = await Promise.all([client('v1'), client('v2'), client()]);
    await good.ack('join', 'calls');
    for (const [event, payload] of [['configure', null], ['join', {}], ['register', 'x'], ['leave', 7], ['call', { _in: [1, {}, null] }]] as const) {
      bad.emit(event, payload);
    }
    publisher.emit('call', { ok: 1 });
    await good.receive('call', 2);
    // The junk _in entries are skipped; the event still reaches its bus, unchanged.
    const calls = good.payloads('call');
    assert.equal(calls.length, 2);
    assert.deepEqual(new Set(calls.map((c) => JSON.stringify(c))), new Set(['{"_in":[1,{},null]}', '{"ok":1}']));
    assert.ok(bad.raw.connected, 'the offender stays connected');
    assert.equal(bad.count('failed'), 4);
  });
});
