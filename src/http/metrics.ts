/**
 * `GET /metrics` (docs/protocol.md#metrics, docs/observability.md#get-metrics): what the broker does, in Prometheus text,
 * from its own prom-client Registry (never the global one, so several brokers
 * and a host application can live in one process).
 *
 * Everything is observed from the outside, through the broker's telemetry and
 * gauges read at scrape time: on the hot path a routed event costs one Map
 * update per counter, and the prom-client counters are brought up to date
 * when Prometheus scrapes.
 *
 * Label values are bounded, and this module is where that is decided: event
 * names by {@link EventLabels} (the built-in routes, then the first
 * `maxMetricEvents` registered names; the rest together as `(other)`; an
 * unrouted event or `/_notify` message is counted without its name), buses
 * by the bus lists, statuses and reasons by the code. Any client may
 * register routes, so the route table alone (up to MAX_ROUTES names of up to
 * 256 characters, never removed) is no bound fit for a time series database.
 */
import createDebug from 'debug';
import type { RequestHandler } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { DEFAULT_LIMITS } from '../limits.ts';
import type { RedisState } from '../protocol.ts';
import { DEFAULT_ROUTES, type RouteTable } from '../routes.ts';
import type { Telemetry } from '../telemetry.ts';
import type { RedisStateSource } from './health.ts';

const debug = createDebug('spicy-action:metrics');

/** The `msg` label of `/_notify` requests for a message that has no route. */
export const UNROUTED_LABEL = '(unrouted)';

/** The `event` and `msg` label of registered events past the `maxMetricEvents` first ones. */
export const OTHER_LABEL = '(other)';

/** The `credential` label of a refusal made before the client said who it is (a connection, a request without a valid secret). */
export const UNKNOWN_CREDENTIAL_LABEL = '(unknown)';

/**
 * Which event names are label values: every built-in route, and the first
 * `max` other names counted (registered at run time by clients), kept for
 * the life of the broker so that a series never changes its meaning; later
 * names are all {@link OTHER_LABEL}. At most `DEFAULT_ROUTES.size + max + 1`
 * values, whatever clients register.
 *
 * @example
 * const labels = new EventLabels(1);
 * labels.of('call'); // 'call' (built in)
 * labels.of('queuer'); // 'queuer' (the first registered one)
 * labels.of('dialer'); // '(other)'
 */
export class EventLabels {
  readonly #admitted = new Set<string>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  /** The label value counting `event`, a routed event. */
  of(event: string): string {
    if (DEFAULT_ROUTES.has(event) || this.#admitted.has(event)) return event;
    if (this.#admitted.size >= this.#max) return OTHER_LABEL;
    this.#admitted.add(event);
    return event;
  }
}

const REDIS_STATES: readonly RedisState[] = ['off', 'up', 'degraded', 'down'];

/** Counts by key, kept in a Map on the hot path and copied into a Counter at scrape time. */
class Tally {
  readonly counts = new Map<string, number>();
  add(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }
}

/** A counter with one label whose values come from a {@link Tally} when scraped. */
function tallyCounter(registry: Registry, name: string, help: string, label: string, tally: Tally): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset();
      for (const [value, n] of tally.counts) this.inc({ [label]: value }, n);
    },
  });
}

/** Counts by two keys, kept in nested Maps on the hot path (two lookups, no key string to build). */
class PairTally {
  readonly counts = new Map<string, Map<string | number, number>>();
  add(first: string, second: string | number): void {
    let bySecond = this.counts.get(first);
    if (bySecond === undefined) this.counts.set(first, (bySecond = new Map()));
    bySecond.set(second, (bySecond.get(second) ?? 0) + 1);
  }
}

/** A counter with two labels whose values come from a {@link PairTally} when scraped. */
function pairCounter(registry: Registry, name: string, help: string, labels: readonly [string, string], tally: PairTally): void {
  const [first, second] = labels;
  new Counter({
    name,
    help,
    labelNames: [first, second],
    registers: [registry],
    collect() {
      this.reset();
      for (const [a, bySecond] of tally.counts) {
        for (const [b, n] of bySecond) this.inc({ [first]: a, [second]: String(b) }, n);
      }
    },
  });
}

/** The slow-consumer guard, as the metrics read it. */
export interface BackpressureSource {
  on(event: 'disconnected', listener: (id: string, bytes: number) => void): unknown;
}

/** What the metrics observe; a {@link Broker} is a `broker`. */
export interface MetricsSources {
  readonly broker: { readonly routes: Pick<RouteTable, 'get' | 'size'>; readonly telemetry: Telemetry };
  /** Sockets connected to this node now. */
  readonly connections: () => number;
  /** The cluster's link to Redis; omitted: `off`. */
  readonly redis?: RedisStateSource;
  /** The slow-consumer guard; omitted: its counter stays 0. */
  readonly backpressure?: BackpressureSource;
  /** Collect the default process metrics (CPU, memory, event loop, GC); true by default. */
  readonly processMetrics?: boolean;
  /** Registered event names with a label of their own (MAX_METRIC_EVENTS); the rest are `(other)`. */
  readonly maxMetricEvents?: number;
}

/**
 * How often the event-loop lag is sampled, in ms (prom-client's default is
 * 10): each sample wakes the process, and an idle broker would wake a hundred
 * times a second for this one metric.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * Builds the broker's Registry. Its counters start at 0 and follow the
 * broker from now on.
 *
 * @example
 * const registry = createMetrics({ broker, connections: () => io.of('/').sockets.size });
 * app.get('/metrics', metricsHandler(registry));
 */
