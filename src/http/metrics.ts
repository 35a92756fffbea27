/**
 * `GET /metrics` (SPEC section 10): what the broker does, in Prometheus text,
 * from its own prom-client Registry (never the global one, so several brokers
 * and a host application can live in one process).
 *
 * Everything is observed from the outside, through the Broker's events and
 * gauges read at scrape time: on the hot path a routed event costs one Map
 * update per counter, and the prom-client counters are brought up to date
 * when Prometheus scrapes.
 *
 * Label values are bounded: event names by the route table (an unrouted
 * event is counted without its name), buses by the bus lists, statuses and
 * reasons by the code.
 */
import createDebug from 'debug';
import type { RequestHandler } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Broker } from '../broker.ts';
import type { RedisStateSource } from './health.ts';
import type { RedisState } from '../protocol.ts';

const debug = createDebug('spicy-action:metrics');

/** The `msg` label of `/_notify` requests for a message that has no route. */
export const UNROUTED_LABEL = '(unrouted)';

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

/** The slow-consumer guard, as the metrics read it. */
export interface BackpressureSource {
  on(event: 'disconnected', listener: (id: string, bytes: number) => void): unknown;
}

/** What the metrics observe. */
export interface MetricsSources {
  readonly broker: Broker;
  /** Sockets connected to this node now. */
  readonly connections: () => number;
  /** The cluster's link to Redis; omitted: `off`. */
  readonly redis?: RedisStateSource;
  /** The slow-consumer guard; omitted: its counter stays 0. */
  readonly backpressure?: BackpressureSource;
  /** Collect the default process metrics (CPU, memory, event loop, GC); true by default. */
  readonly processMetrics?: boolean;
}

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
  if (sources.processMetrics !== false) collectDefaultMetrics({ register: registry });

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
  let slowConsumers = 0;
  const received = new Tally();
  const deliveries = new Tally();
  const refused = new Tally();
  const notified = new Tally();
  const refusedWrites = new Tally();

  broker.on('connection', () => connectionsTotal++);
  broker.on('routed', (event, route) => {
    received.add(event);
    if (route !== null) deliveries.add(route);
  });
  broker.on('unrouted', () => unrouted++);
  broker.on('refused', (_event, refusal) => refused.add(refusal.reason));
  // One key per (msg, status): msg is a routed event or UNROUTED_LABEL, status one of a few codes.
  broker.on('notified', (msg, status) => notified.add(`${status} ${msg ?? UNROUTED_LABEL}`));
  redis?.on('undelivered', (n) => (undelivered += n));
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
  tallyCounter(registry, 'spicy_action_events_received_total', 'Routed events received (from sockets and /_notify), by event name.', 'event', received);
  tallyCounter(registry, 'spicy_action_deliveries_total', 'Routed events published to a bus, by bus (once per event, however many sockets receive it).', 'bus', deliveries);
  counter('spicy_action_unrouted_events_total', 'Events dropped because no route exists for them.', () => unrouted);
  new Counter({
    name: 'spicy_action_notify_requests_total',
    help: `POST /_notify requests, by message (${UNROUTED_LABEL} when it has no route) and HTTP status.`,
    labelNames: ['msg', 'status'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [key, n] of notified.counts) {
        const space = key.indexOf(' ');
        this.inc({ status: key.slice(0, space), msg: key.slice(space + 1) }, n);
      }
    },
  });
  tallyCounter(registry, 'spicy_action_refused_total', 'Client inputs refused, by reason.', 'reason', refused);
  counter('spicy_action_slow_consumers_disconnected_total', 'Sockets disconnected because their unsent data passed MAX_BUFFERED_BYTES.', () => slowConsumers);
  counter('spicy_action_cluster_undelivered_events_total', 'Events that could not reach the cluster (Redis down past its grace, refusing writes, or held at shutdown) and reached only local clients.', () => undelivered);
  tallyCounter(registry, 'spicy_action_cluster_refused_writes_total', 'Writes Redis refused (events, sessions, route changes), by reason: oom, readonly, misconf, noreplicas, other.', 'reason', refusedWrites);

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
