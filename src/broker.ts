/**
 * Connection handling (docs/protocol.md#control-events, #routed-events): greets each socket, answers the
 * control events, and routes every other event to its bus and `_in` rooms.
 * One `onAny` listener does the dispatch, so a route registered now applies
 * at once to sockets connected before; it is one function shared by every
 * socket (Socket.IO calls it with `this` set to the socket), and so is the
 * `disconnect` listener, which reports each disconnection to the telemetry
 * for whoever watches: a socket costs the broker no closure of its own.
 * Socket.IO only: the HTTP side (`/_notify`) reaches the broker through
 * {@link Broker.push}.
 */
import createDebug from 'debug';
import type { DefaultEventsMap, Server, Socket } from 'socket.io';
import { ANONYMOUS, type Principal } from './guards/credentials.ts';
import { DEFAULT_BUSES, type Buses } from './buses.ts';
import { DEFAULT_LIMITS, type Limits } from './limits.ts';
import { NAME, VERSION } from './package-info.ts';
import { engineProtocol, looksLikeSocketId, onAnyEvent, recoveryEnabled } from './internals.ts';
import { depthRefusal, FORBIDDEN, isObject, roomRefusal, type ClientToServerEvents, type Refusal, type ServerToClientEvents, type PublicationOutcome } from './protocol.ts';
import { PublicIds } from './public-id.ts';
import { WaitingRooms } from './recovery-backlog.ts';
import { RouteTable, type Route } from './routes.ts';
import { computeTargets, notifyTargets, type TargetLimits, type Targets } from './targets.ts';
import { Telemetry, type Sender, type TelemetryEvents } from './telemetry.ts';

const debug = createDebug('spicy-action:broker');

/** What the broker keeps on each socket: the client its access check accepted (docs/security.md#credentials). */
export interface BrokerSocketData {
  principal?: Principal;
}
/** The Socket.IO server the broker works on. */
export type BrokerServer = Server<ClientToServerEvents, ServerToClientEvents, DefaultEventsMap, BrokerSocketData>;
/** One connected client. */
export type BrokerSocket = Socket<ClientToServerEvents, ServerToClientEvents, DefaultEventsMap, BrokerSocketData>;

/** The client behind `socket`: the one its access check accepted, anyone when none ran. */
export function principalOfSocket(socket: BrokerSocket): Principal {
  return socket.data.principal ?? ANONYMOUS;
}

/** The limits the broker and its `/_notify` route enforce (docs/security.md#limits). */
export type BrokerLimits = Pick<Limits, (typeof BROKER_LIMITS)[number]>;
const BROKER_LIMITS = ['maxRoomNameLength', 'maxRoomsPerSocket', 'maxRoutes', 'maxInRooms', 'maxBodyBytes', 'maxPayloadDepth'] as const;

/** The broker's limits out of `given` (settings, say), each missing one at its default. */
function brokerLimits(given: Partial<BrokerLimits> = {}): BrokerLimits {
  return Object.freeze(Object.fromEntries(BROKER_LIMITS.map((key) => [key, given[key] ?? DEFAULT_LIMITS[key]])) as unknown as BrokerLimits);
}

/** How to build a broker. */
export interface BrokerOptions {
  /** The bus lists; the package's own (`buses.json`) by default. */
  readonly buses?: Buses;
  /** A route table to use (to share it, or to pre-load it); a fresh one with the default routes otherwise. */
  readonly routes?: RouteTable;
  /** Limits; each missing one takes its default. */
  readonly limits?: Partial<BrokerLimits>;
  /** Where the broker reports what it does; a fresh one by default (read it back as `broker.telemetry`). */
  readonly telemetry?: Telemetry;
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
   * down past the grace). With `answerHeld` (HTTP answers), the outcome is
   * `{ok: true, held: true}` as soon as the write is known to wait for Redis
   * down. Omitted (one process): acknowledgements are sent at once.
   */
  readonly track?: (publish: () => void, answerHeld?: boolean) => Promise<PublicationOutcome> | undefined;
  /**
   * On a cluster: whether the event `args` from socket `client` fits in its
   * byte budget for the Redis stream; a refusal when it does not (the event is
   * then not published at all), `first` of an episode (logged once).
   */
  readonly streamBudget?: (client: string, args: readonly unknown[]) => { readonly refusal: Refusal; readonly first: boolean } | undefined;
  /** Name and version told in `welcome`; this package's own by default. */
  readonly name?: string;
  readonly version?: string;
}

