/**
 * What happened, told once: the broker, the HTTP push route and the access
 * guards report into one {@link Telemetry}, and whoever watches (metrics,
 * logs, an embedding host) listens to it. Reporting is a method call per
 * kind of fact, so no module emits on another's behalf and the facts are
 * typed at the border.
 */
import { EventEmitter } from 'node:events';
import type { Refusal } from './protocol.ts';
import type { Route } from './routes.ts';
import type { Targets } from './targets.ts';

/** The socket an event or a refusal came from: its id, which only the broker's public id may reveal. */
export interface Sender {
  readonly id: string;
}

/** What comes with a disconnection. */
export interface DisconnectDetails {
  /** Socket.IO's description of the reason: for a `transport error`, the Error. */
  readonly description: unknown;
  readonly address: string;
}

/** The facts, by name, with what each carries. */
export interface TelemetryEvents {
  /** A socket connected; `id` is its public id. */
  connection: [id: string];
  /**
   * A socket disconnected: its public id, Socket.IO's reason, and what came
   * with it (the error of a `transport error`) and the peer's address.
   */
  disconnection: [id: string, reason: string, details: DisconnectDetails];
  /**
   * A routed event, from a socket or from `/_notify`, was published; `by`
   * names the sender's credential, `from` is the sending socket (none for a push).
   */
  routed: [event: string, route: Route, targets: Targets, by: string, from: Sender | undefined];
  /** A socket sent an event that has no route; it was dropped. */
  unrouted: [event: string];
  /**
   * A client's input was refused; `what` names the event, request or
   * connection, `by` the client's credential when it is known (not for a
   * connection or request refused before it said who it is).
   */
  refused: [what: string, refusal: Refusal, by: string | undefined, from: Sender | undefined];
  /** A route was set by `register`, or removed over HTTP (`bus` undefined), by the credential `by`. */
  route_changed: [event: string, bus: Route | undefined, by: string, from: Sender | undefined];
  /** A `POST /_notify/:msg` request was answered with `status`. */
  notified: [msg: string, status: number];
  /** A route administration request (`GET /routes`, `DELETE /routes/:event`) was answered with `status`. */
  route_admin: [action: RouteAdminAction, status: number];
}

/** What a route administration request did: `list` (`GET /routes`) or `remove` (`DELETE /routes/:event`). */
export type RouteAdminAction = 'list' | 'remove';

/**
 * The one channel of what the broker does.
 *
 * @example
 * const telemetry = new Telemetry();
 * telemetry.on('refused', (what, refusal) => console.warn(what, refusal.error));
 * telemetry.refused('join', { reason: 'bad_room', error: 'room must be a non-empty string' });
 */
export class Telemetry {
  readonly #emitter = new EventEmitter<TelemetryEvents>();

  /** Listens to one kind of fact. */
  on<K extends keyof TelemetryEvents>(event: K, listener: (...args: TelemetryEvents[K]) => void): this {
    this.#emitter.on(event, listener as never);
    return this;
  }

  /** Stops listening. */
  off<K extends keyof TelemetryEvents>(event: K, listener: (...args: TelemetryEvents[K]) => void): this {
    this.#emitter.off(event, listener as never);
    return this;
  }

  connection(id: string): void {
    this.#emitter.emit('connection', id);
  }

  disconnection(id: string, reason: string, details: DisconnectDetails): void {
    this.#emitter.emit('disconnection', id, reason, details);
  }

  /** True when someone listens to `event`: a report that costs something to build can be skipped otherwise. */
  listens(event: keyof TelemetryEvents): boolean {
    return this.#emitter.listenerCount(event) > 0;
  }

  routed(event: string, route: Route, targets: Targets, by: string, from?: Sender): void {
    this.#emitter.emit('routed', event, route, targets, by, from);
  }

  unrouted(event: string): void {
    this.#emitter.emit('unrouted', event);
  }

  refused(what: string, refusal: Refusal, by?: string, from?: Sender): void {
    this.#emitter.emit('refused', what, refusal, by, from);
  }

  routeChanged(event: string, bus: Route | undefined, by: string, from?: Sender): void {
    this.#emitter.emit('route_changed', event, bus, by, from);
  }

  notified(msg: string, status: number): void {
    this.#emitter.emit('notified', msg, status);
  }

  routeAdmin(action: RouteAdminAction, status: number): void {
    this.#emitter.emit('route_admin', action, status);
  }
}
