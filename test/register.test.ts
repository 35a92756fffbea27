/** Run-time routes (docs/protocol.md#register), as call handlers register them. */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { CONTROL_EVENTS, RESERVED_EVENTS } from '../src/protocol.ts';
import { DEFAULT_ROUTES } from '../src/routes.ts';
import { startBroker } from './helpers/broker.ts';
import { closeAll, connect, flush, GENERATIONS, type Generation, type TestClient } from './helpers/clients.ts';

const broker = await startBroker();
const open: TestClient[] = [];
afterEach(() => closeAll(open.splice(0)));
async function clients(n: number, generation: Generation = 'v4', url = broker.url): Promise<TestClient[]> {
  const list = await Promise.all(Array.from({ length: n }, () => connect(generation, url)));
  open.push(...list);
  return list;
}

describe('register', () => {
  for (const generation of GENERATIONS) {
    it(`routes a new event to a bus at once, for sockets connected before (${generation})`, async () => {
      // The sender and the listener both connected before the route existed.
      const [sender, listener, handler] = await clients(3, generation);
      await listener!.ack('configure', { dial_calls: true });
      const event = `place-call-${generation}`;
      assert.deepEqual(await handler!.ack('register', { event, default_room: 'dial_calls' }), { ok: true, event, bus: 'dial_calls' });
      sender!.emit(event, { destination: '33987654321' });
      assert.deepEqual((await listener!.next(event))[0], { destination: '33987654321' });
    });
  }

  it('registers without a callback, as call handlers do, and repeats harmlessly', async () => {
    const [handler, listener] = await clients(2, 'v1');
    await listener!.ack('join', 'calls');
    // Each module of a call handler sends the same configure and register on every (re)connection.
    for (let i = 0; i < 3; i++) {
      handler!.emit('configure', { dial_calls: true });
      handler!.emit('register', { event: 'queuer', default_room: 'calls' });
      handler!.emit('register', { event: 'conference:participants', default_room: 'calls' });
    }
    handler!.emit('queuer', { queue: 'support', waiting: 2 });
    handler!.emit('conference:participants', { room: 'c1', count: 3 });
    await flush(handler!, [listener!]);
    assert.deepEqual(listener!.payloads('queuer'), [{ queue: 'support', waiting: 2 }]);
    assert.deepEqual(listener!.payloads('conference:participants'), [{ room: 'c1', count: 3 }]);
    assert.equal(handler!.count('failed'), 0);
  });

  for (const [what, room] of [['null', null], ['missing', undefined], ['unknown', 'no_such_bus'], ['an entity room', 'endpoint:a@b']] as const) {
    it(`a ${what} default_room gives a null route: _in delivery only`, async () => {
      const [handler, bus, alice] = await clients(3);
      const event = `some:event:${what}`;
      const request = room === undefined ? { event } : { event, default_room: room };
      assert.deepEqual(await handler!.ack('register', request), { ok: true, event, bus: null });
      await bus!.ack('join', 'calls');
      await alice!.ack('join', 'endpoint:alice@example.net');
      handler!.emit(event, { _in: 'endpoint:alice@example.net' });
      await flush(handler!, [bus!, alice!]);
      assert.equal(alice!.count(event), 1);
      assert.equal(bus!.count(event), 0);
    });
  }

  it('overrides a built-in route, for every connected socket', async () => {
    const [admin, reporter, support, internal] = await clients(4);
    await support!.ack('join', 'support');
    await internal!.ack('join', 'internal');
    assert.deepEqual(await admin!.ack('register', { event: 'report_dev', default_room: 'internal' }), { ok: true, event: 'report_dev', bus: 'internal' });
    reporter!.emit('report_dev', { error: 'x', application: 'a:b', host: 'h', stamp: '2017-05-01T10:00:00.000Z' });
    await flush(reporter!, [support!, internal!]);
    assert.equal(internal!.count('report_dev'), 1);
    assert.equal(support!.count('report_dev'), 0);
    assert.deepEqual(await admin!.ack('register', { event: 'report_dev', default_room: 'support' }), { ok: true, event: 'report_dev', bus: 'support' });
  });

  it('re-registering an event to another bus moves it, never doubles it', async () => {
    const [handler, calls, internal, both] = await clients(4, 'v2');
    await calls!.ack('join', 'calls');
    await internal!.ack('join', 'internal');
    await both!.ack('join', 'calls');
    await both!.ack('join', 'internal');
    await handler!.ack('register', { event: 'moving', default_room: 'calls' });
    await handler!.ack('register', { event: 'moving', default_room: 'internal' });
    await handler!.ack('register', { event: 'moving', default_room: 'internal' });
    handler!.emit('moving', { n: 1 });
    await flush(handler!, [calls!, internal!, both!]);
    assert.equal(calls!.count('moving'), 0);
    assert.equal(internal!.count('moving'), 1);
    assert.equal(both!.count('moving'), 1);
  });

  it('treats __proto__ and constructor as plain event names', async () => {
    const [handler, listener] = await clients(2);
    await listener!.ack('join', 'calls');
    assert.deepEqual(await handler!.ack('register', { event: '__proto__', default_room: 'calls' }), { ok: true, event: '__proto__', bus: 'calls' });
    handler!.emit('__proto__', { odd: true });
    assert.deepEqual((await listener!.next('__proto__'))[0], { odd: true });
    assert.equal(broker.broker.routes.get('constructor'), undefined);
  });

  const refused: [string, unknown, string][] = [
    ['no payload', undefined, 'register needs an object {event, default_room}'],
    ['a string', 'place-call', 'register needs an object {event, default_room}'],
    ['no event', { default_room: 'calls' }, 'event must be a non-empty string of at most 256 characters'],
    ['a numeric event', { event: 12, default_room: 'calls' }, 'event must be a non-empty string of at most 256 characters'],
    ['an event of 257 characters', { event: 'e'.repeat(257) }, 'event must be a non-empty string of at most 256 characters'],
    ...[...CONTROL_EVENTS].map((event): [string, unknown, string] => [event, { event, default_room: 'calls' }, `"${event}" is a control event and cannot be registered`]),
    ...[...RESERVED_EVENTS].map((event): [string, unknown, string] => [event, { event, default_room: 'calls' }, `"${event}" is reserved by Socket.IO and cannot be registered`]),
  ];
  for (const [what, request, error] of refused) {
    it(`refuses ${what}, with the reason, and changes nothing`, async () => {
      const [handler] = await clients(1, 'v1');
      const before = [...broker.broker.routes.entries()];
      assert.deepEqual(await handler!.ack('register', request), { ok: false, error });
      const failed = handler!.next('failed');
      handler!.emit('register', request);
      assert.deepEqual((await failed)[0], { event: 'register', msg: error });
      assert.deepEqual([...broker.broker.routes.entries()], before);
    });
  }

  it('a refused register of join leaves join a control event', async () => {
    const [handler] = await clients(1);
    await handler!.ack('register', { event: 'join', default_room: 'calls' });
    assert.equal(await handler!.ack('join', 'endpoint:x@y'), true);
  });

  it('refuses new routes past the cap, and still replaces existing ones', async () => {
    const small = await startBroker({ maxRoutes: DEFAULT_ROUTES.size + 1 });
    const [handler] = await clients(1, 'v4', small.url);
    assert.deepEqual(await handler!.ack('register', { event: 'one', default_room: 'calls' }), { ok: true, event: 'one', bus: 'calls' });
    const full = `the route table is full (${DEFAULT_ROUTES.size + 1} routes)`;
    assert.deepEqual(await handler!.ack('register', { event: 'two', default_room: 'calls' }), { ok: false, error: full });
    assert.equal(small.broker.routes.get('two'), undefined);
    assert.deepEqual(await handler!.ack('register', { event: 'one', default_room: null }), { ok: true, event: 'one', bus: null });
    assert.deepEqual(await handler!.ack('register', { event: 'call', default_room: 'support' }), { ok: true, event: 'call', bus: 'support' });
  });
});
