/**
 * Several brokers as one (docs/protocol.md#several-brokers): the broker's own Socket.IO adapter
 * ({@link StreamsHub}) carries every event to every node through one Redis stream, in one order, the route table is kept the same
 * everywhere ({@link RouteSync}), Redis outages are handled by
 * {@link OutageGrace}, a Redis that stops answering is noticed by
 * {@link Liveness}, writes Redis refuses are counted by {@link WriteRefusals},
 * and recovered sessions are restored exactly by {@link ExactRecovery}.
 * Without `REDIS_URL`, nothing of this runs and the broker is one process with
 * the in-memory adapter.
 *
 * What it tells the rest of the broker (for `/health`, metrics, logs) is
 * small: {@link Cluster.state} (`'off' | 'up' | 'degraded' | 'down'`), three
 * events (`state` when it changes, `undelivered` with how many more events
 * reached only this node's clients, `refused` for each write Redis refused),
 * {@link Cluster.track} for acknowledgements that say whether Redis took an
 * event or a route change, and {@link Cluster.drain} for a shutdown that
 * drops nothing.
 */
import { EventEmitter } from 'node:events';
import createDebug from 'debug';
import { Redis } from 'ioredis';
import type { ServerOptions } from 'socket.io';
import type { Buses } from '../buses.ts';
import type { Settings } from '../settings.ts';
import { Liveness } from './liveness.ts';
import { MissedClusterError, OutageGrace, type PublicationKind } from './outage-grace.ts';
import { createRedis, describeRedis, redisConfigured, refuseServer } from './redis-connection.ts';
import { passwordRefusal } from './sentinel-connector.ts';
import type { PublicationOutcome, RedisState } from '../protocol.ts';
import { refusalReason, WriteRefusals, type RefusalReason } from './refusals.ts';
import type { RouteTable } from '../routes.ts';
import { RouteSync } from './route-sync.ts';
import { streamKeepMs } from './stream-bounds.ts';
import { StreamTrimmer } from './stream-trimmer.ts';
import { StreamsHub } from './streams-adapter.ts';
import { WriteWaits } from './write-waits.ts';

const debug = createDebug('spicy-action:cluster');

/** Prefix of every Redis key and channel the broker uses. */
export const REDIS_PREFIX = 'spicy-action';
/** The stream every event of the cluster is written to. */
const STREAM_NAME = `${REDIS_PREFIX}:events`;
/** Where disconnected sockets' sessions wait for recovery. */
const SESSION_KEY_PREFIX = `${REDIS_PREFIX}:session:`;
/** Shortest time the route table is given to load once Redis is ready, whatever is left of REDIS_CONNECT_TIMEOUT. */
const MIN_ROUTE_LOAD_MS = 1_000;
/** Longest wait for pending commands to be written on shutdown. */
const QUIT_TIMEOUT_MS = 2_000;
/**
 * Longest an answer waits for Redis to take a write when no watchdog runs
 * (`REDIS_TIMEOUT=0`): the most the default watchdog (5 s, × 1.5) takes to
 * see a hung Redis down.
 */
export const UNWATCHED_WRITE_WAIT_MS = 7_500;

/** What the cluster tells its observers. */
export interface ClusterEvents {
  /** The link to Redis changed: `'up'`, `'degraded'` (writes refused) or `'down'` (never emitted when Redis is `'off'`). */
  state: [state: RedisState];
  /** `count` more events reached only this node's clients: Redis down past the grace, refusing writes, or the node stopping with events held. */
  undelivered: [count: number];
  /** Redis refused one more write (an event, a session, a route change), for `reason`. */
  refused: [reason: RefusalReason];
}


/**
 * An event Redis refused to write (OOM, READONLY, MISCONF...): it reached
 * this node's clients only.
 */
export class RefusedWriteError extends Error {
  override name = 'RefusedWriteError';
  constructor(
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(message);
  }
}

/** What {@link startCluster} changes on its {@link Cluster}: nothing else may. */
interface ClusterControl {
  setState(state: RedisState): void;
  addUndelivered(count: number): void;
  /** The outcome of an event publication, kept if {@link Cluster.track} is waiting for it. */
  setOutcome(outcome: () => Promise<PublicationOutcome>): void;
  /** Redis refused a write, for `reason`. */
  refused(reason: RefusalReason): void;
}

/** The parts of a running cluster the {@link Cluster} object hands on. */
interface ClusterLink {
  readonly close: () => Promise<void>;
  readonly drain: () => Promise<number>;
  readonly refusals: WriteRefusals;
  readonly trimmer: StreamTrimmer;
}

