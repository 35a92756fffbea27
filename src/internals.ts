/**
 * Every reach of the broker into the private parts of Socket.IO, Engine.IO,
 * socket.io-parser and socket.io-adapter, in one place. (The cluster's
 * adapter is a subclass of socket.io-adapter's `ClusterAdapterWithHeartbeat`,
 * its public door: src/cluster/streams-adapter.ts.)
 *
 * These are not public API: a minor upgrade may rename or reshape them. Each
 * accessor here names what it relies on; {@link internalsProblems} and
 * test/internals.test.ts (the cluster's parts) and test/internals-guards.test.ts
 * (the guards' parts) check all of it against live servers, so that an
 * upgrade that changes one fails there, loudly, naming the part, rather than
 * silently turning a guard off. Pinned against socket.io 4.8, engine.io 6.6,
 * socket.io-adapter 2.5 and socket.io-parser 4.2.
 *
 * What relies on what:
 * - `Server#_opts.connectionStateRecovery` ({@link recoveryOptions}): the broker
 *   (null payload for recovery offsets, skipping unheard broadcasts).
 * - `SessionAwareAdapter#sessions` ({@link waitingSessions}): what the tests
 *   read of the sessions kept for recovery (the broker itself reaches them
 *   through {@link replaceSessionTable}, below).
 * - Engine.IO `Socket#writeBuffer`, `transport.writable`,
 *   `transport.socket.bufferedAmount` ({@link engineBacklog}, the one reader
 *   of the write buffer): the slow consumer guard, and the cluster's
 *   catch-up waiting for a page to drain (src/cluster/recovery.ts).
 * - Engine.IO's `use()` middlewares, `clients` and `connection` event
 *   ({@link useEngineMiddleware}, {@link engineSession}, {@link onEngineSession}):
 *   binding sessions to their secret or route (src/guards/session-binding.ts).
 * - socket.io-parser's `Decoder#add` ({@link jsonOnlyParser}): refusing binary.
 * - The in-memory adapter's `sessions`, `packets`, `broadcast` and `_encode`
 *   ({@link replaceSessionTable}, {@link watchBacklog}): the waiting-room
 *   index and the backlog cap (src/recovery-backlog.ts).
 * - The adapter's `persistSession`, which `Socket#_onclose` calls while the
 *   socket is still in its namespace, and the in-memory `sessions`
 *   ({@link wrapPersistSession}, {@link forgetWaitingSession}): the byte
 *   budget of kept sessions (src/recovery-sessions.ts).
 */
import type { Server } from 'socket.io';
import { Decoder, Encoder, PacketType, type Packet } from 'socket.io-parser';

/** Connection state recovery as the server was configured (`Server#_opts`); undefined when off. */
export function recoveryOptions(io: object): { readonly maxDisconnectionDuration?: number } | undefined {
  const opts = (io as unknown as { _opts?: { connectionStateRecovery?: { maxDisconnectionDuration?: number } } })._opts;
  return opts?.connectionStateRecovery || undefined;
}

/**
 * The sessions the in-memory adapter keeps for recovery (`SessionAwareAdapter#sessions`),
 * pid → session; undefined when the adapter keeps none here (a cluster adapter, or an upgrade).
 */
export function waitingSessions(io: Server): ReadonlyMap<string, { readonly rooms?: unknown }> | undefined {
  const sessions = (io.of('/').adapter as unknown as { sessions?: unknown }).sessions;
  return sessions instanceof Map ? (sessions as ReadonlyMap<string, { readonly rooms?: unknown }>) : undefined;
}

/** An Engine.IO packet as it waits in a write buffer. */
export interface QueuedPacket {
  readonly data?: unknown;
}

