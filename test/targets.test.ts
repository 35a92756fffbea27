/** Who receives an event (docs/protocol.md#routed-events and #notify-endpoint). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeTargets, notifyTargets, type TargetLimits } from '../src/targets.ts';

const limits: TargetLimits = { notificationRooms: /^\w+:/, maxInRooms: 100, maxRoomNameLength: 256 };

describe('targets of a routed event', () => {
  it('is the bus alone without _in', () => {
    assert.deepEqual(computeTargets('calls', { state: 'end' }, limits), { rooms: ['calls'], skipped: 0, overflow: 0 });
  });

  it('is nothing for a null route without _in', () => {
    assert.deepEqual(computeTargets(null, { state: 'end' }, limits).rooms, []);
  });

  it('takes _in as an array, as call handlers send it', () => {
    const data = { _in: ['endpoint:alice@example.net', 'number:33123456789', 'number_domain:example.net'] };
    assert.deepEqual(computeTargets('calls', data, limits).rooms, ['calls', ...data._in]);
  });

  it('takes _in as a string, as the trace collector sends it', () => {
    assert.deepEqual(computeTargets('internal', { _in: 'trace:r0.123' }, limits).rooms, ['internal', 'trace:r0.123']);
    assert.deepEqual(computeTargets(null, { _in: 'trace:r0.123' }, limits).rooms, ['trace:r0.123']);
  });

  it('skips entries that are not notification rooms', () => {
    const data = { _in: ['endpoint:a@b', 42, null, { room: 'x:y' }, ['x:y'], 'calls', 'support', '', `x:${'y'.repeat(300)}`] };
    assert.deepEqual(computeTargets('calls', data, limits), { rooms: ['calls', 'endpoint:a@b'], skipped: 8, overflow: 0 });
  });

  it('names each room once', () => {
    const data = { _in: ['endpoint:a@b', 'endpoint:a@b', 'number:1'] };
    assert.deepEqual(computeTargets('calls', data, limits).rooms, ['calls', 'endpoint:a@b', 'number:1']);
  });

  it('ignores _in that is not a string or an array, and payloads that are not objects', () => {
    for (const data of [{ _in: 42 }, { _in: { a: 'x:y' } }, 'alice@example.net', undefined, null, 7, ['endpoint:a@b']]) {
      assert.deepEqual(computeTargets('locations', data, limits).rooms, ['locations'], JSON.stringify(data));
    }
  });

  it('uses at most maxInRooms entries and counts the rest', () => {
    const rooms = Array.from({ length: 150 }, (_, i) => `number:${i}`);
    const targets = computeTargets('calls', { _in: rooms }, limits);
    assert.equal(targets.rooms.length, 101);
    assert.deepEqual(targets.rooms.slice(1), rooms.slice(0, 100));
    assert.equal(targets.overflow, 50);
  });

  it('follows the configured pattern', () => {
    const strict = { ...limits, notificationRooms: /^(endpoint|number):/ };
    assert.deepEqual(computeTargets(null, { _in: ['endpoint:a', 'trace:r1', 'number:2'] }, strict), { rooms: ['endpoint:a', 'number:2'], skipped: 1, overflow: 0 });
  });
});

describe('targets of a /_notify push', () => {
  it('is the bus, and endpoint:<endpoint> when the body names one', () => {
    assert.deepEqual(notifyTargets('support', { name: 'invalid_source', endpoint: 'alice@example.net' }, 256), ['support', 'endpoint:alice@example.net']);
    assert.deepEqual(notifyTargets('support', { type: 'pike_blocked', ip: '192.0.2.1' }, 256), ['support']);
  });

  it('ignores an endpoint that is empty or not a string, and _in', () => {
    for (const endpoint of ['', 42, null, ['a'], { a: 1 }]) assert.deepEqual(notifyTargets('support', { endpoint }, 256), ['support']);
    assert.deepEqual(notifyTargets('support', { _in: ['endpoint:x'] }, 256), ['support']);
  });
});
