/** The bus lists (docs/protocol.md#buses-and-rooms). */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BusesError, DEFAULT_BUSES, loadBuses, parseBuses } from '../src/buses.ts';
import { ROOT } from './helpers/broker.ts';

const dir = mkdtempSync(join(tmpdir(), 'spicy-buses-'));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('bus lists', () => {
  it('the repository buses.json holds the defaults of the spec', () => {
    const buses = loadBuses(join(ROOT, 'buses.json'));
    assert.deepEqual(buses.publicBuses, ['everyone']);
    assert.deepEqual(buses.privateBuses, ['calls', 'internal', 'support']);
    assert.deepEqual(buses.hostBuses, ['dial_calls', 'locations', 'traces']);
    assert.equal(buses.notificationRooms.source, '^\\w+:');
    assert.deepEqual([...buses.known].sort(), ['calls', 'dial_calls', 'everyone', 'internal', 'locations', 'support', 'traces']);
    assert.deepEqual(buses, DEFAULT_BUSES);
  });

  it('takes the default for each missing key', () => {
    const buses = parseBuses({ private_buses: ['calls', 'billing'] });
    assert.deepEqual(buses.privateBuses, ['calls', 'billing']);
    assert.deepEqual(buses.hostBuses, ['dial_calls', 'locations', 'traces']);
    assert.ok(buses.known.has('billing'));
  });

  it('matches notification rooms with the pattern', () => {
    const rooms = DEFAULT_BUSES.notificationRooms;
    for (const room of ['endpoint:alice@example.net', 'number:33123456789', 'number_domain:example.net', 'trace:r0.42']) {
      assert.ok(rooms.test(room), room);
    }
    for (const room of ['calls', ':x', 'end-point:x', '']) assert.ok(!rooms.test(room), room);
  });

  const broken: [string, string, RegExp][] = [
    ['not JSON', '{"public_buses": [', /not valid JSON/],
    ['not an object', '["calls"]', /expected a JSON object/],
    ['a list that is not an array', '{"private_buses": "calls"}', /private_buses must be an array/],
    ['a bus that is not a string', '{"host_buses": ["traces", 7]}', /host_buses holds 7/],
    ['an empty bus name', '{"public_buses": [""]}', /public_buses holds ""/],
    ['a bus in two lists', '{"public_buses": ["calls"]}', /bus "calls" is listed twice/],
    ['a bad pattern', '{"notification_rooms": "(("}', /notification_rooms: Invalid regular expression/],
    ['a pattern that is not a string', '{"notification_rooms": 1}', /notification_rooms must be a regular expression/],
    ['an unknown key (a typo)', '{"privat_buses": []}', /unknown key "privat_buses"/],
  ];
  for (const [what, text, message] of broken) {
    it(`refuses a file with ${what}, naming the file`, () => {
      const path = file(`${what.replace(/\W+/g, '-')}.json`, text);
      assert.throws(() => loadBuses(path), (error: unknown) => {
        assert.ok(error instanceof BusesError);
        assert.ok(error.message.startsWith(`bus file ${path}: `), error.message);
        assert.match(error.message, message);
        assert.doesNotMatch(error.message, /\n/);
        return true;
      });
    });
  }

  it('refuses a missing file, naming it', () => {
    assert.throws(() => loadBuses(join(dir, 'nope.json')), /^BusesError: bus file .*nope\.json: cannot be read \(ENOENT\)$/);
  });
});
