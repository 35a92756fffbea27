/**
 * What a Redis failover can lose, and what avoiding it costs (docs/cluster.md#what-a-failover-can-lose).
 *
 * Run: npx tsx bench/sentinel-loss.ts [runs]
 *
 * Replication from a Redis primary to its replica is asynchronous: the
 * primary answers a write before the replica has it. When the primary dies,
 * the writes it had answered but not yet sent are not on the replica that
 * Sentinel promotes. For the broker, a write is an XADD of one event to the
 * stream: an event lost so reached the publishing node's clients (and any
 * node that read it in time), but is missing from the stream the other nodes
 * and recovering clients read.
 *
 * For each way of writing, `runs` times (5 by default), on a fresh primary and
 * replica (AOF on, as in production, on 127.0.0.1):
 * - loss: XADDs of 0.5 KB `call` events, 64 in flight on one connection (as
 *   the adapter writes), at full speed, then also at 1,000/s; the primary is
 *   SIGKILLed 1.5 s in; every write that was answered OK is looked up on the
 *   replica, which keeps what it received (what Sentinel would promote);
 * - cost: writes/s at full speed, and the latency of each answer at 1,000/s.
 *
 * The ways of writing:
 * - `async`: plain XADD (what the broker does);
 * - `min-replicas`: the primary with `min-replicas-to-write 1` and
 *   `min-replicas-max-lag 10`: writes are refused when no replica has answered
 *   for 10 s, but an answered write is still not known to be replicated;
 * - `WAIT`: each XADD followed by `WAIT 1 1000`, and counted as done only once
 *   WAIT says one replica has it.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { callEvent } from './payload.ts';
import { SentinelGroup } from '../test/helpers/sentinel.ts';

const RUNS = Number(process.argv[2] ?? 5);
/** Writes in flight on the one connection, at full speed. */
const IN_FLIGHT = 64;
/** The steady rate, writes per second, of the latency and low-rate loss phases. */
const STEADY_RATE = 1_000;
/** When the primary is killed, after the writes start. */
const KILL_AFTER_MS = 1_500;
/** Longest a WAIT waits for the replica. */
const WAIT_TIMEOUT_MS = 1_000;
const STREAM = 'bench:events';
const PAYLOAD = JSON.stringify(callEvent({ run: 0, seq: 0, t: 0 }));

/** One-way delays of the replication link: loopback as is, and a link a few ms long (another zone, a busy network). */
const LINK_DELAYS_MS: readonly number[] = [0, 2];

/**
 * The replication link, primary → replica delayed by `delayMs`. When the
 * primary's host dies, what is still in the link is lost with it: {@link cut}
 * drops it, as a dead host's unsent packets are.
 */
class SlowLink {
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #server: Server | undefined;

  constructor(readonly delayMs: number) {}

  /** Listens on a free port, forwarding to `primaryPort`; resolves with its port. */
  listen(primaryPort: number): Promise<number> {
    const server = createServer((replica) => {
      const primary = createConnection(primaryPort, '127.0.0.1');
      for (const socket of [replica, primary]) {
        this.#sockets.add(socket);
        socket.on('error', () => {});
        socket.on('close', () => this.cut());
      }
      replica.pipe(primary);
      primary.on('data', (chunk: Buffer) => {
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          replica.write(chunk);
        }, this.delayMs);
        this.#timers.add(timer);
      });
    });
    this.#server = server;
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
  }

  /** Drops what is in the link and closes it. */
  cut(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
  }

  close(): void {
    this.cut();
    this.#server?.close();
  }
}

type Mode = 'async' | 'min-replicas' | 'WAIT';
const MODES: readonly Mode[] = ['async', 'min-replicas', 'WAIT'];
const SERVER_CONF: Record<Mode, readonly string[]> = {
  async: [],
  'min-replicas': ['min-replicas-to-write 1', 'min-replicas-max-lag 10'],
  WAIT: [],
};

/** One write, done when its mode says so; resolves with its stream id and its latency in ms. */
async function write(client: Redis, mode: Mode): Promise<{ id: string; ms: number }> {
  const start = performance.now();
  const id = (await client.xadd(STREAM, '*', 'data', PAYLOAD)) as string;
  if (mode === 'WAIT') {
    const replicas = await client.wait(1, WAIT_TIMEOUT_MS);
    if (replicas < 1) throw new Error('WAIT: no replica acknowledged in time');
  }
  return { id, ms: performance.now() - start };
}