/**
 * The cluster could not start (Redis unreachable, route table unreadable); the message says why in one line.
 *
 * @example
 * await startCluster(settings, routes, buses).catch((error) => error instanceof ClusterStartError); // true if Redis stayed away
 */
export class ClusterStartError extends Error {
  override name = 'ClusterStartError';
}

/**
 * A broker's link to the rest of its cluster, or the lack of one (`state`
 * `'off'`). Give {@link adapter} to Socket.IO.
 *
 * @example
 * const cluster = await startCluster(settings, routes, buses);
 * const io = new Server(httpServer, { ...socketOptions(settings), adapter: cluster.adapter });
 * cluster.on('state', (state) => gauge.set(state === 'up' ? 1 : 0));
 * cluster.on('undelivered', (count) => counter.inc(count));
 * await cluster.close(); // after io.close()
 */
export class Cluster extends EventEmitter<ClusterEvents> {
  #state: RedisState;
  #undelivered = 0;
  readonly #link: ClusterLink | undefined;
  /** The outcome of the event publication started inside {@link track}. */
  #tracked: Promise<PublicationOutcome> | undefined;
  #tracking = false;
  /** The Socket.IO adapter to use; undefined for the in-memory one. */
  readonly adapter: ServerOptions['adapter'] | undefined;

  /** @internal use {@link startCluster}; `control` receives what only it may change. */
  constructor(state: RedisState, adapter?: ServerOptions['adapter'], link?: ClusterLink, control?: (control: ClusterControl) => void) {
    super();
    this.#state = state;
    this.adapter = adapter;
    this.#link = link;
    control?.({
      setState: (next) => this.#setState(next),
      addUndelivered: (count) => this.#addUndelivered(count),
      setOutcome: (outcome) => this.#setOutcome(outcome),
      refused: (reason) => this.emit('refused', reason),
    });
  }

  /** `'off'` without Redis; `'up'`, `'degraded'` (Redis refuses writes) or `'down'` with it. */
  get state(): RedisState {
    return this.#state;
  }

  /** Events that reached only this node's clients (Redis down past the grace, refusing writes, or held at shutdown), since start. */
  get undelivered(): number {
    return this.#undelivered;
  }

  /** True while Redis refuses events for memory and the stream is trimmed on its own (stream-trimmer.ts). */
  get streamFull(): boolean {
    return this.#link?.trimmer.full ?? false;
  }

  /** Writes Redis refused since start, by reason. */
  get refusedWrites(): ReadonlyMap<RefusalReason, number> {
    return this.#link?.refusals.counts ?? new Map();
  }

  /**
   * Runs `publish` (which emits one event to rooms) and returns what became
   * of that event's publication to the cluster, or undefined when it was not
   * published to Redis (no cluster, nothing emitted). The promise never
   * rejects, and settles within about REDIS_TIMEOUT × 1.5 (within
   * {@link UNWATCHED_WRITE_WAIT_MS} when REDIS_TIMEOUT is 0): at once while
   * Redis is down (the event is held, or past the grace reaches this node only).
   *
   * @example
   * const outcome = cluster.track(() => io.to('calls').emit('call', call));
   * (await outcome)?.ok; // false when Redis refused the write
   */
  track(publish: () => void): Promise<PublicationOutcome> | undefined {
    if (this.#link === undefined) {
      publish();
      return undefined;
    }
    this.#tracked = undefined;
    this.#tracking = true;
    try {
      publish();
      return this.#tracked;
    } finally {
      this.#tracking = false;
      this.#tracked = undefined;
    }
  }

  /**
   * Call it before `io.close()`: releases the events held for Redis to this
   * node's clients (while they are still connected), counting each as
   * undelivered to the cluster; resolves with how many, once they are sent.
   */
  drain(): Promise<number> {
    return this.#link?.drain() ?? Promise.resolve(0);
  }

  /** Closes the Redis connections, once pending writes are sent (or after 2 s). Call it after `io.close()`. */
  close(): Promise<void> {
    return this.#link?.close() ?? Promise.resolve();
  }

  #setState(state: RedisState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.emit('state', state);
  }

  #addUndelivered(count: number): void {
    this.#undelivered += count;
    this.emit('undelivered', count);
  }

  #setOutcome(outcome: () => Promise<PublicationOutcome>): void {
    if (this.#tracking && this.#tracked === undefined) this.#tracked = outcome();
  }
}

