/**
 * `npm run soak -- <duration>` (`90s`, `30m`, `2h`; default 2m): a two-node
 * cluster (two broker processes as `npm start` runs them, one redis-server)
 * under a steady mixed load for that long: acknowledged and plain events
 * published on both nodes, `/_notify` pushes, joins and leaves of entity
 * rooms, clients of every generation coming and going, 4.x clients dropped
 * and recovering on the other node. Every few seconds it reads each node's
 * heap and RSS after a full GC (bench/servers/probe.ts), fits a line through
 * the samples after the warm-up, prints the slope per hour and per million
 * events, and exits non-zero when heap or RSS keeps growing past the limits
 * of bench/slope.ts.
 */
import { io as ioV4, type Socket as ClientSocket } from 'socket.io-client';
import { connect, withTimeout, type Generation, type TestClient } from '../test/helpers/clients.ts';
import { sleep } from '../test/helpers/wait.ts';
import { killAll, startRedis, startServerProc, type ServerProc } from './procs.ts';
import { growth, leaks, LEAK_LIMITS, type MemorySample } from './slope.ts';

/**
 * Events per second, in all, of each kind. `SOAK_ACKED=0` turns the
 * acknowledged events and the pushes (the answers that wait for Redis) into
 * plain events, the same load otherwise: the control, to tell a leak of the
 * acknowledgements from the rest.
 */
const ACKED = process.env.SOAK_ACKED !== '0';
const RATES = ACKED ? { acked: 60, plain: 60, pushes: 20 } : { acked: 0, plain: 140, pushes: 0 };
/** Subscribers kept connected (their generations in turn), and how often one is replaced or a 4.x one dropped. */
const SUBSCRIBERS = 24;
const CHURN_EVERY_MS = 1_000;
const DROP_EVERY_MS = 1_500;
const JOIN_EVERY_MS = 200;
/** Memory is read every this many ms, after a full GC. */
const SAMPLE_EVERY_MS = 5_000;
/** The first part of the run (or at least this long) warms up and is left out of the fit. */
const WARMUP_SHARE = 0.25;
const MIN_WARMUP_MS = 20_000;
/** The stream a soak keeps (the cluster's recovery backlog): small enough to reach its steady size early. */
const STREAM_MAXLEN = '5000';
const TICK_MS = 20;
/** Liveness bound of each wait of the load (a loaded machine). */
const WAIT_MS = 30_000;
const GENERATIONS: readonly Generation[] = ['v1', 'v2', 'v4'];
const MB = 1024 * 1024;

