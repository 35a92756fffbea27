/** The route table (docs/protocol.md#default-routes and #register). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_BUSES } from '../src/buses.ts';
import { CONTROL_EVENTS, RESERVED_EVENTS } from '../src/protocol.ts';
import { DEFAULT_ROUTES, RouteTable, type RouteChange } from '../src/routes.ts';
import { DOCUMENTED_ROUTES } from './helpers/documented.ts';

describe('route table', () => {
  it('holds exactly the default routes of the spec', () => {
    const expected = new Map(Object.entries(DOCUMENTED_ROUTES).flatMap(([bus, events]) => events.map((e) => [e, bus] as const)));
    assert.deepEqual(new Map(DEFAULT_ROUTES), expected);
    const table = new RouteTable(DEFAULT_BUSES);
    assert.equal(table.size, expected.size);
    for (const [event, bus] of expected) assert.equal(table.get(event), bus, event);
  });

  it('knows nothing else, and treats prototype names as plain names', () => {
    const table = new RouteTable(DEFAULT_BUSES);
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'unknown']) assert.equal(table.get(name), undefined, name);
    assert.deepEqual(table.register({ event: '__proto__', default_room: 'calls' }), { ok: true, event: '__proto__', bus: 'calls' });
    assert.equal(table.get('__proto__'), 'calls');
    assert.equal(table.get('constructor'), undefined);
  });

  it('routes a registered event to a known bus', () => {
    const table = new RouteTable(DEFAULT_BUSES);
    assert.deepEqual(table.register({ event: 'place-call', default_room: 'dial_calls' }), { ok: true, event: 'place-call', bus: 'dial_calls' });
    assert.equal(table.get('place-call'), 'dial_calls');
  });

  for (const room of [undefined, null, 'no_such_bus', 42, 'endpoint:alice@example.net']) {
    it(`gives a null route for default_room ${JSON.stringify(room)}`, () => {
      const table = new RouteTable(DEFAULT_BUSES);
      assert.deepEqual(table.register({ event: 'some:event', default_room: room }), { ok: true, event: 'some:event', bus: null });
      assert.equal(table.get('some:event'), null);
    });
  }

  it('replaces earlier routes, built-in ones included', () => {
    const table = new RouteTable(DEFAULT_BUSES);
    table.register({ event: 'call', default_room: 'internal' });
    assert.equal(table.get('call'), 'internal');
    table.register({ event: 'call', default_room: null });
    assert.equal(table.get('call'), null);
  });

  const refused: [string, unknown, string][] = [
    ['no object', 'call', 'bad_payload'],
    ['null', null, 'bad_payload'],
    ['an array', [{ event: 'x' }], 'bad_payload'],
    ['no event', { default_room: 'calls' }, 'bad_event'],
    ['an empty event', { event: '' }, 'bad_event'],
    ['an event that is not a string', { event: 7 }, 'bad_event'],
    ['an event of 257 characters', { event: 'e'.repeat(257) }, 'bad_event'],
    ...[...CONTROL_EVENTS, ...RESERVED_EVENTS].map((event): [string, unknown, string] => [`"${event}"`, { event, default_room: 'calls' }, 'bad_event']),
  ];
  for (const [what, request, reason] of refused) {
    it(`refuses ${what} and changes nothing`, () => {
      const table = new RouteTable(DEFAULT_BUSES);
      const before = [...table.entries()];
      const result = table.register(request);
      assert.equal(result.ok, false);
      assert.equal(!result.ok && result.reason, reason);
      assert.ok(!result.ok && result.error.length > 0);
      assert.deepEqual([...table.entries()], before);
    });
  }

  it('accepts an event of exactly 256 characters', () => {
    assert.equal(new RouteTable(DEFAULT_BUSES).register({ event: 'e'.repeat(256) }).ok, true);
  });

  it('refuses new routes past the cap, but still replaces existing ones', () => {
    const table = new RouteTable(DEFAULT_BUSES, { maxRoutes: DEFAULT_ROUTES.size + 2 });
    assert.equal(table.register({ event: 'a', default_room: 'calls' }).ok, true);
    assert.equal(table.register({ event: 'b', default_room: 'calls' }).ok, true);
    const third = table.register({ event: 'c', default_room: 'calls' });
    assert.deepEqual(third, { ok: false, reason: 'too_many_routes', error: `the route table is full (${DEFAULT_ROUTES.size + 2} routes)` });
    assert.equal(table.get('c'), undefined);
    assert.deepEqual(table.register({ event: 'a', default_room: 'support' }), { ok: true, event: 'a', bus: 'support' });
    assert.deepEqual(table.register({ event: 'call', default_room: null }), { ok: true, event: 'call', bus: null });
  });

  it('tells listeners of real changes only', () => {
    const table = new RouteTable(DEFAULT_BUSES);
    const changes: RouteChange[] = [];
    const stop = table.onChange((c) => changes.push(c));
    table.register({ event: 'queuer', default_room: 'calls' });
    table.register({ event: 'queuer', default_room: 'calls' });
    table.set('x', null);
    table.set('x', null);
    stop();
    table.set('y', null);
    assert.deepEqual(changes, [
      { event: 'queuer', bus: 'calls' },
      { event: 'x', bus: null },
    ]);
  });
});
