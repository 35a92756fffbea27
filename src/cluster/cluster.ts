/**
 * Several brokers as one (docs/protocol.md#several-brokers): the broker's own Socket.IO adapter
 * ({@link StreamsHub}) carries every event to every node through one Redis stream, in one order; a
 * {@link ClusterNode} knows the link's state and decides around each write; the route table is kept the same
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
import { ClusterNode } from './cluster-node.ts';
import { Liveness } from './liveness.ts';
import { createRedis, describeRedis, redisConfigured, refuseServer } from './redis-connection.ts';
import { passwordRefusal } from './sentinel-connector.ts';
import type { PublicationOutcome, RedisState } from '../protocol.ts';
import type { WriteRefusalReason } from './refusals.ts';
import type { RouteTable } from '../routes.ts';
import { RouteSync } from './route-sync.ts';
import { streamKeepMs } from './stream-bounds.ts';
import type { StreamReader } from './stream-reader.ts';
import { StreamTrimmer } from './stream-trimmer.ts';
import { StreamsHub } from './streams-adapter.ts';

export { RefusedWriteError, UNWATCHED_WRITE_WAIT_MS } from './cluster-node.ts';

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

/** What the cluster tells its observers. */
export interface ClusterEvents {
  /** The link to Redis changed: `'up'`, `'degraded'` (writes refused) or `'down'` (never emitted when Redis is `'off'`). */
  state: [state: RedisState];
  /** `count` more events reached only this node's clients: Redis down past the grace, refusing writes, or the node stopping with events held. */
  undelivered: [count: number];
  /** Redis refused one more write (an event, a session, a route change), for `reason`. */
  refused: [reason: WriteRefusalReason];
  /** `count` more entries of the stream were trimmed before this node read them: their events reached none of its clients. */
  missed: [count: number];
}

/** The parts of a running cluster the {@link Cluster} object hands on. */
interface ClusterLink {
  readonly node: ClusterNode;
  readonly trimmer: StreamTrimmer;
  readonly reader: StreamReader;
  readonly close: () => Promise<void>;
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
  #undelivered = 0;
  readonly #link: ClusterLink | undefined;
  /** The Socket.IO adapter to use; undefined for the in-memory one. */
  readonly adapter: ServerOptions['adapter'] | undefined;

  /** @internal use {@link startCluster}; without `link`, a cluster that is `'off'`. */
  constructor(adapter?: ServerOptions['adapter'], link?: ClusterLink) {
    super();
    this.adapter = adapter;
    this.#link = link;
    link?.node.on('state', (state) => this.emit('state', state));
    link?.node.on('undelivered', (count) => {
      this.#undelivered += count;
      this.emit('undelivered', count);
    });
    link?.node.on('refused', (reason) => this.emit('refused', reason));
    link?.reader.on('missed', (count) => this.emit('missed', count));
  }

