/**
 * The fan-out measurement shared by scenarios 1, 2 and 5: subscribers spread
 * over generator processes, one publisher (one per target with `together`), and for each target (broker,
 * baseline, ...) a flat-out phase (deliveries/s, server CPU per delivery),
 * then a fixed-rate phase at half the lowest maximum (latency, CPU at a rate
 * every target sustains). Targets alternate within each repetition (ABAB),
 * so that the machine's noise falls on both alike; with `together`, the
 * fixed-rate phases of all targets run at once instead, a publisher each,
 * sharing the rate, so that it falls on all of them in the same seconds.
 */
import type { Layout, PublisherCommand, PublisherReport, SubscriberCommand, SubscriberReport, Target } from './messages.ts';
import { forkWorker, type ServerProc, type Worker } from './procs.ts';
import { sleep } from '../test/helpers/wait.ts';
import { median, mergeSamples, summarizeLatency, type LatencySummary } from './stats.ts';

/** A target and the server processes whose CPU counts for it. */
export interface MeasuredTarget {
  readonly target: Target;
  readonly servers: readonly ServerProc[];
  /** Extra CPU to count (redis-server), µs so far; optional. */
  readonly extraCpu?: () => number;
}

export interface FanoutOptions {
  readonly subscribers: number;
  readonly layout: Layout;
  readonly generators: number;
  readonly repetitions: number;
  readonly warmMs: number;
  readonly measureMs: number;
  /**
   * Run each repetition's fixed-rate phases of all targets at the same time,
   * one publisher process per target, rather than in turns (scenario 5: the
   * state of a shared machine differs between turns by as much as two
   * clusters differ). The rate is then shared among the targets, so that the
   * subscriber processes carry the load of one target in turns: loaded with
   * more, they read late, writes gather into fewer system calls, and every
   * target's cost per delivery falls. Redis's CPU is not told apart, and is
   * left out of those phases. The flat-out phases stay in turns.
   */
  readonly together?: boolean;
  /** Log progress lines. */
  readonly log: (line: string) => void;
}

/** One measured phase of one target. */
export interface Phase {
  /** Events delivered per second, duplicates included. */
  readonly deliveredPerS: number;
  /** Distinct (event, socket) deliveries per second. */
  readonly uniquePerS: number;
  /** Events published per second (distinct deliveries ÷ subscribers). */
  readonly eventsPerS: number;
  /** Server CPU µs per distinct delivery, and per event. */
  readonly cpuPerDeliveryUs: number;
  readonly cpuPerEventUs: number;
  /** Share of one core the server(s) used, and the load generators (subscribers and publisher). */
  readonly serverCores: number;
  readonly clientCores: number;
  /** Extra CPU (redis) per distinct delivery, µs. */
  readonly extraCpuPerDeliveryUs?: number;
  readonly latency?: LatencySummary;
}

/** The medians over repetitions, and every phase measured. */
export interface TargetResult {
  readonly name: string;
  readonly max: Phase;
  readonly fixed: Phase;
  readonly maxRuns: readonly Phase[];
  readonly fixedRuns: readonly Phase[];
}

export interface FanoutResult {
  readonly subscribers: number;
  readonly layout: Layout;
  /** Events/s of the fixed-rate phases. */
  readonly rate: number;
  readonly targets: readonly TargetResult[];
  /** Deliveries of one event, duplicates included, per subscriber (1 unless a target sends copies). */
  readonly connectMs: number;
}

/** A subscriber generator process. */
export type Sub = Worker<SubscriberCommand, SubscriberReport>;
type Pub = Worker<PublisherCommand, PublisherReport>;
/** One generator's answer to a snapshot: its counts for a target, and its CPU. */
type SubscriberSnapshot = Extract<SubscriberReport, { type: 'snapshot' }>;

let runCounter = 0;
let snapshotCounter = 0;

/** User + system CPU of a `process.cpuUsage()`, µs. */
export const cpuOf = (c: { user: number; system: number }): number => c.user + c.system;

/**
 * Forks `generators` subscriber generators holding `subscribers` subscribers
 * of every target between them (socket.io-client 4.x over WebSocket, each
 * joining the rooms of `layout`, listening for `call`). `subs` is every
 * process at once, for the caller to close whatever happens; `connected`
 * resolves once all their sockets are connected and joined.
 */
