/**
 * The model checker's own parts, alone: its schedules (test/model/schedule.ts),
 * its judge (test/model/invariants.ts), on hand-made records where the right
 * verdict is known, and its reading of Redis's MONITOR feed (test/model/recorder.ts). The runs themselves are test/model.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { check, type Chain, type RunRecord, type StreamEntry } from './model/invariants.ts';
import { decodeAdd, monitorArgs } from './model/recorder.ts';
import { scheduleOf, type ScheduleBounds } from './model/schedule.ts';

const BOUNDS: ScheduleBounds = { maxNodes: 3, durationMs: 10_000, maxSubscribers: 8, maxFaults: 3 };

/** A stream of `keys`, each sent to `calls` unless given as `key@room`. */
function stream(...keys: string[]): StreamEntry[] {
  return keys.map((k, i) => {
    const [key, room = 'calls'] = k.split('@') as [string, string?];
    return { offset: `1000-${i}`, key, rooms: [room, 'model:sink'] };
  });
}

function chain(keys: string[], recoveries = 0, rooms = ['calls'], lives = ['node 0']): Chain {
  return { name: 'c', rooms, recoveries, received: keys.map((key) => ({ key, offset: undefined })), joinedAt: 0, lives };
}

function record(overrides: Partial<RunRecord>): RunRecord {
  return { stream: stream('a', 'b', 'c', 'd'), chains: [], acks: [], unanswered: [], nodes: [], ...overrides };
}

const kinds = (r: RunRecord): string[] => check(r).map((v) => v.invariant);

describe('model checker: the judge', () => {
  it('passes a run that kept every promise', () => {
    assert.deepEqual(check(record({ chains: [chain(['a', 'b', 'c', 'd']), chain(['b', 'c'], 1)] })), []);
  });

  it('finds an inversion of stream order, a duplicate, a gap, and an event of a room the client is not in', () => {
    assert.deepEqual(kinds(record({ chains: [chain(['a', 'c', 'b', 'd'])] })), ['order']);
    assert.deepEqual(kinds(record({ chains: [chain(['a', 'b', 'b', 'c'])] })), ['duplicate']);
    assert.deepEqual(kinds(record({ chains: [chain(['a', 'd'], 1)] })), ['gap']);
    assert.match(check(record({ chains: [chain(['a', 'd'], 1)] }))[0]!.detail, /2 stream events .* recovered: true/);
    assert.deepEqual(kinds(record({ stream: stream('a', 'b@support'), chains: [chain(['a', 'b'])] })), ['foreign']);
  });

  it('expects only the events of the client\'s rooms, and none before its first or after its last', () => {
    const r = record({ stream: stream('a', 'b@support', 'c', 'd'), chains: [chain(['c'])] });
    assert.deepEqual(check(r), []);
    assert.deepEqual(check({ ...r, chains: [chain(['a', 'c'])] }), []);
  });

  it('starts the gap check once every join was acknowledged', () => {
    const r = record({ stream: stream('a', 'b@support', 'c'), chains: [{ ...chain(['a', 'c'], 0, ['calls', 'support']), joinedAt: 1 }] });
    assert.deepEqual(check(r), []);
    assert.deepEqual(kinds({ ...r, chains: [{ ...chain(['a', 'c'], 0, ['calls', 'support']), joinedAt: 0 }] }), ['gap']);
  });

  it('leaves events that never reached the stream (this node only) out of the order, but not out of the duplicates', () => {
    assert.deepEqual(check(record({ chains: [chain(['a', 'local', 'b'])] })), []);
    assert.deepEqual(kinds(record({ chains: [chain(['a', 'local', 'local'])] })), ['duplicate']);
  });

  it('holds acknowledgements to the stream: {ok: true} is in it, {ok: false} is not', () => {
    assert.deepEqual(check(record({ acks: [{ key: 'a', answer: { ok: true } }, { key: 'x', answer: { ok: false, error: 'refused' } }] })), []);
    assert.deepEqual(kinds(record({ acks: [{ key: 'x', answer: { ok: true } }, { key: 'a', answer: { ok: false, error: 'refused' } }] })), ['ack', 'ack']);
    assert.deepEqual(kinds(record({ unanswered: ['a'] })), ['ack'], 'an answer that never came, the connection up');
  });

  it('wants every event a node took that never reached the stream counted, except on a node killed with SIGKILL', () => {
    const node = { name: 'node 0', killed: false, published: ['a', 'x', 'y'], undelivered: 2, missed: 0 };
    assert.deepEqual(check(record({ nodes: [node] })), []);
    assert.deepEqual(kinds(record({ nodes: [{ ...node, undelivered: 1 }] })), ['uncounted']);
    assert.deepEqual(check(record({ nodes: [{ ...node, undelivered: 0, killed: true }] })), []);
  });

  it('lets a chain miss no more entries than the nodes it was on counted as trimmed before they read them', () => {
    const behind = { name: 'node 1', killed: false, published: [], undelivered: 0, missed: 2 };
    // b and c missed on node 1, which counted 2 entries missed: told, not a gap.
    assert.deepEqual(check(record({ chains: [chain(['a', 'd'], 0, ['calls'], ['node 1'])], nodes: [behind] })), []);
    // Counted by another node than the chain's: a gap.
    assert.deepEqual(kinds(record({ chains: [chain(['a', 'd'], 0, ['calls'], ['node 0'])], nodes: [behind] })), ['gap']);
    // More missing than counted: a gap, that says what was counted.
    const gap = check(record({ chains: [chain(['a', 'd'], 1, ['calls'], ['node 0', 'node 1'])], nodes: [{ ...behind, missed: 1 }] }));
    assert.deepEqual(gap.map((v) => v.invariant), ['gap']);
    assert.match(gap[0]!.detail, /2 stream events .* recovered: true \(its nodes counted 1 entries missed\)/);
  });
});

