/**
 * The model checker's schedules: what a run does, drawn from a seed. Pure (no
 * Socket.IO, no Redis), so that a seed always gives the same schedule and a
 * failing one can be printed and replayed (`SEED=<seed> npm run model`).
 *
 * A schedule is a cluster shape (nodes, stream length, subscribers of every
 * client generation, publishers) and a list of timed steps: subscriber drops,
 * Redis paused or refusing writes, a node stopped (SIGTERM) or killed
 * (SIGKILL) and started again, a route changed. Faults that take Redis or a
 * node away never overlap, so that every step's effect on the documented
 * promises is known (see invariants.ts).
 */
import type { Generation } from '../helpers/clients.ts';

/** A step of a schedule, at `at` ms from its start. */
export type Step =
  /** The subscriber's connection drops; after `away` ms it reconnects to node `to` (a 4.x client asks to recover). */
  | { readonly at: number; readonly do: 'drop'; readonly subscriber: number; readonly to: number; readonly away: number }
  /** Redis is stopped (SIGSTOP) for `ms`, then continued (SIGCONT). */
  | { readonly at: number; readonly do: 'pause'; readonly ms: number }
  /** Redis refuses writes (`maxmemory 1`, `noeviction`) for `ms`. */
  | { readonly at: number; readonly do: 'refuse'; readonly ms: number }
  /** The node is stopped (SIGTERM) or killed (SIGKILL), then started again; its clients reconnect elsewhere. */
  | { readonly at: number; readonly do: 'term' | 'kill'; readonly node: number }
  /** A publisher registers the routed event `mc` to `bus` (null: no bus). */
  | { readonly at: number; readonly do: 'route'; readonly publisher: number; readonly bus: string | null };

/** A subscriber: its client generation, first node and the buses it joins. */
export interface SubscriberPlan {
  readonly generation: Generation;
  readonly node: number;
  readonly rooms: readonly string[];
}

/** Everything a run does. */
export interface Schedule {
  readonly seed: number;
  readonly nodes: number;
  /** REDIS_STREAM_MAXLEN of every node: small ones trim the stream during the run. */
  readonly streamMaxLen: number;
  /** Events per second of each publisher. */
  readonly rate: number;
  /** Share of published events sent with an acknowledgement. */
  readonly ackedShare: number;
  /** The node each publisher uses (it moves only when that node goes away). */
  readonly publishers: readonly number[];
  readonly subscribers: readonly SubscriberPlan[];
  /** How long publishers publish, in ms; steps fall within it. */
  readonly durationMs: number;
  readonly steps: readonly Step[];
}

/** How big schedules get. */
export interface ScheduleBounds {
  readonly maxNodes: 2 | 3;
  readonly durationMs: number;
  readonly maxSubscribers: number;
  /** Fault windows (pause, refuse, term, kill) per schedule, at most. */
  readonly maxFaults: number;
}

/** Schedules of the short run: five seconds, one fault at most. */
export const SHORT_BOUNDS: ScheduleBounds = { maxNodes: 3, durationMs: 5_000, maxSubscribers: 5, maxFaults: 1 };
/** Schedules of the long run: ten seconds, up to three faults. */
export const LONG_BOUNDS: ScheduleBounds = { maxNodes: 3, durationMs: 10_000, maxSubscribers: 8, maxFaults: 3 };

/** The buses subscribers join and routes point to. */
export const MODEL_BUSES = ['calls', 'support'] as const;
/** Events publishers send: two built-in routes and one they re-route during the run. */
export const MODEL_EVENTS = { call: 'calls', report_dev: 'support', mc: 'calls' } as const;
export type ModelEvent = keyof typeof MODEL_EVENTS;
/** The event whose route `route` steps change. */
export const ROUTED_EVENT: ModelEvent = 'mc';

/** Shortest and longest Redis pause or refusal, in ms (the nodes run with REDIS_TIMEOUT=1s, grace 30 s). */
const FAULT_MS = [600, 2_500] as const;
/** Time a stopped node is given to go and come back, kept clear of other faults, in ms. */
const NODE_FAULT_MS = 4_000;
/** Stream lengths drawn: trimmed within a run (the least the broker takes is 1,000), or never. */
const STREAM_MAXLENS = [1_000, 2_000, 100_000] as const;
/** Longest time a dropped subscriber stays away, in ms: at the publishers' rates, past the trim edge of the short streams. */
const MAX_AWAY_MS = 3_000;
/** Events per second of each publisher (two to four of them): up to a stream of 1,000 every second. */
const RATES = [50, 100, 250] as const;