/** What the broker and its HTTP route report, for observers (metrics, logs). */
export type BrokerEvents = TelemetryEvents;

/** The outcome of a publication that reached everyone it could: one process, or Redis took it. */
const PUBLISHED: PublicationOutcome = Object.freeze({ ok: true });

type AckFn = (answer: unknown) => void;
/** Control events whose acknowledgement is a boolean (docs/protocol.md). */
const BOOLEAN_ACK_EVENTS: ReadonlySet<string> = new Set(['join', 'subscribe', 'leave', 'unsubscribe']);
type Control = (socket: BrokerSocket, args: unknown[], ack: AckFn | undefined, event: string) => void;

/**
 * The broker, attached to a Socket.IO server. It reports what it does into
 * its {@link Telemetry}; `broker.on(...)` listens there.
 */
export class Broker {
  /** The event→bus table; `register` changes it, and so may the host. */
  readonly routes: RouteTable;
  readonly buses: Buses;
  readonly limits: BrokerLimits;
  /** Where the broker, and the HTTP route pushing through it, report what they do. */
  readonly telemetry: Telemetry;
  /** The `_in` limits, built once. */
  readonly #targetLimits: TargetLimits;
  readonly #io: BrokerServer;
  readonly #welcome: { name: string; version: string };
  readonly #controls: ReadonlyMap<string, Control>;
  /** Connection state recovery appends an offset argument to every broadcast. */
  readonly #recovery: boolean;
  /** Tells whether a broadcast to these rooms can reach anyone; undefined: always assume it can. */
  readonly #heard: ((rooms: readonly string[]) => boolean) | undefined;
  /** What others and the logs see of a socket instead of its id. */
  readonly #publicIds = new PublicIds();
  readonly #track: BrokerOptions['track'];
  readonly #streamBudget: BrokerOptions['streamBudget'];
  /** The `onAny` listener of every socket (`this` is the socket). */
  readonly #onAny: (this: BrokerSocket, event: string, ...args: unknown[]) => void;
  /** The `disconnect` listener of every socket (`this` is the socket). */
  readonly #onDisconnect: (this: BrokerSocket, reason: string, description: unknown) => void;
  #closed = false;

