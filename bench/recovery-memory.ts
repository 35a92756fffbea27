/**
 * What connection state recovery costs in memory (docs/cluster.md,
 * *Memory cost of recovery*): the heap a broker keeps per broadcast event with the in-memory
 * adapter (every broadcast is kept for RECOVERY_WINDOW), and, when
 * redis-server is installed, the Redis memory per stream entry with the
 * Streams adapter.
 *
 * Run: node --expose-gc --import tsx bench/recovery-memory.ts [events]
 *
 * It publishes `events` (50,000 by default) `call` events of about 0.5 KB, each
 * a fresh object as if parsed from a client, to one subscriber, with recovery
 * off and on, and compares the heap after a full GC.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { io as connectClient } from 'socket.io-client';
import { DEFAULT_SETTINGS, type Settings } from '../src/settings.ts';
import { REDIS_PREFIX } from '../src/cluster/cluster.ts';
import { startServer } from '../src/server.ts';
import { callEvent } from './payload.ts';

const EVENTS = Number(process.argv[2] ?? 50_000);
const CALL = JSON.stringify(callEvent({ run: 0, seq: 0, t: 0 }));

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc!();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}

/** Publishes EVENTS calls through a broker with `settings`; returns the heap growth in bytes. */
async function run(settings: Partial<Settings>, before?: () => Promise<void>): Promise<number> {
  const running = await startServer({ ...DEFAULT_SETTINGS, port: 0, ...settings });
  const client = connectClient(running.url, { transports: ['websocket'], forceNew: true });
  await new Promise((resolve) => client.once('welcome', resolve));
  await new Promise((resolve) => client.emit('join', 'calls', resolve));
  let received = 0;
  client.on('call', () => received++);
  await before?.();
  const start = await heapAfterGc();
  for (let i = 0; i < EVENTS; i++) {
    running.broker.route('call', [JSON.parse(CALL)]);
    if (i % 500 === 499) await new Promise((r) => setImmediate(r));
  }
  while (received < EVENTS) await new Promise((r) => setTimeout(r, 20));
  const growth = (await heapAfterGc()) - start;
  client.close();
  await running.close();
  return growth;
}

const kb = (bytes: number): string => `${(bytes / 1024).toFixed(2)} KiB`;
const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

console.log(`payload: ${CALL.length} bytes of JSON; ${EVENTS} events per run`);
const off = await run({ recoveryWindowMs: 0 });
const on = await run({ recoveryWindowMs: 600_000 });
const perEvent = (on - off) / EVENTS;
console.log(`in-memory adapter: heap growth ${mb(off)} with recovery off, ${mb(on)} on: ${kb(perEvent)} kept per event`);
// Broadcasts are kept for the window, and pruned by a timer that runs every 60 s: between W and W + 60 s of them.
for (const windowS of [120]) {
  const low = perEvent * 1_000 * windowS;
  const high = perEvent * 1_000 * (windowS + 60);
  console.log(`  at 1,000 events/s with RECOVERY_WINDOW=${windowS}s: ${mb(low)} to ${mb(high)} of heap`);
}

// The Streams adapter keeps the backlog in Redis, not in the process.
const probe = spawn('redis-server', ['--version']);
const haveRedis = await new Promise<boolean>((resolve) => {
  probe.once('error', () => resolve(false));
  probe.once('exit', (code) => resolve(code === 0));
});
if (haveRedis) {
  const dir = mkdtempSync(join(tmpdir(), 'spicy-action-bench-'));
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', ''], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  const redisUrl = `redis://127.0.0.1:${port}`;
  const redis = new Redis(redisUrl);
  try {
    const growth = await run({ redisUrl, recoveryWindowMs: 600_000, streamMaxLen: 1_000_000 });
    const key = `${REDIS_PREFIX}:events`;
    const length = await redis.xlen(key);
    const bytes = Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
    console.log(`Streams adapter: process heap growth ${mb(growth)}; Redis stream ${length} entries, ${mb(bytes)}: ${kb(bytes / length)} per entry`);
    console.log(`  REDIS_STREAM_MAXLEN=120000 (1,000 events/s for 2 min): about ${mb((bytes / length) * 120_000)} in Redis`);
  } finally {
    redis.disconnect();
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
} else {
  console.log('redis-server not found: Streams adapter figures skipped');
}
process.exit(0);
