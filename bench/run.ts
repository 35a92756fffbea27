/**
 * `npm run bench [-- --full] [-- --only=fanout,in,http,idle,cluster] [-- --subscribers=1,100] [-- --profile]`
 *
 * Measures the broker against the limits it cannot beat, in one run, on
 * loopback: a bare Socket.IO server that only does `io.to(room).emit`, and a
 * bare Express route that only parses JSON and answers. Each scenario prints
 * the broker's figure, the baseline's and their ratio. Quick mode (the
 * default) takes about a minute; `--full` repeats each measurement three
 * times (median), runs longer phases and 10,000 idle clients, and rewrites
 * BENCHMARKS.md and its charts (bench/chart.svg, bench/chart-cluster.svg).
 * bench/README.md says what each scenario does.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { io as connectClient } from 'socket.io-client';
import { readCommandLine, type FlagSpec } from '../src/command-line.ts';
import { DEFAULT_SETTINGS } from '../src/settings.ts';
import { socketOptions } from '../src/server.ts';
import { renderBars, renderChart } from './chart.ts';
import { measureFanout, type FanoutResult, type MeasuredTarget, type Phase } from './fanout.ts';
import { measureDepth, measureRouting } from './per-event.ts';
import { httpRun } from './http-run.ts';
import type { SubscriberCommand, SubscriberReport } from './messages.ts';
import { reportOpsBody } from '../test/helpers/payloads.ts';
import { forkWorker, killAll, procCpuMicros, ROOT, startRedis, startServerProc, type ServerProc, type ServerSpec } from './procs.ts';
import { sleep } from '../test/helpers/wait.ts';
import { consoleTable, markdownTable, num, times, type Table } from './report.ts';
import { median, ratio } from './stats.ts';

const SCENARIOS = ['fanout', 'in', 'http', 'idle', 'cluster', 'checks'] as const;
const BENCH_FLAGS: readonly FlagSpec[] = [
  { flag: '--full', takesValue: false },
  { flag: '--profile', takesValue: false },
  { flag: '--only', takesValue: true },
  { flag: '--subscribers', takesValue: true },
  { flag: '--connections', takesValue: true },
];
/** The flags given, by name: `true` for one that takes no value, else its value. */
const args = new Map<string, string | true>();
for (const arg of readCommandLine(process.argv.slice(2), BENCH_FLAGS)) {
  if (arg.kind === 'positional') throw new Error(`unexpected argument ${JSON.stringify(arg.value)} (flags: ${BENCH_FLAGS.map((f) => f.flag).join(' ')})`);
  if (!arg.known) throw new Error(`unknown flag ${JSON.stringify(arg.flag)} (flags: ${BENCH_FLAGS.map((f) => f.flag).join(' ')})`);
  if (BENCH_FLAGS.find((f) => f.flag === arg.flag)?.takesValue && !arg.value) throw new Error(`${arg.flag} needs a value`);
  args.set(arg.flag, arg.value ?? true);
}
/** A comma-separated list given to `flag`, or none. */
const list = (flag: string): string[] => String(args.get(flag) ?? '').split(',').filter(Boolean);
const FULL = args.has('--full');
const PROFILE = args.has('--profile');
const ONLY = list('--only');
for (const name of ONLY) if (!(SCENARIOS as readonly string[]).includes(name)) throw new Error(`--only: unknown scenario ${name} (${SCENARIOS.join(', ')})`);
const SUBSCRIBERS = list('--subscribers').map(Number);
const CONNECTIONS = list('--connections').map(Number);
const wanted = (name: (typeof SCENARIOS)[number]): boolean => ONLY.length === 0 || ONLY.includes(name);

/** Durations and sizes of each mode. */
const MODE = FULL
  ? { name: 'full', reps: 5, sideReps: 3, warmMs: 700, measureMs: 2_500, fanout: [1, 100, 1_000], inSubscribers: 400, httpWarmS: 1, httpS: 2, httpReps: 7, httpConnections: [10, 50], idle: [1_000, 10_000], cluster: 1_000 }
  : { name: 'quick', reps: 1, sideReps: 1, warmMs: 400, measureMs: 1_500, fanout: [1, 100, 1_000], inSubscribers: 200, httpWarmS: 1, httpS: 1, httpReps: 3, httpConnections: [10, 50], idle: [1_000], cluster: 100 };

const RESULTS = join(ROOT, 'bench', 'results');
/** The cluster's chart, beside BENCHMARKS.md's section 5. */
const CLUSTER_CHART = 'bench/chart-cluster.svg';
/** The broker's colour in the charts, and the baseline's. */
const RED = '#c0392b';
const BLUE = '#2c6fbb';
const PROFILES = join(RESULTS, 'profiles');
const log = (line: string): void => console.log(line);

const BROKER: ServerSpec = {
  label: 'broker',
  entry: 'src/main.ts',
  nodeFlags: PROFILE ? ['--cpu-prof', '--cpu-prof-dir', PROFILES] : [],
};
const bareSocketIo = (mode: 'ignore' | 'union' | 'per-room', recoveryMs: number): ServerSpec => ({
  label: `socket.io (${mode})`,
  entry: 'bench/servers/bare-socketio.ts',
  env: { BENCH_IN: mode, BENCH_RECOVERY_MS: String(recoveryMs) },
  nodeFlags: PROFILE ? ['--cpu-prof', '--cpu-prof-dir', PROFILES] : [],
});

