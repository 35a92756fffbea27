/**
 * The route table: which bus each known event is broadcast on
 * (docs/protocol.md#default-routes, #register). It is also the list of every
 * event the platform knows, and reading the defaults below is the quickest
 * way to learn who talks to whom.
 */
import { hostname } from 'node:os';
import createDebug from 'debug';
import type { Buses } from './buses.ts';
import { DEFAULT_LIMITS } from './limits.ts';
import { eventRefusal, isObject, type Refusal } from './protocol.ts';

const debug = createDebug('spicy-action:routes');

/** The bus an event goes to; null: only to the rooms its `_in` names. */
export type Route = string | null;

/** A route added or replaced. */
export interface RouteChange {
  readonly event: string;
  readonly bus: Route;
}

/**
 * A route removed ({@link RouteTable.remove}): a registered route is gone
 * (`bus` undefined), a built-in one is back to its default (`bus` is it).
 */
export interface RouteRemoval {
  readonly event: string;
  /** The route after the removal: the built-in default, or undefined when the event has no route any more. */
  readonly bus: Route | undefined;
}

/** When, and on which node, a route was last changed. */
export interface RouteStamp {
  /** Milliseconds since the epoch. */
  readonly at: number;
  /** The node's name, such as `broker1:4242` (host name and process id). */
  readonly node: string;
  /** The credential of the client that made the change (docs/security.md#credentials); absent when not known. */
  readonly by?: string;
}

/** Where a route comes from: the defaults below, or a `register` (or a host's `set`). */
export type RouteKind = 'built-in' | 'registered';

/** One route as operators see it (`GET /routes`). */
export interface RouteInfo {
  readonly event: string;
  readonly bus: Route;
  readonly kind: RouteKind;
  /** A built-in route's default bus (what a removal brings back); absent for registered routes. */
  readonly default?: Route;
  /** When and where it was last changed; absent for a built-in route never changed since this node started (or in the cluster). */
  readonly stamp?: RouteStamp;
}

/**
 * This process's name for the route table's stamps: the host name and the
 * process id, `broker1:4242`. Human enough to tell which machine changed a
 * route, and different for two brokers on one host.
 *
 * @example
 * defaultNodeName(); // 'broker1:4242'
 */
export function defaultNodeName(): string {
  return `${hostname()}:${process.pid}`;
}

/** The default routes, grouped by who sends the events. */
export const DEFAULT_ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  // Every server's error reporter (the logging library `tangible`, socket.io-client 2.x):
  // {stamp, now, host, session, application, method, event, msg, data, logging}.
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
 * names. Listeners hear every change, whoever made it: additions and
 * replacements through {@link onChange}, removals through {@link onRemove}.
 * Each change is stamped with its time and node ({@link stampOf}).
 *
 * @example
 * const routes = new RouteTable(buses, { maxRoutes: 10_000 });
 * routes.get('call'); // 'calls'
 * routes.register({ event: 'queuer', default_room: 'calls' }); // { ok: true, event: 'queuer', bus: 'calls' }
 * routes.remove('queuer'); // { event: 'queuer', bus: undefined, changed: true }
 */
export class RouteTable {
  readonly #routes: Map<string, Route>;
  /** When and where each route was last changed; built-in routes never changed have none. */
  readonly #stamps = new Map<string, RouteStamp>();
  readonly #buses: Buses;
  readonly #maxRoutes: number;
  readonly #maxNameLength: number;
  readonly #listeners = new Set<(change: RouteChange) => void>();
  readonly #removalListeners = new Set<(removal: RouteRemoval) => void>();
  /** This node's name, in the stamps of the changes made here. */
  readonly node: string;

  constructor(buses: Buses, options: { maxRoutes?: number; maxNameLength?: number; node?: string } = {}) {
    this.#buses = buses;
    this.#routes = new Map(DEFAULT_ROUTES);
    this.#maxRoutes = options.maxRoutes ?? DEFAULT_LIMITS.maxRoutes;
    this.#maxNameLength = options.maxNameLength ?? DEFAULT_LIMITS.maxRoomNameLength;
    this.node = options.node ?? defaultNodeName();
  }