/**
 * Connects to Redis (retrying for `settings.redisConnectTimeoutMs`), loads
 * the cluster's routes into `routes`, and returns the adapter to give
 * Socket.IO. Without a Redis (`REDIS_URL` or `REDIS_SENTINELS`), returns a cluster whose state is
 * `'off'` at once.
 *
 * @example
 * const routes = new RouteTable(buses);
 * const cluster = await startCluster({ ...DEFAULT_SETTINGS, redisUrl: 'redis://127.0.0.1:6379' }, routes, buses);
 * cluster.state; // 'up'
 */
export async function startCluster(settings: Settings, routes: RouteTable, buses: Buses): Promise<Cluster> {
  if (!redisConfigured(settings)) return new Cluster('off');
  // What this function, and only it, changes on the Cluster it returns: set once the Cluster exists, used after.
  let control!: ClusterControl;
  const where = describeRedis(settings);

  const client = createRedis(settings, {
    // Commands wait through an outage (the grace decides what events do), rather than fail after 20 retries.
    maxRetriesPerRequest: null,
    retryStrategy: (attempt) => Math.min(100 * attempt, 1_000),
    connectionName: REDIS_PREFIX,
  });
  // The route log and the watchdog each read on a connection of their own: keep them, to close them
  // (the adapter's hub closes its own).
  const connections: Redis[] = [client];
  const refusals = new WriteRefusals();
  let lastError = '';
  let connected = false;
  client.on('error', (error: Error) => {
    // Before the first connection, the start's own failure line says it all.
    if (connected && error.message !== lastError) debug('Redis at %s: %s', where, error.message);
    lastError = error.message;
  });
  const disconnectAll = (): void => {
    for (const connection of connections) connection.disconnect();
  };

  const deadline = Date.now() + settings.redisConnectTimeoutMs;
  try {
    await waitReady(client, settings.redisConnectTimeoutMs, () => lastError, where);
    const refusal = await refuseServer(client);
    if (refusal !== undefined) throw new ClusterStartError(`Redis at ${where} ${refusal}`);
  } catch (error) {
    disconnectAll();
    throw error;
  }
  connected = true;
  debug('connected to Redis at %s', where);

  const routeReader = client.duplicate();
  connections.push(routeReader);
  routeReader.on('error', () => {}); // the main connection reports the same trouble
  const routeSync = new RouteSync(routes, buses, client, routeReader, REDIS_PREFIX, {
    // Called only for changes made once the cluster runs (the listener starts with the route table loaded).
    outcome: (write) => control.setOutcome(() => routeOutcome(write)),
    failed: (error) => {
      const reason = refusalReason(error);
      if (reason) refusals.refused(reason, error.message);
    },
  });
  try {
    // Redis lost (or hung) between ready and reply must not leave the node starting for ever.
    // A Redis that came up just before the deadline still gets a moment to answer.
    const left = Math.max(MIN_ROUTE_LOAD_MS, deadline - Date.now());
    await withDeadline(routeSync.start(), left, `loading the route table within ${settings.redisConnectTimeoutMs / 1000} s`);
  } catch (error) {
    routeSync.close();
    disconnectAll();
    throw new ClusterStartError(`Redis at ${where}: ${(error as Error).message}`);
  }

  const grace = new OutageGrace(settings.redisOutageGraceMs);
  const graceSeconds = settings.redisOutageGraceMs / 1000;
  let closing = false;
  let downSince = 0;
  /** The main connection is closed (or not yet ready again). */
  let closed = false;
  /** The answers waiting for Redis to take a write; each answered at once when Redis is seen down (its write is held then). */
  const waits = new WriteWaits(settings.redisTimeoutMs > 0 ? 0 : UNWATCHED_WRITE_WAIT_MS);
  const unwatched = `Redis has not answered within ${UNWATCHED_WRITE_WAIT_MS / 1000} s (REDIS_TIMEOUT=0: no watchdog)`;

  const watchdog = settings.redisTimeoutMs > 0 ? client.duplicate({ enableOfflineQueue: false, connectionName: `${REDIS_PREFIX}:watchdog` }) : undefined;
  watchdog?.on('error', () => {}); // the main connection reports the same trouble
  if (watchdog) connections.push(watchdog);
  const liveness = watchdog ? new Liveness(watchdog, settings.redisTimeoutMs, `${REDIS_PREFIX}:probe:${process.pid}:${Date.now()}`) : undefined;

  const trimmer = new StreamTrimmer(client, STREAM_NAME, { keepMs: streamKeepMs(settings), maxLen: settings.streamMaxLen });
  trimmer.on('full', () => debug('Redis refuses events for memory: the stream is trimmed to its last %d s by itself until it takes them again', streamKeepMs(settings) / 1000));
  trimmer.on('relieved', (trimmed) => debug('Redis takes events again; %d stream entries were trimmed meanwhile', trimmed));
  trimmer.on('failed', (error) => debug('trimming the stream failed: %s', error.message));

  const hub: StreamsHub = new StreamsHub(
    client,
    { streamName: STREAM_NAME, maxLen: settings.streamMaxLen, channelPrefix: REDIS_PREFIX, sessionKeyPrefix: SESSION_KEY_PREFIX },
    {
      // Through the grace while Redis is down; refused writes counted, and told to the sender.
      publish: (kind, write) => publish(write, kind),
      // A session or a pub/sub message nobody waits for: a refusal is counted (and logged once per episode).
      failed: (command, error) => {
        const reason = refusalReason(error);
        if (reason) refusals.refused(reason, error.message);
        else debug('%s failed: %s', command, error.message);
      },
      // Never let a session restore wait for a lost Redis.
      restorable: (): boolean => cluster.state !== 'down',
    },
  );
  try {
    // Every event written from now on reaches this node's clients through the hub's reader.
    await withDeadline(hub.start(), Math.max(MIN_ROUTE_LOAD_MS, deadline - Date.now()), 'finding the end of the stream');
  } catch (error) {
    hub.close();
    routeSync.close();
    disconnectAll();
    throw new ClusterStartError(`Redis at ${where}: ${(error as Error).message}`);
  }

  /** Writes one adapter message (through the grace), accounting for refusals. */
  const publish = (write: () => Promise<string>, kind: PublicationKind): Promise<string> => {
    const send = (): Promise<string> =>
      write().then(
        (offset) => {
          refusals.accepted();
          trimmer.accepted();
          return offset;
        },
        (error: unknown) => {
          const reason = refusalReason(error);
          if (reason === undefined) throw error;
          if (reason === 'oom') trimmer.refusedForMemory();
          refusals.refused(reason, (error as Error).message);
          // Delivered to this node's clients by the adapter, and to no other node.
          if (kind === 'event') control.addUndelivered(1);
          throw new RefusedWriteError(reason, `Redis refused the event (${(error as Error).message}): delivered to this node's clients only`);
        },
      );
    const result = grace.publish(kind, send);
    if (kind === 'event') control.setOutcome(() => outcomeOf(result));
    return result;
  };

  /** What to tell the sender of an event being published as `result`. */
  const outcomeOf = (result: Promise<string>): Promise<PublicationOutcome> => {
    const down = cluster.state === 'down';
    // Held for the grace: accepted, it will reach the cluster when Redis is back (or be counted).
    if (down && !grace.expired) return Promise.resolve({ ok: true });
    const written = result.then(
      (): PublicationOutcome => ({ ok: true }),
      (error: unknown): PublicationOutcome => {
        if (error instanceof RefusedWriteError) return { ok: false, error: error.message };
        if (error instanceof MissedClusterError) return { ok: false, error: "Redis is down: delivered to this node's clients only" };
        return { ok: false, error: `not published to the cluster: ${(error as Error).message}` };
      },
    );
    // Past the grace, it is released at once; else it waits for Redis, or for Redis to be seen down (then it is held).
    if (down) return written;
    return waits.wait(written, { ok: true }, { ok: false, error: `${unwatched}: the event waits to be written, and reaches the cluster only if Redis answers` });
  };

  /** What to tell the sender of a `register` whose write to Redis is `write`. */
  const routeOutcome = (write: Promise<void>): Promise<PublicationOutcome> => {
    // Queued for a lost Redis: written when it is back.
    if (cluster.state === 'down') return Promise.resolve({ ok: true });
    const written = write.then(
      (): PublicationOutcome => ({ ok: true }),
      (error: unknown): PublicationOutcome => ({ ok: false, error: `Redis refused the route (${(error as Error).message}): the route is unchanged` }),
    );
    return waits.wait(written, { ok: true }, { ok: false, error: `${unwatched}: the route change waits to be written, and takes effect only if Redis answers` });
  };

  /** Up, degraded or down, from what is known of the link. */
  const update = (): void => {
    if (closing) return;
    const down = closed || (liveness?.hung ?? false);
    const before = cluster.state;
    if (down && before !== 'down') {
      // The outage began when Redis last answered, which for a hang is a REDIS_TIMEOUT before it is seen.
      downSince = Math.min(Date.now(), liveness?.answeredAt ?? Date.now());
      grace.down();
      control.setState('down');
      waits.down();
      const why = liveness?.hung && !closed ? `no answer within ${settings.redisTimeoutMs / 1000} s` : lastError || 'connection closed';
      debug('Redis is down (%s): holding events for up to %d s; still accepting connections', why, graceSeconds);
      return;
    }
    if (down) return;
    if (before === 'down') {
      const seconds = ((Date.now() - downSince) / 1000).toFixed(1);
      const missed = grace.missedThisOutage;
      const late = grace.expired;
      control.setState(refusals.refusing ? 'degraded' : 'up');
      grace.up();
      lastError = '';
      if (late) debug('Redis is up again after %s s; %d events published meanwhile reached only this node\'s clients', seconds, missed);
      else debug('Redis is up again after %s s; events held meanwhile are delivered now', seconds);
      return;
    }
    control.setState(refusals.refusing ? 'degraded' : 'up');
  };

  // Socket.IO types its `adapter` option as the in-memory Adapter's class (statics included); it only ever calls `new adapter(nsp)`.
  const cluster: Cluster = new Cluster('up', hub.Adapter as unknown as ServerOptions['adapter'], {
    refusals,
    trimmer,
    drain: async () => {
      // With Redis up, what is in flight is being written: the cluster gets it.
      if (cluster.state !== 'down') return 0;
      const released = grace.close();
      if (released > 0) {
        debug('stopping with Redis down: %d held events delivered to this node\'s clients only, not to the cluster', released);
        // The adapter delivers released events in the microtasks that follow; let them reach the sockets.
        await new Promise((resolve) => setImmediate(resolve));
      }
      return released;
    },
    close: async () => {
      if (closing) return;
      closing = true;
      grace.close();
      trimmer.close();
      liveness?.close();
      routeSync.close();
      hub.close();
      const quit = client.status === 'ready' && cluster.state !== 'down' ? client.quit().catch(() => 'failed') : Promise.resolve('down');
      await withDeadline(quit, QUIT_TIMEOUT_MS, 'closing Redis').catch(() => undefined);
      disconnectAll();
      debug('disconnected from Redis');
    },
  }, (given) => (control = given));

  grace.on('undelivered', (count) => control.addUndelivered(count));
  grace.on('expired', () => {
    debug('Redis has been down for more than %d s: events now reach only this node\'s clients, and each is counted until Redis is back', graceSeconds);
  });
  refusals.on('refused', (reason) => control.refused(reason));
  refusals.on('refusing', (reason, message) => {
    debug('Redis refuses writes (%s: %s): events reach only this node\'s clients, and each is counted until Redis takes writes again', reason, message);
    if (liveness) liveness.probeWrites = true;
    update();
  });
  refusals.on('accepting', (refused, ms) => {
    debug('Redis takes writes again after %s s; %d writes were refused meanwhile', (ms / 1000).toFixed(1), refused);
    if (liveness) liveness.probeWrites = false;
    update();
  });
  // A probe taken ends an episode of refusals that concern every write (memory, replica, disk); an
  // 'other' refusal may concern the stream alone (WRONGTYPE...): only an event written ends it.
  liveness?.on('writable', () => {
    trimmer.accepted(); // memory for a write: the stream can take events again
    if (refusals.reason !== 'other') refusals.accepted();
  });
  liveness?.on('hung', update);
  liveness?.on('answering', update);
  client.on('close', () => {
    closed = true;
    update();
  });
  client.on('ready', () => {
    closed = false;
    update();
  });
  // Lost while the route table was loading: the 'close' above came too late to be heard.
  if (client.status !== 'ready') {
    closed = true;
    update();
  }
  return cluster;
}

/**
 * Resolves once `client` is ready; rejects with a one-line {@link ClusterStartError}
 * after `timeoutMs`, or at once when Redis (or every Sentinel) refuses the password.
 */
function waitReady(client: Redis, timeoutMs: number, lastError: () => string, where: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const fail = (message: string): void => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onError);
      reject(new ClusterStartError(message));
    };
    const timer = setTimeout(() => {
      const why = lastError();
      fail(`cannot reach Redis at ${where} within ${timeoutMs / 1000} s${why ? ` (${why})` : ''}`);
    }, timeoutMs);
    const onReady = (): void => {
      clearTimeout(timer);
      client.off('error', onError);
      resolve();
    };
    const onError = (error: Error): void => {
      const refusal = passwordRefusal(error);
      if (refusal) fail(`Redis at ${where}: ${refusal}: ${error.message}`);
    };
    client.once('ready', onReady);
    client.on('error', onError);
  });
}

/** `promise`, or a rejection naming `what` after `ms`. */
function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out ${what}`)), ms);
    timer.unref();
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
