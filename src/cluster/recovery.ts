/**
 * Exact connection state recovery on a cluster (docs/cluster.md#when-redis-fails): a 4.x client
 * told `recovered: true` gets every event it missed once, in order, on
 * whichever node it comes back to; where that cannot be promised it gets a
 * fresh session (`recovered: false`).
 *
 * A restore that reads the missed events from the stream before the socket
 * is registered, while the node goes on delivering live events (what the
 * Redis Streams adapter 0.3 did), loses or doubles events:
 * - an event written after that read but delivered live before the socket is
 *   registered reaches it by neither way: lost;
 * - an event in that read that the node's stream reader has not delivered yet
 *   reaches it twice: once in the backlog, once live.
 * It also reads the whole backlog at once (memory grows with it).
 *
 * This module is the adapter's restore (src/cluster/streams-adapter.ts). The first page of the backlog is sent
 * with the session, as upstream does; once the socket is registered, the rest
 * is read in pages (XRANGE with COUNT) from where that page ended, each page
 * sent when the connection has drained the last (back-pressure). Live events
 * for the socket are held meanwhile, and the socket keeps a floor, the last
 * offset the backlog gave it: a live event at or below it is a duplicate and
 * is dropped; the held ones above it follow the backlog, in order. Every event
 * delivered live before the registration was in the stream before the
 * post-registration reads began, so the backlog has it.
 *
 * Restores beyond {@link MAX_CONCURRENT_RESTORES} at once, and those whose
 * live backlog grows past {@link MAX_HELD_EVENTS} while catching up, are
 * refused or cut: the client starts afresh, or recovers again from its last
 * offset, rather than get a gap.
 */
import createDebug from 'debug';
import type { Redis } from 'ioredis';
import type { Namespace, Socket } from 'socket.io';
import { engineBacklog, engineConnection } from '../internals.ts';
import { broadcastOf, compareOffsets, decodeEntry, decodeSession, OFFSET, reaches } from './stream-format.ts';
import type { RawEntry } from './stream-reader.ts';

const debug = createDebug('spicy-action:cluster-recovery');

/** Stream entries read per XRANGE while restoring a session. */
export const RESTORE_PAGE = 1_000;
/** Sessions being restored at once on one node (first page read, or backlog being sent); more get a fresh session. */
export const MAX_CONCURRENT_RESTORES = 64;
/** Live events one socket may have held while it catches up; past this its connection is cut (it recovers again). */
export const MAX_HELD_EVENTS = 20_000;
/** Unsent bytes over WebSocket above which the next page waits. */
const HIGH_WATER_BYTES = 1 << 20;
/** How often a catch-up checks whether the connection drained, in ms. */
const DRAIN_POLL_MS = 5;
/** A restored socket that never connects (refused by a middleware, closed at once) is forgotten, and its slot freed, after this, in ms. */
const CONNECT_WAIT_MS = 10_000;
/** Longest a session restore may take (the session and the first page), in ms; past it the client gets a fresh session. */
export const RESTORE_TIMEOUT_MS = 5_000;
/**
 * Longest the connection may take to drain one page of the backlog, in ms: a
 * client that stops reading during its catch-up is cut (it recovers again
 * from the last event it read), rather than have the node hold its live events.
 */
export const DRAIN_TIMEOUT_MS = 10_000;
/** Longest a whole catch-up may take, in ms; past it the connection is cut. */
export const CATCH_UP_TIMEOUT_MS = 60_000;


/** A restored session (socket.io-adapter `Session`): its rooms, and the first page of what it missed. */
export interface RestoredSession {
  readonly sid: string;
  readonly pid: string;
  readonly rooms: string[];
  readonly data: unknown;
  readonly missedPackets: unknown[][];
}

/** A live event on its way to one socket being caught up. */
export interface LocalDelivery {
  /** Its stream offset (appended to its arguments for recovery); undefined when it has none. */
  readonly offset: string | undefined;
  /** The rooms it was broadcast to, and those left out. */
  readonly rooms: ReadonlySet<string>;
  readonly except: ReadonlySet<string>;
  /** Writes it to the socket now (nothing if the socket is gone). */
  send(): void;
}

/** The broadcast options of a stream entry, as the backlog filters them. */
interface EntryRooms {
  readonly rooms: readonly string[];
  readonly except: readonly string[];
}

/** One restored socket: held live events until its backlog is sent, then its floor. */
interface Gate {
  readonly rooms: readonly string[];
  /** The last offset the backlog reached. */
  floor: string;
  /** Live deliveries held while the backlog is sent; undefined once released. */
  held: LocalDelivery[] | undefined;
  /** Why the catch-up cannot complete (too many live events held), once it cannot. */
  failed: string | undefined;
  readonly forget: NodeJS.Timeout;
}

/** What the recovery needs of the cluster. */
export interface RecoveryOptions {
  readonly redis: Redis;
  readonly streamName: string;
  readonly sessionKeyPrefix: string;
  /** False while Redis is down: restores are refused at once. */
  readonly usable: () => boolean;
  /** Sends one event (`[event, ...args, offset]`) to one socket of the namespace on this node, now. */
  readonly send: (socketId: string, data: unknown[]) => void;
}