/** What waits to be sent on one Engine.IO connection (engine.io 6 `Socket`), as {@link engineBacklog} reads it. */
export interface EngineBacklog {
  /** Packets not yet handed to the transport (`Socket#writeBuffer`; Engine.IO replaces the array on every flush). */
  readonly packets: readonly QueuedPacket[];
  /** The transport takes more now. */
  readonly writable: boolean;
  /** Bytes `ws` holds for the socket (WebSocket only), 0 otherwise. */
  readonly bufferedAmount: number;
}

/** What the slow-consumer guard reads of an Engine.IO connection (engine.io 6 `Socket`) besides its write buffer, which {@link engineBacklog} reads. */
export interface EngineConnection {
  readonly id: string;
  /** The client's address, for logs (the id names the session and is never logged). */
  readonly remoteAddress?: string;
  readonly readyState: string;
  readonly transport: {
    readonly name: string;
    readonly writable: boolean;
    readonly socket?: { readonly bufferedAmount?: number; terminate?: () => void };
  };
  close(discard?: boolean): unknown;
}

/** A socket's Engine.IO connection, as the slow-consumer guard reads and closes it. */
export function engineConnection(socket: { readonly conn: unknown }): EngineConnection {
  return socket.conn as EngineConnection;
}

/** The fields of an Engine.IO connection (`socket.conn`) that hold its unsent data. */
interface EngineBuffers {
  readonly writeBuffer: readonly QueuedPacket[];
  readonly transport: { readonly writable: boolean; readonly socket?: { readonly bufferedAmount?: number } };
}

/**
 * Reads the unsent data of an Engine.IO connection (`socket.conn`): the one
 * reader of Engine.IO's write buffer, for the slow-consumer guard and the
 * cluster's catch-up alike.
 */
export function engineBacklog(conn: unknown): EngineBacklog {
  const c = conn as EngineBuffers;
  return { packets: c.writeBuffer, writable: c.transport.writable, bufferedAmount: c.transport.socket?.bufferedAmount ?? 0 };
}

/**
 * True when nothing waits on an Engine.IO connection: its write buffer is
 * empty and its transport takes more now (so `ws` holds nothing either: the
 * transport turns writable when `ws` has handed its last batch to the
 * kernel). What {@link engineBacklog} tells, read without allocating and
 * without reaching into `ws`, for checks that look at every connection.
 */
export function engineIdle(conn: unknown): boolean {
  const c = conn as EngineBuffers;
  return c.writeBuffer.length === 0 && c.transport.writable;
}

/**
 * What of the above does not hold on this server, one line each; empty when
 * all does. `io` should have connection state recovery on (and, to check the
 * session table, the in-memory adapter); `conn` is one connected socket's `conn`.
 *
 * @example
 * assert.deepEqual(internalsProblems({ io, conn: socket.conn }), []);
 */
export function internalsProblems(parts: { io: Server; conn?: unknown; inMemoryAdapter?: boolean }): string[] {
  const problems: string[] = [];
  const { io, conn } = parts;
  const opts = (io as unknown as { _opts?: unknown })._opts;
  if (typeof opts !== 'object' || opts === null || !('connectionStateRecovery' in opts)) problems.push('Server#_opts.connectionStateRecovery is gone (socket.io)');
  const adapter = io.of('/').adapter as unknown as Record<string, unknown>;
  if (parts.inMemoryAdapter && !(adapter.sessions instanceof Map)) problems.push('SessionAwareAdapter#sessions is not a Map (socket.io-adapter)');
  if (parts.inMemoryAdapter && typeof adapter.persistSession !== 'function') problems.push('SessionAwareAdapter#persistSession is gone (socket.io-adapter)');
  if (conn !== undefined) {
    const c = conn as { transport?: { writable?: unknown } };
    if (typeof c.transport?.writable !== 'boolean') problems.push('Engine.IO transport.writable is not a boolean (engine.io)');
    else if (!Array.isArray(engineBacklog(conn).packets)) problems.push('Engine.IO Socket#writeBuffer is not an array (engine.io)');
    if (typeof (conn as { close?: unknown }).close !== 'function') problems.push('Engine.IO Socket#close is gone (engine.io)');
  }
  return problems;
}