/** Whether a server has connection state recovery on: it then gives 4.x clients a session id. */
async function hasRecovery(url: string): Promise<boolean> {
  const socket = connectClient(url, { transports: ['websocket'], forceNew: true, reconnection: false });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    return (socket as unknown as { _pid?: string })._pid !== undefined;
  } finally {
    socket.close();
  }
}

/** Whether the server is the one that limited the rate, in words. */
function boundBy(p: Phase): string {
  return p.serverCores >= 0.85
    ? `server (${num(p.serverCores * 100)}% of a core)`
    : `clients (server at ${num(p.serverCores * 100)}% of a core, load generators ${num(p.clientCores * 100)}%)`;
}

const target = (name: string, servers: readonly ServerProc[], extraCpu?: () => number): MeasuredTarget => ({
  target: { name, urls: servers.map((s) => s.url) },
  servers,
  ...(extraCpu ? { extraCpu } : {}),
});

const fanoutOptions = (subscribers: number, layout: 'bus' | 'in', repetitions: number = MODE.reps) => ({
  subscribers,
  layout,
  generators: subscribers >= 100 ? 2 : 1,
  repetitions,
  warmMs: MODE.warmMs,
  measureMs: MODE.measureMs,
  log,
});

interface Context {
  recovery: boolean;
  checks: { what: string; value: number; limit: string; pass: boolean; unit?: 'ms' }[];
  tables: Table[];
  results: Record<string, unknown>;
  fanout?: FanoutResult[];
  cluster?: FanoutResult;
}

// Scenario 1: fan-out of `call` to `calls`, 1, 100 and 1,000 subscribers.
async function scenarioFanout(ctx: Context): Promise<void> {
  log('\n# 1. fan-out: broker vs bare Socket.IO');
  const broker = await startServerProc(BROKER);
  ctx.recovery = await hasRecovery(broker.url);
  const bare = await startServerProc(bareSocketIo('ignore', ctx.recovery ? DEFAULT_SETTINGS.recoveryWindowMs : 0));
  const results: FanoutResult[] = [];
  try {
    for (const subscribers of SUBSCRIBERS.length > 0 ? SUBSCRIBERS : MODE.fanout) {
      log(`- ${subscribers} subscriber(s)`);
      results.push(await measureFanout([target('broker', [broker]), target('socket.io', [bare])], fanoutOptions(subscribers, 'bus')));
    }
  } finally {
    await Promise.all([broker.stop(), bare.stop()]);
  }
  ctx.fanout = results;
  ctx.results.fanout = results;
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const r of results) {
    const [b, s] = r.targets as [FanoutResult['targets'][0], FanoutResult['targets'][0]];
    const row = (metric: string, fb: number, fs: number, digits: number): string[] => [num(r.subscribers), metric, num(fb, digits), num(fs, digits), times(ratio(fb, fs))];
    rows.push(row('deliveries/s, flat out', b.max.uniquePerS, s.max.uniquePerS, 0));
    rows.push(row('server CPU µs/delivery, flat out', b.max.cpuPerDeliveryUs, s.max.cpuPerDeliveryUs, 2));
    rows.push(row(`server CPU µs/delivery at ${num(r.rate)} events/s`, b.fixed.cpuPerDeliveryUs, s.fixed.cpuPerDeliveryUs, 2));
    rows.push(row('latency p50 ms (fixed rate)', b.fixed.latency?.p50 ?? NaN, s.fixed.latency?.p50 ?? NaN, 2));
    rows.push(row('latency p99 ms (fixed rate)', b.fixed.latency?.p99 ?? NaN, s.fixed.latency?.p99 ?? NaN, 2));
    notes.push(`${num(r.subscribers)} subscriber(s), flat out, limited by: broker run ${boundBy(b.max)}; bare run ${boundBy(s.max)}.`);
    if (r.subscribers === 1_000) {
      for (const [what, value] of [
        ['flat out', ratio(b.max.cpuPerDeliveryUs, s.max.cpuPerDeliveryUs)],
        ['at the fixed rate', ratio(b.fixed.cpuPerDeliveryUs, s.fixed.cpuPerDeliveryUs)],
      ] as const) {
        ctx.checks.push({ what: `fan-out to 1,000: server CPU per delivery, broker ÷ bare Socket.IO, ${what}`, value, limit: '≤ 1.05', pass: value <= 1.05 });
      }
      const p99 = b.fixed.latency?.p99 ?? Number.NaN;
      const bareP99 = s.fixed.latency?.p99 ?? Number.NaN;
      ctx.checks.push({ what: `fan-out to 1,000: latency p99 at the fixed rate, ms (bare Socket.IO ${num(bareP99, 2)})`, value: p99, limit: '≤ 20 ms and ≤ bare', pass: p99 <= 20 && p99 <= bareP99, unit: 'ms' });
    }
  }
  ctx.tables.push({
    title: '1. Fan-out: `call` to `calls`',
    intro:
      'One publisher emits `call` events (536 bytes of JSON, shaped as call handlers send it, with its three `_in` rooms) to `calls`; every subscriber is in `calls` only. ' +
      'Baseline: a bare Socket.IO server doing `io.to("calls").emit("call", data)`. Ratio: broker ÷ baseline (for deliveries/s higher is better, for CPU and latency lower is better).',
    headers: ['subscribers', 'metric', 'broker', 'bare Socket.IO', 'ratio'],
    rows,
    notes,
  });
}

