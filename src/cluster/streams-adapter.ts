/**
 * The broker's Socket.IO adapter on a Redis stream (docs/cluster.md#order):
 * a subclass of socket.io-adapter's `ClusterAdapterWithHeartbeat`, Socket.IO's
 * public door for cluster adapters.
 *
 * - Broadcasts are written to the stream (XADD, MAXLEN ~), and every node,
 *   the publisher's own included, delivers them to its clients from its one
 *   {@link StreamReader}, in stream order: every client of a bus on every
 *   node gets one sequence, and its recovery offset only moves forward.
 *   A broadcast whose write fails (Redis down past the grace, or refusing the
 *   write) reaches this node's clients at once instead, without an offset:
 *   the only events outside stream order, and never delivered twice here if
 *   a write given up on reaches Redis later.
 * - Requests and answers between nodes (heartbeats, `fetchSockets`,
 *   `serverSideEmit`, broadcasts with acknowledgement) go through pub/sub;
 *   room changes of remote sockets (`socketsJoin`...) through the stream.
 * - Sessions of dropped sockets are saved in Redis, and restored exactly by
 *   {@link ExactRecovery}, which this adapter lets hold and filter the live
 *   events of a socket it is catching up.
 *
 * What the broker decides around each write (hold it through an outage,
 * count a refusal, tell a sender the outcome) it decides in a
 * {@link PublicationPolicy}; nothing here patches a live instance.
 *
 * Stream entries and sessions keep the format of `@socket.io/redis-streams-adapter`
 * 0.3 (src/cluster/stream-format.ts).
 */
import createDebug from 'debug';
import { Redis } from 'ioredis';
import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack';
import type { Namespace } from 'socket.io';
import { Adapter, ClusterAdapterWithHeartbeat, type BroadcastOptions, type ClusterMessage, type ClusterResponse, type Room } from 'socket.io-adapter';
import { recoveryOptions } from '../internals.ts';
import type { PublicationKind } from './outage-grace.ts';
import { ExactRecovery, type RestoredSession } from './recovery.ts';
import { StreamReader } from './stream-reader.ts';
import { BROADCAST, broadcastOf, decodeEntry, encodeEntry, encodeSession, reaches, type BroadcastData, type SavedSession, type StreamMessage, type WireMessage } from './stream-format.ts';

const debug = createDebug('spicy-action:cluster-adapter');

/** socket.io-adapter `MessageType`s sent through pub/sub rather than the stream: they concern live nodes only. */
const EPHEMERAL: ReadonlySet<number> = new Set([1 /* INITIAL_HEARTBEAT */, 2 /* HEARTBEAT */, 7 /* FETCH_SOCKETS */, 9 /* SERVER_SIDE_EMIT */, 13 /* ADAPTER_CLOSE */]);
/** `PacketType.EVENT` of socket.io-parser. */
const EVENT_PACKET = 2;
/** How often a node says it is alive, and after how long without a word another node counts it gone, in ms. */
export const HEARTBEAT_INTERVAL_MS = 5_000;
export const HEARTBEAT_TIMEOUT_MS = 10_000;

/** What the broker decides around the adapter's writes. */
export interface PublicationPolicy {
  /**
   * Writes one message through `write` (which XADDs it and resolves with its
   * offset), or holds it, or rejects (then a broadcast reaches this node's
   * clients only). Called synchronously inside the `emit` that made it.
   */
  publish(kind: PublicationKind, write: () => Promise<string>): Promise<string>;
  /** A write nobody waits for (a session, a pub/sub message) failed. */
  failed(command: string, error: Error): void;
  /** False while Redis is down: sessions are not restored. */
  restorable(): boolean;
}

/** Where the adapter writes, and how. */
export interface StreamsOptions {
  readonly streamName: string;
  readonly maxLen: number;
  /** Prefix of the pub/sub channels. */
  readonly channelPrefix: string;
  readonly sessionKeyPrefix: string;
}

