/** The monitor page's own logic (monitor/model.js), shared with `tail`, run in Node. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AUDIT_ROOM, BROKER_EVENTS, EventLog, eventRooms, formatTime, isUnauthorized, makeFilter, matches, parseLimit, parsePayload, prettyJson, summary } from '../monitor/model.js';
import { AUDIT_ROOM as BROKER_AUDIT_ROOM } from '../src/audit.ts';
import { DEFAULT_ROUTES } from '../src/routes.ts';
import { eventRooms as tailEventRooms } from '../src/tail/tail-format.ts';

describe('monitor event log', () => {
  it('keeps the last N events, newest first', () => {
    const log = new EventLog<number>(3);
    for (let i = 1; i <= 5; i++) log.push(i);
    assert.equal(log.size, 3);
    assert.deepEqual(log.newestFirst(), [5, 4, 3]);
    assert.deepEqual(log.newestFirst((n) => n % 2 === 1), [5, 3]);
    assert.deepEqual(log.newestFirst(undefined, 2), [5, 4]);
  });

  it('keeps the newest on resizing, and empties on clear', () => {
    const log = new EventLog<number>(5);
    for (let i = 1; i <= 5; i++) log.push(i);
    log.resize(2);
    assert.deepEqual(log.newestFirst(), [5, 4]);
    log.resize(4);
    log.push(6);
    assert.deepEqual(log.newestFirst(), [6, 5, 4]);
    log.clear();
    assert.equal(log.size, 0);
    assert.deepEqual(log.newestFirst(), []);
    assert.throws(() => new EventLog(0), RangeError);
  });

  it('reads the "keep the last" setting', () => {
    assert.equal(parseLimit('500'), 500);
    assert.equal(parseLimit(' 10 '), 10);
    for (const bad of ['', '9', '100001', '1e3', '-5', 'lots', '2.5']) assert.equal(parseLimit(bad), undefined, bad);
  });
});

describe('monitor filters', () => {
  const report = { event: 'report_ops', rooms: ['support'], data: { error: 'core_threshold', host: 'sbc1.example.net' } };
  const call = { event: 'call', rooms: ['calls', 'endpoint:alice@example.net'], data: { state: 'end' } };

  it('shows an event whose name contains one of the words, ignoring case', () => {
    assert.equal(matches(call, makeFilter('', '')), true);
    assert.equal(matches(call, makeFilter('CALL', '')), true);
    assert.equal(matches(report, makeFilter('call', '')), false);
    assert.equal(matches(report, makeFilter('call, report', '')), true);
    assert.equal(matches(report, makeFilter('location report', '')), true);
  });

  it('shows an event whose payload or rooms contain the text, ignoring case', () => {
    assert.equal(matches({ ...report }, makeFilter('', 'SBC1')), true);
    assert.equal(matches({ ...call }, makeFilter('', 'alice@')), true);
    assert.equal(matches({ ...call }, makeFilter('', 'sbc1')), false);
    assert.equal(matches({ ...report }, makeFilter('call', 'sbc1')), false, 'both filters apply');
  });
});

describe('monitor display', () => {
  it('folds a payload onto one line, cut with an ellipsis', () => {
    assert.equal(summary({ a: 1 }), '{"a":1}');
    assert.equal(summary(undefined), '');
    const long = summary({ sip: 'x'.repeat(1000) }, 50);
    assert.equal(long.length, 50);
    assert.ok(long.endsWith('…'));
    assert.equal(prettyJson({ a: [1] }), '{\n  "a": [\n    1\n  ]\n}');
    assert.equal(prettyJson(undefined), '(no payload)');
  });

  it('writes the time of day with milliseconds', () => {
    assert.equal(formatTime(new Date(2026, 0, 1, 9, 5, 7, 42).getTime()), '09:05:07.042');
  });

  it('reads the test payload, an object for /_notify', () => {
    assert.deepEqual(parsePayload('{"a": 1}'), { ok: true, value: { a: 1 } });
    assert.deepEqual(parsePayload('"alice@example.net"'), { ok: true, value: 'alice@example.net' });
    assert.deepEqual(parsePayload('  '), { ok: true, value: undefined });
    assert.equal(parsePayload('{a:1}').ok, false);
    assert.equal(parsePayload('[1]', { objectOnly: true }).ok, false);
    assert.equal(parsePayload('', { objectOnly: true }).ok, false);
  });

  it('is what tail uses to name rooms', () => {
    assert.equal(tailEventRooms, eventRooms);
  });
});

describe('broker events and refusals, for the page and tail', () => {
  it('lists the events the broker sends on its own, none of which has a route', () => {
    assert.deepEqual([...BROKER_EVENTS].sort(), ['audit', 'configured', 'failed', 'notify', 'ping', 'shouted']);
    for (const event of BROKER_EVENTS) assert.equal(DEFAULT_ROUTES.has(event), false, event);
  });

  it('shows audit records in the audit room, whatever rooms the audited event went to', () => {
    const record = { kind: 'routed', event: 'call', by: 'call-handler', id: 'V2F__U5zx1c-Jr45', rooms: ['calls'] };
    assert.deepEqual(eventRooms('audit', record, new Set([AUDIT_ROOM, 'calls']), new Map([['call', 'calls']]), []), [AUDIT_ROOM]);
    assert.deepEqual(eventRooms('audit', record, new Set(['calls']), new Map(), []), []);
    assert.equal(AUDIT_ROOM, BROKER_AUDIT_ROOM, 'the page and the broker name one room');
  });

  it('tells a refusal for want of a token from other connection errors', () => {
    assert.equal(isUnauthorized(new Error('unauthorized')), true);
    assert.equal(isUnauthorized(Object.assign(new Error('xhr poll error'), { description: 401 })), true);
    assert.equal(isUnauthorized(Object.assign(new Error('xhr poll error'), { description: 403 })), true);
    assert.equal(isUnauthorized(Object.assign(new Error('xhr poll error'), { description: 500 })), false);
    assert.equal(isUnauthorized(new Error('websocket error')), false);
    assert.equal(isUnauthorized(undefined), false);
  });
});