// Scenario 2: `_in` rooms, subscribers spread over the bus and the rooms.
async function scenarioIn(ctx: Context): Promise<void> {
  log('\n# 2. _in fan-out: broker vs bare Socket.IO, exactly once and once per room');
  const recoveryMs = ctx.recovery ? DEFAULT_SETTINGS.recoveryWindowMs : 0;
  const broker = await startServerProc(BROKER);
  const union = await startServerProc(bareSocketIo('union', recoveryMs));
  const perRoom = await startServerProc(bareSocketIo('per-room', recoveryMs));
  let r: FanoutResult;
  try {
    r = await measureFanout(
      [target('broker', [broker]), target('socket.io exactly-once', [union]), target('socket.io per room', [perRoom])],
      fanoutOptions(MODE.inSubscribers, 'in', MODE.sideReps),
    );
  } finally {
    await Promise.all([broker.stop(), union.stop(), perRoom.stop()]);
  }
  ctx.results.in = r;
  const [b, u, p] = r.targets as [FanoutResult['targets'][0], FanoutResult['targets'][0], FanoutResult['targets'][0]];
  for (const [what, value] of [
    ['flat out', ratio(b.max.cpuPerDeliveryUs, u.max.cpuPerDeliveryUs)],
    ['at the fixed rate', ratio(b.fixed.cpuPerDeliveryUs, u.fixed.cpuPerDeliveryUs)],
  ] as const) {
    ctx.checks.push({ what: `_in fan-out: server CPU per delivery, broker ÷ bare exactly-once io.to([...]), ${what}`, value, limit: '≤ 1.05', pass: value <= 1.05 });
  }
  const row = (metric: string, f: (t: typeof b) => number, digits: number): string[] => [
    metric,
    num(f(b), digits),
    num(f(u), digits),
    num(f(p), digits),
    times(ratio(f(b), f(u))),
    times(ratio(f(b), f(p))),
  ];
  ctx.tables.push({
    title: '2. `_in` fan-out: exactly once',
    intro:
      `The same \`call\` events, routed to \`calls\` and their three \`_in\` rooms; ${num(r.subscribers)} subscribers in four equal groups: \`calls\`; \`endpoint:…\`; \`calls\` + \`number:…\`; all three \`_in\` rooms. ` +
      'Each subscriber should get each event once. Baselines: bare Socket.IO with one `io.to([bus, ..._in]).emit` (exactly once, the limit), and with one emit per room (what the original broker did: 1.75 copies per subscriber). ' +
      'A delivery is one event reaching one subscriber for the first time; copies cost CPU but deliver nothing.',
    headers: ['metric', 'broker', 'bare exactly-once', 'bare per room (original)', 'ratio to exactly-once', 'ratio to per room'],
    rows: [
      row('deliveries/s, flat out', (t) => t.max.uniquePerS, 0),
      row('messages sent/s incl. copies, flat out', (t) => t.max.deliveredPerS, 0),
      row('server CPU µs/delivery, flat out', (t) => t.max.cpuPerDeliveryUs, 2),
      row(`server CPU µs/delivery at ${num(r.rate)} events/s`, (t) => t.fixed.cpuPerDeliveryUs, 2),
      row(`server CPU µs/event at ${num(r.rate)} events/s`, (t) => t.fixed.cpuPerEventUs, 1),
      row('latency p50 ms (fixed rate)', (t) => t.fixed.latency?.p50 ?? NaN, 2),
      row('latency p99 ms (fixed rate)', (t) => t.fixed.latency?.p99 ?? NaN, 2),
    ],
    notes: [`Flat out, limited by: broker ${boundBy(b.max)}; exactly-once ${boundBy(u.max)}; per room ${boundBy(p.max)}.`],
  });
}