// ---------------------------------------------------------------------------
// What the guards and the one-process recovery pieces rely on

/**
 * What these helpers take of a Socket.IO server, whatever its event maps
 * (src/broker.ts's `BrokerServer` is one; typed by shape, as the broker
 * imports this module).
 */
export interface SocketIoServer {
  readonly engine: object;
  of(name: '/'): { readonly adapter: object };
}

// ---------------------------------------------------------------------------
// Socket ids

/**
 * The shape of every id Socket.IO and Engine.IO generate (`base64id`: 15
 * random bytes, base64url, 20 characters). A 4.x socket's id and every
 * Engine.IO session id (which *is* the socket id of a 1.x/2.x client) have it.
 */
export const GENERATED_ID = /^[A-Za-z0-9_-]{20}$/;

/**
 * True when `room` has the shape of a socket's own room (its id). Socket.IO
 * puts every socket in a room named by its id, and replies to one socket go
 * through it; no other room the platform uses has this shape but a bus, which
 * the caller exempts (a `prefix:` notification room always holds a colon).
 *
 * @example
 * looksLikeSocketId('calls'); // false
 * looksLikeSocketId('T3hUpq2Bj0e8Xw5cAAAB'); // true
 */
export function looksLikeSocketId(room: string): boolean {
  return room.length === 20 && GENERATED_ID.test(room);
}

/**
 * `socket.onAny(listener)`, in an array of exactly one listener when it is the
 * socket's first: Socket.IO's `onAny` pushes onto a new empty array, which V8
 * grows to 16 slots, about 120 bytes more per socket than the one needed.
 * Socket.IO 4.8 keeps any-listeners in `_anyListeners` (`onAny` creates it,
 * `offAny` and `listenersAny` read it) and calls each with `this` set to the
 * socket (`onevent`: `listener.apply(this, args)`), so one function can
 * serve every socket.
 */
export function onAnyEvent<S extends { onAny(listener: (...args: any[]) => void): unknown }>(socket: S, listener: (this: S, ...args: any[]) => void): void {
  const held = socket as unknown as { _anyListeners?: unknown[] };
  if (held._anyListeners === undefined) held._anyListeners = [listener];
  else socket.onAny(listener);
}

/** Engine.IO protocol revision of a socket's connection: 3 for socket.io-client 1.x and 2.x, 4 for 4.x. */
export function engineProtocol(socket: { readonly conn: { readonly protocol: number } }): number {
  return socket.conn.protocol;
}

// ---------------------------------------------------------------------------
// Engine.IO sessions

/** What the session binding reads of an Engine.IO connection (engine.io 6 `Socket`). */
export interface EngineSession {
  readonly id: string;
  readonly protocol: number;
  readonly remoteAddress: string;
  /** The handshake request. */
  readonly request: { readonly url?: string; readonly headers: EngineRequestHeaders; readonly socket?: { readonly remoteAddress?: string } };
  /** Engine.IO emits `close` once when the session ends, whatever ended it. */
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
  /**
   * Ends the session; with `discard`, at once, without waiting for a polling
   * client's next request (Engine.IO's polling transport otherwise waits up
   * to 30 s for it to say goodbye).
   */
  close(discard?: boolean): void;
}

/** The headers of an Engine.IO request that the guards read. */
export interface EngineRequestHeaders {
  readonly [name: string]: string | string[] | undefined;
  readonly authorization?: string;
  readonly 'x-forwarded-for'?: string;
  readonly origin?: string;
  readonly host?: string;
}

/** What the session binding reads of a request to the engine path (`prepare()` has set `_query`). */
export interface EngineRequest {
  readonly url?: string;
  readonly headers: EngineRequestHeaders;
  readonly socket: { readonly remoteAddress?: string };
  readonly _query: Record<string, string | undefined>;
}

