/** Routed events (docs/protocol.md#routed-events): every default route, `_in` delivery, exactly once per socket. */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { DEFAULT_BUSES } from '../src/buses.ts';
import { startBroker } from './helpers/broker.ts';
import { closeAll, connect, flush, GENERATIONS, type Generation, type TestClient } from './helpers/clients.ts';
import { SAMPLE_CALL as CALL } from './helpers/payloads.ts';
import { DOCUMENTED_ROUTES } from './helpers/documented.ts';

const broker = await startBroker();
const BUSES = [...DEFAULT_BUSES.known];

/** 1.x and 2.x clients use `ping` and `pong` for their heartbeat: they can neither send nor receive the broker's. */
const LEGACY_HEARTBEAT = new Set(['ping', 'pong']);

for (const generation of GENERATIONS) {
  describe(`default routes, socket.io-client ${generation}`, () => {
    const listeners = new Map<string, TestClient>();
    let publisher: TestClient;
    before(async () => {
      publisher = await connect(generation, broker.url);
      for (const bus of BUSES) {
        const c = await connect(generation, broker.url);
        assert.equal(await c.ack('join', bus), true);
        listeners.set(bus, c);
      }
    });
    after(() => closeAll([publisher, ...listeners.values()]));

    for (const [bus, events] of Object.entries(DOCUMENTED_ROUTES)) {
      for (const event of events) {
        if (generation !== 'v4' && LEGACY_HEARTBEAT.has(event)) continue;
        it(`${event} → ${bus}, and nowhere else`, async () => {
          const payload = { event, at: Date.now() };
          publisher.emit(event, payload);
          await flush(publisher, [...listeners.values()]);
          for (const [name, listener] of listeners) {
            assert.deepEqual(listener.payloads(event), name === bus ? [payload] : [], `${event} seen on ${name}`);
          }
          assert.equal(publisher.count(event), 0, 'the sender is in no bus');
        });
      }
    }
  });
}

describe('payloads', () => {
  const open: TestClient[] = [];
  afterEach(() => closeAll(open.splice(0)));
  async function pair(generation: Generation = 'v4', bus = 'calls'): Promise<[TestClient, TestClient]> {
    const [publisher, listener] = await Promise.all([connect(generation, broker.url), connect(generation, broker.url)]);
    open.push(publisher, listener);
    await listener.ack('join', bus);
    return [publisher, listener];
  }

  for (const generation of GENERATIONS) {
    it(`forwards a 0.5 KB call unchanged (${generation})`, async () => {
      const [publisher, listener] = await pair(generation);
      publisher.emit('call', CALL);
      assert.deepEqual((await listener.next('call'))[0], CALL);
    });
  }

  // With connection state recovery on (the default), Socket.IO appends each broadcast's offset as
  // a last string argument, for every client generation; the payload stays the first argument.
  const OFFSET = /^[\w-]+$/;

  for (const generation of GENERATIONS) {
    it(`forwards only the first argument, followed by the recovery offset (${generation})`, async () => {
      const [publisher, listener] = await pair(generation);
      publisher.emit('call', { n: 1 }, 'second', 3);
      const args = await listener.next('call');
      assert.equal(args.length, 2);
      assert.deepEqual(args[0], { n: 1 });
      assert.match(args[1] as string, OFFSET);
    });
  }

  it('forwards a plain string payload, as location requests carry', async () => {
    const [publisher, listener] = await pair('v1', 'locations');
    publisher.emit('location', 'alice@example.net');
    assert.equal((await listener.next('location'))[0], 'alice@example.net');
  });

  it('forwards an event without payload with a null one, so the offset is never read as its payload', async () => {
    const [publisher, listener] = await pair('v2', 'locations');
    publisher.emit('registrants');
    const args = await listener.next('registrants');
    assert.equal(args[0], null);
    assert.match(args[1] as string, OFFSET);
  });

  it('without recovery, forwards exactly the first argument, and nothing for an event without payload', async () => {
    const plain = await startBroker({ recoveryWindowMs: 0 });
    const [publisher, listener] = await Promise.all([connect('v1', plain.url), connect('v1', plain.url)]);
    open.push(publisher, listener);
    await listener.ack('join', 'locations');
    publisher.emit('location', 'alice@example.net', 'second');
    publisher.emit('registrants');
    await listener.receive('registrants', 1);
    assert.deepEqual(listener.received.filter(([event]) => event !== 'welcome'), [['location', 'alice@example.net'], ['registrants']]);
  });

  it('acknowledges a routed event with the number of rooms it went to', async () => {
    const [publisher] = await pair();
    assert.deepEqual(await publisher.ack('call', { _in: ['endpoint:x@y', 'junk'] }), { ok: true, rooms: 2 });
  });

  it('drops an event without a route, and says so to a callback', async () => {
    const [publisher, listener] = await pair();
    await listener.ack('join', 'everyone');
    await listener.ack('join', 'endpoint:alice@example.net');
    publisher.emit('no_such_event', { _in: ['endpoint:alice@example.net'] });
    assert.deepEqual(await publisher.ack('constructor', {}), { ok: false, error: 'no route for "constructor"' });
    await flush(publisher, [listener]);
    assert.equal(listener.count('no_such_event'), 0);
    assert.equal(listener.count('constructor'), 0);
    assert.equal(publisher.count('failed'), 0, 'no failed event: dropping is not an error of the sender');
  });
});