  constructor(io: BrokerServer, options: BrokerOptions = {}) {
    this.#io = io;
    this.#recovery = recoveryEnabled(io);
    this.#heard = options.skipUnheard ? hearing(io, this.#recovery) : undefined;
    this.#track = options.track;
    this.#streamBudget = options.streamBudget;
    this.buses = options.buses ?? DEFAULT_BUSES;
    this.limits = brokerLimits(options.limits);
    this.telemetry = options.telemetry ?? new Telemetry();
    this.#targetLimits = {
      notificationRooms: this.buses.notificationRooms,
      maxInRooms: this.limits.maxInRooms,
      maxRoomNameLength: this.limits.maxRoomNameLength,
    };
    this.routes =
      options.routes ??
      new RouteTable(this.buses, { maxRoutes: this.limits.maxRoutes, maxNameLength: this.limits.maxRoomNameLength });
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
    // Shared by every socket rather than a closure per socket: Socket.IO calls any-listeners, and
    // Node's EventEmitter calls listeners, with `this` set to the socket (src/internals.ts).
    const broker = this;
    this.#onAny = function onAny(this: BrokerSocket, event: string, ...args: unknown[]): void {
      broker.#dispatch(this, event, args);
    };
    // One listener serves the log line and every other watcher (the message size guard) through the telemetry.
    this.#onDisconnect = function onDisconnect(this: BrokerSocket, reason: string, description: unknown): void {
      const listened = broker.telemetry.listens('disconnection');
      if (!debug.enabled && !listened) return;
      const publicId = broker.publicId(this);
      debug('disconnect %s: %s', publicId, reason);
      if (listened) broker.telemetry.disconnection(publicId, reason, { description, address: this.handshake.address });
    };
    io.on('connection', this.#onConnection);
  }

  /** Listens to what the broker reports: a shortcut for `broker.telemetry.on(...)`. */
  on<K extends keyof BrokerEvents>(event: K, listener: (...args: BrokerEvents[K]) => void): this {
    this.telemetry.on(event, listener);
    return this;
  }

  /** True on a cluster: an acknowledgement, or the `confirmed` of {@link push}, waits to tell whether Redis took the event. */
  get confirms(): boolean {
    return this.#track !== undefined;
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
  route(event: string, args: readonly unknown[], by: string = ANONYMOUS.credential.name, from?: Sender): Targets | undefined {
    const route = this.routes.get(event);
    if (route === undefined) return undefined;
    const targets = computeTargets(route, args[0], this.#targetLimits);
    return this.#deliver(event, route, targets, args.length > 1 ? args.slice(0, 1) : args, by, from);
  }

  /**
   * Routes a `/_notify` push: `msg` with `body` to the route's bus and, when
   * the body names an endpoint, to `endpoint:<endpoint>`. Returns what it
   * reached, or undefined (nothing sent) when `msg` has no route or a null one.
   *
   * `confirmed`, when given, hears what became of the push's publication:
   * on a cluster once Redis took it or refused it (as a socket's
   * acknowledgement waits to), or that it is held for Redis, down; at once
   * on one process. `by` names the pusher's credential, for the telemetry.
   */
  push(msg: string, body: Record<string, unknown>, confirmed?: (outcome: PublicationOutcome) => void, by: string = ANONYMOUS.credential.name): Targets | undefined {
    const bus = this.routes.get(msg);
    if (bus === undefined || bus === null) return undefined;
    const rooms = notifyTargets(bus, body, this.limits.maxRoomNameLength);
    const targets: Targets = { rooms, skipped: 0, overflow: 0 };
    if (confirmed === undefined) return this.#deliver(msg, bus, targets, [body], by);
    const { outcome } = this.#tracked(() => this.#deliver(msg, bus, targets, [body], by), true);
    if (outcome === undefined) confirmed(PUBLISHED);
    else void outcome.then(confirmed);
    return targets;
  }

  /**
   * Removes the route of `event` (`DELETE /routes/:event`): a registered
   * route goes, a built-in one returns to its default; undefined when there
   * is no such route. On a cluster, `written` resolves once Redis took the
   * removal or refused it (then the route is back as it was), as a
   * `register` acknowledgement waits to; it is undefined on one process.
   *
   * @example
   * const { removal, written } = broker.removeRoute('queuer');
   * (await written)?.ok; // false when Redis refused it
   */
  removeRoute(event: string): { removal: ReturnType<RouteTable['remove']>; written: Promise<PublicationOutcome> | undefined } {
    const { value, outcome } = this.#tracked(() => this.routes.remove(event), true);
    return { removal: value, written: outcome };
  }

  /**
   * Runs `publish` and, on a cluster, learns what became of the event it
   * published (see {@link BrokerOptions.track}); the outcome is undefined on
   * one process, or when nothing went to Redis. `answerHeld`: see
   * {@link BrokerOptions.track}.
   */
  #tracked<T>(publish: () => T, answerHeld = false): { value: T; outcome: Promise<PublicationOutcome> | undefined } {
    if (this.#track === undefined) return { value: publish(), outcome: undefined };
    let value: T | undefined;
    const outcome = this.#track(() => {
      value = publish();
    }, answerHeld);
    return { value: value as T, outcome };
  }

  /** Acknowledges with `answer` once the publication is known to have reached the cluster, else with why not. */
  static #ackWhenPublished(ack: AckFn, answer: object, outcome: Promise<PublicationOutcome> | undefined): void {
    if (outcome === undefined) return ack(answer);
    void outcome.then((result) => ack(result.ok ? answer : { ok: false, error: result.error }));
  }

  /** Publishes a routed event and tells the observers. */
  #deliver(event: string, route: Route, targets: Targets, args: readonly unknown[], by: string, from?: Sender): Targets {
    this.publish(event, args, targets.rooms);
    this.telemetry.routed(event, route, targets, by, from);
    return targets;
  }

  /**
   * Detaches the broker: new connections are no longer greeted, events of
   * connected sockets are no longer handled, and pushes are refused (`/_notify` answers 503).
   * Sockets stay open: they belong to the host's Socket.IO server.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#io.off('connection', this.#onConnection);
  }

  /**
   * What others and the logs see of `socket`: never its id, which for a
   * 1.x/2.x client is its Engine.IO session id (src/public-id.ts).
   */
  publicId(socket: Sender): string {
    return this.#publicIds.of(socket.id);
  }

  readonly #onConnection = (socket: BrokerSocket): void => {
    const publicId = this.publicId(socket);
    debug('connect %s from %s (EIO%d over %s)', publicId, socket.handshake.address, engineProtocol(socket), socket.conn.transport.name);
    onAnyEvent(socket, this.#onAny);
    socket.on('disconnect', this.#onDisconnect);
    // One literal of five properties (a spread would build it in steps): with recovery on, Socket.IO keeps it for the window.
    const { name, version } = this.#welcome;
    socket.emit('welcome', { id: socket.id, publicId, name, version, public: false });
    this.telemetry.connection(publicId);
  };

  #dispatch(socket: BrokerSocket, event: string, args: unknown[]): void {
    if (this.#closed) return;
    const ack = typeof args[args.length - 1] === 'function' ? (args.pop() as AckFn) : undefined;
    try {
      // Before anything reads or re-encodes it: Socket.IO's encoder recurses once per level.
      const deep = depthRefusal(args, this.limits.maxPayloadDepth);
      if (deep) return this.#refuse(socket, event, ack, deep, BOOLEAN_ACK_EVENTS.has(event));
      const control = this.#controls.get(event);
      if (control) return control(socket, args, ack, event);
      const principal = principalOfSocket(socket);
      if (!principal.credential.grants.may('publish', event)) return this.#refuse(socket, event, ack, FORBIDDEN);
      const by = principal.credential.name;
      const overBudget = this.#streamBudget?.(socket.id, args);
      if (overBudget) return this.#refuse(socket, event, ack, overBudget.refusal, false, overBudget.first);
      // On a cluster, an acknowledgement waits to learn whether Redis took the event.
      const tracked = ack && this.#track ? this.#tracked(() => this.route(event, args, by, socket)) : undefined;
      const targets = tracked ? tracked.value : this.route(event, args, by, socket);
      if (targets === undefined) {
        this.telemetry.unrouted(event);
        ack?.({ ok: false, error: `no route for "${event}"` });
        return;
      }
      if (targets.overflow > 0) {
        this.telemetry.refused(event, { reason: 'in_overflow', error: `${targets.overflow} _in rooms past the limit of ${this.limits.maxInRooms} were ignored` }, by, socket);
      }
      if (ack) Broker.#ackWhenPublished(ack, { ok: true, rooms: targets.rooms.length }, tracked?.outcome);
    } catch (error) {
      // A bug of ours must not stop the broker or leave the client waiting.
      debug('failure handling %s from %s: %s', event, this.publicId(socket), (error as Error).stack);
      this.#refuse(socket, event, ack, { reason: 'bad_payload', error: 'the broker could not handle this event' });
    }
  }

  /** Tells the client why its input was refused: through its callback, else with `failed`. */
  #refuse(socket: BrokerSocket, event: string, ack: AckFn | undefined, refusal: Refusal, booleanAck = false, logged = true): void {
    const by = principalOfSocket(socket).credential.name;
    if (logged) debug('refused %s from %s (%s): %s', event, this.publicId(socket), by, refusal.error);
    this.telemetry.refused(event, refusal, by, socket);
    if (ack) ack(booleanAck ? false : { ok: false, error: refusal.error });
    else socket.emit('failed', { event, msg: refusal.error });
  }

  /** True when the socket's grants let it emit `event`; tells it otherwise. */
  #mayPublish(socket: BrokerSocket, event: string, ack: AckFn | undefined): boolean {
    if (principalOfSocket(socket).credential.grants.may('publish', event)) return true;
    this.#refuse(socket, event, ack, FORBIDDEN);
    return false;
  }

  // `configure {bus: true|false}`: the legacy way to join and leave private and host buses.
  readonly #configure: Control = (socket, [request], ack) => {
    if (!isObject(request)) {
      return this.#refuse(socket, 'configure', ack, { reason: 'bad_payload', error: 'configure needs an object {<bus>: true|false}' });
    }
    const grants = principalOfSocket(socket).credential.grants;
    const buses = [...this.buses.privateBuses, ...this.buses.hostBuses];
    // All or nothing: a request naming one bus the client may not join changes nothing.
    if (buses.some((bus) => request[bus] === true && !grants.may('join', bus))) return this.#refuse(socket, 'configure', ack, FORBIDDEN);
    const joined: string[] = [];
    const left: string[] = [];
    for (const bus of buses) {
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
    if (!principalOfSocket(socket).credential.grants.may('join', name)) return this.#refuse(socket, event, ack, FORBIDDEN, true);
    if (name !== socket.id && looksLikeSocketId(name) && !this.buses.known.has(name)) {
      // Another socket's own room would give it everything sent to that socket alone.
      return this.#refuse(socket, event, ack, { reason: 'bad_room', error: "a socket cannot join another socket's own room" }, true);
    }
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
  readonly #ping: Control = (socket, args, ack, event) => {
    if (!this.#mayPublish(socket, event, ack)) return;
    this.publish('ping', args.slice(0, 1), this.buses.hostBuses);
    ack?.({ ok: true });
  };

  // `shout`: a note for the admins on `internal`, signed with the sender's id.
  readonly #shout: Control = (socket, [data], ack, event) => {
    if (!this.#mayPublish(socket, event, ack)) return;
    this.publish('shouted', [{ id: this.publicId(socket), data }], ['internal']);
    ack?.({ ok: true });
  };

  // `notify_users`: a notice for admins and every public user.
  readonly #notifyUsers: Control = (socket, args, ack, event) => {
    if (!this.#mayPublish(socket, event, ack)) return;
    this.publish('notify', args.slice(0, 1), ['internal', 'everyone']);
    ack?.({ ok: true });
  };

  // `register {event, default_room}`: servers declaring the events they emit.
  // On a cluster, the acknowledgement waits for Redis to take the change (a refused change is undone).
  readonly #register: Control = (socket, [request], ack) => {
    const { name: by, grants } = principalOfSocket(socket).credential;
    if (isObject(request) && typeof request.event === 'string' && !grants.may('register', request.event)) return this.#refuse(socket, 'register', ack, FORBIDDEN);
    const tracked = ack && this.#track ? this.#tracked(() => this.routes.register(request, by)) : undefined;
    const result = tracked ? tracked.value : this.routes.register(request, by);
    if (!result.ok) return this.#refuse(socket, 'register', ack, result);
    debug('%s (%s) registered %s → %s', this.publicId(socket), by, result.event, result.bus ?? '(_in only)');
    this.telemetry.routeChanged(result.event, result.bus, by, socket);
    if (ack) Broker.#ackWhenPublished(ack, { ok: true, event: result.event, bus: result.bus }, tracked?.outcome);
  };
}

/**
 * Whether a broadcast to `rooms` can reach anyone now or on recovery, read
 * from the in-memory adapter: a connected socket in one of the rooms, or a
 * disconnected session, kept for recovery, that was in one. Socket.IO's
 * adapter encodes (and, with recovery, stores) every broadcast even when
 * nobody listens; skipping those saves that work, and the memory of
 * events nobody could ever recover. The waiting sessions' rooms are counted
 * as sessions are kept and dropped ({@link WaitingRooms}), so the answer
 * costs two lookups per room whatever the number of waiting sessions.
 * Undefined (never skip) when the adapter's session table is not there.
 */
function hearing(io: BrokerServer, recovery: boolean): ((rooms: readonly string[]) => boolean) | undefined {
  const adapter = io.of('/').adapter;
  const waiting = recovery ? WaitingRooms.attach(io) : undefined;
  if (recovery && !waiting) return undefined;
  return (rooms) => {
    for (const room of rooms) if ((adapter.rooms.get(room)?.size ?? 0) > 0) return true;
    if (!waiting) return false;
    for (const room of rooms) if (waiting.holds(room)) return true;
    return false;
  };
}