/** An Engine.IO middleware (`io.engine.use`): it runs for every HTTP request and upgrade on the engine path, before the `sid` is looked up. */
export type EngineRequestMiddleware = (req: EngineRequest, res: unknown, next: (error?: Error) => void) => void;

/**
 * Adds `middleware` in front of every Engine.IO request: handshakes, polls,
 * posts and WebSocket upgrades alike (engine.io ≥ 6.4 runs `use()`
 * middlewares in `handleRequest` and `handleUpgrade`; an error passed to
 * `next` answers `400` and, for an upgrade, destroys the socket).
 */
export function useEngineMiddleware(io: SocketIoServer, middleware: EngineRequestMiddleware): void {
  (io.engine as unknown as { use(fn: EngineRequestMiddleware): void }).use(middleware);
}

/** The Engine.IO session `sid` names, if it is open (engine.io keeps them in `clients`, a plain object). */
export function engineSession(io: SocketIoServer, sid: string): EngineSession | undefined {
  const clients = (io.engine as unknown as { clients: Record<string, EngineSession> }).clients;
  return Object.hasOwn(clients, sid) ? clients[sid] : undefined;
}

/** Calls `listener` with each new Engine.IO session, once its handshake is accepted. */
export function onEngineSession(io: SocketIoServer, listener: (session: EngineSession) => void): void {
  (io.engine as unknown as { on(event: 'connection', listener: (session: EngineSession) => void): void }).on('connection', listener);
}

// ---------------------------------------------------------------------------
// The parser: no binary packets

/**
 * A Socket.IO parser (the `parser` server option) that refuses every binary
 * packet. The platform's clients send JSON only (docs/protocol.md); a binary
 * event makes socket.io-parser hold its attachments until they all arrive,
 * with no bound but the socket's life. This decoder throws on the header of
 * a binary event or acknowledgement, and on any binary frame, before
 * anything is held: Socket.IO's `Client.ondata` catches the error and
 * closes the connection (socket.io 4.8 `client.js`, "invalid packet format").
 *
 * `refused` is told of each refusal (to count it); it must not throw.
 */
export function jsonOnlyParser(refused: () => void): { Encoder: typeof Encoder; Decoder: typeof Decoder } {
  /**
   * The broker's server sends nothing but what came in as JSON (its decoder
   * refuses binary packets, /_notify bodies are JSON) and its own JSON
   * answers: socket.io-parser's `encode` would still walk every packet it
   * sends, to the last value, looking for binary parts first (`hasBinary`),
   * a second pass over each payload after the broker's depth check. This one
   * goes straight to the string encoding `encode` ends with for a packet
   * without them (socket.io-parser 4.2 `encodeAsString`).
   */
  class JsonOnlyEncoder extends Encoder {
    override encode(packet: Packet): string[] {
      return [(this as unknown as { encodeAsString(packet: Packet): string }).encodeAsString(packet)];
    }
  }
  class JsonOnlyDecoder extends Decoder {
    override add(data: unknown): void {
      if (typeof data !== 'string' || isBinaryHeader(data)) {
        refused();
        throw new Error('binary packets are not accepted');
      }
      super.add(data);
    }
  }
  return { Encoder: JsonOnlyEncoder, Decoder: JsonOnlyDecoder };
}

/** True for the encoded header of a binary event or ack: its first character is the packet type. */
export function isBinaryHeader(encoded: string): boolean {
  const type = encoded.charCodeAt(0) - 48; // '0'
  return type === PacketType.BINARY_EVENT || type === PacketType.BINARY_ACK;
}

// ---------------------------------------------------------------------------
// The adapter: recovery sessions and the packet backlog

/** A disconnected session kept for recovery (socket.io-adapter `Session`). */
export interface WaitingSession {
  readonly rooms?: unknown;
}

/** A broadcast kept for recovery (socket.io-adapter `PersistedPacket`). */
export interface KeptPacket {
  readonly id: string;
  readonly emittedAt: number;
  /** The broadcast's options; `restoreSession` reads only `rooms` and `except` of it, with `size` and `has`. */
  readonly opts: { rooms: RoomSet; except: ReadonlySet<string>; flags?: object };
  /** The event's name, arguments and offset, replayed as they are to a recovering client. */
  data: unknown[];
}

