/**
 * Connection handling (SPEC sections 2 to 5): greets each socket, answers the
 * control events, and routes every other event to its bus and `_in` rooms.
 * One `onAny` listener per socket does the dispatch, so a route registered
 * now applies at once to sockets connected before.
 */
import { EventEmitter } from 'node:events';
import createDebug from 'debug';
import type { Application } from 'express';
import type { Server, Socket } from 'socket.io';
import type { Buses } from './buses.ts';
import { notifyRouter } from './http/notify.ts';
import { NAME, VERSION } from './package-info.ts';
import { isObject, roomRefusal, type ClientToServerEvents, type Refusal, type ServerToClientEvents } from './protocol.ts';
import { RouteTable, type Route } from './routes.ts';
import { computeTargets, notifyTargets, type Targets } from './targets.ts';

const debug = createDebug('spicy-action:broker');

/** The Socket.IO server the broker works on. */
export type BrokerServer = Server<ClientToServerEvents, ServerToClientEvents>;
/** One connected client. */
export type BrokerSocket = Socket<ClientToServerEvents, ServerToClientEvents>;

/** Limits the broker enforces on what clients send (SPEC section 9). */
export interface BrokerLimits {
  /** Longest room name, in characters (256). */
  readonly maxRoomNameLength: number;
  /** Most rooms one socket may join (1,000). */
  readonly maxRoomsPerSocket: number;
  /** Most routes in the table (10,000). */
  readonly maxRoutes: number;
  /** Most `_in` rooms used per event (100). */
  readonly maxInRooms: number;
  /** Largest `/_notify` body, in bytes (1 MB). */
  readonly maxBodyBytes: number;
}

/** How to build a broker. */
export interface BrokerOptions {
  /** The bus lists. */
  readonly buses: Buses;
  /** A route table to use (to share it, or to pre-load it); a fresh one with the default routes otherwise. */
  readonly routes?: RouteTable;
  /** Limits; each missing one takes its default. */
  readonly limits?: Partial<BrokerLimits>;
  /**
   * Skip broadcasts that nobody can receive: no connected socket in any of
   * their rooms, and no session waiting for recovery that was in one. Only
   * right when this process sees every socket (no cluster adapter); the
   * broker then turns it off by itself if it cannot see the waiting sessions.
   */
  readonly skipUnheard?: boolean;
  /**
   * On a cluster: runs `publish` (one emit to rooms) and returns what became
   * of the event's publication to Redis, or undefined when it is not known.
   * A sender's acknowledgement then waits for it, and says `{ok: false, error}`
   * when the event reached this node's clients only (Redis refused it, or is
   * down past the grace). Omitted (one process): acknowledgements are sent at once.
   */
  readonly track?: (publish: () => void) => Promise<PublicationOutcome> | undefined;
  /** Name and version told in `welcome`; this package's own by default. */
  readonly name?: string;
  readonly version?: string;
}

/** What the broker tells its observers (metrics, logs). */
export interface BrokerEvents {
  /** A socket connected. */
  connection: [socket: BrokerSocket];
  /** A routed event, from a socket or from `/_notify`, was published. */
  routed: [event: string, route: Route, targets: Targets];
  /** A socket sent an event that has no route; it was dropped. */
  unrouted: [event: string];
  /** A client's input was refused. */
  refused: [event: string, refusal: Refusal];
  /** A `/_notify` request was answered with `status`; `msg` is undefined when it has no route. */
  notified: [msg: string | undefined, status: number];
}

export const DEFAULT_LIMITS: BrokerLimits = Object.freeze({
  maxRoomNameLength: 256,
  maxRoomsPerSocket: 1_000,
  maxRoutes: 10_000,
  maxInRooms: 100,
  maxBodyBytes: 1_000_000,
});

/** What became of one event's publication to the cluster (see {@link BrokerOptions.track}). */
export type PublicationOutcome = { readonly ok: true } | { readonly ok: false; readonly error: string };

type AckFn = (answer: unknown) => void;
type Control = (socket: BrokerSocket, args: unknown[], ack: AckFn | undefined, event: string) => void;