/** `90s`, `30m`, `2h` in ms. */
function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(s|m|h)$/.exec(text);
  if (!match) throw new Error(`soak: expected a duration such as 90s, 30m or 2h, got ${text}`);
  return Number(match[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[match[2] as 's' | 'm' | 'h'];
}

/** A subscriber of the soak: a 4.x socket (recovering) or a 1.x/2.x client. */
type Subscriber = { kind: 'v4'; socket: ClientSocket } | { kind: 'legacy'; client: TestClient };

async function main(): Promise<void> {
  const durationMs = parseDuration(process.argv[2] ?? '2m');
  const redis = await startRedis();
  const env = { REDIS_URL: redis.url, REDIS_STREAM_MAXLEN: STREAM_MAXLEN };
  const nodes: ServerProc[] = await Promise.all([
    startServerProc({ label: 'node A', entry: 'src/main.ts', env }),
    startServerProc({ label: 'node B', entry: 'src/main.ts', env }),
  ]);
  const urls = nodes.map((n) => n.url);
  console.log(`soak: ${durationMs / 1000} s on ${urls.join(' and ')} (Redis ${redis.url}); ${RATES.acked} acknowledged + ${RATES.plain} plain events/s, ${RATES.pushes} pushes/s, ${SUBSCRIBERS} subscribers`);

  const publishers = await Promise.all(urls.map((url) => connect('v4', url, { transports: ['websocket'] })));
  const subscribers: Subscriber[] = [];
  let turn = 0;
  const open = async (): Promise<Subscriber> => {
    const generation = GENERATIONS[turn % GENERATIONS.length]!;
    const url = urls[turn++ % urls.length]!;
    if (generation === 'v4') {
      const socket = ioV4(url, { transports: ['websocket'], reconnection: false, forceNew: true });
      await withTimeout(new Promise<void>((resolve) => socket.once('connect', () => resolve())), `4.x client connected to ${url}`, WAIT_MS);
      await socket.timeout(WAIT_MS).emitWithAck('join', 'calls');
      return { kind: 'v4', socket };
    }
    const client = await connect(generation, url, { transports: ['websocket'] });
    await client.ack('join', 'calls');
    return { kind: 'legacy', client };
  };
  const close = (s: Subscriber): void => {
    if (s.kind === 'v4') s.socket.close();
    else s.client.close();
  };
  for (let i = 0; i < SUBSCRIBERS; i++) subscribers.push(await open());

  let events = 0;
  let stopped = false;
  const started = Date.now();
  const due = (rate: number): number => Math.floor(((Date.now() - started) * rate) / 1000);
  const sent = { acked: 0, plain: 0, pushes: 0 };
  const failures: string[] = [];
  const ticker = setInterval(() => {
    for (; sent.acked < due(RATES.acked); sent.acked++, events++) {
      const publisher = publishers[sent.acked % 2]!;
      publisher.raw.emit('call', { seq: sent.acked, kind: 'acked' }, () => undefined);
    }
    for (; sent.plain < due(RATES.plain); sent.plain++, events++) publishers[sent.plain % 2]!.emit('call', { seq: sent.plain, kind: 'plain' });
    for (; sent.pushes < due(RATES.pushes); sent.pushes++, events++) {
      void fetch(`${urls[sent.pushes % 2]}/_notify/location:update`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ endpoint: `soak${sent.pushes % 50}@example.net`, seq: sent.pushes }),
      }).then((r) => r.body?.cancel(), (error: Error) => failures.push(`push: ${error.message}`));
    }
  }, TICK_MS);

  // Joins and leaves of entity rooms; clients replaced; 4.x clients dropped, recovering on the other node.
  const background = (async () => {
    let n = 0;
    let lastChurn = Date.now();
    let lastDrop = Date.now();
    while (!stopped) {
      await sleep(JOIN_EVERY_MS);
      const s = subscribers[n++ % subscribers.length]!;
      const room = `endpoint:soak${n % 50}@example.net`;
      if (s.kind === 'v4' && s.socket.connected) s.socket.emit(n % 2 === 0 ? 'join' : 'leave', room);
      if (s.kind === 'legacy') s.client.emit(n % 2 === 0 ? 'join' : 'leave', room);
      try {
        if (Date.now() - lastChurn >= CHURN_EVERY_MS) {
          lastChurn = Date.now();
          const i = n % subscribers.length;
          close(subscribers[i]!);
          subscribers[i] = await open();
        }
        if (Date.now() - lastDrop >= DROP_EVERY_MS) {
          lastDrop = Date.now();
          const v4 = subscribers.filter((x): x is Extract<Subscriber, { kind: 'v4' }> => x.kind === 'v4' && x.socket.connected);
          const s4 = v4[n % Math.max(1, v4.length)];
          if (s4) {
            const manager = s4.socket.io as unknown as { engine: { close(): void }; uri: string };
            const gone = new Promise((resolve) => s4.socket.once('disconnect', resolve));
            manager.engine.close();
            await withTimeout(gone, '4.x client dropped', WAIT_MS);
            await sleep(100);
            manager.uri = urls[(urls.indexOf(manager.uri) + 1) % urls.length] ?? urls[0]!;
            s4.socket.connect();
            await withTimeout(new Promise<void>((resolve) => s4.socket.once('connect', () => resolve())), '4.x client back', WAIT_MS);
            if (!s4.socket.recovered) await s4.socket.timeout(WAIT_MS).emitWithAck('join', 'calls');
          }
        }
      } catch (error) {
        failures.push(`churn: ${(error as Error).message}`);
      }
    }
  })();

  const samples: MemorySample[][] = nodes.map(() => []);
  const warmupMs = Math.max(MIN_WARMUP_MS, durationMs * WARMUP_SHARE);
  while (Date.now() - started < durationMs) {
    await sleep(SAMPLE_EVERY_MS);
    // A node too busy to answer in time (a loaded machine) gives no sample this round; the fit goes on without it.
    const reports = await Promise.all(nodes.map((n) => n.probe(true))).catch((error: Error) => {
      failures.push(`probe: ${error.message}`);
      return undefined;
    });
    if (reports === undefined) continue;
    const seconds = (Date.now() - started) / 1000;
    for (const [i, report] of reports.entries()) {
      if (seconds * 1000 >= warmupMs) samples[i]!.push({ seconds, events, heapBytes: report.mem.heapUsed, rssBytes: report.mem.rss });
    }
    const [a, b] = reports;
    console.log(`soak: ${seconds.toFixed(0)} s, ${events} events; heap ${(a!.mem.heapUsed / MB).toFixed(1)} / ${(b!.mem.heapUsed / MB).toFixed(1)} MB, RSS ${(a!.mem.rss / MB).toFixed(0)} / ${(b!.mem.rss / MB).toFixed(0)} MB`);
  }
  stopped = true;
  clearInterval(ticker);
  await background;

  let failed = false;
  console.log(`\nsoak: ${events} events in ${((Date.now() - started) / 1000).toFixed(0)} s; fit over ${samples[0]!.length} samples after ${(warmupMs / 1000).toFixed(0)} s of warm-up`);
  console.log(`limits: heap ${LEAK_LIMITS.heapBytesPerEvent} B/event, RSS ${LEAK_LIMITS.rssBytesPerEvent} B/event`);
  for (const [i, node] of nodes.entries()) {
    const g = growth(samples[i]!);
    const perMillion = (bytesPerEvent: number): string => `${((bytesPerEvent * 1e6) / MB).toFixed(1)} MB per million events`;
    console.log(`${node.label}: heap ${(g.heap.bytesPerHour / MB).toFixed(1)} MB/h, ${perMillion(g.heap.bytesPerEvent)}; RSS ${(g.rss.bytesPerHour / MB).toFixed(1)} MB/h, ${perMillion(g.rss.bytesPerEvent)}`);
    for (const leak of leaks(g)) {
      console.log(`  LEAK: ${leak}`);
      failed = true;
    }
  }
  if (failures.length > 0) console.log(`load errors: ${failures.length} (first: ${failures[0]})`);
  for (const p of publishers) p.close();
  for (const s of subscribers) close(s);
  await Promise.all(nodes.map((n) => n.stop()));
  killAll();
  process.exit(failed ? 1 : 0);
}

// Interrupted (Ctrl-C, a CI timeout): the nodes and Redis go with it.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

main().catch((error: unknown) => {
  console.error(`soak: ${(error as Error).stack ?? String(error)}`);
  killAll();
  process.exit(2);
});

export {};