/** What `restoreSession` asks of a kept packet's rooms. */
export interface RoomSet {
  readonly size: number;
  has(room: string): boolean;
}

/**
 * The rooms of a kept packet sent to one room (a bus, or one socket's own
 * room: every `socket.emit`), in place of the Set Socket.IO made: a Set of
 * one holds a hash table sized for four, about 150 bytes; this, one field.
 */
export class OneRoom implements RoomSet {
  constructor(readonly room: string) {}
  get size(): number {
    return 1;
  }
  has(room: string): boolean {
    return room === this.room;
  }
  *[Symbol.iterator](): IterableIterator<string> {
    yield this.room;
  }
}

/** The `flags` of every kept packet that had none set (Socket.IO copies them into a new object per broadcast; nothing reads them back). */
export const NO_FLAGS: object = Object.freeze({});

/** True for an object without own enumerable properties. */
function isEmpty(value: object | undefined): boolean {
  for (const _key in value) return false;
  return true;
}

/**
 * The `except` of every kept packet that excluded no room: Socket.IO makes a
 * new empty Set for each broadcast (each `socket.emit`, with recovery on),
 * and the adapter keeps it with the packet for the whole recovery window,
 * though it only ever asks it `has`. Never added to.
 */
export const NO_ROOMS: ReadonlySet<string> = new Set<string>();

/** What the recovery pieces read and wrap of the in-memory `SessionAwareAdapter`. */
interface SessionAwareAdapter {
  sessions: Map<string, WaitingSession>;
  readonly packets: KeptPacket[];
  broadcast(packet: unknown, opts: unknown): unknown;
  _encode(packet: unknown, opts: unknown): readonly unknown[];
}

/** True when connection state recovery is configured on `io`. */
export function recoveryEnabled(io: SocketIoServer): boolean {
  return recoveryOptions(io) !== undefined;
}

/** The root namespace's adapter, if it is the in-memory one that keeps sessions and packets itself. */
function sessionAware(io: SocketIoServer): SessionAwareAdapter | undefined {
  const adapter = io.of('/').adapter as unknown as Partial<SessionAwareAdapter>;
  const ok =
    adapter.sessions instanceof Map &&
    Array.isArray(adapter.packets) &&
    typeof adapter.broadcast === 'function' &&
    typeof adapter._encode === 'function';
  return ok ? (adapter as SessionAwareAdapter) : undefined;
}

/**
 * Replaces the adapter's session table with `table` (a `Map` subclass that
 * watches every `set` and `delete`: `persistSession`, the expiry timer and
 * `restoreSession` only ever call those). Entries already there are copied.
 * False when the adapter keeps no such table (a cluster adapter).
 */
export function replaceSessionTable(io: SocketIoServer, table: Map<string, WaitingSession>): boolean {
  const adapter = sessionAware(io);
  if (!adapter) return false;
  for (const [pid, session] of adapter.sessions) table.set(pid, session);
  adapter.sessions = table;
  return true;
}

/** The bytes of an encoded packet: string lengths (ASCII JSON) plus binary lengths. */
function encodedBytes(encoded: readonly unknown[]): number {
  let bytes = 0;
  for (const part of encoded) {
    if (typeof part === 'string') bytes += part.length;
    else if (part instanceof ArrayBuffer || ArrayBuffer.isView(part)) bytes += part.byteLength;
  }
  return bytes;
}

/** The packet backlog of the in-memory adapter, with the encoded size of each packet kept after the wrap. */
export interface PacketBacklog {
  /** The adapter's own array, oldest first (its timer splices expired packets off the front). */
  readonly packets: KeptPacket[];
}