/** Writes while `running()`: `IN_FLIGHT` at once, or `rate` per second. Resolves once every write has settled. */
async function load(client: Redis, mode: Mode, running: () => boolean, rate?: number): Promise<{ done: { id: string; ms: number }[]; failed: number }> {
  const done: { id: string; ms: number }[] = [];
  let failed = 0;
  const pending = new Set<Promise<void>>();
  const launch = (): void => {
    const p = write(client, mode).then(
      (result) => void done.push(result),
      () => void failed++,
    );
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  const started = performance.now();
  let launched = 0;
  while (running()) {
    if (rate === undefined) {
      while (pending.size < IN_FLIGHT) launch();
      await Promise.race(pending);
      // Writes failing at once (the primary gone) must not keep timers and I/O from running.
      await new Promise((resolve) => setImmediate(resolve));
    } else {
      const due = Math.floor(((performance.now() - started) / 1000) * rate);
      while (launched < due) {
        launch();
        launched++;
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
  await Promise.allSettled([...pending]);
  return { done, failed };
}

interface RunResult {
  answered: number;
  lost: number;
  writesPerSecond?: number;
  p50?: number;
  p99?: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** One run: a fresh primary and replica, writes in `mode` at `rate` (undefined: full speed), the primary killed. */
async function run(mode: Mode, rate: number | undefined, delayMs: number): Promise<RunResult> {
  const link = new SlowLink(delayMs);
  const group = await SentinelGroup.start({
    sentinels: 0,
    serverConf: SERVER_CONF[mode],
    cleanup: () => {},
    replicationPort: delayMs > 0 ? (port) => link.listen(port) : undefined,
  });
  const cleanup = (): void => group.removeNow();
  process.once('exit', cleanup);
  try {
    const client = new Redis({ port: group.primary.port, host: '127.0.0.1', password: group.password, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    client.on('error', () => {});
    await new Promise((resolve) => client.once('ready', resolve));
    let killed = false;
    const started = performance.now();
    const writing = load(client, mode, () => !killed, rate);
    await new Promise((resolve) => setTimeout(resolve, KILL_AFTER_MS));
    // Throughput and latency over the writes answered before the kill.
    const elapsed = (performance.now() - started) / 1000;
    // The primary's host dies: the process, and what it had not yet delivered to the replica.
    link.cut();
    await group.primary.kill('SIGKILL');
    killed = true;
    const { done } = await writing;
    client.disconnect();
    const replica = group.server(group.replica.port);
    const kept = new Set(((await replica.xrange(STREAM, '-', '+')) as [string, string[]][]).map(([id]) => id));
    const lost = done.filter(({ id }) => !kept.has(id)).length;
    const latencies = done.map((d) => d.ms).sort((x, y) => x - y);
    return rate === undefined
      ? { answered: done.length, lost, writesPerSecond: done.length / elapsed }
      : { answered: done.length, lost, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
  } finally {
    link.close();
    await group.remove();
    process.off('exit', cleanup);
  }
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};

console.log(`redis failover loss: ${RUNS} runs per line; primary SIGKILLed ${KILL_AFTER_MS} ms into the writes; 127.0.0.1, AOF on\n`);
console.log('| replication link | writes | load | answered OK (median) | lost per run | writes/s (median) | latency p50 / p99 at 1,000/s (median) |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const delayMs of LINK_DELAYS_MS) for (const mode of MODES) {
  for (const rate of [undefined, STEADY_RATE]) {
    const results: RunResult[] = [];
    for (let i = 0; i < RUNS; i++) results.push(await run(mode, rate, delayMs));
    const lost = results.map((r) => r.lost).join(', ');
    const speed = rate === undefined ? Math.round(median(results.map((r) => r.writesPerSecond ?? NaN))).toLocaleString('en') : '';
    const latency = rate === undefined ? '' : `${median(results.map((r) => r.p50 ?? NaN)).toFixed(2)} / ${median(results.map((r) => r.p99 ?? NaN)).toFixed(2)} ms`;
    console.log(`| ${delayMs === 0 ? 'loopback' : `+${delayMs} ms one way`} | ${mode} | ${rate === undefined ? `full speed, ${IN_FLIGHT} in flight` : `${STEADY_RATE}/s`} | ${median(results.map((r) => r.answered))} | ${lost} | ${speed} | ${latency} |`);
  }
}