/**
 * The broker, attached to a Socket.IO server (and optionally an Express app
 * for `/_notify`). Emits {@link BrokerEvents} for whoever watches it.
 */
export class Broker extends EventEmitter<BrokerEvents> {
  /** The event→bus table; `register` changes it, and so may the host. */
  readonly routes: RouteTable;
  readonly buses: Buses;
  readonly limits: BrokerLimits;
  readonly #io: BrokerServer;
  readonly #welcome: { name: string; version: string };
  readonly #controls: ReadonlyMap<string, Control>;
  /** Connection state recovery appends an offset argument to every broadcast. */
  readonly #recovery: boolean;
  /** Tells whether a broadcast to these rooms can reach anyone; undefined: always assume it can. */
  readonly #heard: ((rooms: readonly string[]) => boolean) | undefined;
  readonly #track: BrokerOptions['track'];
  #closed = false;

  constructor(io: BrokerServer, options: BrokerOptions) {
    super();
    this.#io = io;
    this.#recovery = Boolean(io._opts.connectionStateRecovery);
    this.#heard = options.skipUnheard ? hearing(io, this.#recovery) : undefined;
    this.#track = options.track;
    this.buses = options.buses;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.routes =
      options.routes ??
      new RouteTable(options.buses, { maxRoutes: this.limits.maxRoutes, maxNameLength: this.limits.maxRoomNameLength });
    this.#welcome = { name: options.name ?? NAME, version: options.version ?? VERSION };
    this.#controls = new Map<string, Control>([
      ['configure', this.#configure],
      ['join', this.#join],
      ['subscribe', this.#join],
      ['leave', this.#leave],
      ['unsubscribe', this.#leave],
      ['ping', this.#ping],
      ['shout', this.#shout],
      ['notify_users', this.#notifyUsers],
      ['register', this.#register],
    ]);
    io.on('connection', this.#onConnection);
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Emits `event` to `rooms`, each receiving socket once. `args` is what
   * follows the event name: empty for an event sent without payload.
   *
   * With connection state recovery on, Socket.IO appends the event's offset
   * as a last argument; an event without payload is then sent with `null`,
   * so that the offset never stands where receivers read the payload.
   */
  publish(event: string, args: readonly unknown[], rooms: readonly string[]): void {
    if (rooms.length === 0 || (this.#heard && !this.#heard(rooms))) return;
    const payload = args.length === 0 && this.#recovery ? [null] : args;
    this.#io.to(rooms.length === 1 ? (rooms[0] as string) : (rooms as string[])).emit(event, ...payload);
  }

  /**
   * Routes `event` with payload `args[0]` as if a socket had sent it; returns
   * what it reached, or undefined when the event has no route.
   */
  route(event: string, args: readonly unknown[]): Targets | undefined {
    const route = this.routes.get(event);
    if (route === undefined) return undefined;
    const targets = computeTargets(route, args[0], {
      notificationRooms: this.buses.notificationRooms,
      maxInRooms: this.limits.maxInRooms,
      maxRoomNameLength: this.limits.maxRoomNameLength,
    });
    return this.#deliver(event, route, targets, args.length > 1 ? args.slice(0, 1) : args);
  }

  /**
   * Routes a `/_notify` push: `msg` with `body` to the route's bus and, when
   * the body names an endpoint, to `endpoint:<endpoint>`. Returns what it
   * reached, or undefined (nothing sent) when `msg` has no route or a null one.
   */
  push(msg: string, body: Record<string, unknown>): Targets | undefined {
    const bus = this.routes.get(msg);
    if (bus === undefined || bus === null) return undefined;
    const rooms = notifyTargets(bus, body, this.limits.maxRoomNameLength);
    return this.#deliver(msg, bus, { rooms, skipped: 0, overflow: 0 }, [body]);
  }

  /** Publishes a routed event and tells the observers. */
  #deliver(event: string, route: Route, targets: Targets, args: readonly unknown[]): Targets {
    this.publish(event, args, targets.rooms);
    this.emit('routed', event, route, targets);
    return targets;
  }

  /**
   * Detaches the broker: new connections are no longer greeted, events of
   * connected sockets are no longer handled, and `/_notify` answers 503.
   * Sockets stay open: they belong to the host's Socket.IO server.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#io.off('connection', this.#onConnection);
  }

  readonly #onConnection = (socket: BrokerSocket): void => {
    debug('connect %s from %s (EIO%d over %s)', socket.id, socket.handshake.address, socket.conn.protocol, socket.conn.transport.name);
    socket.onAny((event: string, ...args: unknown[]) => this.#dispatch(socket, event, args));
    socket.once('disconnect', (reason) => debug('disconnect %s: %s', socket.id, reason));
    socket.emit('welcome', { id: socket.id, ...this.#welcome, public: false });
    this.emit('connection', socket);
  };

  #dispatch(socket: BrokerSocket, event: string, args: unknown[]): void {
    if (this.#closed) return;
    const ack = typeof args[args.length - 1] === 'function' ? (args.pop() as AckFn) : undefined;
    try {
      const control = this.#controls.get(event);
      if (control) return control(socket, args, ack, event);
      // On a cluster, an acknowledgement waits to learn whether Redis took the event.
      const routed: { targets?: Targets } = {};
      const outcome = ack && this.#track ? this.#track(() => (routed.targets = this.route(event, args))) : undefined;
      if (!(ack && this.#track)) routed.targets = this.route(event, args);
      const { targets } = routed;
      if (targets === undefined) {
        this.emit('unrouted', event);
        ack?.({ ok: false, error: `no route for "${event}"` });
        return;
      }
      if (targets.overflow > 0) {
        this.emit('refused', event, { reason: 'in_overflow', error: `${targets.overflow} _in rooms past the limit of ${this.limits.maxInRooms} were ignored` });
      }
      const rooms = targets.rooms.length;
      if (outcome === undefined) ack?.({ ok: true, rooms });
      else void outcome.then((result) => ack?.(result.ok ? { ok: true, rooms } : { ok: false, error: result.error }));
    } catch (error) {
      // A bug of ours must not stop the broker or leave the client waiting.
      debug('failure handling %s from %s: %s', event, socket.id, (error as Error).stack);
      this.#refuse(socket, event, ack, { reason: 'bad_payload', error: 'the broker could not handle this event' });
    }
  }

  /** Tells the client why its input was refused: through its callback, else with `failed`. */
  #refuse(socket: BrokerSocket, event: string, ack: AckFn | undefined, refusal: Refusal, booleanAck = false): void {
    debug('refused %s from %s: %s', event, socket.id, refusal.error);
    this.emit('refused', event, refusal);
    if (ack) ack(booleanAck ? false : { ok: false, error: refusal.error });
    else socket.emit('failed', { event, msg: refusal.error });
  }

  // `configure {bus: true|false}`: the legacy way to join and leave private and host buses.
  readonly #configure: Control = (socket, [request], ack) => {
    if (!isObject(request)) {
      return this.#refuse(socket, 'configure', ack, { reason: 'bad_payload', error: 'configure needs an object {<bus>: true|false}' });
    }
    const joined: string[] = [];
    const left: string[] = [];
    for (const bus of [...this.buses.privateBuses, ...this.buses.hostBuses]) {
      if (request[bus] === true) {
        void socket.join(bus);
        joined.push(bus);
      } else if (request[bus] === false) {
        void socket.leave(bus);
        left.push(bus);
      }
    }
    socket.emit('configured', request);
    ack?.({ ok: true, joined, left });
  };

  // `join`/`subscribe room`: dashboards and servers listening to a bus or an entity room.
  readonly #join: Control = (socket, [room], ack, event) => {
    const refusal = roomRefusal(room, this.limits.maxRoomNameLength);
    if (refusal) return this.#refuse(socket, event, ack, refusal, true);
    const name = room as string;
    if (!socket.rooms.has(name) && socket.rooms.size - 1 >= this.limits.maxRoomsPerSocket) {
      return this.#refuse(socket, event, ack, { reason: 'too_many_rooms', error: `a socket may be in at most ${this.limits.maxRoomsPerSocket} rooms` }, true);
    }
    void socket.join(name);
    ack?.(true);
  };

  // `leave`/`unsubscribe room`.
  readonly #leave: Control = (socket, [room], ack, event) => {
    const refusal = roomRefusal(room, this.limits.maxRoomNameLength);
    if (refusal) return this.#refuse(socket, event, ack, refusal, true);
    if (room === socket.id) return this.#refuse(socket, event, ack, { reason: 'bad_room', error: 'a socket cannot leave its own room' }, true);
    void socket.leave(room as string);
    ack?.(true);
  };

  // `ping`: who is there? Relayed to every host bus; hosts answer `pong`.
  readonly #ping: Control = (_socket, args, ack) => {
    this.publish('ping', args.slice(0, 1), this.buses.hostBuses);
    ack?.({ ok: true });
  };

  // `shout`: a note for the admins on `internal`, signed with the sender's id.
  readonly #shout: Control = (socket, [data], ack) => {
    this.publish('shouted', [{ id: socket.id, data }], ['internal']);
    ack?.({ ok: true });
  };

  // `notify_users`: a notice for admins and every public user.
  readonly #notifyUsers: Control = (_socket, args, ack) => {
    this.publish('notify', args.slice(0, 1), ['internal', 'everyone']);
    ack?.({ ok: true });
  };

  // `register {event, default_room}`: servers declaring the events they emit.
  // On a cluster, the acknowledgement waits for Redis to take the change (a refused change is undone).
  readonly #register: Control = (socket, [request], ack) => {
    const registered: { result?: ReturnType<RouteTable['register']> } = {};
    const outcome = ack && this.#track ? this.#track(() => (registered.result = this.routes.register(request))) : undefined;
    const result = registered.result ?? this.routes.register(request);
    if (!result.ok) return this.#refuse(socket, 'register', ack, result);
    debug('%s registered %s → %s', socket.id, result.event, result.bus ?? '(_in only)');
    const answer = { ok: true, event: result.event, bus: result.bus };
    if (outcome === undefined) ack?.(answer);
    else void outcome.then((written) => ack?.(written.ok ? answer : { ok: false, error: written.error }));
  };
}

/**
 * Whether a broadcast to `rooms` can reach anyone now or on recovery, read
 * from the in-memory adapter: a connected socket in one of the rooms, or a
 * disconnected session, kept for recovery, that was in one. Socket.IO's
 * adapter encodes (and, with recovery, stores) every broadcast even when
 * nobody listens; skipping those saves that work, and the memory of
 * events nobody could ever recover. Undefined (never skip) when the
 * adapter's session table is not there to read.
 */
function hearing(io: BrokerServer, recovery: boolean): ((rooms: readonly string[]) => boolean) | undefined {
  const adapter = io.of('/').adapter;
  const sessions = (adapter as unknown as { sessions?: unknown }).sessions;
  if (recovery && !(sessions instanceof Map)) return undefined;
  const waiting = sessions as Map<string, { rooms?: unknown }> | undefined;
  return (rooms) => {
    for (const room of rooms) if ((adapter.rooms.get(room)?.size ?? 0) > 0) return true;
    if (!recovery || !waiting) return false;
    for (const session of waiting.values()) {
      if (!Array.isArray(session.rooms)) return true; // not the shape we know: assume it listens
      for (const room of rooms) if (session.rooms.includes(room)) return true;
    }
    return false;
  };
}

/**
 * Attaches the broker to a host's Socket.IO server and, when `app` is given,
 * mounts `POST /_notify/:msg` on its Express app.
 *
 * @example
 * const io = new Server(httpServer, { allowEIO3: true });
 * const app = express();
 * const broker = attachBroker(io, app, { buses: loadBuses('buses.json') });
 * broker.routes.get('call'); // 'calls'
 * broker.close();
 */
export function attachBroker(io: BrokerServer, app: Application | undefined, options: BrokerOptions): Broker {
  const broker = new Broker(io, options);
  if (app) app.use(notifyRouter(broker));
  return broker;
}
