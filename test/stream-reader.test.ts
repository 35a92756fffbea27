/**
 * The node's one reader of the cluster's stream (src/cluster/stream-reader.ts),
 * on a real redis-server: it hands on every entry in stream order, and when
 * the stream is trimmed past what it had read (a node that fell behind), it
 * counts exactly the entries it never got, from what Redis says the stream
 * ever took. The reader falls behind for real: its process is blocked while
 * another process (redis-cli) writes far more than the stream keeps.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { StreamReader } from '../src/cluster/stream-reader.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';
import { until } from './helpers/wait.ts';

let STREAM = 'reader-test';
/** Entries the stream keeps (an exact MAXLEN, so that the test knows what is left). */
const KEPT = 100;
/** Entries written while the reader's process is blocked. */
const WRITTEN_WHILE_BLOCKED = 3_000;

/** Writes `count` entries from another process, trimming the stream to `maxLen`: the calling process waits, blocked. */
function writeFromOutside(port: number, count: number, maxLen: number | undefined, from: number): void {
  const trim = maxLen === undefined ? [] : ['MAXLEN', String(maxLen)];
  const input = Array.from({ length: count }, (_, i) => [`XADD`, STREAM, ...trim, '*', 'n', String(from + i)].join(' ')).join('\n');
  const run = spawnSync('redis-cli', ['-p', String(port)], { input, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
}

/**
 * What a test's reader does on each entry `n`: on the first entry (0), the reader's process
 * stops while `count` entries are written from outside, the stream trimmed to `maxLen`.
 */
function blockOnFirstEntry(port: number, count: number, maxLen: number): (n: number) => void {
  let blocked = false;
  return (n) => {
    if (n !== 0 || blocked) return;
    blocked = true;
    writeFromOutside(port, count, maxLen, 1);
  };
}

describe('the stream reader', { skip: redisMissing() }, () => {
  let redis: RedisServer;
  before(async () => {
    redis = await RedisServer.start({ appendOnly: false, cleanup: () => {} });
  });
  after(() => redis.remove());
  // Each test writes a stream of its own.
  let streams = 0;
  beforeEach(() => {
    STREAM = `reader-test-${++streams}`;
  });
  it('hands on entries in order, and counts exactly the entries trimmed before it read them', async (t) => {
    const writer = new Redis(redis.url);
    t.after(() => writer.disconnect());
    await writer.xadd(STREAM, '*', 'n', '-1'); // before the reader starts: not its business
    const seen: number[] = [];
    // On the first entry, the reader's process stops while the stream takes and trims far more than it keeps.
    const block = blockOnFirstEntry(redis.port, WRITTEN_WHILE_BLOCKED, KEPT);
    const reader = new StreamReader(new Redis(redis.url), STREAM, (_id, fields) => {
      const n = Number(fields[1]);
      seen.push(n);
      block(n);
    });
    t.after(() => reader.close());
    const missed: number[] = [];
    reader.on('missed', (count) => missed.push(count));
    await reader.start();

    await writer.xadd(STREAM, '*', 'n', '0');
    await until('the reader read the last entry', () => seen.at(-1) === WRITTEN_WHILE_BLOCKED);
    await until('the reader counted what it missed', () => reader.missed > 0);
    // It got 0 and the KEPT entries left, in order; every entry in between was trimmed unread, and counted.
    assert.deepEqual(seen, [0, ...Array.from({ length: KEPT }, (_, i) => WRITTEN_WHILE_BLOCKED - KEPT + 1 + i)]);
    assert.equal(reader.missed, WRITTEN_WHILE_BLOCKED - KEPT);
    assert.equal(missed.reduce((a, b) => a + b, 0), reader.missed, 'each count told once');

    // Kept up with, the stream trimmed as it goes: nothing more is counted.
    for (let i = 0; i < 300; i++) await writer.xadd(STREAM, 'MAXLEN', String(KEPT), '*', 'n', String(WRITTEN_WHILE_BLOCKED + 1 + i));
    await until('the reader read the last entry', () => seen.at(-1) === WRITTEN_WHILE_BLOCKED + 300);
    await new Promise((resolve) => setTimeout(resolve, 1_200)); // a check runs at least once a second
    assert.equal(reader.missed, WRITTEN_WHILE_BLOCKED - KEPT);
    assert.equal(seen.length, 1 + KEPT + 300);
  });

  it('counts what it missed while entries keep coming, not only once the flow stops', async (t) => {
    const writer = new Redis(redis.url);
    t.after(() => writer.disconnect());
    /** Entries written one after another once the reader is back: each as soon as the reader has the one before. */
    const FLOW = 1_500;
    /** Entries written but not yet read, during the flow. */
    const AHEAD = 5;
    const block = blockOnFirstEntry(redis.port, WRITTEN_WHILE_BLOCKED, KEPT);
    let written = 0;
    let missedDuringFlow: number | undefined;
    const seen: number[] = [];
    const reader = new StreamReader(new Redis(redis.url), STREAM, (_id, fields) => {
      const n = Number(fields[1]);
      seen.push(n);
      block(n);
      // From the last entry of the burst on, a few new entries are always on their way ahead of the reader.
      for (let ahead = n === WRITTEN_WHILE_BLOCKED ? AHEAD : n > WRITTEN_WHILE_BLOCKED ? 1 : 0; ahead > 0 && written < FLOW; ahead--) {
        written++;
        if (written === FLOW) missedDuringFlow = reader.missed;
        void writer.xadd(STREAM, 'MAXLEN', String(KEPT), '*', 'n', String(WRITTEN_WHILE_BLOCKED + written));
      }
    });
    t.after(() => reader.close());
    await reader.start();
    await writer.xadd(STREAM, '*', 'n', '0');
    await until('the flow ended and was read', () => seen.at(-1) === WRITTEN_WHILE_BLOCKED + FLOW, 30_000);
    assert.equal(missedDuringFlow, WRITTEN_WHILE_BLOCKED - KEPT, 'counted while the flow went on');
    assert.equal(reader.missed, WRITTEN_WHILE_BLOCKED - KEPT);
    assert.equal(seen.length, 1 + KEPT + FLOW);
  });

  it('starts on a stream not written yet, and counts from its first entry', async (t) => {
    const seen: number[] = [];
    const block = blockOnFirstEntry(redis.port, 500, 50);
    const reader = new StreamReader(new Redis(redis.url), STREAM, (_id, fields) => {
      const n = Number(fields[1]);
      seen.push(n);
      block(n);
    });
    t.after(() => reader.close());
    await reader.start();
    const writer = new Redis(redis.url);
    t.after(() => writer.disconnect());
    await writer.xadd(STREAM, '*', 'n', '0');
    await until('the reader read the last entry', () => seen.at(-1) === 500);
    // It checks at least once a second, after a read: one more entry once a second has passed wakes it.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await writer.xadd(STREAM, '*', 'n', '501');
    await until('the reader counted what it missed', () => reader.missed === 450);
    assert.equal(seen.length, 52);
  });
});
