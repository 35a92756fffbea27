/**
 * Slow consumers (docs/protocol.md#limits): a client that stops reading is disconnected once its unsent data
 * passes MAX_BUFFERED_BYTES, the broker's memory stays bounded, and other clients keep receiving.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { request, spawnBroker, startBroker } from './helpers/broker.ts';
import { closeAll, connect, withTimeout } from './helpers/clients.ts';
import { parseMetrics } from './helpers/metrics.ts';
import { until } from './helpers/wait.ts';
import { unsentBytes } from '../src/guards/backpressure.ts';
import type { EngineConnection, QueuedPacket } from '../src/internals.ts';

/** A /proc/<pid>/status field, in bytes. */
function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(match, `${field} in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

const MB = 1_000_000;

describe('unsent bytes of a connection', () => {
  // An Engine.IO connection as src/internals.ts reads it: the guard's view, and the write buffer engineBacklog reads.
  const conn = (writeBuffer: QueuedPacket[], bufferedAmount?: number): EngineConnection & { writeBuffer: QueuedPacket[] } => ({
    id: 'c',
    readyState: 'open',
    writeBuffer,
    transport: { name: bufferedAmount === undefined ? 'polling' : 'websocket', writable: false, socket: bufferedAmount === undefined ? undefined : { bufferedAmount } },
    close: () => undefined,
  });

  it('adds the queued packets (strings and binary) and what the WebSocket holds', () => {
    assert.equal(unsentBytes(conn([])), 0);
    assert.equal(unsentBytes(conn([], 700)), 700);
    assert.equal(unsentBytes(conn([{ data: 'abc' }, { data: Buffer.alloc(10) }, { data: new Uint8Array(5).buffer }, {}], 100)), 3 + 10 + 5 + 100);
  });

  it('counts only the packets added to a buffer since the last look, and starts again on a new buffer', () => {
    const buffer: QueuedPacket[] = [{ data: 'x'.repeat(10) }];
    const c = conn(buffer);
    assert.equal(unsentBytes(c), 10);
    buffer.push({ data: 'y'.repeat(5) });
    assert.equal(unsentBytes(c), 15);
    assert.equal(unsentBytes(c), 15, 'looking again changes nothing');
    assert.equal(unsentBytes(conn([{ data: 'z' }])), 1, 'a flushed connection has a new buffer');
  });
});

describe('slow consumers', () => {
  it('disconnects a client that stops reading while 50 MB are published to its bus, and keeps memory bounded', async (t) => {
    if (process.platform !== 'linux') return t.skip('reads the broker process RSS from /proc (Linux)');
    // Recovery keeps every broadcast for its window whoever reads it (docs/cluster.md,
    // *Memory cost of recovery*): turned off here so that the growth measured is what the non-reading client costs.
    const broker = spawnBroker({ MAX_BUFFERED_BYTES: '16mb', RECOVERY_WINDOW: '0', DEBUG: 'spicy-action:backpressure' });
    const url = await broker.ready;
    const pid = broker.child.pid!;
    const publisher = await connect('v4', url, { transports: ['websocket'] });
    const healthy = await connect('v4', url, { transports: ['websocket'] });
    const stalled = await connect('v4', url, { transports: ['websocket'] });
    try {
      assert.equal(await healthy.ack('join', 'calls'), true);
      assert.equal(await stalled.ack('join', 'calls'), true);
      // The stalled client stops reading from its TCP socket: what the broker sends piles up.
      const ws = (stalled.raw.io as { engine: { transport: { ws: { pause(): void; resume(): void } } } }).engine.transport.ws;
      ws.pause();

      // Warm up (JIT, buffers), then take the baseline and reset the peak.
      const chunk = 'x'.repeat(100_000);
      for (let i = 0; i < 20; i++) publisher.emit('call', { i: -1, chunk });
      await healthy.receive('call', 20, 20_000);
      const baseline = procStatus(pid, 'VmRSS');
      writeFileSync(`/proc/${pid}/clear_refs`, '5'); // resets VmHWM to the current RSS

      // 500 × 100 kB = 50 MB, in windows of 5 MB: the reading client keeps up (a reader that falls
      // 16 MB behind is a slow consumer too), the stalled one falls further behind with each window.
      const count = 500;
      for (let i = 0; i < count; i++) {
        publisher.emit('call', { i, chunk });
        if (i % 50 === 49) await healthy.receive('call', 20 + i + 1, 20_000);
      }
      const received = await healthy.receive('call', 20 + count, 20_000);
      assert.deepEqual(
        received.slice(20).map((p) => (p as { i: number }).i),
        Array.from({ length: count }, (_, i) => i),
        'the reading client got every event, in order',
      );
      const peak = procStatus(pid, 'VmHWM');
      const growth = peak - baseline;
      t.diagnostic(`broker RSS: baseline ${(baseline / MB).toFixed(1)} MB, peak ${(peak / MB).toFixed(1)} MB, growth ${(growth / MB).toFixed(1)} MB while 50 MB were published`);

      const metrics = parseMetrics((await request(`${url}/metrics`)).body as string);
      assert.equal(metrics.value('spicy_action_slow_consumers_disconnected_total'), 1, 'the stalled client was cut');
      assert.equal(metrics.value('spicy_action_connected_sockets'), 2, 'publisher and reader stay connected');
      assert.equal(metrics.value('spicy_action_events_received_total', { event: 'call' }), 20 + count);
      // The cut client held up to 16 MB of messages plus their pre-encoded WebSocket frames (another
      // 16 MB), and the traffic leaves garbage that GC has not taken yet. Without the cap the same run
      // grows by about 120 MB (everything published, twice, held for the client that does not read).
      assert.ok(growth < 90 * MB, `RSS grew by ${(growth / MB).toFixed(1)} MB, more than 90 MB`);

      // Once it reads again, the stalled client learns that it was disconnected.
      const disconnected = withTimeout(new Promise<string>((resolve) => stalled.raw.on('disconnect', resolve)), 'stalled client disconnect', 20_000);
      ws.resume();
      assert.equal(await disconnected, 'transport close');
    } finally {
      closeAll([publisher, healthy, stalled]);
    }
  });

  it('disconnects a long-polling client that stops polling once its queue passes the cap', async () => {
    const broker = await startBroker({ maxBufferedBytes: 2_000_000 });
    // A raw Engine.IO 4 long-polling session: handshake, connect to the namespace, join `calls`, then never poll again.
    const base = `${broker.url}/socket.io/?EIO=4&transport=polling`;
    const open = await (await fetch(base)).text();
    const sid = (JSON.parse(open.slice(1)) as { sid: string }).sid;
    const session = `${base}&sid=${sid}`;
    assert.equal(await (await fetch(session, { method: 'POST', body: '40' })).text(), 'ok');
    assert.match(await (await fetch(session)).text(), /"welcome"/);
    assert.equal(await (await fetch(session, { method: 'POST', body: '420["join","calls"]' })).text(), 'ok');
    assert.equal(await (await fetch(session)).text(), '430[true]');

    const publisher = await connect('v1', broker.url);
    const reader = await connect('v2', broker.url, { transports: ['polling'] });
    try {
      assert.equal(await reader.ack('join', 'calls'), true);
      const chunk = 'x'.repeat(100_000);
      // 3 MB in windows of 500 kB, so that the polling reader never falls 2 MB behind.
      for (let i = 0; i < 30; i++) {
        publisher.emit('call', { i, chunk });
        if (i % 5 === 4) await reader.receive('call', i + 1, 20_000);
      }
      await until('the broker lets the slow reader go', () => broker.io.of('/').sockets.size <= 2, 5_000);
      assert.equal(broker.io.of('/').sockets.size, 2, 'only the publisher and the polling reader are left');
      const metrics = parseMetrics((await request(`${broker.url}/metrics`)).body as string);
      assert.equal(metrics.value('spicy_action_slow_consumers_disconnected_total'), 1);
      const late = await fetch(session);
      assert.equal(late.status, 400, 'the session is gone when the client polls again');
      await late.text();
    } finally {
      closeAll([publisher, reader]);
    }
  });
});