// Scenario 3: OpenSIPS pushes, POST /_notify/report_ops with 1 KB, at 10 and at 50 keep-alive connections.
// Two baselines: bare Express, and bare Express plus the one Socket.IO broadcast a push must make
// (the broker's Socket.IO options, recovery included): the second isolates the broker's own overhead.
async function scenarioHttp(ctx: Context): Promise<void> {
  log('\n# 3. HTTP pushes: broker vs bare Express, and bare Express + one Socket.IO emit');
  const servers = [
    await startServerProc(BROKER),
    await startServerProc({ label: 'express', entry: 'bench/servers/bare-express.ts', nodeFlags: BROKER.nodeFlags ?? [] }),
    await startServerProc({ label: 'ex+emit', entry: 'bench/servers/bare-express.ts', env: { BENCH_EMIT: '1' }, nodeFlags: BROKER.nodeFlags ?? [] }),
  ];
  const body = reportOpsBody();
  type Run = Awaited<ReturnType<typeof httpRun>>;
  const connectionCounts = CONNECTIONS.length > 0 ? CONNECTIONS : MODE.httpConnections;
  const byCount = new Map<number, Map<string, Run[]>>();
  try {
    for (const server of servers) await httpRun(server, MODE.httpWarmS, body, Math.max(...connectionCounts));
    for (const connections of connectionCounts) {
      log(`- ${connections} connections`);
      const runs = new Map<string, Run[]>(servers.map((server) => [server.label, []]));
      byCount.set(connections, runs);
      for (let rep = 0; rep < MODE.httpReps; rep++) {
        // Rotate the order, so that no server always runs first or last.
        const order = servers.map((_, i) => servers[(i + rep) % servers.length]!);
        for (const server of order) {
          const r = await httpRun(server, MODE.httpS, body, connections);
          log(
            `  ${server.label.padEnd(8)} ${num(r.rps).padStart(7)} requests/s  p50 ${r.p50} ms p99 ${r.p99} ms  ${num(r.cpuPerRequestUs, 1)} µs CPU/request` +
              `  server ${num(r.serverCores * 100)}% of a core, autocannon ${num(r.clientCores * 100)}%  non-2xx ${r.non2xx} errors ${r.errors}`,
          );
          runs.get(server.label)!.push(r);
        }
      }
    }
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
  }
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const [connections, runs] of byCount) {
    const med = (label: string, f: (r: Run) => number): number => median(runs.get(label)!.map(f));
    const row = (metric: string, f: (r: Run) => number, digits: number): string[] => [
      num(connections),
      metric,
      num(med('broker', f), digits),
      num(med('express', f), digits),
      num(med('ex+emit', f), digits),
      times(ratio(med('broker', f), med('express', f))),
      times(ratio(med('broker', f), med('ex+emit', f))),
    ];
    const rps = (r: Run): number => r.rps;
    const rpsRatio = ratio(med('broker', rps), med('express', rps));
    const emitRatio = ratio(med('broker', rps), med('ex+emit', rps));
    ctx.checks.push({ what: `HTTP pushes, ${connections} connections: requests/s, broker ÷ bare Express`, value: rpsRatio, limit: '≥ 0.95', pass: rpsRatio >= 0.95 });
    ctx.checks.push({ what: `HTTP pushes, ${connections} connections: requests/s, broker ÷ bare Express + one emit`, value: emitRatio, limit: '≥ 0.95', pass: emitRatio >= 0.95 });
    rows.push(
      row('requests/s', rps, 0),
      row('latency p50 ms', (r) => r.p50, 1),
      row('latency p99 ms', (r) => r.p99, 1),
      row('server CPU µs/request', (r) => r.cpuPerRequestUs, 1),
      row('non-2xx answers + errors', (r) => r.non2xx + r.errors, 0),
    );
    notes.push(
      `${connections} connections: server share of a core: broker ${num(med('broker', (r) => r.serverCores) * 100)}%, Express ${num(med('express', (r) => r.serverCores) * 100)}%, Express + emit ${num(med('ex+emit', (r) => r.serverCores) * 100)}%; ` +
        `autocannon used ${num(med('broker', (r) => r.clientCores) * 100)}% / ${num(med('express', (r) => r.clientCores) * 100)}% / ${num(med('ex+emit', (r) => r.clientCores) * 100)}% of a core.`,
    );
  }
  notes.push('Below ~85% for the server, autocannon (sharing the two cores) limited the rate and CPU µs/request is the fairer figure.');
  ctx.results.http = Object.fromEntries([...byCount].map(([connections, runs]) => [String(connections), Object.fromEntries(runs)]));
  ctx.tables.push({
    title: '3. HTTP pushes: `POST /_notify/report_ops`',
    intro:
      `autocannon with ${connectionCounts.join(' and ')} keep-alive connections, one request at a time each, POSTing a 1,000-byte \`report_ops\` body (a registrant failure with its SIP message), ${MODE.httpS} s per run, median of ${MODE.httpReps} runs each, the three servers in rotating order. ` +
      'The broker parses it, routes it to `support` (no subscriber listening) and answers `{ok: true}`. ' +
      'The baselines are a bare Express 5 app with the same body-parser JSON route that only answers, and the same app that also does `io.to(\'support\').emit(msg, body)` on a Socket.IO server with the broker\'s options (connection state recovery on): the work a push cannot avoid.',
    headers: ['connections', 'metric', 'broker', 'bare Express', 'Express + emit', 'ratio to Express', 'ratio to Express + emit'],
    rows,
    notes,
  });
}

