/**
 * `npx tsx bench/cluster-latency.ts [other broker checkout] [rounds=6] [rate=500] [seconds=2]`:
 * publish-to-delivery latency on a two-node cluster, split by where the
 * subscriber is: on the publisher's own node, and on the other node. Each
 * side (this tree, and when a path is given the broker of another checkout,
 * its `src/main.ts` run with this tree's node_modules: put the checkout under
 * this tree, in `tmp/`) runs two broker processes on a redis-server of its
 * own; the sides are measured in turns, the order reversed each round, and
 * each figure is the median over the rounds of that round's percentile.
 *
 * Subscribers (socket.io-client 4.x, WebSocket) and the publisher are in this
 * process, so their clocks are one: each event carries its send time
 * (`performance.now()`), and each arrival is timed against it. The publisher
 * is on node A and sends `call` events at `rate` per second; two subscribers
 * of `calls` are on A, two on B.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { io as ioV4, type Socket } from 'socket.io-client';
import { killAll, startRedis, startServerProc, type ServerProc } from './procs.ts';
import { median, percentile } from './stats.ts';

const [otherArg, roundsArg, rateArg, secondsArg] = process.argv.slice(2);
const other = otherArg && otherArg !== '-' ? otherArg : undefined;
const rounds = Number(roundsArg ?? 6);
const rate = Number(rateArg ?? 500);
const seconds = Number(secondsArg ?? 2);
/** Subscribers on each node. */
const PER_NODE = 2;
/** Events sent per timer tick (the timer fires every TICK_MS). */
const TICK_MS = 10;
/** Arrivals awaited after the last send before a phase ends, in ms. */
const SETTLE_MS = 500;

/** One side of the comparison: two nodes on one Redis, their clients. */
interface Side {
  readonly label: string;
  readonly publisher: Socket;
  /** Latencies of the phase under way, in ms: on the publisher's node, and on the other. */
  own: number[];
  cross: number[];
  readonly results: { own: { p50: number; p99: number }; cross: { p50: number; p99: number } }[];
}

async function connect(url: string): Promise<Socket> {
  const socket = ioV4(url, { transports: ['websocket'], forceNew: true, reconnection: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  return socket;
}

async function startSide(label: string, entry: string): Promise<Side> {
  const redis = await startRedis();
  const nodes: ServerProc[] = [];
  for (const node of ['A', 'B']) nodes.push(await startServerProc({ label: `${label} ${node}`, entry, env: { REDIS_URL: redis.url } }));
  const side: Side = { label, publisher: await connect(nodes[0]!.url), own: [], cross: [], results: [] };
  for (const [n, node] of nodes.entries()) {
    for (let i = 0; i < PER_NODE; i++) {
      const socket = await connect(node.url);
      await socket.timeout(5_000).emitWithAck('join', 'calls');
      socket.on('call', (call: { t: number }) => {
        const ms = performance.now() - call.t;
        (n === 0 ? side.own : side.cross).push(ms);
      });
    }
  }
  // Both nodes deliver before anything is measured.
  await side.publisher.timeout(5_000).emitWithAck('call', { t: performance.now(), warm: true });
  await new Promise((resolve) => setTimeout(resolve, 500));
  return side;
}

/** Sends `call` events at `rate` for `seconds`, then records the phase's percentiles. */
async function phase(side: Side): Promise<void> {
  side.own = [];
  side.cross = [];
  const perTick = (rate * TICK_MS) / 1_000;
  const ticks = (seconds * 1_000) / TICK_MS;
  let owed = 0;
  for (let tick = 0; tick < ticks; tick++) {
    owed += perTick;
    for (; owed >= 1; owed--) side.publisher.emit('call', { t: performance.now() });
    await new Promise((resolve) => setTimeout(resolve, TICK_MS));
  }
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  const summary = (samples: number[]): { p50: number; p99: number } => {
    const sorted = Float64Array.from(samples).sort();
    return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
  };
  side.results.push({ own: summary(side.own), cross: summary(side.cross) });
}

try {
  const sides = [await startSide('this tree', 'src/main.ts')];
  if (other) {
    const entry = join(other, 'src/main.ts');
    if (!existsSync(entry)) throw new Error(`no ${entry}`);
    sides.push(await startSide('other checkout', entry));
  }
  for (const side of sides) await phase(side); // warm-up round, not kept
  for (const side of sides) side.results.length = 0;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) await phase(side);
  }
  console.log(`two nodes, publisher on A, ${PER_NODE} subscribers on each node, ${rate} events/s, ${rounds} rounds of ${seconds} s; medians of each round's percentile, ms`);
  console.log('side             own node p50  own node p99  other node p50  other node p99');
  for (const side of sides) {
    const m = (f: (r: Side['results'][0]) => number): string => median(side.results.map(f)).toFixed(2).padStart(12);
    console.log(`${side.label.padEnd(16)} ${m((r) => r.own.p50)}  ${m((r) => r.own.p99)}  ${m((r) => r.cross.p50)}  ${m((r) => r.cross.p99)}`);
  }
  for (const side of sides) side.publisher.disconnect();
} finally {
  killAll();
  process.exit(0);
}