/**
 * The node's side of the stream, shared by its namespaces' adapters: the
 * publishing connection (given), one reader and one pub/sub subscriber (its
 * own connections). Give {@link StreamsHub.Adapter} to Socket.IO.
 *
 * @example
 * const hub = new StreamsHub(redis, { streamName, maxLen, channelPrefix, sessionKeyPrefix }, policy);
 * await hub.start();
 * const io = new Server(httpServer, { adapter: hub.Adapter });
 * hub.close(); // after io.close()
 */
export class StreamsHub {
  readonly redis: Redis;
  readonly options: StreamsOptions;
  readonly policy: PublicationPolicy;
  readonly reader: StreamReader;
  readonly #subscriber: Redis;
  readonly #adapters = new Map<string, StreamsAdapter>();
  readonly #channels = new Map<string, StreamsAdapter>();
  /** The adapter class Socket.IO instantiates, once per namespace. */
  readonly Adapter: new (nsp: Namespace) => StreamsAdapter;

  constructor(redis: Redis, options: StreamsOptions, policy: PublicationPolicy) {
    this.redis = redis;
    this.options = options;
    this.policy = policy;
    const reader = redis.duplicate({ connectionName: `${options.channelPrefix}:reader` });
    reader.on('error', () => {}); // the publishing connection reports the same trouble
    this.reader = new StreamReader(reader, options.streamName, (id, fields) => this.#onEntry(id, fields));
    this.#subscriber = redis.duplicate({ connectionName: `${options.channelPrefix}:subscriber` });
    this.#subscriber.on('error', () => {});
    this.#subscriber.on('messageBuffer', (channel: Buffer, payload: Buffer) => this.#channels.get(channel.toString())?.onPayload(payload));
    const hub = this;
    this.Adapter = class extends StreamsAdapter {
      constructor(nsp: Namespace) {
        super(nsp, hub);
      }
    };
  }

  /** Starts reading the stream from its end as it is now. */
  start(): Promise<void> {
    return this.reader.start();
  }

  /** Stops reading, and closes the reader's and the subscriber's connections (not the publishing one). */
  close(): void {
    this.reader.close();
    this.#subscriber.disconnect();
  }

  /** @internal an adapter joins: its namespace's entries and its channels come to it. */
  add(adapter: StreamsAdapter, channels: readonly string[]): void {
    this.#adapters.set(adapter.nsp.name as string, adapter);
    for (const channel of channels) this.#channels.set(channel, adapter);
    this.#subscriber.subscribe(...channels).catch((error: unknown) => debug('subscribing to %s failed: %s', channels.join(', '), (error as Error).message));
  }

  /** @internal an adapter leaves. */
  remove(adapter: StreamsAdapter, channels: readonly string[]): void {
    if (this.#adapters.get(adapter.nsp.name as string) === adapter) this.#adapters.delete(adapter.nsp.name as string);
    for (const channel of channels) this.#channels.delete(channel);
    if (this.#subscriber.status === 'ready') this.#subscriber.unsubscribe(...channels).catch(() => undefined);
  }

  #onEntry(id: string, fields: string[]): void {
    const message = decodeEntry(fields);
    if (message === undefined) return debug('an entry of an unknown shape at %s', id);
    this.#adapters.get(message.nsp)?.onEntry(message, id);
  }
}

/**
 * One namespace's adapter. Socket.IO creates it through {@link StreamsHub.Adapter}.
 */
export class StreamsAdapter extends ClusterAdapterWithHeartbeat {
  readonly #hub: StreamsHub;
  readonly #recovery: ExactRecovery | undefined;
  readonly #channels: readonly string[];
  readonly #publicChannel: string;
  /** This adapter's count of its broadcasts written to the stream (the entries' `seq`). */
  #seq = 0;
  /** Broadcasts delivered here because their write was given up on: if the write reaches Redis after all, the reader skips them. */
  readonly #releasedHere = new Set<number>();

  constructor(nsp: Namespace, hub: StreamsHub) {
    super(nsp, { heartbeatInterval: HEARTBEAT_INTERVAL_MS, heartbeatTimeout: HEARTBEAT_TIMEOUT_MS });
    this.#hub = hub;
    const { channelPrefix } = hub.options;
    this.#publicChannel = `${channelPrefix}#${nsp.name}#`;
    this.#channels = [this.#publicChannel, `${channelPrefix}#${nsp.name}#${this.uid}#`];
    this.#recovery = recoveryOptions(nsp.server)
      ? new ExactRecovery(nsp, {
          redis: hub.redis,
          streamName: hub.options.streamName,
          sessionKeyPrefix: hub.options.sessionKeyPrefix,
          usable: () => hub.policy.restorable(),
          send: (socketId, data) => this.#sendTo(socketId, data),
        })
      : undefined;
    hub.add(this, this.#channels);
  }

  /** Restored sockets whose live events are being held or filtered (for tests and metrics). */
  get recoveringSockets(): number {
    return this.#recovery?.gates ?? 0;
  }

  /**
   * Writes the broadcast to the stream; this node's clients get it when the
   * reader reads it back, in stream order. When the write fails, they get it
   * at once (it reached no other node). Never throws, and the promise never
   * rejects: Socket.IO drops it, and a failure (an event that cannot be
   * encoded) must not end the process; it is logged.
   */
  override broadcast(packet: BroadcastData['packet'], opts: BroadcastOptions): Promise<void> {
    try {
      if (opts.flags?.local) {
        this.deliver(packet, opts, undefined);
        return Promise.resolve();
      }
      const message = { type: BROADCAST, data: { packet, opts: { rooms: [...opts.rooms], except: [...(opts.except ?? [])], flags: opts.flags } } };
      return this.publishAndReturnOffset(message as unknown as Parameters<ClusterAdapterWithHeartbeat['publishAndReturnOffset']>[0]).then(
        () => undefined,
        (error: unknown) => {
          debug('broadcast delivered on this node only: %s', (error as Error).message);
          this.#deliverSafely(packet, opts);
        },
      );
    } catch (error) {
      debug('a broadcast failed: %s', error instanceof Error ? error.stack : String(error));
      return Promise.resolve();
    }
  }

  /** Sends through pub/sub what concerns live nodes only; writes the rest to the stream, through the policy. */
  protected override doPublish(message: ClusterMessage): Promise<string> {
    const wire = message as unknown as WireMessage;
    const broadcast = broadcastOf(wire);
    if (EPHEMERAL.has(wire.type) || (wire.type === BROADCAST && broadcast === undefined)) {
      this.#publishRaw(this.#publicChannel, wire);
      return Promise.resolve('');
    }
    const seq = broadcast ? ++this.#seq : 0;
    // Encoded now: the packet may change once this returns (the grace may write it much later).
    const fields = encodeEntry(wire, seq);
    const { streamName, maxLen } = this.#hub.options;
    const write = (): Promise<string> => this.#hub.redis.xadd(streamName, 'MAXLEN', '~', maxLen, '*', ...fields) as Promise<string>;
    const written = this.#hub.policy.publish(broadcast ? this.#kindOf(broadcast) : 'other', write);
    if (broadcast) written.catch(() => this.#releasedHere.add(seq));
    return written;
  }

  protected override doPublishResponse(requesterUid: string, response: ClusterResponse): Promise<void> {
    this.#publishRaw(`${this.#hub.options.channelPrefix}#${this.nsp.name}#${requesterUid}#`, response as unknown as WireMessage);
    return Promise.resolve();
  }

  /** Saves a dropped socket's session for its recovery window (nobody waits for it: a failure is told to the policy). */
  override persistSession(session: SavedSession): void {
    const windowMs = recoveryOptions(this.nsp.server)?.maxDisconnectionDuration;
    if (windowMs === undefined) return;
    this.#hub.redis
      .set(this.#hub.options.sessionKeyPrefix + session.pid, encodeSession(session), 'PX', windowMs)
      .catch((error: unknown) => this.#hub.policy.failed('SET', error instanceof Error ? error : new Error(String(error))));
  }

  /** Restores a session exactly (src/cluster/recovery.ts); rejects, for a fresh session, when it cannot. */
  override restoreSession(pid: string, offset: string): Promise<RestoredSession> {
    if (this.#recovery === undefined) return Promise.reject(new Error('connection state recovery is off'));
    return this.#recovery.restore(pid, offset);
  }

  override close(): void {
    super.close();
    this.#hub.remove(this, this.#channels);
  }

  /** @internal one entry of this namespace, from the reader, in stream order. */
  onEntry(message: StreamMessage, offset: string): void {
    const broadcast = broadcastOf(message);
    if (message.uid === this.uid) {
      if (broadcast === undefined) return;
      if (message.seq !== undefined) {
        for (const seq of this.#releasedHere) if (seq < message.seq) this.#releasedHere.delete(seq);
        if (this.#releasedHere.delete(message.seq)) return;
      }
    } else if (broadcast === undefined) {
      return this.onMessage(message as unknown as ClusterMessage, offset);
    }
    const { packet, opts } = broadcast;
    this.deliver(packet, { rooms: new Set(opts.rooms), except: new Set(opts.except), flags: opts.flags }, offset);
  }

  /** @internal one pub/sub payload on this adapter's channels. */
  onPayload(payload: Buffer): void {
    let message: ClusterMessage;
    try {
      message = msgpackDecode(payload) as ClusterMessage;
    } catch (error) {
      return debug('invalid pub/sub payload: %s', (error as Error).message);
    }
    this.onMessage(message);
  }

  /**
   * Delivers a broadcast to this node's sockets, with its stream offset
   * appended for recovery when it has one. A socket being caught up after a
   * recovery gets it through {@link ExactRecovery} (held, or dropped if its
   * backlog had it).
   */
  protected deliver(packet: BroadcastData['packet'], opts: BroadcastOptions, offset: string | undefined): void {
    if (offset !== undefined && this.#recovery !== undefined && packet.type === EVENT_PACKET && packet.id === undefined && opts.flags?.volatile === undefined) {
      packet.data.push(offset);
    }
    const recovery = this.#recovery;
    const gated: string[] = [];
    if (recovery !== undefined && recovery.gates > 0) {
      for (const socketId of recovery.gatedSockets()) {
        const rooms = this.sids.get(socketId);
        if (rooms !== undefined && reaches(rooms, { rooms: opts.rooms, except: opts.except ?? new Set() })) gated.push(socketId);
      }
    }
    if (gated.length === 0) return Adapter.prototype.broadcast.call(this, packet, opts);
    Adapter.prototype.broadcast.call(this, packet, { ...opts, except: new Set([...(opts.except ?? []), ...gated]) });
    for (const socketId of gated) {
      recovery?.deliver(socketId, {
        offset,
        rooms: opts.rooms,
        except: opts.except ?? new Set(),
        send: () => this.#sendTo(socketId, packet.data),
      });
    }
  }

  /** {@link deliver} without an offset, logging what it throws (it runs where nobody would catch it). */
  #deliverSafely(packet: BroadcastData['packet'], opts: BroadcastOptions): void {
    try {
      this.deliver(packet, opts, undefined);
    } catch (error) {
      debug('a broadcast failed: %s', error instanceof Error ? error.stack : String(error));
    }
  }

  /** An event for one socket of this namespace on this node (its own room), now. */
  #sendTo(socketId: string, data: unknown[]): void {
    Adapter.prototype.broadcast.call(this, { type: EVENT_PACKET, data }, { rooms: new Set<Room>([socketId]), except: new Set<Room>() });
  }

  /** A broadcast to one socket of this node only is `direct`: it never waits for Redis. */
  #kindOf(broadcast: BroadcastData): PublicationKind {
    const rooms = broadcast.opts.rooms;
    return rooms.length === 1 && (this.nsp as Namespace).sockets.has(rooms[0] as string) ? 'direct' : 'event';
  }

  #publishRaw(channel: string, message: WireMessage): void {
    const payload = Buffer.from(msgpackEncode(message));
    this.#hub.redis.publish(channel, payload).catch((error: unknown) => this.#hub.policy.failed('PUBLISH', error instanceof Error ? error : new Error(String(error))));
  }
}