// Scenario 4: memory per idle connected client.
async function scenarioIdle(ctx: Context): Promise<void> {
  log('\n# 4. idle connections: broker vs bare Socket.IO');
  const rows: string[][] = [];
  const results: Record<string, unknown>[] = [];
  for (const [i, clients] of MODE.idle.entries()) {
    const figures = new Map<string, { heap: number; rss: number }>();
    const specs = [BROKER, bareSocketIo('ignore', ctx.recovery ? DEFAULT_SETTINGS.recoveryWindowMs : 0)];
    for (const spec of i % 2 === 0 ? specs : [...specs].reverse()) {
      const server = await startServerProc(spec);
      const generators = Math.max(1, Math.min(4, Math.ceil(clients / 2_500)));
      const workers: ReturnType<typeof forkWorker<SubscriberCommand, SubscriberReport>>[] = [];
      try {
        await sleep(500);
        const before = await server.probe(true);
        const started = Date.now();
        let first = 0;
        for (let g = 0; g < generators; g++) {
          const count = Math.floor(clients / generators) + (g < clients % generators ? 1 : 0);
          const w = forkWorker<SubscriberCommand, SubscriberReport>('subscribers.ts');
          workers.push(w);
          w.send({ type: 'connect', targets: [{ name: 'idle', urls: [server.url] }], count, first, layout: 'bus', event: 'call' });
          first += count;
        }
        await Promise.all(workers.map((w) => w.next((r): r is Extract<SubscriberReport, { type: 'connected' }> => r.type === 'connected', 600_000)));
        await sleep(1_000);
        const after = await server.probe(true);
        const heap = (after.mem.heapUsed - before.mem.heapUsed) / clients;
        const rss = (after.mem.rss - before.mem.rss) / clients;
        const name = spec === BROKER ? 'broker' : 'socket.io';
        figures.set(name, { heap, rss });
        results.push({ server: name, clients, heapPerClient: heap, rssPerClient: rss, connectMs: Date.now() - started, before: before.mem, after: after.mem });
        log(`  ${name.padEnd(10)} ${num(clients)} clients (connected in ${num((Date.now() - started) / 1000, 1)} s): heap ${num(heap / 1024, 1)} KiB/client, RSS ${num(rss / 1024, 1)} KiB/client`);
      } finally {
        for (const w of workers) w.send({ type: 'close' });
        await sleep(300);
        for (const w of workers) w.child.kill('SIGKILL');
        await server.stop();
      }
    }
    const b = figures.get('broker')!;
    const s = figures.get('socket.io')!;
    rows.push([num(clients), 'heap KiB/client', num(b.heap / 1024, 1), num(s.heap / 1024, 1), times(ratio(b.heap, s.heap))]);
    const heapRatio = ratio(b.heap, s.heap);
    ctx.checks.push({
      what: `idle clients, ${num(clients)}: heap per client, broker ÷ bare Socket.IO (broker ${num(b.heap / 1024, 2)} KiB)`,
      value: heapRatio,
      limit: '≤ 1.05 and ≤ 12 KiB',
      pass: heapRatio <= 1.05 && b.heap / 1024 <= 12,
    });
    rows.push([num(clients), 'RSS KiB/client', num(b.rss / 1024, 1), num(s.rss / 1024, 1), times(ratio(b.rss, s.rss))]);
  }
  ctx.results.idle = results;
  ctx.tables.push({
    title: '4. Idle connections: memory per client',
    intro:
      'socket.io-client 4.x clients connect over WebSocket and join `calls`, then stay idle. Heap used and RSS of the server process after a full GC, minus the same before the clients came, divided by their number; a fresh server for each measurement.',
    headers: ['clients', 'metric', 'broker', 'bare Socket.IO', 'ratio'],
    rows,
  });
}

// Scenario 5: the fan-out over two brokers sharing Redis, against two bare Socket.IO servers with the same adapter on the same Redis.
async function scenarioCluster(ctx: Context): Promise<void> {
  log('\n# 5. cluster: two brokers vs two bare Socket.IO servers with the Redis Streams adapter, on one Redis');
  const title = '5. Cluster: two brokers vs two bare Socket.IO servers on Redis';
  const skip = (why: string): void => {
    log(`  skipped: ${why}`);
    ctx.results.cluster = { skipped: why };
    ctx.tables.push({ title, intro: `Skipped: ${why}.`, headers: ['result'], rows: [['skipped']] });
  };
  let redis: Awaited<ReturnType<typeof startRedis>>;
  try {
    redis = await startRedis();
  } catch (error) {
    return skip(`redis-server not available (${(error as Error).message})`);
  }
  const started: ServerProc[] = [];
  try {
    let a: ServerProc;
    let b: ServerProc;
    try {
      a = await startServerProc({ ...BROKER, label: 'broker A', env: { REDIS_URL: redis.url } });
      started.push(a);
      b = await startServerProc({ ...BROKER, label: 'broker B', env: { REDIS_URL: redis.url } });
      started.push(b);
    } catch (error) {
      return skip(`cluster support not present (a broker with REDIS_URL did not start: ${(error as Error).message})`);
    }
    const redisPid = redis.pid ?? Number.NaN;
    if (!(await crossesNodes(a.url, b.url))) return skip('cluster support not present (an event published on one broker did not reach a subscriber of the other)');
    // The same adapter on the same Redis (a stream of its own), recovery as the broker has it.
    const bare = (label: string): ServerSpec => {
      const spec = bareSocketIo('ignore', ctx.recovery ? DEFAULT_SETTINGS.recoveryWindowMs : 0);
      return { ...spec, label, env: { ...spec.env, BENCH_REDIS_URL: redis.url } };
    };
    const sa = await startServerProc(bare('bare A'));
    started.push(sa);
    const sb = await startServerProc(bare('bare B'));
    started.push(sb);
    const r = await measureFanout(
      [target('2 brokers', [a, b], () => procCpuMicros(redisPid)), target('2 bare Socket.IO', [sa, sb], () => procCpuMicros(redisPid))],
      // As many runs as scenario 1: its CPU target is as tight, and single runs move by more than it on a shared machine.
      // The fixed-rate phases of both pairs at once: in turns, the machine's state moved between them by as much as they differ.
      { ...fanoutOptions(MODE.cluster, 'bus'), together: true },
    );
    ctx.results.cluster = r;
    ctx.cluster = r;
    const [c, s] = r.targets as [FanoutResult['targets'][0], FanoutResult['targets'][0]];
    const cpuRatio = ratio(c.fixed.cpuPerDeliveryUs, s.fixed.cpuPerDeliveryUs);
    ctx.checks.push({ what: `cluster, ${num(r.subscribers)} subscribers: servers CPU per delivery at the fixed rate, brokers ÷ bare Socket.IO`, value: cpuRatio, limit: '≤ 1.05', pass: cpuRatio <= 1.05 });
    const p99 = c.fixed.latency?.p99 ?? Number.NaN;
    const bareP99 = s.fixed.latency?.p99 ?? Number.NaN;
    ctx.checks.push({ what: `cluster, ${num(r.subscribers)} subscribers: latency p99 at the fixed rate, ms (bare Socket.IO ${num(bareP99, 2)})`, value: p99, limit: '≤ bare + 2 ms', pass: p99 <= bareP99 + 2, unit: 'ms' });
    const row = (metric: string, f: (t: typeof c) => number, digits: number): string[] => [metric, num(f(c), digits), num(f(s), digits), times(ratio(f(c), f(s)))];
    ctx.tables.push({
      title,
      intro:
        `The fan-out of scenario 1 with ${num(r.subscribers)} subscribers spread evenly over two nodes and a publisher on each node (events in turn), against two bare Socket.IO servers with \`@socket.io/redis-streams-adapter\` 0.3 on the same redis-server of the bench's own (a stream each, the same entry format). ` +
        'The brokers run their own adapter (`src/cluster/streams-adapter.ts`), which delivers every broadcast, a node\'s own included, from the node\'s one stream reader, so that every client on every node gets the stream\'s order: ' +
        'a node\'s own events reach its clients once written to Redis and read back. The bare servers\' adapter delivers a node\'s own events as soon as Redis has answered their write, without reading them back, and only the other node\'s through its reader (so two nodes\' clients can see two orders). ' +
        'The flat-out phases run in turns; the fixed-rate phases of both pairs run at the same time, a publisher each, each pair at half the rate (a quarter of the lower flat-out maximum), so that whatever else the machine does falls on both in the same seconds while the subscribers carry the load of one pair (in turns, single runs of one pair moved by more than the difference sought). ' +
        `Latency is over all subscribers, on both nodes. Connection state recovery ${ctx.recovery ? 'on' : 'off'}, on both sides. Server CPU is the sum of both nodes; Redis CPU, shared, is given for the flat-out phases only. ` +
        'The chart gives each median as a bar and each of the runs it is the median of as a dot.',
      image: { alt: 'Cluster: deliveries per second, servers CPU per delivery and latency, two brokers against two bare Socket.IO servers', path: CLUSTER_CHART },
      headers: ['metric', '2 brokers', '2 bare Socket.IO', 'ratio'],
      rows: [
        row('deliveries/s, flat out', (t) => t.max.uniquePerS, 0),
        row('servers CPU µs/delivery, flat out', (t) => t.max.cpuPerDeliveryUs, 2),
        row(`servers CPU µs/delivery at ${num(r.rate)} events/s`, (t) => t.fixed.cpuPerDeliveryUs, 2),
        row('Redis CPU µs/delivery, flat out', (t) => t.max.extraCpuPerDeliveryUs ?? NaN, 2),
        row('latency p50 ms (fixed rate)', (t) => t.fixed.latency?.p50 ?? NaN, 2),
        row('latency p99 ms (fixed rate)', (t) => t.fixed.latency?.p99 ?? NaN, 2),
      ],
      notes: [`Flat out, limited by: brokers ${boundBy(c.max)}; bare Socket.IO ${boundBy(s.max)}.`],
    });
  } finally {
    await Promise.all(started.map((s) => s.stop()));
    await redis.stop();
  }
}

