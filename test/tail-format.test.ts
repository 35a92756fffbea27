/** What `spicy-action tail` (docs/protocol.md#watching-the-buses) reads from its command line and prints per event. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_TAIL_URL, eventRooms, formatEvent, parseTailArgs, TailUsageError, unknownRooms } from '../src/tail/tail-format.ts';

describe('tail arguments', () => {
  it('takes buses and rooms, in order, without repeats, with the defaults', () => {
    assert.deepEqual(parseTailArgs(['calls', 'support', 'calls', 'endpoint:alice@example.net'], {}), {
      help: false,
      options: { url: DEFAULT_TAIL_URL, token: undefined, json: false, rooms: ['calls', 'support', 'endpoint:alice@example.net'] },
    });
  });

  it('reads --url, --token and --json, in both flag forms and anywhere on the line', () => {
    const command = parseTailArgs(['calls', '--json', '--url', 'http://broker:4000/', '--token=s3cret', 'support'], {});
    assert.deepEqual(command, {
      help: false,
      options: { url: 'http://broker:4000', token: 's3cret', json: true, rooms: ['calls', 'support'] },
    });
  });

  it('takes the URL and token from BROKER_URL and BROKER_TOKEN, a flag winning', () => {
    const env = { BROKER_URL: 'https://mq.example.net', BROKER_TOKEN: 'from-env' };
    assert.deepEqual(parseTailArgs(['calls'], env), {
      help: false,
      options: { url: 'https://mq.example.net', token: 'from-env', json: false, rooms: ['calls'] },
    });
    const command = parseTailArgs(['--token', 'from-flag', 'calls'], env);
    assert.equal(command.help === false && command.options.token, 'from-flag');
  });

  it('treats everything after -- as room names', () => {
    const command = parseTailArgs(['--', '--json'], {});
    assert.deepEqual(command.help === false && command.options.rooms, ['--json']);
  });

  it('asks for help with --help or -h', () => {
    assert.deepEqual(parseTailArgs(['--help'], {}), { help: true });
    assert.deepEqual(parseTailArgs(['calls', '-h'], {}), { help: true });
  });

  for (const [argv, message] of [
    [[], /at least one bus or room/],
    [['--json'], /at least one bus or room/],
    [['--url'], /--url needs a value/],
    [['--token=', 'calls'], /--token needs a value/],
    [['--follow', 'calls'], /unknown option "--follow"/],
    [['--url', 'not a url', 'calls'], /expected a URL/],
    [['--url', 'ftp://broker', 'calls'], /http:\/\/ or https:\/\//],
    [['x'.repeat(257)], /at most 256 characters/],
    [[''], /non-empty/],
  ] as const) {
    it(`refuses ${JSON.stringify(argv).slice(0, 40)} with a clear message`, () => {
      assert.throws(() => parseTailArgs(argv, {}), (error: unknown) => error instanceof TailUsageError && message.test(error.message));
    });
  }
});

describe('rooms unknown to the broker', () => {
  it('names the rooms that are no bus and match no room pattern, in order', () => {
    const known = { buses: ['calls', 'support', 'everyone'], notificationRooms: '^\\w+:' };
    assert.deepEqual(unknownRooms(['calls', 'nosuchbus', 'endpoint:alice@example.net', ':x', 'support'], known), ['nosuchbus', ':x']);
    assert.deepEqual(unknownRooms(['endpoint:alice'], { buses: [], notificationRooms: undefined }), ['endpoint:alice'], 'no pattern: only buses are known');
    assert.deepEqual(unknownRooms(['a'], { buses: [], notificationRooms: '(' }), ['a'], 'a pattern that does not compile matches nothing');
  });
});

describe('tail lines', () => {
  const time = new Date('2026-11-26T10:00:00.042Z');
  const call = { state: 'end', call: 'c1', _in: ['endpoint:alice@example.net'] };

  it('prints time, event, rooms and payload on one text line', () => {
    assert.equal(
      formatEvent({ time, event: 'call', rooms: ['calls', 'endpoint:alice@example.net'], args: [call] }, false),
      '2026-11-26T10:00:00.042Z call calls,endpoint:alice@example.net {"state":"end","call":"c1","_in":["endpoint:alice@example.net"]}',
    );
    assert.equal(formatEvent({ time, event: 'locations', rooms: [], args: [] }, false), '2026-11-26T10:00:00.042Z locations -');
  });

  it('prints one JSON object per line with --json, data absent for an event without payload', () => {
    const line = formatEvent({ time, event: 'call', rooms: ['calls'], args: [call] }, true);
    assert.deepEqual(JSON.parse(line), { time: '2026-11-26T10:00:00.042Z', event: 'call', rooms: ['calls'], data: call });
    assert.deepEqual(JSON.parse(formatEvent({ time, event: 'locations', rooms: ['locations'], args: [] }, true)), {
      time: '2026-11-26T10:00:00.042Z',
      event: 'locations',
      rooms: ['locations'],
    });
    assert.equal(JSON.parse(formatEvent({ time, event: 'location', rooms: [], args: ['alice@example.net'] }, true)).data, 'alice@example.net');
  });

  it('keeps every event on exactly one line, whatever its name or payload holds', () => {
    const sip = 'INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1\r\n\r\n';
    for (const json of [false, true]) {
      const line = formatEvent({ time, event: 'evil\nname', rooms: ['room:\r'], args: [{ error: 'registrant_failure', sip }] }, json);
      assert.doesNotMatch(line, /[\r\n]/);
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.match(formatEvent({ time, event: 'call', rooms: [], args: [cyclic] }, false), /not JSON/);
  });
});

describe('tail rooms', () => {
  const routes = new Map<string, string | null>([
    ['call', 'calls'],
    ['script_register', 'support'],
    ['some:event', null],
  ]);

  it('names the watched rooms an event was sent to: its bus, its _in rooms, its endpoint room', () => {
    const joined = new Set(['calls', 'support', 'endpoint:alice@example.net', 'number:33123456789']);
    const call = { _in: ['endpoint:alice@example.net', 'number:33123456789', 'account:other'] };
    assert.deepEqual(eventRooms('call', call, joined, routes, []), ['calls', 'endpoint:alice@example.net', 'number:33123456789']);
    assert.deepEqual(eventRooms('some:event', { _in: 'number:33123456789' }, joined, routes, []), ['number:33123456789']);
    assert.deepEqual(eventRooms('script_register', { endpoint: 'alice@example.net' }, joined, routes, []), ['support', 'endpoint:alice@example.net']);
  });

  it('knows the rooms of the broker own events, and leaves out rooms not watched', () => {
    const joined = new Set(['internal', 'traces']);
    assert.deepEqual(eventRooms('shouted', { id: 'x', data: 1 }, joined, routes, []), ['internal']);
    assert.deepEqual(eventRooms('notify', 'hello', joined, routes, []), ['internal']);
    assert.deepEqual(eventRooms('ping', undefined, joined, routes, ['dial_calls', 'locations', 'traces']), ['traces']);
    assert.deepEqual(eventRooms('call', { _in: [42, null] }, joined, routes, []), []);
  });
});