/**
 * A small seeded generator (mulberry32): the same seed, the same draws.
 *
 * @example
 * const random = new Random(42); random.int(0, 3); // always the same
 */
export class Random {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)] as T;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/**
 * The schedule of `seed` within `bounds`.
 *
 * @example
 * const schedule = scheduleOf(1234, { maxNodes: 3, durationMs: 6_000, maxSubscribers: 6, maxFaults: 2 });
 */
export function scheduleOf(seed: number, bounds: ScheduleBounds): Schedule {
  const random = new Random(seed);
  const nodes = random.int(2, bounds.maxNodes);
  const generations: Generation[] = ['v1', 'v2', 'v4'];
  const subscriberCount = random.int(3, Math.max(3, bounds.maxSubscribers));
  const subscribers: SubscriberPlan[] = Array.from({ length: subscriberCount }, (_, i) => {
    // Every generation in every schedule, the rest drawn; 4.x (the one that recovers) most often.
    const generation = i < 3 ? (generations[i] as Generation) : random.chance(0.6) ? 'v4' : random.pick(generations);
    const rooms = random.chance(0.4) ? [...MODEL_BUSES] : [random.pick(MODEL_BUSES)];
    return { generation, node: random.int(0, nodes - 1), rooms };
  });
  const publishers = Array.from({ length: random.int(nodes, nodes + 1) }, (_, i) => (i < nodes ? i : random.int(0, nodes - 1)));
  const durationMs = bounds.durationMs;
  const steps: Step[] = [];

  // Faults: non-overlapping windows, each with room before the end for its effects to settle.
  const faults = random.int(0, bounds.maxFaults);
  let free = 300;
  for (let f = 0; f < faults; f++) {
    const kind = random.pick(['pause', 'refuse', 'term', 'kill'] as const);
    const length = kind === 'pause' || kind === 'refuse' ? random.int(FAULT_MS[0], FAULT_MS[1]) : NODE_FAULT_MS;
    const latest = durationMs - length - 300;
    if (free > latest) break;
    const at = random.int(free, Math.min(latest, free + durationMs / Math.max(1, faults)));
    steps.push(kind === 'term' || kind === 'kill' ? { at, do: kind, node: random.int(0, nodes - 1) } : { at, do: kind, ms: length });
    free = at + length + 300;
  }
  const drops = random.int(subscriberCount, subscriberCount * 3);
  for (let d = 0; d < drops; d++) {
    steps.push({ at: random.int(200, durationMs - 200), do: 'drop', subscriber: random.int(0, subscriberCount - 1), to: random.int(0, nodes - 1), away: random.chance(0.5) ? 0 : random.int(0, MAX_AWAY_MS) });
  }
  const routes = random.int(0, 3);
  for (let r = 0; r < routes; r++) {
    steps.push({ at: random.int(200, durationMs - 200), do: 'route', publisher: random.int(0, publishers.length - 1), bus: random.chance(0.2) ? null : random.pick(MODEL_BUSES) });
  }
  steps.sort((a, b) => a.at - b.at);
  return {
    seed,
    nodes,
    streamMaxLen: random.pick(STREAM_MAXLENS),
    rate: random.pick(RATES),
    ackedShare: random.pick([0.1, 0.3, 0.6]),
    publishers,
    subscribers,
    durationMs,
    steps,
  };
}

/** A schedule in a few readable lines, for a failure message. */
export function describeSchedule(schedule: Schedule): string {
  const { steps, subscribers, ...shape } = schedule;
  const lines = [
    `seed ${schedule.seed}: ${JSON.stringify({ ...shape, seed: undefined })}`,
    ...subscribers.map((s, i) => `  subscriber ${i}: ${s.generation} on node ${s.node}, in ${s.rooms.join(', ')}`),
    ...steps.map((s) => `  ${String(s.at).padStart(6)} ms ${JSON.stringify({ ...s, at: undefined })}`),
  ];
  return lines.join('\n');
}