// Scenario 6: the per-event CPU of the hardening's payload check, in this process, beside Socket.IO's own work on the payload.
async function scenarioChecks(ctx: Context): Promise<void> {
  log('\n# 6. per event: the payload depth check, and routing one event');
  const depth = measureDepth([1_000, 100_000]);
  const routing = await measureRouting();
  const rows: string[][] = [];
  for (const d of depth) {
    const share = d.depthCheck / (d.parse + d.encode);
    log(`  ${num(d.bytes)} bytes: depth check ${num(d.depthCheck, 2)} µs, JSON.parse ${num(d.parse, 2)} µs, encode ${num(d.encode, 2)} µs (the broker's ${num(d.brokerEncode, 2)} µs)`);
    rows.push([
      `${num(d.bytes / 1_000, 0)} KB (${num(d.containers)} objects and arrays)`,
      num(d.depthCheck, 2),
      num(d.parse, 2),
      num(d.encode, 2),
      num(d.brokerEncode, 2),
      `${num(share * 100, 1)}%`,
      times(ratio(d.depthCheck + d.brokerEncode, d.encode)),
    ]);
    ctx.checks.push({ what: `payload depth check, ${num(d.bytes / 1_000, 0)} KB: CPU per event ÷ Socket.IO's parse + encode of the same payload`, value: share, limit: '≤ 0.10', pass: share <= 0.1 });
  }
  log(`  one call routed to nobody: broker ${num(routing.broker, 2)} µs, bare ${num(routing.bare, 2)} µs`);
  ctx.results.checks = { depth, routing };
  ctx.tables.push({
    title: '6. Per event: the payload depth check',
    intro:
      'CPU per event in one process, no network: the depth check (`MAX_PAYLOAD_DEPTH`, on every socket event and `/_notify` body) on a parsed payload of `call` records of about 1 KB and 100 KB, ' +
      'beside what Socket.IO does with the same payload anyway: `JSON.parse` as it arrives, and socket.io-parser\'s encode (a walk for binary parts, then `JSON.stringify`) as it is broadcast. ' +
      'The broker\'s own server sends JSON only, so its encoder skips that walk: the depth check takes its place rather than adding a second pass. Each figure is the least of 7 rounds (other jobs only add time).',
    headers: ['payload', 'depth check µs', 'JSON.parse µs', 'Socket.IO encode µs', "broker's encode µs", 'check ÷ (parse + encode)', '(check + broker encode) ÷ Socket.IO encode'],
    rows,
    notes: [
      `One \`call\` (0.5 KB) routed to rooms nobody is in, recovery on (per-event work without deliveries): broker ${num(routing.broker, 2)} µs (depth check, route, \`_in\`, one broadcast, its backlog), ` +
        `bare \`io.to([bus, ..._in]).emit\` ${num(routing.bare, 2)} µs: ${times(ratio(routing.broker, routing.bare))}.`,
    ],
  });
}