describe('model checker: schedules', () => {
  it('draws the same schedule from the same seed, and another from another', () => {
    assert.deepEqual(scheduleOf(7, BOUNDS), scheduleOf(7, BOUNDS));
    assert.notDeepEqual(scheduleOf(7, BOUNDS), scheduleOf(8, BOUNDS));
  });

  it('has subscribers of every generation and a publisher on every node, faults that never overlap, steps within the run', () => {
    for (let seed = 0; seed < 500; seed++) {
      const s = scheduleOf(seed, BOUNDS);
      assert.deepEqual(new Set(s.subscribers.map((x) => x.generation)), new Set(['v1', 'v2', 'v4']), `seed ${seed}`);
      for (let node = 0; node < s.nodes; node++) assert.ok(s.publishers.includes(node), `seed ${seed}: a publisher on node ${node}`);
      let free = 0;
      for (const step of s.steps) {
        assert.ok(step.at >= 0 && step.at < s.durationMs, `seed ${seed}: step at ${step.at}`);
        if (step.do === 'drop' || step.do === 'route') continue;
        assert.ok(step.at >= free, `seed ${seed}: ${step.do} at ${step.at} overlaps the fault before`);
        free = step.at + ('ms' in step ? step.ms : 0);
      }
    }
  });
});

describe('the recorder', () => {
  const data = (tag: string, key: string): string => JSON.stringify({ uid: 'u', type: 2, packet: { type: 2, data: ['call', { s: tag, k: key, _in: ['model:sink'] }], nsp: '/' }, opts: { rooms: ['calls', 'model:sink'], except: [] } });

  it('reads the run\'s events from the XADD commands of the feed, and nothing else', () => {
    const add = (...tail: string[]): string[] => ['XADD', 'spicy-action:events', 'MAXLEN', '~', '1000', '*', 'uid', 'u', 'nsp', '/', 'type', '2', ...tail];
    assert.deepEqual(decodeAdd(add('data', data('m1', '0.7')), 'm1', 3), { offset: '#3', key: '0.7', rooms: ['calls', 'model:sink'] });
    assert.equal(decodeAdd(add('data', data('m2', '0.7')), 'm1', 4), undefined, "another run's event");
    assert.equal(decodeAdd(add(), 'm1', 5), undefined, 'no data: a heartbeat or a session');
    assert.equal(decodeAdd(['XADD', 'spicy-action:routes:log', '*', 'data', data('m1', '0.8')], 'm1', 6), undefined, 'another stream');
    assert.equal(decodeAdd(['GET', 'spicy-action:events'], 'm1', 7), undefined);
  });

  it('unescapes the feed\'s lines as Redis escapes them', () => {
    assert.deepEqual(monitorArgs('+1796666228.955715 [0 127.0.0.1:46014] "ping"'), ['ping']);
    assert.deepEqual(monitorArgs('+1796665785.077295 [0 lua] "XADD" "s" "*" "a" "5"'), ['XADD', 's', '*', 'a', '5']);
    const json = JSON.stringify({ k: '0.1', text: 'a "quoted" \\ back\nslash', name: 'Zoë' });
    const escaped = [...Buffer.from(json, 'utf8')].map((b) => (b === 0x22 ? '\\"' : b === 0x5c ? '\\\\' : b === 0x0a ? '\\n' : b >= 0x80 ? `\\x${b.toString(16)}` : String.fromCharCode(b))).join('');
    assert.deepEqual(monitorArgs(`+1.0 [0 127.0.0.1:1] "XADD" "${escaped}" ""`), ['XADD', json, '']);
  });
});