/**
 * The recovery of one namespace's sessions: the adapter's `restoreSession`
 * is {@link ExactRecovery.restore}, and the adapter hands each live event for
 * a socket of {@link ExactRecovery.gatedSockets} to {@link ExactRecovery.deliver}.
 *
 * @example
 * const recovery = new ExactRecovery(nsp, { redis, streamName, sessionKeyPrefix, usable: () => up, send });
 * const session = await recovery.restore(pid, offset);
 */
export class ExactRecovery {
  readonly #nsp: Namespace;
  readonly #options: RecoveryOptions;
  readonly #gates = new Map<string, Gate>();
  #restoring = 0;
  /** Restores refused because too many were under way. */
  refused = 0;

  constructor(nsp: Namespace, options: RecoveryOptions) {
    this.#nsp = nsp;
    this.#options = options;
    nsp.on('connection', (socket: Socket) => {
      const gate = this.#gates.get(socket.id);
      if (gate === undefined) return;
      clearTimeout(gate.forget);
      socket.once('disconnect', () => this.#gates.delete(socket.id));
      void this.#catchUp(socket, gate);
    });
  }

  /** Restored sockets this node still filters (for tests and metrics). */
  get gates(): number {
    return this.#gates.size;
  }

  /** The ids of the sockets whose live events go through {@link deliver}. */
  gatedSockets(): IterableIterator<string> {
    return this.#gates.keys();
  }

  /** A live event for a socket of {@link gatedSockets}: held while it catches up, dropped if its backlog had it, else sent. */
  deliver(socketId: string, delivery: LocalDelivery): void {
    const gate = this.#gates.get(socketId);
    if (gate === undefined) delivery.send();
    else this.#deliver(gate, delivery);
  }

  /**
   * The session of `pid` with the first page of what it missed since
   * `offset`; rejects (a fresh session for the client) when it cannot be
   * restored exactly.
   */
  async restore(pid: string, offset: string): Promise<RestoredSession> {
    if (!this.#options.usable()) throw new Error('Redis is down: no session to recover');
    if (!OFFSET.test(offset)) throw new Error('invalid offset');
    if (this.#restoring >= MAX_CONCURRENT_RESTORES) {
      this.refused++;
      throw new Error(`more than ${MAX_CONCURRENT_RESTORES} sessions being restored: a fresh session`);
    }
    this.#restoring++;
    // Given up by its deadline: the slot is freed at once, and what the reads bring later is dropped.
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        this.#restoring--;
        reject(new Error(`timed out restoring the session from Redis (${RESTORE_TIMEOUT_MS / 1000} s)`));
      }, RESTORE_TIMEOUT_MS);
      timer.unref();
    });
    const reading = this.#restoreSession(pid, offset).then(
      (session) => {
        if (settled) {
          this.#forgetGate(session.sid);
          return session;
        }
        settled = true;
        return session;
      },
      (error: unknown) => {
        if (!settled) {
          settled = true;
          this.#restoring--;
        }
        throw error;
      },
    );
    reading.catch(() => undefined); // after the deadline, its failure is nobody's
    try {
      return await Promise.race([reading, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Drops the gate of a restore given up by its deadline (its slot was freed then). */
  #forgetGate(sid: string): void {
    const gate = this.#gates.get(sid);
    if (gate === undefined) return;
    clearTimeout(gate.forget);
    this.#gates.delete(sid);
  }

  /**
   * Takes the session and reads the first page after `offset`, in one
   * XRANGE that starts at `offset` itself: the offset is still in the stream
   * exactly when that read returns it first, so no trim can fall between the
   * check and the read.
   */
  async #restoreSession(pid: string, offset: string): Promise<RestoredSession> {
    const { redis, sessionKeyPrefix } = this.#options;
    const [taken, page] = await Promise.all([redis.multi().get(`${sessionKeyPrefix}${pid}`).del(`${sessionKeyPrefix}${pid}`).exec(), this.#read(offset)]);
    const raw = taken?.[0]?.[1];
    if (typeof raw !== 'string' || page === undefined) throw new Error('session or offset not found');
    // The rooms were unknown when the page was read: filter it now.
    const saved = decodeSession(raw);
    const session: RestoredSession = { ...saved, rooms: [...saved.rooms], missedPackets: page.entries.filter((entry) => reaches(saved.rooms, entry.opts)).map((entry) => entry.data) };
    const gate: Gate = {
      rooms: session.rooms,
      floor: page.last,
      held: [],
      failed: undefined,
      // Never connected (a middleware refused it, the connection closed): forget it, and free its slot.
      forget: setTimeout(() => {
        if (this.#gates.get(session.sid) !== gate) return;
        this.#gates.delete(session.sid);
        this.#restoring--;
      }, CONNECT_WAIT_MS).unref(),
    };
    this.#gates.set(session.sid, gate);
    return session;
  }

  /**
   * One page of the stream after `floor`, read from `floor` itself: undefined
   * when `floor` is no longer in the stream (trimmed: what followed it may be
   * gone too). Each entry is a broadcast of this namespace with its offset
   * appended; `last` is the last offset read.
   */
  async #read(floor: string): Promise<{ entries: { data: unknown[]; opts: EntryRooms }[]; last: string; full: boolean } | undefined> {
    const read = (await this.#options.redis.xrange(this.#options.streamName, floor, '+', 'COUNT', RESTORE_PAGE + 1)) as RawEntry[];
    if (read[0]?.[0] !== floor) return undefined;
    const entries: { data: unknown[]; opts: EntryRooms }[] = [];
    let last = floor;
    for (const [id, fields] of read.slice(1)) {
      last = id;
      const message = decodeEntry(fields);
      if (message === undefined || message.nsp !== this.#nsp.name) continue;
      const broadcast = broadcastOf(message);
      if (broadcast === undefined) continue;
      entries.push({ data: [...broadcast.packet.data, id], opts: broadcast.opts });
    }
    return { entries, last, full: read.length === RESTORE_PAGE + 1 };
  }

  /** After the registration: the rest of the backlog, page by page, then the held live events above the floor. */
  async #catchUp(socket: Socket, gate: Gate): Promise<void> {
    let complete = false;
    const giveUpAt = Date.now() + CATCH_UP_TIMEOUT_MS;
    try {
      for (;;) {
        const page = await this.#read(gate.floor);
        if (!socket.connected) break;
        // Trimmed past the floor: the client recovers again from the last event it got, and gets a fresh session if that is gone too.
        if (page === undefined) throw new Error('the stream was trimmed past the backlog being sent');
        for (const entry of page.entries) if (reaches(gate.rooms, entry.opts)) this.#options.send(socket.id, entry.data);
        gate.floor = page.last;
        if (!page.full) break;
        await drained(socket, Math.max(0, Math.min(DRAIN_TIMEOUT_MS, giveUpAt - Date.now())));
        if (gate.failed !== undefined) throw new Error(gate.failed);
        if (Date.now() >= giveUpAt) throw new Error(`the catch-up took more than ${CATCH_UP_TIMEOUT_MS / 1000} s`);
      }
      if (gate.failed !== undefined) throw new Error(gate.failed);
      const held = gate.held ?? [];
      gate.held = undefined;
      for (const delivery of held) this.#deliver(gate, delivery);
      complete = true;
    } catch (error) {
      debug('could not complete the recovery of %s: %s', socket.id, (error as Error).message);
    } finally {
      this.#restoring--;
      if (!complete && socket.connected) {
        // Cannot be completed: cut the connection; the client recovers again from the last event it got.
        this.#gates.delete(socket.id);
        closeConnection(socket);
      }
    }
  }

  /** A live event for a restored socket: held while it catches up, dropped at or below its floor, else sent. */
  #deliver(gate: Gate, delivery: LocalDelivery): void {
    if (gate.held) {
      if (gate.failed !== undefined) return;
      if (gate.held.length >= MAX_HELD_EVENTS) {
        // Checked as each is held: the catch-up is cut at its next step, and nothing more is held meanwhile.
        gate.failed = `more than ${MAX_HELD_EVENTS} live events held while catching up`;
        gate.held = [];
        return;
      }
      gate.held.push(delivery);
      return;
    }
    // At or below the floor, and for the rooms the backlog was read for: the backlog sent it already.
    if (delivery.offset !== undefined && compareOffsets(delivery.offset, gate.floor) <= 0 && covers(gate.rooms, delivery)) return;
    delivery.send();
  }
}

/** Whether a backlog read for `rooms` holds a broadcast to `delivery`'s rooms. */
function covers(rooms: readonly string[], delivery: LocalDelivery): boolean {
  return (delivery.rooms.size === 0 || rooms.some((room) => delivery.rooms.has(room))) && rooms.every((room) => !delivery.except.has(room));
}

/** Resolves once the connection has sent what it holds (or is gone); rejects after `timeoutMs`. */
async function drained(socket: Socket, timeoutMs: number): Promise<void> {
  const giveUpAt = Date.now() + timeoutMs;
  for (;;) {
    if (!socket.connected) return;
    const backlog = engineBacklog(socket.conn);
    if (backlog.packets.length === 0 && backlog.bufferedAmount < HIGH_WATER_BYTES) return;
    if (Date.now() >= giveUpAt) throw new Error(`the connection did not drain a page of the backlog within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
  }
}

/**
 * Drops the connection at once, unsent data and all: a client that stopped
 * reading would hold a graceful close (which waits for the write buffer to
 * drain) until Engine.IO's ping timeout. "forced close" is a recoverable
 * reason: the session is saved again, and the client recovers from the last
 * event it read.
 */
function closeConnection(socket: Socket): void {
  const conn = engineConnection(socket);
  try {
    conn.transport.socket?.terminate?.();
  } catch (error) {
    debug('terminate of %s failed: %s', socket.id, (error as Error).message);
  }
  conn.close(true);
}
