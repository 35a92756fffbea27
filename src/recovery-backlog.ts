/**
 * What a single process keeps for connection state recovery (the in-memory
 * adapter), made cheap to ask about and bounded in bytes:
 * - {@link WaitingRooms}: for each room, how many disconnected sessions kept
 *   for recovery were in it, so that "can anyone receive this?" costs one
 *   lookup per room of the event, whatever the number of waiting sessions;
 * - {@link capBacklog}: the events kept for recovery, held under a byte cap;
 *   the oldest go first, and a client whose last event went with them gets
 *   a fresh session (`recovered` false), never a recovery with a gap.
 *
 * The adapter's internals they rely on are in src/internals.ts.
 */
import createDebug from 'debug';
import { replaceSessionTable, watchBacklog, type KeptPacket, type SocketIoServer, type WaitingSession } from './internals.ts';

const debug = createDebug('spicy-action:recovery-backlog');

/** A session table that counts, per room, the sessions holding it; Socket.IO's adapter only calls `set`, `get`, `delete` and iterates. */
class IndexedSessions extends Map<string, WaitingSession> {
  constructor(readonly rooms: Map<string, number>, readonly unreadable: { count: number }) {
    super();
  }

  override set(pid: string, session: WaitingSession): this {
    this.#unindex(super.get(pid));
    this.#index(session, 1);
    return super.set(pid, session);
  }

  override delete(pid: string): boolean {
    this.#unindex(super.get(pid));
    return super.delete(pid);
  }

  override clear(): void {
    this.rooms.clear();
    this.unreadable.count = 0;
    super.clear();
  }

  #unindex(session: WaitingSession | undefined): void {
    if (session !== undefined) this.#index(session, -1);
  }

  #index(session: WaitingSession, step: 1 | -1): void {
    const { rooms } = session;
    if (!Array.isArray(rooms)) {
      this.unreadable.count += step;
      return;
    }
    for (const room of new Set<unknown>(rooms)) {
      if (typeof room !== 'string') continue;
      const count = (this.rooms.get(room) ?? 0) + step;
      if (count > 0) this.rooms.set(room, count);
      else this.rooms.delete(room);
    }
  }
}

/**
 * The rooms of the sessions waiting for recovery, counted: kept up to date
 * by the adapter's own session table, replaced by an indexed one.
 *
 * @example
 * const waiting = WaitingRooms.attach(io);
 * waiting?.holds('calls'); // true while a disconnected session that was in `calls` may come back
 */
export class WaitingRooms {
  readonly #rooms = new Map<string, number>();
  readonly #unreadable = { count: 0 };

  private constructor() {}

  /** Indexes the sessions of `io`'s in-memory adapter; undefined when the adapter keeps none (recovery off, or a cluster). */
  static attach(io: SocketIoServer): WaitingRooms | undefined {
    const waiting = new WaitingRooms();
    return replaceSessionTable(io, new IndexedSessions(waiting.#rooms, waiting.#unreadable)) ? waiting : undefined;
  }

  /** True when a waiting session was in `room`, or one is of a shape not understood (then assume it was). */
  holds(room: string): boolean {
    return this.#unreadable.count > 0 || this.#rooms.has(room);
  }

  /** How many distinct rooms the waiting sessions hold. */
  get size(): number {
    return this.#rooms.size;
  }
}

/** What the byte cap reports, read by tests and metrics. */
export interface BacklogState {
  /** Encoded bytes of the events kept now. */
  readonly bytes: number;
  /** Events kept now. */
  readonly events: number;
  /** Events dropped by the cap since start. */
  readonly pruned: number;
}

/** After the cap is passed, the backlog is cut down to this fraction of it, so the cut (a splice) is rare. */
const PRUNE_TO = 0.9;
/** The size queue's consumed head is compacted past this many entries. */
const COMPACT_AFTER = 1_024;

/**
 * Holds the in-memory recovery backlog of `io` under `maxBytes` of encoded
 * events. Each kept broadcast's size is read from its one encoding; when the
 * total passes the cap, the oldest events are dropped until it is under 90%
 * of it. The adapter finds a recovering client's last event by its offset:
 * once that event is gone, the client gets a fresh session rather than
 * what followed it, so the cap never makes a silent gap. Undefined when the
 * adapter keeps no backlog (recovery off, or a cluster: Redis's stream is
 * capped by `REDIS_STREAM_MAXLEN`).
 *
 * @example
 * const backlog = capBacklog(io, 64_000_000);
 * backlog?.state().bytes; // ≤ 64 MB after every broadcast
 */
export function capBacklog(io: SocketIoServer, maxBytes: number): { state(): BacklogState } | undefined {
  // The kept packets and their sizes, in the adapter's order, from `head` on, as two parallel arrays (no
  // object per packet); packets before `head` are cleared as they are passed, so that a dropped packet
  // is not held here until compaction.
  const kept: (KeptPacket | undefined)[] = [];
  const sizes: number[] = [];
  let head = 0;
  let total = 0;
  let pruned = 0;

  const backlog = watchBacklog(io, (packet, bytes) => {
    kept.push(packet);
    sizes.push(bytes);
    total += bytes;
    if (total > maxBytes) prune();
  });
  if (!backlog) return undefined;
  const { packets } = backlog;

  /** Forgets the sizes of packets the adapter's expiry timer took off the front. */
  const sync = (): void => {
    const first = packets[0];
    while (head < kept.length && kept[head] !== first) {
      total -= sizes[head] ?? 0;
      kept[head++] = undefined;
    }
    if (head > COMPACT_AFTER && head * 2 > kept.length) {
      kept.splice(0, head);
      sizes.splice(0, head);
      head = 0;
    }
  };

  const prune = (): void => {
    sync();
    const target = maxBytes * PRUNE_TO;
    let drop = 0;
    while (total > target && head + drop < kept.length) {
      total -= sizes[head + drop] ?? 0;
      kept[head + drop] = undefined;
      drop++;
    }
    packets.splice(0, drop);
    head += drop;
    pruned += drop;
    debug('recovery backlog over %d bytes: dropped the %d oldest events', maxBytes, drop);
    sync();
  };

  return {
    state() {
      sync();
      return { bytes: total, events: packets.length, pruned };
    },
  };
}