export function createMetrics(sources: MetricsSources): Registry {
  const { broker, connections, redis, backpressure } = sources;
  const registry = new Registry();
  if (sources.processMetrics !== false) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });

  new Gauge({
    name: 'spicy_action_connected_sockets',
    help: 'Socket.IO clients connected to this node.',
    registers: [registry],
    collect() {
      this.set(connections());
    },
  });
  new Gauge({
    name: 'spicy_action_routes',
    help: 'Routes in the route table, built-in ones included.',
    registers: [registry],
    collect() {
      this.set(broker.routes.size);
    },
  });
  new Gauge({
    name: 'spicy_action_redis_state',
    help: "The cluster's link to Redis: 1 for the current state (off: no cluster, up, degraded: refusing writes, down).",
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const current = redis?.state ?? 'off';
      for (const state of REDIS_STATES) this.set({ state }, state === current ? 1 : 0);
    },
  });

  let connectionsTotal = 0;
  let unrouted = 0;
  let undelivered = 0;
  let missed = 0;
  let slowConsumers = 0;
  const received = new PairTally();
  const deliveries = new Tally();
  const refused = new PairTally();
  const notified = new PairTally();
  const refusedWrites = new Tally();

  const { telemetry, routes } = broker;
  // One bound for both counters that name events: a name has the same label in each.
  const labels = new EventLabels(sources.maxMetricEvents ?? DEFAULT_LIMITS.maxMetricEvents);
  telemetry.on('connection', () => connectionsTotal++);
  // Credential names come from the operator's file, not from clients: the file bounds them.
  telemetry.on('routed', (event, route, _targets, by) => {
    received.add(labels.of(event), by);
    if (route !== null) deliveries.add(route);
  });
  telemetry.on('unrouted', () => unrouted++);
  telemetry.on('refused', (_what, refusal, by) => refused.add(refusal.reason, by ?? UNKNOWN_CREDENTIAL_LABEL));
  // One key per (msg, status): msg is named only when it has a route (and within the bound), status is one of a few codes.
  telemetry.on('notified', (msg, status) => notified.add(routes.get(msg) === undefined ? UNROUTED_LABEL : labels.of(msg), status));
  redis?.on('undelivered', (n) => (undelivered += n));
  redis?.on('missed', (n) => (missed += n));
  redis?.on('refused', (reason) => refusedWrites.add(reason));
  backpressure?.on('disconnected', () => slowConsumers++);

  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  };
  counter('spicy_action_connections_total', 'Socket.IO connections accepted.', () => connectionsTotal);
  pairCounter(
    registry,
    'spicy_action_events_received_total',
    `Routed events received (from sockets and /_notify), by event name (${OTHER_LABEL}: registered names past MAX_METRIC_EVENTS) and the sender's credential.`,
    ['event', 'credential'],
    received,
  );
  tallyCounter(registry, 'spicy_action_deliveries_total', 'Routed events published to a bus, by bus (once per event, however many sockets receive it).', 'bus', deliveries);
  counter('spicy_action_unrouted_events_total', 'Events dropped because no route exists for them.', () => unrouted);
  pairCounter(
    registry,
    'spicy_action_notify_requests_total',
    `POST /_notify requests, by message (${UNROUTED_LABEL} when it has no route, ${OTHER_LABEL} past MAX_METRIC_EVENTS) and HTTP status.`,
    ['msg', 'status'],
    notified,
  );
  pairCounter(registry, 'spicy_action_refused_total', `Client inputs refused, by reason and the client's credential (${UNKNOWN_CREDENTIAL_LABEL} before it said who it is).`, ['reason', 'credential'], refused);
  counter('spicy_action_slow_consumers_disconnected_total', 'Sockets disconnected because their unsent data passed MAX_BUFFERED_BYTES.', () => slowConsumers);
  counter('spicy_action_cluster_undelivered_events_total', 'Events that could not reach the cluster (Redis down past its grace, refusing writes, or held at shutdown) and reached only local clients.', () => undelivered);
  counter('spicy_action_cluster_missed_entries_total', "Entries of the cluster's stream trimmed before this node read them (it fell more than REDIS_STREAM_MAXLEN entries, or the stream's time bound, behind): their events reached none of its clients.", () => missed);
  tallyCounter(registry, 'spicy_action_cluster_refused_writes_total', 'Writes Redis refused (events, sessions, route changes), by reason: oom, readonly, misconf, noreplicas, other.', 'reason', refusedWrites);

  // Route administration (http/routes.ts): one key per (action, status), both bounded by the code.
  const routeAdmin = new PairTally();
  telemetry.on('route_admin', (action, status) => routeAdmin.add(action, status));
  pairCounter(
    registry,
    'spicy_action_route_admin_requests_total',
    'Route administration requests (GET /routes: list, DELETE /routes/:event: remove), by action and HTTP status.',
    ['action', 'status'],
    routeAdmin,
  );

  return registry;
}

/**
 * Express handler of `GET /metrics` for `registry`.
 *
 * @example
 * app.get('/metrics', metricsHandler(createMetrics({ broker, connections })));
 */
export function metricsHandler(registry: Registry): RequestHandler {
  return (_req, res) => {
    registry.metrics().then(
      (text) => {
        res.set('Content-Type', registry.contentType).send(text);
      },
      (error: unknown) => {
        debug('metrics failed: %s', (error as Error).message);
        res.status(500).json({ ok: false, error: 'metrics could not be collected' });
      },
    );
  };
}