describe('_in delivery', () => {
  const open: TestClient[] = [];
  afterEach(() => closeAll(open.splice(0)));
  async function clients(n: number, generation: Generation = 'v4'): Promise<TestClient[]> {
    const list = await Promise.all(Array.from({ length: n }, () => connect(generation, broker.url)));
    open.push(...list);
    return list;
  }

  for (const generation of GENERATIONS) {
    it(`reaches each room named in an _in array (${generation})`, async () => {
      const [publisher, alice, number, domain, bob] = await clients(5, generation);
      await alice!.ack('join', 'endpoint:alice@example.net');
      await number!.ack('join', 'number:33123456789');
      await domain!.ack('join', 'number_domain:example.net');
      await bob!.ack('join', 'endpoint:bob@example.net');
      publisher!.emit('call', CALL);
      await flush(publisher!, [alice!, number!, domain!, bob!]);
      for (const c of [alice!, number!, domain!]) assert.deepEqual(c.payloads('call'), [CALL]);
      assert.equal(bob!.count('call'), 0);
    });
  }

  it('reaches the room named by an _in string, as the trace collector sends it', async () => {
    const [collector, dashboard, admin] = await clients(3, 'v1');
    await dashboard!.ack('join', 'trace:r0.123');
    await admin!.ack('join', 'internal');
    const report = { host: 'tracer1', in_reply_to: { id: 'r0.123' }, _in: 'trace:r0.123' };
    collector!.emit('trace_completed', report);
    assert.deepEqual((await dashboard!.next('trace_completed'))[0], report);
    assert.deepEqual((await admin!.receive('trace_completed', 1))[0], report);
  });

  it('skips entries that are not notification rooms: numbers, objects, bus names', async () => {
    const [publisher, alice, supportDesk] = await clients(3, 'v2');
    await alice!.ack('join', 'endpoint:alice@example.net');
    await supportDesk!.ack('join', 'support');
    const payload = { _in: [42, { room: 'support' }, 'support', null, 'endpoint:alice@example.net'] };
    publisher!.emit('call', payload);
    await flush(publisher!, [alice!, supportDesk!]);
    assert.deepEqual(alice!.payloads('call'), [payload]);
    assert.equal(supportDesk!.count('call'), 0, '_in cannot name a bus');
  });

  it('a null route delivers to _in rooms only', async () => {
    const [publisher, bus, alice] = await clients(3);
    await publisher!.ack('register', { event: 'queue:update', default_room: null });
    await bus!.ack('join', 'calls');
    await alice!.ack('join', 'endpoint:alice@example.net');
    publisher!.emit('queue:update', { _in: ['endpoint:alice@example.net'], size: 3 });
    publisher!.emit('queue:update', { size: 4 });
    await flush(publisher!, [bus!, alice!]);
    assert.deepEqual(alice!.payloads('queue:update'), [{ _in: ['endpoint:alice@example.net'], size: 3 }]);
    assert.equal(bus!.count('queue:update'), 0);
  });

  for (const generation of GENERATIONS) {
    it(`delivers once to a socket in the bus and several _in rooms (${generation})`, async () => {
      const [publisher, everywhere, busOnly, roomsOnly] = await clients(4, generation);
      for (const room of ['calls', 'endpoint:alice@example.net', 'number:33123456789', 'number_domain:example.net']) {
        await everywhere!.ack('join', room);
      }
      await busOnly!.ack('join', 'calls');
      await roomsOnly!.ack('join', 'number:33123456789');
      await roomsOnly!.ack('join', 'number_domain:example.net');
      publisher!.emit('call', CALL);
      publisher!.emit('call', { ...CALL, _in: [...CALL._in, ...CALL._in] });
      await flush(publisher!, [everywhere!, busOnly!, roomsOnly!]);
      for (const c of [everywhere!, busOnly!, roomsOnly!]) assert.equal(c.count('call'), 2, 'one copy per publication');
    });
  }

  it('the sender receives its own event once when it is in a target', async () => {
    const [publisher] = await clients(1);
    await publisher!.ack('join', 'calls');
    await publisher!.ack('join', 'endpoint:alice@example.net');
    publisher!.emit('call', CALL);
    await flush(publisher!, [publisher!]);
    assert.deepEqual(publisher!.payloads('call'), [CALL]);
  });
});