/** True when a `call` published on `from` reaches a subscriber of `calls` on `to`. */
async function crossesNodes(from: string, to: string): Promise<boolean> {
  const open = (url: string) => connectClient(url, { transports: ['websocket'], forceNew: true, reconnection: false });
  const sub = open(to);
  const pub = open(from);
  try {
    await Promise.all([sub, pub].map((s) => new Promise<void>((resolve, reject) => (s.once('connect', resolve), s.once('connect_error', reject)))));
    await sub.timeout(5_000).emitWithAck('join', 'calls');
    await sleep(500);
    const arrived = new Promise<boolean>((resolve) => {
      sub.once('call', () => resolve(true));
      setTimeout(() => resolve(false), 5_000);
    });
    pub.emit('call', { state: 'probe' });
    return await arrived;
  } catch {
    return false;
  } finally {
    sub.close();
    pub.close();
  }
}

/** The chart of scenario 1. */
function chart(fanout: readonly FanoutResult[]): string {
  const labels = fanout.map((r) => num(r.subscribers));
  const pick = (name: string, f: (t: FanoutResult['targets'][0]) => number): number[] => fanout.map((r) => f(r.targets.find((t) => t.name === name)!));
  return renderChart(
    labels,
    [
      {
        title: 'Deliveries per second, flat out',
        unit: 'deliveries/s',
        series: [
          { name: 'broker', values: pick('broker', (t) => t.max.uniquePerS), color: RED },
          { name: 'bare Socket.IO', values: pick('socket.io', (t) => t.max.uniquePerS), color: BLUE },
        ],
      },
      {
        title: 'Server CPU per delivery, flat out',
        unit: 'µs',
        series: [
          { name: 'broker', values: pick('broker', (t) => t.max.cpuPerDeliveryUs), color: RED },
          { name: 'bare Socket.IO', values: pick('socket.io', (t) => t.max.cpuPerDeliveryUs), color: BLUE },
        ],
      },
      {
        title: 'Latency at half the max rate',
        unit: 'ms',
        log: true,
        series: [
          { name: 'broker p50', values: pick('broker', (t) => t.fixed.latency?.p50 ?? NaN), color: RED },
          { name: 'bare p50', values: pick('socket.io', (t) => t.fixed.latency?.p50 ?? NaN), color: BLUE },
          { name: 'broker p99', values: pick('broker', (t) => t.fixed.latency?.p99 ?? NaN), color: RED, dashed: true },
          { name: 'bare p99', values: pick('socket.io', (t) => t.fixed.latency?.p99 ?? NaN), color: BLUE, dashed: true },
        ],
      },
    ],
    `Fan-out of call events to calls, ${MODE.name} run of ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, Node ${process.version}`,
  );
}

/** The chart of scenario 5: brokers against bare Socket.IO, medians as bars and each run as a dot. */
function clusterChart(r: FanoutResult): string {
  type Side = FanoutResult['targets'][0];
  const [brokers, bare] = r.targets as [Side, Side];
  /** A panel of `groups`, whose medians and runs `f` picks from each side. */
  const panel = (title: string, unit: string, groups: string[], f: (t: Side) => { values: number[]; runs: number[][] }) => ({
    title,
    unit,
    groups,
    series: [
      { name: '2 brokers', color: RED, ...f(brokers) },
      { name: '2 bare Socket.IO', color: BLUE, ...f(bare) },
    ],
  });
  const latency = (p: Phase, q: 'p50' | 'p99'): number => p.latency?.[q] ?? Number.NaN;
  return renderBars(
    [
      panel('Deliveries per second, flat out', 'deliveries/s', ['flat out'], (t) => ({ values: [t.max.uniquePerS], runs: [t.maxRuns.map((p) => p.uniquePerS)] })),
      panel('Servers CPU per delivery', 'µs', ['flat out', `at ${num(r.rate)} events/s`], (t) => ({
        values: [t.max.cpuPerDeliveryUs, t.fixed.cpuPerDeliveryUs],
        runs: [t.maxRuns.map((p) => p.cpuPerDeliveryUs), t.fixedRuns.map((p) => p.cpuPerDeliveryUs)],
      })),
      panel(`Latency at ${num(r.rate)} events/s`, 'ms', ['p50', 'p99'], (t) => ({
        values: [latency(t.fixed, 'p50'), latency(t.fixed, 'p99')],
        runs: [t.fixedRuns.map((p) => latency(p, 'p50')), t.fixedRuns.map((p) => latency(p, 'p99'))],
      })),
    ],
    `Cluster of two nodes on one Redis, ${num(r.subscribers)} subscribers, a publisher on each node, ${MODE.name} run of ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, Node ${process.version}`,
  );
}

/** The load averages when the run began: the machine's other jobs, before the bench adds its own. */
const LOAD_AT_START = loadavg();

