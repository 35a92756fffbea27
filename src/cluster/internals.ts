/**
 * Every reach of the broker into the private parts of Socket.IO, Engine.IO,
 * socket.io-adapter, the Redis Streams adapter and ioredis, in one place.
 *
 * These are not public API: a minor upgrade may rename or reshape them. Each
 * accessor here names what it relies on, and {@link internalsProblems} checks
 * all of it against a live server, so that `test/internals.test.ts` fails
 * loudly, naming the part, when an upgrade changes one.
 *
 * What relies on what:
 * - `Server#_opts.connectionStateRecovery` ({@link recoveryOptions}): the broker
 *   (null payload for recovery offsets, skipping unheard broadcasts).
 * - `SessionAwareAdapter#sessions` ({@link waitingSessions}): the broker's
 *   "anyone listening?" test on one process.
 * - Engine.IO `Socket#writeBuffer`, `transport.writable`,
 *   `transport.socket.bufferedAmount` ({@link engineBacklog}): the slow
 *   consumer guard.
 * - `ClusterAdapter#doPublish` and the Streams adapter's `restoreSession`
 *   ({@link hookAdapter}): the cluster's outage grace and refusal accounting.
 *   `ClusterAdapter#broadcast` calls `doPublish` synchronously inside
 *   `emit`: `Cluster#track` relies on it to tell a sender what became of
 *   its event (if that changes, acknowledgements are sent at once again).
 *   `restoreSession` is replaced by our own (src/cluster/recovery.ts).
 * - `MessageType.BROADCAST` of socket.io-adapter ({@link ADAPTER_BROADCAST}).
 * - socket.io-adapter's `Adapter#_encode` and `Adapter#apply`, and
 *   `Socket#packet` ({@link hookLocalDelivery}, {@link sendEvent}): exact
 *   recovery holds, filters and sends events for restored sockets.
 * - The Streams adapter's session format (msgpack, base64) and its static
 *   `decode` of stream entries ({@link decodeSession}, {@link decodeStreamMessage}).
 * - `Redis#duplicate`, `Redis#set`, `Redis#publish` of ioredis
 *   ({@link keepDuplicates}, {@link catchFireAndForget}): the Streams adapter
 *   opens connections and fires commands without handling their promise.
 */
import { decode as msgpackDecode } from '@msgpack/msgpack';
import type { Redis } from 'ioredis';
import type { Server, Socket } from 'socket.io';

/** `MessageType.BROADCAST` of socket.io-adapter 2.5: a cluster message carrying an event to rooms. */
export const ADAPTER_BROADCAST = 3;

/** The few fields of a socket.io-adapter cluster message the cluster looks at. */
export interface ClusterMessage {
  type: number;
  data?: { requestId?: string; opts?: { rooms?: readonly string[] } };
}

/** What the Streams adapter gives back on restore (socket.io-adapter `Session`), as far as it is read here. */
export interface RestoredSession {
  readonly sid: string;
  readonly pid: string;
  readonly rooms: readonly string[];
  readonly data: unknown;
  readonly missedPackets: unknown[][];
}

/** Writes one cluster message to Redis; resolves with its stream offset ('' for pub/sub messages). */
export type Publish = (message: ClusterMessage) => Promise<string>;
/** Restores a session from Redis: its rooms and the packets missed since `offset`. */
export type Restore = (pid: string, offset: string) => Promise<unknown>;

/** What replaces an adapter's own publish and restore: each is given the original. */
export interface AdapterHooks {
  readonly publish: (original: Publish, message: ClusterMessage) => Promise<string>;
  readonly restore: (original: Restore, pid: string, offset: string) => Promise<unknown>;
}

interface HookableAdapter {
  doPublish: Publish;
  restoreSession: Restore;
}

/**
 * Routes a Streams adapter instance's `doPublish` and `restoreSession`
 * through `hooks`. Throws if the instance no longer has them (an upgrade).
 *
 * @example
 * hookAdapter(streams(nsp), { publish: (send, m) => grace.publish(kind(m), () => send(m)), restore: (r, pid, o) => r(pid, o) });
 */
export function hookAdapter(adapter: object, hooks: AdapterHooks): void {
  const target = adapter as HookableAdapter;
  if (typeof target.doPublish !== 'function' || typeof target.restoreSession !== 'function') {
    throw new Error('the Socket.IO adapter has no doPublish/restoreSession: @socket.io/redis-streams-adapter changed');
  }
  const publish = target.doPublish.bind(adapter);
  const restore = target.restoreSession.bind(adapter);
  target.doPublish = (message) => hooks.publish(publish, message);
  target.restoreSession = (pid, offset) => hooks.restore(restore, pid, offset);
}

