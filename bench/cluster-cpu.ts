/**
 * `npx tsx bench/cluster-cpu.ts [rounds=8] [seconds=20] [subscribers=1000] [rate=10]`:
 * server CPU per delivery of two brokers against two bare Socket.IO servers
 * with the Redis Streams adapter (bench/servers/bare-socketio.ts), measured
 * at the same time rather than in turns.
 *
 * `npm run bench` (scenario 5) measures the two pairs one after the other;
 * on a shared machine the state of the machine then differs between the
 * turns by as much as the difference sought. Here the four servers run on one
 * redis-server (a stream each pair), the subscribers are connected to all
 * four (half of them on each node of each pair), and two publishers, one per
 * pair, emit `call` at `rate` events a second each, alternating between the
 * pair's nodes: both pairs do the same work in the same seconds, so that
 * whatever else the machine does falls on both. Each round measures
 * `seconds` of steady load; it prints the ratio of each round and their
 * median. CPU is each server's own (`process.cpuUsage()`, through the
 * bench's probe); Redis's is left out, being shared.
 *
 * Keep the subscribers able to keep up (2 × subscribers × rate deliveries a
 * second in all; about 20,000 on this 2-core machine): past that they read
 * late, the servers' writes gather into fewer system calls, and both sides'
 * CPU per delivery falls, the broker's extra with it (bench/notes.md).
 */
import { DEFAULT_SETTINGS } from '../src/settings.ts';
import { sleep } from '../test/helpers/wait.ts';
import { connectPublisher, cpuOf, forkSubscribers, snapshotSubscribers, type Sub } from './fanout.ts';
import type { PublisherCommand, PublisherReport, Target } from './messages.ts';
import { forkWorker, killAll, startRedis, startServerProc, type ServerProc, type Worker } from './procs.ts';
import { median } from './stats.ts';

const [roundsArg, secondsArg, subscribersArg, rateArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 8);
const seconds = Number(secondsArg ?? 20);
const subscribers = Number(subscribersArg ?? 1_000);
const rate = Number(rateArg ?? 10);
/** Subscriber generator processes (each holds subscribers of both pairs). */
const GENERATORS = 2;
/** Load before the first round, so that both pairs run optimized code, in ms. */
const WARM_MS = 5_000;

type Pub = Worker<PublisherCommand, PublisherReport>;

interface Pair {
  readonly target: Target;
  readonly servers: readonly ServerProc[];
  readonly publisher: Pub;
}

/** Server CPU (µs) and deliveries of one pair, now. */
async function sample(pair: Pair, subs: readonly Sub[]): Promise<{ cpu: number; delivered: number }> {
  const [probes, reports] = await Promise.all([Promise.all(pair.servers.map((s) => s.probe())), snapshotSubscribers(subs, pair.target.name)]);
  return { cpu: probes.reduce((sum, p) => sum + cpuOf(p.cpu), 0), delivered: reports.reduce((sum, r) => sum + r.delivered, 0) };
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const pairs: Pair[] = [];
  for (const [name, entry, env] of [
    ['2 brokers', 'src/main.ts', { REDIS_URL: redis.url }],
    ['2 bare Socket.IO', 'bench/servers/bare-socketio.ts', { BENCH_REDIS_URL: redis.url, BENCH_RECOVERY_MS: String(DEFAULT_SETTINGS.recoveryWindowMs) }],
  ] as const) {
    const servers: ServerProc[] = [];
    for (const node of ['A', 'B']) servers.push(await startServerProc({ label: `${name} ${node}`, entry, env }));
    const target: Target = { name, urls: servers.map((s) => s.url) };
    const publisher = forkWorker<PublisherCommand, PublisherReport>('publisher.ts');
    await connectPublisher(publisher, [target]);
    pairs.push({ target, servers, publisher });
  }
  // Every subscriber joins `calls`, where the routes send `call`.
  const { subs, connected } = forkSubscribers(pairs.map((p) => p.target), { subscribers, generators: GENERATORS, layout: 'bus' });
  await connected;
  console.log(`${subscribers} subscribers on each pair (half on each node), ${rate} events/s on each pair, ${rounds} rounds of ${seconds} s, both pairs at once`);

  for (const pair of pairs) pair.publisher.send({ type: 'start', target: pair.target.name, run: 1, mode: 'rate', rate });
  await sleep(WARM_MS);
  const ratios: number[] = [];
  for (let round = 1; round <= rounds; round++) {
    const before = await Promise.all(pairs.map((p) => sample(p, subs)));
    await sleep(seconds * 1_000);
    const after = await Promise.all(pairs.map((p) => sample(p, subs)));
    const perDelivery = pairs.map((_, i) => (after[i]!.cpu - before[i]!.cpu) / (after[i]!.delivered - before[i]!.delivered));
    const [broker, bare] = perDelivery as [number, number];
    ratios.push(broker / bare);
    console.log(`round ${round}: brokers ${broker.toFixed(2)} µs, bare ${bare.toFixed(2)} µs CPU per delivery: ${(broker / bare).toFixed(3)}×`);
  }
  console.log(`median ${median(ratios).toFixed(3)}× (range ${Math.min(...ratios).toFixed(3)} to ${Math.max(...ratios).toFixed(3)})`);
  for (const pair of pairs) pair.publisher.send({ type: 'close' });
  for (const sub of subs) sub.send({ type: 'close' });
  await sleep(200);
}

main().then(
  () => {
    killAll();
    process.exit(0);
  },
  (error: unknown) => {
    console.error(error);
    killAll();
    process.exit(1);
  },
);