function machine(): string[] {
  const cpu = cpus();
  const pkg = (name: string): string => (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  return [
    `Machine: ${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${num(totalmem() / 2 ** 30, 1)} GiB, Linux ${release()}; load average at start ${LOAD_AT_START.map((l) => l.toFixed(2)).join(' ')}, at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')} (the bench itself keeps about two cores busy).`,
    `Node ${process.version}; socket.io ${pkg('socket.io')}, socket.io-client ${pkg('socket.io-client')}, express ${pkg('express')}, autocannon ${pkg('autocannon')}.`,
  ];
}

function optionsLine(recovery: boolean): string {
  const o = socketOptions(DEFAULT_SETTINGS);
  return (
    `Socket.IO options, both sides: \`socketOptions(DEFAULT_SETTINGS)\` of src/server.ts (allowEIO3 ${String(o.allowEIO3)}, maxHttpBufferSize ${num(o.maxHttpBufferSize)}, CORS any origin), ` +
    `per-message deflate off (the Socket.IO default), in-memory adapter; connection state recovery ${recovery ? `on (${DEFAULT_SETTINGS.recoveryWindowMs / 1000} s) on the broker, so on the baseline too` : 'off on the broker, so off on the baseline'}. ` +
    'The broker runs as `npm start` runs it (`src/main.ts`, default settings, its default `spicy-action:*` logs to a pipe), with only a probe preloaded that answers `process.cpuUsage()` and `process.memoryUsage()` over IPC when asked.'
  );
}

async function main(): Promise<void> {
  const began = Date.now();
  mkdirSync(PROFILES, { recursive: true });
  const ctx: Context = { recovery: false, checks: [], tables: [], results: {} };
  log(`spicy-action bench, ${MODE.name} mode${PROFILE ? ', with --cpu-prof' : ''}`);
  for (const line of machine()) log(line);
  if (wanted('fanout')) await scenarioFanout(ctx);
  else ctx.recovery = await (async () => {
    const broker = await startServerProc(BROKER);
    try {
      return await hasRecovery(broker.url);
    } finally {
      await broker.stop();
    }
  })();
  if (wanted('in')) await scenarioIn(ctx);
  if (wanted('http')) await scenarioHttp(ctx);
  if (wanted('idle')) await scenarioIdle(ctx);
  if (wanted('cluster')) await scenarioCluster(ctx);
  if (wanted('checks')) await scenarioChecks(ctx);
  const seconds = (Date.now() - began) / 1000;

  log('');
  for (const table of ctx.tables) log(consoleTable(table));
  const checkLines = ctx.checks.map((c) => `${c.pass ? 'PASS' : 'FAIL'} ${c.what}: ${c.unit === 'ms' ? `${num(c.value, 2)} ms` : times(c.value)} (target ${c.limit})`);
  for (const line of checkLines) log(line);
  log(`\n${MODE.name} run took ${num(seconds)} s`);

  const stamp = new Date().toISOString();
  writeFileSync(
    join(RESULTS, `${MODE.name}.json`),
    `${JSON.stringify({ mode: MODE.name, date: stamp, seconds, machine: machine(), recovery: ctx.recovery, checks: ctx.checks, results: ctx.results }, null, 2)}\n`,
  );
  if (!FULL || ONLY.length > 0 || SUBSCRIBERS.length > 0) {
    log(`results in bench/results/${MODE.name}.json (BENCHMARKS.md is written by a complete --full run)`);
    return;
  }
  if (ctx.fanout) writeFileSync(join(ROOT, 'bench', 'chart.svg'), chart(ctx.fanout));
  if (ctx.cluster) writeFileSync(join(ROOT, CLUSTER_CHART), clusterChart(ctx.cluster));
  const notes = readFileSync(join(ROOT, 'bench', 'notes.md'), 'utf8');
  const md = [
    '# Benchmarks',
    '',
    `Written by \`npm run bench -- --full\` on ${stamp} (the run took ${num(seconds / 60, 1)} minutes); do not edit by hand: the analysis below comes from \`bench/notes.md\`. ` +
      'What each scenario does, and how to run it: [bench/README.md](bench/README.md). Every figure is the median of ' +
      `${MODE.reps} runs (${MODE.sideReps} for scenario 2), broker and baseline alternating (ABAB) in the same run (scenario 5's fixed-rate phases: both at once), on loopback; the machine has few cores and is shared, so read the ratios, and the absolute numbers only as context.`,
    '',
    ...machine().map((l) => `- ${l}`),
    `- ${optionsLine(ctx.recovery)}`,
    '- Load: socket.io-client 4.x over WebSocket in separate generator processes (two for 100 subscribers and more), one publisher process, autocannon in its own process. ' +
      'Server CPU is the server\'s own `process.cpuUsage()` over the measured window, fair even when the load generators limit the rate (each table says which side did).',
    '',
    '## Targets',
    '',
    ...checkLines.map((l) => `- ${l}`),
    '',
    '## Results',
    '',
    '![Fan-out: deliveries per second, server CPU per delivery and latency against subscribers](bench/chart.svg)',
    '',
    ...ctx.tables.map(markdownTable),
    notes.trim(),
    '',
  ].join('\n');
  writeFileSync(join(ROOT, 'BENCHMARKS.md'), md);
  log(`wrote BENCHMARKS.md, bench/chart.svg${ctx.cluster ? `, ${CLUSTER_CHART}` : ''} and bench/results/full.json`);
}

main()
  .catch((error: unknown) => {
    console.error(`bench failed: ${error instanceof Error ? error.stack : String(error)}`);
    process.exitCode = 1;
  })
  .finally(() => {
    killAll();
    // Load generators that linger must not hold the run open.
    setTimeout(() => process.exit(process.exitCode ?? 0), 500).unref();
  });
