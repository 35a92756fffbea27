/**
 * Keeps the route table the same on every node of a cluster
 * (docs/protocol.md#register, #several-brokers). Redis holds the table twice:
 * - a hash (`<prefix>:routes`, event → JSON bus) that a node starting later
 *   loads before it listens;
 * - a change log, a stream (`<prefix>:routes:log`), that every running node
 *   reads from where it is, so changes arrive in the order Redis took them and
 *   none is missed across a Redis outage or restart;
 * and beside them a hash of stamps (`<prefix>:routes:meta`, event → JSON
 * `{at, node}`), so that every node can tell when and where a route was last
 * changed (`GET /routes`). A removal (`DELETE /routes/:event`) deletes the
 * event from both hashes and is logged with a `removed` field.
 * A local `register` is applied at once, then written to both in one Lua
 * script, which first checks `MAX_ROUTES` against the cluster's table, so
 * that the cap holds for the cluster, not per node; a route over the cap is
 * undone as a refused write is. Every node applies the log in the same
 * order, so when two nodes change the same event at once, all end on the
 * change Redis took last.
 *
 * A write Redis refuses (OOM, READONLY, MISCONF) is undone here: the event
 * goes back to the last route Redis confirmed (or is removed if Redis never
 * had it), so no node keeps a route the others do not have; the change's
 * outcome is handed to {@link RouteSyncOptions.outcome}, for the `register`
 * acknowledgement. A write waiting for a lost Redis is not undone: ioredis
 * holds it and sends it when Redis is back.
 */
import { randomBytes } from 'node:crypto';
import createDebug from 'debug';
import type { Redis } from 'ioredis';
import type { Buses } from '../buses.ts';
import { eventRefusal } from '../protocol.ts';
import { DEFAULT_ROUTES, type Route, type RouteChange, type RouteRemoval, type RouteStamp, type RouteTable } from '../routes.ts';
import { causeOf } from './refusals.ts';
import { compareOffsets } from './stream-format.ts';
import { readStreamInfo } from './stream-reader.ts';

const debug = createDebug('spicy-action:route-sync');

/** Entries the change log keeps (approximately); a node away for more changes than this reloads nothing. */
const LOG_MAX_LEN = 10_000;
/** How long one blocking read of the log waits, in ms. */
const BLOCK_MS = 5_000;

type StreamEntry = [id: string, fields: string[]];

/** What a full table answers, in the error of a route Redis did not add: not a refused write (no OOM, READONLY...). */
const FULL = 'ROUTESFULL';

/**
 * Sets one route in Redis, in one atomic step: a new event is added only
 * while the cluster's table (the hash, plus the built-in routes it does not
 * hold) has fewer than `MAX_ROUTES` routes, so that two nodes registering at
 * once cannot pass the cap together. Then it writes the route, its stamp and
 * the change log entry, as one MULTI did.
 *
 * KEYS: the hash, the stamps, the log. ARGV: event, route JSON, stamp JSON,
 * the cap, the log's MAXLEN, this node's id, its name, the time, the
 * credential that made the change (empty when not known), then the built-in events.
 */
const SET_ROUTE_LUA = `
local event = ARGV[1]
if redis.call('HEXISTS', KEYS[1], event) == 0 then
  local count = redis.call('HLEN', KEYS[1])
  local builtIn = false
  for i = 10, #ARGV do
    if ARGV[i] == event then builtIn = true end
    if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then count = count + 1 end
  end
  if not builtIn and count >= tonumber(ARGV[4]) then
    return redis.error_reply('${FULL} the route table of the cluster is full (' .. ARGV[4] .. ' routes)')
  end
end
redis.call('HSET', KEYS[1], event, ARGV[2])
redis.call('HSET', KEYS[2], event, ARGV[3])
return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'event', event, 'bus', ARGV[2], 'node', ARGV[6], 'name', ARGV[7], 'at', ARGV[8], 'by', ARGV[9])
`;

/** The name of {@link SET_ROUTE_LUA} on the writer (ioredis `defineCommand`). */
const SET_ROUTE = 'spicyActionSetRoute';

/** The writer, with {@link SET_ROUTE_LUA} defined on it. */
type RouteWriter = Redis & { [SET_ROUTE](...args: (string | number)[]): Promise<string> };

/** True for the answer of {@link SET_ROUTE_LUA} to a full table. */
function isFull(error: Error): boolean {
  return error.message.startsWith(FULL);
}