export function forkSubscribers(targets: readonly Target[], options: { subscribers: number; generators: number; layout: Layout }): { subs: Sub[]; connected: Promise<unknown> } {
  const { subscribers, layout } = options;
  const generators = Math.max(1, Math.min(options.generators, subscribers));
  const subs: Sub[] = [];
  let first = 0;
  for (let g = 0; g < generators; g++) {
    const count = Math.floor(subscribers / generators) + (g < subscribers % generators ? 1 : 0);
    const sub = forkWorker<SubscriberCommand, SubscriberReport>('subscribers.ts');
    subs.push(sub);
    sub.send({ type: 'connect', targets, count, first, layout, event: 'call' });
    first += count;
  }
  const connected = Promise.all(subs.map((s) => s.next((r): r is Extract<SubscriberReport, { type: 'connected' }> => r.type === 'connected', 300_000)));
  return { subs, connected };
}

/** Connects a publisher process to `targets` (a socket to each of their URLs); resolves once it is. */
export async function connectPublisher(pub: Pub, targets: readonly Target[]): Promise<void> {
  pub.send({ type: 'connect', targets, event: 'call' });
  await pub.next((r): r is Extract<PublisherReport, { type: 'connected' }> => r.type === 'connected', 60_000);
}

/** Every generator's counts for `target` now; `latency` starts or stops recording its latencies. */
export function snapshotSubscribers(subs: readonly Sub[], target: string, latency?: 'start' | 'stop'): Promise<SubscriberSnapshot[]> {
  const id = ++snapshotCounter;
  return Promise.all(
    subs.map((sub) => {
      const answer = sub.next((r): r is SubscriberSnapshot => r.type === 'snapshot' && r.id === id, 60_000);
      sub.send({ type: 'snapshot', id, target, startLatency: latency === 'start', stopLatency: latency === 'stop' });
      return answer;
    }),
  );
}

/** Medians, field by field, of several phases. */
function medianPhase(phases: readonly Phase[]): Phase {
  const m = (f: (p: Phase) => number | undefined): number => median(phases.map((p) => f(p) ?? Number.NaN));
  const latency = phases.every((p) => p.latency)
    ? { count: m((p) => p.latency?.count), p50: m((p) => p.latency?.p50), p99: m((p) => p.latency?.p99), max: m((p) => p.latency?.max) }
    : undefined;
  const extra = phases.some((p) => p.extraCpuPerDeliveryUs !== undefined) ? m((p) => p.extraCpuPerDeliveryUs) : undefined;
  return {
    deliveredPerS: m((p) => p.deliveredPerS),
    uniquePerS: m((p) => p.uniquePerS),
    eventsPerS: m((p) => p.eventsPerS),
    cpuPerDeliveryUs: m((p) => p.cpuPerDeliveryUs),
    cpuPerEventUs: m((p) => p.cpuPerEventUs),
    serverCores: m((p) => p.serverCores),
    clientCores: m((p) => p.clientCores),
    ...(extra === undefined ? {} : { extraCpuPerDeliveryUs: extra }),
    ...(latency ? { latency } : {}),
  };
}

/**
 * Runs the fan-out measurement against `targets`, all connected at once.
 *
 * @example
 * const result = await measureFanout([{ target: { name: 'broker', urls: [url] }, servers: [broker] }],
 *   { subscribers: 100, layout: 'bus', generators: 2, repetitions: 3, warmMs: 1000, measureMs: 4000, log: console.log });
 */
