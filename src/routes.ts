/**
 * The route table: which bus each known event is broadcast on (SPEC sections 4
 * and 5). It is also the list of every event the platform knows, and reading
 * the defaults below is the quickest way to learn who talks to whom.
 */
import createDebug from 'debug';
import type { Buses } from './buses.ts';
import { eventRefusal, isObject, type Refusal } from './protocol.ts';

const debug = createDebug('spicy-action:routes');

/** The bus an event goes to; null: only to the rooms its `_in` names. */
export type Route = string | null;

/** A route added or replaced. */
export interface RouteChange {
  readonly event: string;
  readonly bus: Route;
}

/** The default routes, grouped by who sends the events. */
export const DEFAULT_ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  // Every server's error reporter (`cuddly`, later `tangible`): {error, application, host, stamp, ...}.
  ['report_dev', 'support'],
  ['report_ops', 'support'],
  ['report_csr', 'support'],
  // Call handlers (FreeSWITCH side): one `call` per state change, `reference` per call leg.
  ['call', 'calls'],
  ['reference', 'calls'],
  // Call handlers and their statistics modules.
  ['statistics:add', 'calls'],
  // Dashboards asking the trace collector for a packet trace.
  ['trace', 'traces'],
  // The trace collector answering, and hosts answering `ping`.
  ['pong', 'internal'],
  ['trace_started', 'internal'],
  ['trace_completed', 'internal'],
  ['trace_error', 'internal'],
  // Requests towards OpenSIPS: `location` carries an address of record, the others nothing.
  ['location', 'locations'],
  ['locations', 'locations'],
  ['registrants', 'locations'],
  ['presentities', 'locations'],
  ['active_watchers', 'locations'],
  // OpenSIPS helpers: registration changes and answers to the requests above.
  ['location:update', 'internal'],
  ['location:response', 'internal'],
  ['locations:response', 'internal'],
  ['presentities:response', 'internal'],
  ['active_watchers:response', 'internal'],
  ['registrants:response', 'internal'],
  // OpenSIPS itself, through `/_notify`: invalid source IP, rate limiting.
  ['script_register', 'support'],
  ['pipe_blocked', 'support'],
  ['pike_blocked', 'support'],
]);

/**
 * The event→bus table. A `Map`, so `__proto__` or `constructor` are plain event
 * names. Listeners hear every change, whoever made it.
 *
 * @example
 * const routes = new RouteTable(buses, { maxRoutes: 10_000 });
 * routes.get('call'); // 'calls'
 * routes.register({ event: 'queuer', default_room: 'calls' }); // { ok: true, event: 'queuer', bus: 'calls' }
 */
export class RouteTable {
  readonly #routes: Map<string, Route>;
  readonly #buses: Buses;
  readonly #maxRoutes: number;
  readonly #maxNameLength: number;
  readonly #listeners = new Set<(change: RouteChange) => void>();

  constructor(buses: Buses, options: { maxRoutes?: number; maxNameLength?: number } = {}) {
    this.#buses = buses;
    this.#routes = new Map(DEFAULT_ROUTES);
    this.#maxRoutes = options.maxRoutes ?? 10_000;
    this.#maxNameLength = options.maxNameLength ?? 256;
  }

  /** The route of `event`: a bus, null for `_in` delivery only, undefined when the event is unknown. */
  get(event: string): Route | undefined {
    return this.#routes.get(event);
  }

  /** Number of routes, built-in ones included. */
  get size(): number {
    return this.#routes.size;
  }

  /** Every route, in the order they were first added. */
  entries(): IterableIterator<[string, Route]> {
    return this.#routes.entries();
  }

  /**
   * Handles a `register` request: checks it, then adds or replaces the route.
   * A `default_room` that is not a known bus gives a null route.
   */
  register(request: unknown): ({ ok: true } & RouteChange) | ({ ok: false } & Refusal) {
    if (!isObject(request)) {
      return { ok: false, reason: 'bad_payload', error: 'register needs an object {event, default_room}' };
    }
    const refusal = eventRefusal(request.event, this.#maxNameLength);
    if (refusal) return { ok: false, ...refusal };
    const event = request.event as string;
    const room = request.default_room;
    const bus = typeof room === 'string' && this.#buses.known.has(room) ? room : null;
    if (!this.#routes.has(event) && this.#routes.size >= this.#maxRoutes) {
      return { ok: false, reason: 'too_many_routes', error: `the route table is full (${this.#maxRoutes} routes)` };
    }
    this.set(event, bus);
    return { ok: true, event, bus };
  }

  /**
   * Adds or replaces a route without checks (for routes that were checked
   * elsewhere, such as on another node of a cluster). Returns false when the
   * route was already so.
   */
  set(event: string, bus: Route): boolean {
    if (this.#routes.get(event) === bus && this.#routes.has(event)) return false;
    this.#routes.set(event, bus);
    debug('route %s → %s', event, bus ?? '(_in only)');
    for (const listener of this.#listeners) listener({ event, bus });
    return true;
  }

  /**
   * Removes a route without telling the listeners: for undoing a change that
   * never reached the cluster (Redis refused it). Returns false when absent.
   */
  unset(event: string): boolean {
    return this.#routes.delete(event);
  }

  /** Calls `listener` after every change; returns a function that stops it. */
  onChange(listener: (change: RouteChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