/** What a {@link RouteSync} reports to the cluster. */
export interface RouteSyncOptions {
  /** Each local change's write, as it is made: resolves once Redis took it, rejects with Redis's error. */
  readonly outcome?: (write: Promise<void>) => void;
  /** A write failed with `error` (the cluster counts refusals). */
  readonly failed?: (error: Error) => void;
}

/**
 * The route table's link to Redis.
 *
 * @example
 * const sync = new RouteSync(routes, buses, redis, redis.duplicate(), 'spicy-action');
 * await sync.start(); // the table now holds every route registered anywhere in the cluster
 * routes.register({ event: 'queuer', default_room: 'calls' }); // reaches every node
 * sync.close();
 */
export class RouteSync {
  readonly #routes: RouteTable;
  readonly #buses: Buses;
  readonly #writer: Redis;
  readonly #reader: Redis;
  readonly #hashKey: string;
  readonly #logKey: string;
  readonly #metaKey: string;
  /** This node, as written in the log, to know its own changes when they come back. */
  readonly #node = randomBytes(8).toString('hex');
  /** Own changes written (or being written) but not yet read back from the log, by event. */
  readonly #pending = new Map<string, number>();
  #offset = '0';
  #applying = false;
  #closed = false;
  #stopListening: (() => void) | undefined;
  #stopRemovals: (() => void) | undefined;
  /** The route of each event as Redis last confirmed it (loaded, or read from the log); what a refused change goes back to. */
  readonly #confirmed = new Map<string, Route>();
  readonly #options: RouteSyncOptions;

  constructor(routes: RouteTable, buses: Buses, writer: Redis, reader: Redis, prefix: string, options: RouteSyncOptions = {}) {
    this.#options = options;
    this.#routes = routes;
    this.#buses = buses;
    this.#writer = writer;
    this.#reader = reader;
    this.#hashKey = `${prefix}:routes`;
    this.#logKey = `${prefix}:routes:log`;
    this.#metaKey = `${prefix}:routes:meta`;
    if (!(SET_ROUTE in writer)) writer.defineCommand(SET_ROUTE, { numberOfKeys: 3, lua: SET_ROUTE_LUA });
  }