export async function measureFanout(targets: readonly MeasuredTarget[], options: FanoutOptions): Promise<FanoutResult> {
  const { subscribers, repetitions, warmMs, measureMs, log } = options;
  // One publisher for every target, or one each when the targets run together.
  const pubs = new Map<string, Pub>();
  const shared = options.together ? undefined : forkWorker<PublisherCommand, PublisherReport>('publisher.ts');
  for (const t of targets) pubs.set(t.target.name, shared ?? forkWorker<PublisherCommand, PublisherReport>('publisher.ts'));
  const pubOf = (name: string): Pub => pubs.get(name) as Pub;
  const allPubs = [...new Set(pubs.values())];
  const started = Date.now();
  const list = targets.map((t) => t.target);
  const { subs, connected } = forkSubscribers(list, options);
  try {
    await connected;
    await Promise.all(allPubs.map((pub) => connectPublisher(pub, list.filter((t) => pubOf(t.name) === pub))));
    const connectMs = Date.now() - started;
    log(`  ${subscribers} subscribers connected to ${targets.length} targets in ${(connectMs / 1000).toFixed(1)} s`);

    // The flat-out publisher may run `window` events ahead of the slowest subscriber.
    const window = Math.min(1_000, Math.max(5, Math.ceil(5_000 / subscribers)));
    let gate: { target: string; run: number; mins: number[] } | undefined;
    subs.forEach((sub, g) =>
      sub.on((report) => {
        if (report.type !== 'progress' || !gate || report.run !== gate.run || report.target !== gate.target) return;
        gate.mins[g] = report.min;
        pubOf(gate.target).send({ type: 'allow', run: gate.run, upTo: Math.min(...gate.mins) + window });
      }),
    );

    const snapshot = async (t: MeasuredTarget, latency: 'start' | 'stop' | undefined) => {
      const id = ++snapshotCounter;
      const pub = pubOf(t.target.name);
      const publisherCpu = pub.next((r): r is Extract<PublisherReport, { type: 'cpu' }> => r.type === 'cpu' && r.id === id, 60_000);
      pub.send({ type: 'cpu', id });
      const [probes, reports, publisher] = await Promise.all([Promise.all(t.servers.map((s) => s.probe())), snapshotSubscribers(subs, t.target.name, latency), publisherCpu]);
      return {
        at: performance.now(),
        serverCpu: probes.reduce((sum, p) => sum + cpuOf(p.cpu), 0),
        extraCpu: t.extraCpu?.() ?? 0,
        clientCpu: reports.reduce((sum, r) => sum + cpuOf(r.cpu), cpuOf(publisher.cpu)),
        delivered: reports.reduce((sum, r) => sum + r.delivered, 0),
        unique: reports.reduce((sum, r) => sum + r.unique, 0),
        latency: reports.map((r) => r.latency),
      };
    };

    /** Waits until nothing more arrives; returns the last snapshot. */
    const drain = async (t: MeasuredTarget): Promise<Awaited<ReturnType<typeof snapshot>>> => {
      let last = await snapshot(t, undefined);
      for (let i = 0; i < 100; i++) {
        await sleep(100);
        const now = await snapshot(t, undefined);
        if (now.delivered === last.delivered) return now;
        last = now;
      }
      log(`  warning: ${t.target.name} was still delivering 10 s after the publisher stopped`);
      return last;
    };

    type Snapshot = Awaited<ReturnType<typeof snapshot>>;

    /** Tells the target's publisher to stop, and waits until it has. */
    const stopPublisher = async (t: MeasuredTarget): Promise<void> => {
      const pub = pubOf(t.target.name);
      const stopped = pub.next((r): r is Extract<PublisherReport, { type: 'stopped' }> => r.type === 'stopped');
      pub.send({ type: 'stop' });
      await stopped;
    };

    /**
     * One phase's figures from its snapshots: rates over the measured window (a to b); CPU over
     * the whole phase, from before the first event to after the last delivery, so that receivers
     * lagging behind cannot make a delivery look dearer.
     */
    const phaseOf = (t: MeasuredTarget, mode: 'max' | 'rate', begin: Snapshot, a: Snapshot, b: Snapshot, end: Snapshot, withExtra: boolean): Phase => {
      const seconds = (b.at - a.at) / 1000;
      const unique = b.unique - a.unique;
      const cpu = end.serverCpu - begin.serverCpu;
      const allUnique = end.unique - begin.unique;
      const events = unique / subscribers;
      const merged = mergeSamples(b.latency.filter((l) => l !== undefined).map((l) => ({ values: l.values, seen: l.seen })));
      const result: Phase = {
        deliveredPerS: (b.delivered - a.delivered) / seconds,
        uniquePerS: unique / seconds,
        eventsPerS: events / seconds,
        cpuPerDeliveryUs: cpu / allUnique,
        cpuPerEventUs: cpu / (allUnique / subscribers),
        serverCores: (b.serverCpu - a.serverCpu) / 1e6 / seconds,
        clientCores: (b.clientCpu - a.clientCpu) / 1e6 / seconds,
        ...(t.extraCpu && withExtra ? { extraCpuPerDeliveryUs: (end.extraCpu - begin.extraCpu) / allUnique } : {}),
        ...(mode === 'rate' ? { latency: summarizeLatency(merged.values) } : {}),
      };
      log(
        `  ${t.target.name.padEnd(22)} ${mode === 'max' ? 'max ' : 'rate'} ${Math.round(result.uniquePerS).toLocaleString('en').padStart(9)} deliveries/s` +
          `  ${result.cpuPerDeliveryUs.toFixed(2).padStart(6)} µs CPU/delivery  server ${(result.serverCores * 100).toFixed(0)}% of a core, clients ${(result.clientCores * 100).toFixed(0)}%` +
          (result.latency ? `  p50 ${result.latency.p50.toFixed(2)} ms p99 ${result.latency.p99.toFixed(2)} ms` : ''),
      );
      return result;
    };

    const phase = async (t: MeasuredTarget, mode: 'max' | 'rate', rate: number): Promise<Phase> => {
      const run = ++runCounter;
      const name = t.target.name;
      const begin = await snapshot(t, undefined);
      if (mode === 'max') {
        gate = { target: name, run, mins: subs.map(() => 0) };
        for (const sub of subs) sub.send({ type: 'progress', target: name, run });
        pubOf(name).send({ type: 'start', target: name, run, mode: 'max', window });
      } else {
        pubOf(name).send({ type: 'start', target: name, run, mode: 'rate', rate });
      }
      await sleep(warmMs);
      const a = await snapshot(t, mode === 'rate' ? 'start' : undefined);
      await sleep(measureMs);
      const b = await snapshot(t, mode === 'rate' ? 'stop' : undefined);
      await stopPublisher(t);
      gate = undefined;
      for (const sub of subs) sub.send({ type: 'progress', target: null, run });
      const end = await drain(t);
      return phaseOf(t, mode, begin, a, b, end, true);
    };

    /** The fixed-rate phase of every target at once (`together`). */
    const phasesTogether = async (rate: number): Promise<Phase[]> => {
      const run = ++runCounter;
      const all = (latency: 'start' | 'stop' | undefined): Promise<Snapshot[]> => Promise.all(targets.map((t) => snapshot(t, latency)));
      const begin = await all(undefined);
      for (const t of targets) pubOf(t.target.name).send({ type: 'start', target: t.target.name, run, mode: 'rate', rate });
      await sleep(warmMs);
      const a = await all('start');
      await sleep(measureMs);
      const b = await all('stop');
      await Promise.all(targets.map(stopPublisher));
      const end = await Promise.all(targets.map(drain));
      return targets.map((t, i) => phaseOf(t, 'rate', begin[i] as Snapshot, a[i] as Snapshot, b[i] as Snapshot, end[i] as Snapshot, false));
    };

    const order = (rep: number): readonly MeasuredTarget[] => (rep % 2 === 0 ? targets : [...targets].reverse());
    const maxRuns = new Map<string, Phase[]>(targets.map((t) => [t.target.name, []]));
    const fixedRuns = new Map<string, Phase[]>(targets.map((t) => [t.target.name, []]));
    for (let rep = 0; rep < repetitions; rep++) {
      for (const t of order(rep)) maxRuns.get(t.target.name)!.push(await phase(t, 'max', 0));
    }
    // One rate for all targets: half of the lowest maximum, so that every target sustains it; shared
    // among the targets when they run together, so that the subscribers carry the load of one target.
    const lowest = Math.min(...targets.map((t) => median(maxRuns.get(t.target.name)!.map((p) => p.eventsPerS))));
    const rate = Math.max(1, Math.floor((0.5 * lowest) / (options.together ? targets.length : 1)));
    log(`  fixed rate: ${rate.toLocaleString('en')} events/s (${(rate * subscribers).toLocaleString('en')} deliveries/s)${options.together ? ` on each of the ${targets.length} targets at once` : ''}`);
    for (let rep = 0; rep < repetitions; rep++) {
      if (options.together) (await phasesTogether(rate)).forEach((p, i) => fixedRuns.get(targets[i]!.target.name)!.push(p));
      else for (const t of order(rep)) fixedRuns.get(t.target.name)!.push(await phase(t, 'rate', rate));
    }
    return {
      subscribers,
      layout: options.layout,
      rate,
      connectMs,
      targets: targets.map((t) => {
        const name = t.target.name;
        return { name, max: medianPhase(maxRuns.get(name)!), fixed: medianPhase(fixedRuns.get(name)!), maxRuns: maxRuns.get(name)!, fixedRuns: fixedRuns.get(name)! };
      }),
    };
  } finally {
    for (const sub of subs) sub.send({ type: 'close' });
    for (const pub of allPubs) pub.send({ type: 'close' });
    await sleep(200);
    for (const w of [...subs, ...allPubs]) if (w.child.exitCode === null) w.child.kill('SIGKILL');
  }
}