/**
 * Calls `onConnection` with every connection `client.duplicate()` opens from
 * now on (the Streams adapter opens its readers so), to close them all.
 */
export function keepDuplicates(client: Redis, onConnection: (connection: Redis) => void): void {
  const duplicate = client.duplicate.bind(client);
  client.duplicate = (override) => {
    const connection = duplicate(override);
    onConnection(connection);
    return connection;
  };
}

/**
 * Makes `client[command]` never reject: the Streams adapter fires SET (a
 * disconnected socket's session) and PUBLISH (cluster requests) without
 * handling their promise, and a rejection (Redis gone, or refusing writes)
 * must not become an unhandled rejection that stops the process. Each
 * failure is given to `onError`; the promise then resolves with undefined.
 */
export function catchFireAndForget(client: Redis, commands: readonly ('set' | 'publish')[], onError: (command: string, error: Error) => void): void {
  for (const command of commands) {
    const original = (client[command] as (...args: unknown[]) => Promise<unknown>).bind(client);
    (client as unknown as Record<string, unknown>)[command] = (...args: unknown[]) =>
      original(...args).catch((error: unknown) => onError(command.toUpperCase(), error instanceof Error ? error : new Error(String(error))));
  }
}

/** Connection state recovery as the server was configured (`Server#_opts`); undefined when off. */
export function recoveryOptions(io: Server): { readonly maxDisconnectionDuration?: number } | undefined {
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

/** What waits to be sent on one Engine.IO connection (engine.io 6 `Socket`). */
export interface EngineBacklog {
  /** Packets not yet handed to the transport. */
  readonly writeBuffer: readonly { readonly data?: unknown }[];
  /** The transport takes more now. */
  readonly writable: boolean;
  /** Bytes `ws` holds for the socket (WebSocket only), 0 otherwise. */
  readonly bufferedAmount: number;
}

/** Reads the unsent data of an Engine.IO connection (`socket.conn`). */
export function engineBacklog(conn: unknown): EngineBacklog {
  const c = conn as { writeBuffer: { data?: unknown }[]; transport: { writable: boolean; socket?: { bufferedAmount?: number } } };
  return { writeBuffer: c.writeBuffer, writable: c.transport.writable, bufferedAmount: c.transport.socket?.bufferedAmount ?? 0 };
}

/**
 * What of the above does not hold on this server, one line each; empty when
 * all does. `io` should have connection state recovery on and, to check the
 * adapter hooks, the cluster adapter; `conn` is one connected socket's `conn`.
 *
 * @example
 * assert.deepEqual(internalsProblems({ io, conn: socket.conn }), []);
 */
export function internalsProblems(parts: { io: Server; conn?: unknown; clusterAdapter?: boolean; inMemoryAdapter?: boolean; redis?: Redis }): string[] {
  const problems: string[] = [];
  const { io, conn } = parts;
  const opts = (io as unknown as { _opts?: unknown })._opts;
  if (typeof opts !== 'object' || opts === null || !('connectionStateRecovery' in opts)) problems.push('Server#_opts.connectionStateRecovery is gone (socket.io)');
  const adapter = io.of('/').adapter as unknown as Record<string, unknown>;
  if (parts.inMemoryAdapter && !(adapter.sessions instanceof Map)) problems.push('SessionAwareAdapter#sessions is not a Map (socket.io-adapter)');
  if (parts.clusterAdapter) {
    for (const method of ['doPublish', 'restoreSession', 'persistSession', 'onMessage', 'broadcast']) {
      if (typeof adapter[method] !== 'function') problems.push(`the Streams adapter has no ${method}()`);
    }
  }
  if (conn !== undefined) {
    const c = conn as { writeBuffer?: unknown; transport?: { writable?: unknown } };
    if (!Array.isArray(c.writeBuffer)) problems.push('Engine.IO Socket#writeBuffer is not an array (engine.io)');
    if (typeof c.transport?.writable !== 'boolean') problems.push('Engine.IO transport.writable is not a boolean (engine.io)');
  }
  if (parts.redis) {
    for (const method of ['duplicate', 'set', 'publish'] as const) {
      if (typeof parts.redis[method] !== 'function') problems.push(`ioredis has no ${method}()`);
    }
  }
  return problems;
}

/** An event the adapter is about to write to one of this node's sockets. */
export interface LocalDelivery {
  /** Its stream offset (the last argument, appended for recovery); undefined when it has none. */
  readonly offset: string | undefined;
  /** The rooms it was broadcast to, and those left out. */
  readonly rooms: ReadonlySet<string>;
  readonly except: ReadonlySet<string>;
  /** Writes it to the socket now (nothing if the socket is gone). */
  send(): void;
}

interface DeliveringAdapter {
  _encode(packet: AdapterPacket, packetOpts: object): unknown;
  apply(opts: { rooms: ReadonlySet<string>; except?: ReadonlySet<string> }, callback: (socket: Socket) => void): void;
}

interface AdapterPacket {
  type: number;
  id?: number;
  data?: unknown[];
}

/** `PacketType.EVENT` of socket.io-parser. */
const EVENT_PACKET = 2;
const STREAM_OFFSET = /^[0-9]+-[0-9]+$/;

/**
 * Lets `deliver` decide when (and whether) each broadcast reaches the
 * sockets for which `lookup` gives a gate; other sockets are served as
 * before. Relies on socket-io-adapter 2.5's `Adapter#broadcast`, which
 * calls `this._encode(packet)` and then `this.apply(opts, write)` at once.
 */
export function hookLocalDelivery<G>(
  adapter: object,
  lookup: (socketId: string) => G | undefined,
  deliver: (gate: G, delivery: LocalDelivery) => void,
  /** False when no socket has a gate: broadcasts then go through untouched. */
  active: () => boolean,
): void {
  const target = adapter as DeliveringAdapter;
  if (typeof target._encode !== 'function' || typeof target.apply !== 'function') {
    throw new Error('the Socket.IO adapter has no _encode/apply: socket.io-adapter changed');
  }
  const encode = target._encode.bind(adapter);
  const apply = target.apply.bind(adapter);
  let encoding: AdapterPacket | undefined;
  target._encode = (packet, packetOpts) => {
    encoding = packet;
    return encode(packet, packetOpts);
  };
  target.apply = (opts, callback) => {
    const packet = encoding;
    encoding = undefined;
    if (packet === undefined || !active()) return apply(opts, callback);
    const last = packet.type === EVENT_PACKET && packet.id === undefined ? packet.data?.[packet.data.length - 1] : undefined;
    const offset = typeof last === 'string' && STREAM_OFFSET.test(last) ? last : undefined;
    apply(opts, (socket) => {
      const gate = lookup(socket.id);
      if (gate === undefined) return callback(socket);
      deliver(gate, {
        offset,
        rooms: opts.rooms,
        except: opts.except ?? new Set(),
        send: () => {
          if (socket.connected) callback(socket);
        },
      });
    });
  };
}

/** Sends one event packet (`[event, ...args, offset]`) to `socket` as the adapter would (`Socket#packet`). */
export function sendEvent(socket: Socket, data: unknown[]): void {
  (socket as unknown as { packet(packet: AdapterPacket): void }).packet({ type: EVENT_PACKET, data });
}

/** A session as the Streams adapter saves it (`persistSession`: msgpack, base64), ready to restore. */
export function decodeSession(raw: string): RestoredSession & { missedPackets: unknown[][] } {
  const session = msgpackDecode(Buffer.from(raw, 'base64')) as { sid?: unknown; pid?: unknown; rooms?: unknown; data?: unknown };
  if (typeof session.sid !== 'string' || typeof session.pid !== 'string' || !Array.isArray(session.rooms)) {
    throw new Error('a saved session of an unknown shape');
  }
  return { sid: session.sid, pid: session.pid, rooms: session.rooms as string[], data: session.data, missedPackets: [] };
}

/** A broadcast read from the stream: its namespace, its packet, its rooms. */
export interface StreamBroadcast {
  readonly nsp: string;
  readonly packet: { readonly data: unknown[] };
  readonly opts: { readonly rooms?: readonly string[]; readonly except?: readonly string[] };
}

/** Decodes one stream entry's fields with the Streams adapter's own `decode`; undefined unless it is a broadcast. */
export function decodeStreamMessage(adapter: object, fields: readonly string[]): StreamBroadcast | undefined {
  const raw: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) raw[fields[i] as string] = fields[i + 1] as string;
  if (raw.type !== String(ADAPTER_BROADCAST)) return undefined;
  try {
    const decode = (adapter.constructor as unknown as { decode(raw: Record<string, string>): { nsp: string; data?: { packet?: { data?: unknown }; opts?: StreamBroadcast['opts']; requestId?: string } } }).decode;
    const message = decode(raw);
    const data = message.data;
    if (!data || data.requestId !== undefined || !Array.isArray(data.packet?.data)) return undefined;
    return { nsp: message.nsp, packet: { data: data.packet.data as unknown[] }, opts: data.opts ?? {} };
  } catch {
    return undefined;
  }
}