  /** The route of `event`: a bus, null for `_in` delivery only, undefined when the event is unknown. */
  get(event: string): Route | undefined {
    return this.#routes.get(event);
  }

  /** Most routes the table may hold, built-in ones included (`MAX_ROUTES`). */
  get maxRoutes(): number {
    return this.#maxRoutes;
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
  register(request: unknown, by?: string): ({ ok: true } & RouteChange) | ({ ok: false } & Refusal) {
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
    this.set(event, bus, by === undefined ? undefined : { at: Date.now(), node: this.node, by });
    return { ok: true, event, bus };
  }

  /**
   * Adds or replaces a route without checks (for routes that were checked
   * elsewhere, such as on another node of a cluster), stamped `stamp` (now,
   * on this node, by default; null when unknown, as for a route written by an
   * older version). Returns false when the route was already so (its stamp
   * then stays).
   */
  set(event: string, bus: Route, stamp: RouteStamp | null = { at: Date.now(), node: this.node }): boolean {
    if (this.#routes.get(event) === bus && this.#routes.has(event)) return false;
    this.#routes.set(event, bus);
    if (stamp) this.#stamps.set(event, stamp);
    else this.#stamps.delete(event);
    debug('route %s → %s', event, bus ?? '(_in only)');
    for (const listener of this.#listeners) listener({ event, bus });
    return true;
  }

  /**
   * Removes the route of `event`: a registered route goes, a built-in one
   * returns to its default and loses its stamp. Undefined when `event` has
   * no route; `changed` is false for a built-in route that was at its
   * default already (nothing to tell the listeners then).
   *
   * @example
   * routes.remove('queuer'); // { event: 'queuer', bus: undefined, changed: true }
   * routes.remove('call'); // { event: 'call', bus: 'calls', changed: false }
   * routes.remove('nothing'); // undefined
   */
  remove(event: string): (RouteRemoval & { changed: boolean }) | undefined {
    if (!this.#routes.has(event)) return undefined;
    const builtIn = DEFAULT_ROUTES.has(event);
    const bus = builtIn ? DEFAULT_ROUTES.get(event) : undefined;
    const changed = !builtIn || this.#stamps.has(event) || this.#routes.get(event) !== bus;
    if (!changed) return { event, bus, changed };
    if (builtIn) this.#routes.set(event, bus as Route);
    else this.#routes.delete(event);
    this.#stamps.delete(event);
    debug('route %s removed%s', event, builtIn ? `: back to ${bus ?? '(_in only)'}` : '');
    for (const listener of this.#removalListeners) listener({ event, bus });
    return { event, bus, changed };
  }

  /** When and where the route of `event` was last changed; undefined for a built-in route never changed, or an unknown event. */
  stampOf(event: string): RouteStamp | undefined {
    return this.#stamps.get(event);
  }

  /**
   * Every route as operators see it, in the order they were first added.
   *
   * @example
   * [...routes.list()][0]; // { event: 'report_dev', bus: 'support', kind: 'built-in', default: 'support' }
   */
  *list(): IterableIterator<RouteInfo> {
    for (const [event, bus] of this.#routes) {
      const stamp = this.#stamps.get(event);
      const kind: RouteKind = DEFAULT_ROUTES.has(event) ? 'built-in' : 'registered';
      yield {
        event,
        bus,
        kind,
        ...(kind === 'built-in' ? { default: DEFAULT_ROUTES.get(event) as Route } : {}),
        ...(stamp ? { stamp } : {}),
      };
    }
  }

  /**
   * Removes a route without telling the listeners: for undoing a change that
   * never reached the cluster (Redis refused it). Returns false when absent.
   */
  unset(event: string): boolean {
    this.#stamps.delete(event);
    return this.#routes.delete(event);
  }

  /** Calls `listener` after every addition or replacement; returns a function that stops it. */
  onChange(listener: (change: RouteChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Calls `listener` after every removal that changed the table; returns a function that stops it. */
  onRemove(listener: (removal: RouteRemoval) => void): () => void {
    this.#removalListeners.add(listener);
    return () => this.#removalListeners.delete(listener);
  }
}