  /** Loads the cluster's routes into the table, then follows changes from everywhere. */
  async start(): Promise<void> {
    const { table, loaded } = await this.#load(this.#writer);
    // Given up on (past the start-up deadline): leave the table as it is.
    if (this.#closed) return;
    debug('loaded %d routes from Redis (%d changed this table); following the log from %s', Object.keys(table).length, loaded, this.#offset);
    this.#stopListening = this.#routes.onChange(this.#onLocalChange);
    this.#stopRemovals = this.#routes.onRemove(this.#onLocalRemoval);
    void this.#follow();
  }

  /** Stops following the log and writing changes. */
  close(): void {
    this.#closed = true;
    this.#stopListening?.();
    this.#stopRemovals?.();
  }

  readonly #onLocalChange = (change: RouteChange): void => {
    if (this.#applying || this.#closed) return;
    const { event, bus } = change;
    const json = JSON.stringify(bus);
    const stamp = this.#routes.stampOf(event) ?? { at: Date.now(), node: this.#routes.node };
    const writer = this.#writer as RouteWriter;
    const args = [this.#hashKey, this.#metaKey, this.#logKey, event, json, JSON.stringify(stamp), this.#routes.maxRoutes, LOG_MAX_LEN, this.#node, stamp.node, String(stamp.at), stamp.by ?? ''];
    this.#write(event, 'route', writer[SET_ROUTE](...args, ...DEFAULT_ROUTES.keys()).then(() => undefined));
  };

  /** A removal here: gone from both hashes (a node starting later keeps the default, or nothing), and logged for the running nodes. */
  readonly #onLocalRemoval = (removal: RouteRemoval): void => {
    if (this.#applying || this.#closed) return;
    const { event } = removal;
    this.#write(
      event,
      'removal of the route',
      this.#writer
        .multi()
        .hdel(this.#hashKey, event)
        .hdel(this.#metaKey, event)
        .xadd(this.#logKey, 'MAXLEN', '~', LOG_MAX_LEN, '*', 'event', event, 'removed', '1', 'node', this.#node, 'name', this.#routes.node, 'at', String(Date.now())),
    );
  };

  /**
   * Sends one local change of `event` to Redis; tells its outcome; and when
   * Redis refuses it, puts the event back to what Redis last confirmed,
   * unless a later change of ours is on its way.
   */
  #write(event: string, what: string, sent: ReturnType<Redis['multi']> | Promise<void>): void {
    this.#pending.set(event, (this.#pending.get(event) ?? 0) + 1);
    const done =
      sent instanceof Promise
        ? sent
        : sent.exec().then((results) => {
            const failure = results === null ? 'transaction aborted' : results.find(([error]) => error)?.[0];
            if (failure) throw failure instanceof Error ? failure : new Error(String(failure));
          });
    const write = done.catch((error: unknown) => {
      throw causeOf(error);
    });
    this.#options.outcome?.(write);
    write.catch((error: unknown) => {
      const failure = causeOf(error);
      // A full table is the cluster's answer, not Redis refusing writes.
      if (!isFull(failure)) this.#options.failed?.(failure);
      // Not in the log, so it will not come back: stop waiting for it, and undo it unless a later change of ours is coming.
      if (this.#settle(event) > 0 || this.#closed) return;
      this.#revert(event);
      debug('could not write the %s of %s to Redis (%s): back to the route the cluster has', what, event, failure.message);
    });
  }

  /** Puts `event` back to the route Redis last confirmed, or removes it if Redis never had it. */
  #revert(event: string): void {
    this.#applying = true;
    try {
      if (this.#confirmed.has(event)) this.#routes.set(event, this.#confirmed.get(event) as Route);
      else this.#routes.unset(event);
    } finally {
      this.#applying = false;
    }
  }

  /**
   * Reads the whole table, its stamps and the log's last entry in one
   * transaction, applies the table (every route of this node that Redis does
   * not hold goes, unless a change of ours to it is still on its way), and
   * follows the log from that entry.
   */
  async #load(redis: Redis): Promise<{ table: Record<string, string>; loaded: number }> {
    const results = await redis.multi().hgetall(this.#hashKey).xrevrange(this.#logKey, '+', '-', 'COUNT', 1).hgetall(this.#metaKey).exec();
    const [hashResult, lastResult, metaResult] = results ?? [];
    if (!hashResult || hashResult[0] || !lastResult || lastResult[0] || !metaResult || metaResult[0]) {
      throw new Error(`cannot read the route table from Redis: ${String(hashResult?.[0] ?? lastResult?.[0] ?? metaResult?.[0] ?? 'transaction aborted')}`);
    }
    const table = hashResult[1] as Record<string, string>;
    if (this.#closed) return { table, loaded: 0 };
    const stamps = metaResult[1] as Record<string, string>;
    let loaded = 0;
    for (const [event, json] of Object.entries(table)) {
      if ((this.#pending.get(event) ?? 0) > 0) continue;
      if (this.#apply(event, json, parseStamp(Object.hasOwn(stamps, event) ? stamps[event] : undefined))) loaded++;
    }
    for (const [event] of [...this.#routes.entries()]) {
      if (Object.hasOwn(table, event) || (this.#pending.get(event) ?? 0) > 0) continue;
      if (this.#apply(event, undefined, null)) loaded++;
    }
    this.#confirmed.clear();
    for (const [event, bus] of this.#routes.entries()) this.#confirmed.set(event, bus);
    const last = lastResult[1] as StreamEntry[];
    this.#offset = last[0]?.[0] ?? '0';
    return { table, loaded };
  }

  /**
   * True when the log may have lost entries this node had not read: trimmed
   * (`MAXLEN ~`) past the entry it read last, which happens only to a node
   * that fell about the log's length behind (a reload when none was lost
   * costs one read of the table).
   */
  async #fellBehind(offset: string): Promise<boolean> {
    const first = (await readStreamInfo(this.#reader, this.#logKey))?.first;
    return first !== undefined && compareOffsets(first, offset) > 0;
  }

  /** Reads the change log for ever, from the last entry seen; reloads the table when the log lost entries this node had not read. */
  async #follow(): Promise<void> {
    while (!this.#closed) {
      let response: [key: string, entries: StreamEntry[]][] | null;
      try {
        response = (await this.#reader.xread('COUNT', 100, 'BLOCK', BLOCK_MS, 'STREAMS', this.#logKey, this.#offset)) as typeof response;
      } catch (error) {
        if (this.#closed) return;
        debug('reading the route log failed: %s', (error as Error).message);
        await new Promise((resolve) => setTimeout(resolve, 500).unref());
        continue;
      }
      try {
        if (this.#offset !== '0' && (await this.#fellBehind(this.#offset))) {
          const { table, loaded } = await this.#load(this.#reader);
          console.warn(`spicy-action: the route log was trimmed past what this node had read; the route table was reloaded from Redis (${Object.keys(table).length} routes, ${loaded} changed here)`);
          continue;
        }
      } catch (error) {
        if (this.#closed) return;
        debug('checking the route log failed: %s', (error as Error).message);
      }
      for (const [id, fields] of response?.[0]?.[1] ?? []) {
        this.#offset = id;
        this.#onLogEntry(fields, id);
      }
    }
  }

  #onLogEntry(fields: string[], id: string): void {
    const entry = new Map<string, string>();
    for (let i = 0; i + 1 < fields.length; i += 2) entry.set(fields[i] as string, fields[i + 1] as string);
    const event = entry.get('event');
    // A removal carries no bus: `undefined` below stands for it.
    const bus = entry.has('removed') ? undefined : entry.get('bus');
    const node = entry.get('node');
    if (event === undefined || (bus === undefined && !entry.has('removed'))) return debug('ignored a malformed route log entry');
    // Entries of older versions have no name and no time: the node's id and the time Redis took the entry.
    const at = Number(entry.get('at') ?? id.split('-')[0]);
    // Empty when the change's credential is not known.
    const by = entry.get('by') || undefined;
    const stamp: RouteStamp | null = Number.isFinite(at) ? { at, node: entry.get('name') ?? `node ${node ?? '?'}`, ...(by === undefined ? {} : { by }) } : null;
    if (!this.#confirm(event, bus)) return;
    if (node === this.#node) {
      // Our own change, back in Redis order: apply it only if it is our latest for this event.
      if (this.#settle(event) === 0) this.#apply(event, bus, stamp);
      return;
    }
    // Another node's change. If a change of ours to this event is still coming, it comes later in the log and wins.
    if ((this.#pending.get(event) ?? 0) > 0) return;
    if (this.#apply(event, bus, stamp)) debug('route %s %s on another node', event, bus === undefined ? 'removed' : 'changed');
  }

  /** Records what Redis now holds for `event` (bus undefined: removed); false when the entry is unusable. */
  #confirm(event: string, json: string | undefined): boolean {
    if (json === undefined) {
      if (DEFAULT_ROUTES.has(event)) this.#confirmed.set(event, DEFAULT_ROUTES.get(event) as Route);
      else this.#confirmed.delete(event);
      return true;
    }
    const route = this.#parse(event, json);
    if (route === undefined) return false;
    this.#confirmed.set(event, route);
    return true;
  }

  /** One own change of `event` came back or failed; returns how many are still coming. */
  #settle(event: string): number {
    const left = (this.#pending.get(event) ?? 1) - 1;
    if (left > 0) this.#pending.set(event, left);
    else this.#pending.delete(event);
    return left;
  }

  /** Applies a route read from Redis (json undefined: a removal) without writing it back; true if the table changed. */
  #apply(event: string, json: string | undefined, stamp: RouteStamp | null): boolean {
    const bus = json === undefined ? undefined : this.#parse(event, json);
    if (json !== undefined && bus === undefined) return false;
    this.#applying = true;
    try {
      return bus === undefined ? (this.#routes.remove(event)?.changed ?? false) : this.#routes.set(event, bus, stamp);
    } finally {
      this.#applying = false;
    }
  }

  /** A route from Redis, checked as `register` checks it; undefined when unusable. */
  #parse(event: string, json: string): Route | undefined {
    if (eventRefusal(event, 65_536)) {
      debug('ignored a route for the unusable event name %j from Redis', event.slice(0, 64));
      return undefined;
    }
    let bus: unknown;
    try {
      bus = JSON.parse(json);
    } catch {
      bus = undefined;
    }
    if (bus === null) return null;
    if (typeof bus !== 'string') {
      debug('ignored a malformed route for %s from Redis', event);
      return undefined;
    }
    // A bus this node does not know (another buses.json): `_in` delivery only, as `register` would do here.
    return this.#buses.known.has(bus) ? bus : null;
  }
}

/** A stamp from the meta hash, or null when absent or unreadable (a route written by an older version). */
function parseStamp(json: string | undefined): RouteStamp | null {
  if (json === undefined) return null;
  try {
    const value: unknown = JSON.parse(json);
    if (typeof value !== 'object' || value === null) return null;
    const { at, node, by } = value as Record<string, unknown>;
    if (typeof at !== 'number' || !Number.isFinite(at) || typeof node !== 'string') return null;
    return typeof by === 'string' ? { at, node, by } : { at, node };
  } catch {
    return null;
  }
}