  /** `'off'` without Redis; `'up'`, `'degraded'` (Redis refuses writes) or `'down'` with it. */
  get state(): RedisState {
    return this.#link?.node.state ?? 'off';
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
  get refusedWrites(): ReadonlyMap<WriteRefusalReason, number> {
    return this.#link?.node.refusals.counts ?? new Map();
  }

  /**
   * Runs `publish` (which emits one event to rooms) and returns what became
   * of that event's publication to the cluster, or undefined when it was not
   * published to Redis (no cluster, nothing emitted). The promise never
   * rejects. It settles once the event's fate is known: Redis took it or
   * refused it, or it reached this node's clients only (the grace ran out, or
   * the node stopped, with the event held); across an outage, that is when
   * Redis is back or the grace ends. With `answerHeld` (HTTP answers), it
   * settles `{ok: true, held: true}` as soon as the event is known to wait
   * for Redis down. With REDIS_TIMEOUT=0, a write not answered within
   * {@link UNWATCHED_WRITE_WAIT_MS} is answered `{ok: false}` then.
   * It relies on the adapter publishing inside the `emit` (socket.io-adapter's
   * `publishAndReturnOffset` calls `doPublish` synchronously).
   *
   * @example
   * const outcome = cluster.track(() => io.to('calls').emit('call', call));
   * (await outcome)?.ok; // false when Redis refused the write
   */
  track(publish: () => void, answerHeld = false): Promise<PublicationOutcome> | undefined {
    if (this.#link === undefined) {
      publish();
      return undefined;
    }
    return this.#link.node.track(publish, answerHeld);
  }

  /**
   * Call it before `io.close()`: releases the events held for Redis to this
   * node's clients (while they are still connected), counting each as
   * undelivered to the cluster; resolves with how many, once they are sent.
   */
  drain(): Promise<number> {
    return this.#link?.node.drain() ?? Promise.resolve(0);
  }

  /** Closes the Redis connections, once pending writes are sent (or after 2 s). Call it after `io.close()`. */
  close(): Promise<void> {
    return this.#link?.close() ?? Promise.resolve();
  }
}

/**
 * Connects to Redis (retrying for `settings.redisConnectTimeoutMs`), loads
 * the cluster's routes into `routes`, and returns the adapter to give
 * Socket.IO. Without a Redis (`REDIS_URL` or `REDIS_SENTINELS`), returns a cluster whose state is
 * `'off'` at once. It connects and wires; what the link's state is and what
 * each write becomes, {@link ClusterNode} decides.
 *
 * @example
 * const routes = new RouteTable(buses);
 * const cluster = await startCluster({ ...DEFAULT_SETTINGS, redisUrl: 'redis://127.0.0.1:6379' }, routes, buses);
 * cluster.state; // 'up'
 */
export async function startCluster(settings: Settings, routes: RouteTable, buses: Buses): Promise<Cluster> {
  if (!redisConfigured(settings)) return new Cluster();
  const where = describeRedis(settings);

  const client = createRedis(settings, {
    // Commands wait through an outage (the grace decides what events do), rather than fail after 20 retries.
    maxRetriesPerRequest: null,
    retryStrategy: (attempt) => Math.min(100 * attempt, 1_000),
    connectionName: REDIS_PREFIX,
  });
  // The route log and the watchdog each read on a connection of their own: kept, to close them
  // (the adapter's hub closes its own).
  const connections: Redis[] = [client];
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

  const watchdog = settings.redisTimeoutMs > 0 ? client.duplicate({ enableOfflineQueue: false, connectionName: `${REDIS_PREFIX}:watchdog` }) : undefined;
  watchdog?.on('error', () => {}); // the main connection reports the same trouble
  if (watchdog) connections.push(watchdog);
  const liveness = watchdog ? new Liveness(watchdog, settings.redisTimeoutMs, `${REDIS_PREFIX}:probe:${process.pid}:${Date.now()}`) : undefined;

  const trimmer = new StreamTrimmer(client, STREAM_NAME, { keepMs: streamKeepMs(settings), maxLen: settings.streamMaxLen });
  trimmer.on('full', () => debug('Redis refuses events for memory: the stream is trimmed to its last %d s by itself until it takes them again', streamKeepMs(settings) / 1000));
  trimmer.on('relieved', (trimmed) => debug('Redis takes events again; %d stream entries were trimmed meanwhile', trimmed));
  trimmer.on('failed', (error) => debug('trimming the stream failed: %s', error.message));

  const node = new ClusterNode({ graceMs: settings.redisOutageGraceMs, redisTimeoutMs: settings.redisTimeoutMs, watchdog: liveness, trimmer });
  const closeParts = (): void => {
    node.close();
    trimmer.close();
    liveness?.close();
  };

  const routeReader = client.duplicate();
  routeReader.on('error', () => {}); // the main connection reports the same trouble
  connections.push(routeReader);
  const routeSync = new RouteSync(routes, buses, client, routeReader, REDIS_PREFIX, {
    // Called only for changes made once the cluster runs (the listener starts with the route table loaded).
    outcome: (write) => node.routeWritten(write),
    failed: (error) => node.failed('route', error),
  });
  const hub = new StreamsHub(client, { streamName: STREAM_NAME, maxLen: settings.streamMaxLen, channelPrefix: REDIS_PREFIX, sessionKeyPrefix: SESSION_KEY_PREFIX }, node);
  try {
    // Redis lost (or hung) between ready and reply must not leave the node starting for ever.
    // A Redis that came up just before the deadline still gets a moment to answer.
    const left = (): number => Math.max(MIN_ROUTE_LOAD_MS, deadline - Date.now());
    await withDeadline(routeSync.start(), left(), `loading the route table within ${settings.redisConnectTimeoutMs / 1000} s`);
    // Every event written from now on reaches this node's clients through the hub's reader.
    await withDeadline(hub.start(), left(), 'finding the end of the stream');
  } catch (error) {
    hub.close();
    routeSync.close();
    closeParts();
    disconnectAll();
    throw new ClusterStartError(`Redis at ${where}: ${(error as Error).message}`);
  }

  let closing = false;
  const close = async (): Promise<void> => {
    if (closing) return;
    closing = true;
    const down = node.state === 'down';
    closeParts();
    routeSync.close();
    hub.close();
    const quit = client.status === 'ready' && !down ? client.quit().catch(() => 'failed') : Promise.resolve('down');
    await withDeadline(quit, QUIT_TIMEOUT_MS, 'closing Redis').catch(() => undefined);
    disconnectAll();
    debug('disconnected from Redis');
  };
  // Socket.IO types its `adapter` option as the in-memory Adapter's class (statics included); it only ever calls `new adapter(nsp)`.
  hub.reader.on('missed', (count) => {
    console.warn(`spicy-action: this node fell behind the cluster's stream: ${count} entries were trimmed (REDIS_STREAM_MAXLEN ${settings.streamMaxLen}, or older than ${streamKeepMs(settings) / 1000} s) before it read them, and their events reached none of its clients`);
  });
  const cluster = new Cluster(hub.Adapter as unknown as ServerOptions['adapter'], { node, trimmer, reader: hub.reader, close });

  liveness?.on('writable', () => node.writable());
  liveness?.on('hung', () => node.watchdogChanged());
  liveness?.on('answering', () => node.watchdogChanged());
  client.on('error', (error: Error) => node.linkError(error.message));
  client.on('close', () => node.linkClosed());
  client.on('ready', () => node.linkReady());
  // Lost while the route table was loading: the 'close' above came too late to be heard.
  if (client.status !== 'ready') node.linkClosed();
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