/**
 * Calls `kept(packet, bytes)` after each broadcast the adapter kept for
 * recovery, with its encoded size: `SessionAwareAdapter.broadcast` pushes
 * the packet onto `packets`, then encodes it once (`_encode`) for every
 * receiver. A kept packet sent to one room gets a {@link OneRoom} for its
 * rooms, one that excludes no room the shared
 * {@link NO_ROOMS} as its `except`, and one without flags the shared
 * {@link NO_FLAGS}, once its broadcast is done (the in-memory adapter's is
 * synchronous), and its arguments are copied into an array of their exact
 * length, so that the backlog does not hold a Set of one, an empty Set, an
 * empty object and about 17 unused array slots per event (about 400 bytes;
 * every socket's `welcome` is one such event).
 * Undefined when the adapter keeps no backlog.
 */
export function watchBacklog(io: SocketIoServer, kept: (packet: KeptPacket, bytes: number) => void): PacketBacklog | undefined {
  const adapter = sessionAware(io);
  if (!adapter) return undefined;
  const encode = adapter._encode.bind(adapter);
  const broadcast = adapter.broadcast.bind(adapter);
  let lastBytes = 0;
  adapter._encode = (packet, opts) => {
    const encoded = encode(packet, opts);
    lastBytes = encodedBytes(encoded);
    return encoded;
  };
  adapter.broadcast = (packet, opts) => {
    const before = adapter.packets.length;
    lastBytes = 0;
    const result = broadcast(packet, opts);
    const after = adapter.packets.length;
    if (after > before) {
      const packet = adapter.packets[after - 1] as KeptPacket;
      const { opts } = packet;
      if (opts.rooms.size === 1 && opts.rooms instanceof Set) opts.rooms = new OneRoom(opts.rooms.values().next().value as string);
      if (opts.except.size === 0) opts.except = NO_ROOMS;
      if (opts.flags !== undefined && isEmpty(opts.flags)) opts.flags = NO_FLAGS;
      // The adapter pushed the offset onto the event's arguments, which V8 grew by 17 slots for it: keep an exact copy.
      if (Array.isArray(packet.data)) packet.data = packet.data.slice();
      kept(packet, lastBytes);
    }
    return result;
  };
  return { packets: adapter.packets };
}

// ---------------------------------------------------------------------------
// Sessions kept for recovery: the door they come through

/** A session as Socket.IO hands it to the adapter (socket.io-adapter `SessionToPersist`). */
export interface PersistedSession {
  /** The socket's id; the socket is still in its namespace under it. */
  readonly sid: string;
  /** The private session id the client presents to recover. */
  readonly pid: string;
  readonly rooms: unknown;
}

/**
 * Puts `wrap` in front of the root namespace's adapter's `persistSession`
 * (socket.io-adapter 2.5: Socket.IO calls it from `Socket#_onclose` for
 * every socket that drops with recovery on, before the socket leaves its
 * namespace; the in-memory adapter stores the session, the cluster's adapter
 * writes it to Redis). `wrap` keeps the session by calling `persist`, or
 * drops it by not calling it. False when recovery is off.
 */
export function wrapPersistSession(io: SocketIoServer, wrap: (persist: (session: PersistedSession) => unknown, session: PersistedSession) => unknown): boolean {
  if (!recoveryEnabled(io)) return false;
  const adapter = io.of('/').adapter as unknown as { persistSession?: (session: PersistedSession) => unknown };
  if (typeof adapter.persistSession !== 'function') return false;
  const persist = adapter.persistSession.bind(adapter);
  adapter.persistSession = (session) => wrap(persist, session);
  return true;
}

/**
 * Forgets the session `pid` the in-memory adapter keeps, if any (it keeps a
 * restored session until its window ends, and would restore it again); an
 * adapter that keeps none here (the cluster's deletes a session from Redis
 * as it restores it) is left alone.
 */
export function forgetWaitingSession(io: SocketIoServer, pid: string): void {
  sessionAware(io)?.sessions.delete(pid);
}
