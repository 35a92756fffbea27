/**
 * Several brokers as one (SPEC section 8): the Socket.IO Redis Streams adapter
 * carries every event to every node, the route table is kept the same
 * everywhere ({@link RouteSync}), and Redis outages are handled by
 * {@link OutageGrace}. Without `REDIS_URL`, nothing of this runs and the
 * broker is one process with the in-memory adapter.
 *
 * What it tells the rest of the broker (for `/health`, metrics, logs) is
 * small: {@link Cluster.state} (`'off' | 'up' | 'down'`), and two events,
 * `state` when it changes and `undelivered` with how many more events reached
 * only this node's clients because Redis was down past the grace.
 */
import { EventEmitter } from 'node:events';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import createDebug from 'debug';
import { Redis } from 'ioredis';
import type { Namespace, ServerOptions } from 'socket.io';
import type { Buses } from '../buses.ts';
import type { Settings } from '../settings.ts';
import { OutageGrace, type PublicationKind } from './outage-grace.ts';
import { createRedis, describeRedis, redisConfigured, refuseServer } from './redis-connection.ts';
import type { RedisState } from '../protocol.ts';
import type { RouteTable } from '../routes.ts';
import { RouteSync } from './route-sync.ts';

const debug = createDebug('spicy-action:cluster');

/** Prefix of every Redis key and channel the broker uses. */
export const REDIS_PREFIX = 'spicy-action';
/** Longest wait for a session to be restored from Redis before the client gets a fresh one. */
const RESTORE_TIMEOUT_MS = 5_000;
/** Longest wait for pending commands to be written on shutdown. */
const QUIT_TIMEOUT_MS = 2_000;
/** `MessageType.BROADCAST` of socket.io-adapter. */
const BROADCAST = 3;

/** What the cluster tells its observers. */
export interface ClusterEvents {
  /** The link to Redis changed: `'up'` or `'down'` (never emitted when Redis is `'off'`). */
  state: [state: RedisState];
  /** `count` more events reached only this node's clients because Redis was down past the grace. */
  undelivered: [count: number];
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

/** The few fields of a cluster message the outage handling looks at. */
interface PublishedMessage {
  type: number;
  data?: { requestId?: string; opts?: { rooms?: readonly string[] } };
}

/** The parts of the Streams adapter that are wrapped. */
interface StreamsAdapter {
  doPublish(message: PublishedMessage): Promise<string>;
  restoreSession(pid: string, offset: string): Promise<unknown>;
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
  readonly #close: () => Promise<void>;
  /** The Socket.IO adapter to use; undefined for the in-memory one. */
  readonly adapter: ServerOptions['adapter'] | undefined;

  /** @internal use {@link startCluster}. */
  constructor(state: RedisState, adapter?: ServerOptions['adapter'], close: () => Promise<void> = async () => {}) {
    super();
    this.#state = state;
    this.adapter = adapter;
    this.#close = close;
  }

  /** `'off'` without Redis; `'up'` or `'down'` with it. */
  get state(): RedisState {
    return this.#state;
  }

  /** Events that reached only this node's clients because Redis was down past the grace, since start. */
  get undelivered(): number {
    return this.#undelivered;
  }

  /** Closes the Redis connections, once pending writes are sent (or after 2 s). Call it after `io.close()`. */
  close(): Promise<void> {
    return this.#close();
  }

  /** @internal */
  setState(state: RedisState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.emit('state', state);
  }

  /** @internal */
  addUndelivered(count: number): void {
    this.#undelivered += count;
    this.emit('undelivered', count);
  }
}

/**
 * Connects to Redis (retrying for `settings.redisConnectTimeoutMs`), loads
 * the cluster's routes into `routes`, and returns the adapter to give
 * Socket.IO. Without `settings.redisUrl`, returns a cluster whose state is
 * `'off'` at once.
 *
 * @example
 * const routes = new RouteTable(buses);
 * const cluster = await startCluster({ ...DEFAULT_SETTINGS, redisUrl: 'redis://127.0.0.1:6379' }, routes, buses);
 * cluster.state; // 'up'
 */
export async function startCluster(settings: Settings, routes: RouteTable, buses: Buses): Promise<Cluster> {
  if (!redisConfigured(settings)) return new Cluster('off');
  const where = describeRedis(settings);

  const client = createRedis(settings, {
    // Commands wait through an outage (the grace decides what events do), rather than fail after 20 retries.
    maxRetriesPerRequest: null,
    retryStrategy: (attempt) => Math.min(100 * attempt, 1_000),
    connectionName: REDIS_PREFIX,
  });
  // The adapter and the route log each read on a connection of their own: keep them, to close them.
  const connections: Redis[] = [client];
  const duplicate = client.duplicate.bind(client);
  client.duplicate = (override) => {
    const connection = duplicate(override);
    connections.push(connection);
    return connection;
  };
  // The adapter fires these without handling their promise (SET saves a disconnected socket's
  // session, PUBLISH carries cluster requests): a rejection, such as Redis gone at shutdown, must
  // not become an unhandled rejection that stops the process.
  for (const command of ['set', 'publish'] as const) {
    const original = (client[command] as (...args: unknown[]) => Promise<unknown>).bind(client);
    (client as unknown as Record<string, unknown>)[command] = (...args: unknown[]) =>
      original(...args).catch((error: Error) => debug('%s failed: %s', command.toUpperCase(), error.message));
  }
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
  routeReader.on('error', () => {}); // the main connection reports the same trouble
  const routeSync = new RouteSync(routes, buses, client, routeReader, REDIS_PREFIX);
  try {
    await routeSync.start();
  } catch (error) {
    routeSync.close();
    disconnectAll();
    throw new ClusterStartError(`Redis at ${where}: ${(error as Error).message}`);
  }

  const grace = new OutageGrace(settings.redisOutageGraceMs);
  const graceSeconds = settings.redisOutageGraceMs / 1000;
  let closing = false;
  let downSince = 0;

  const streams = createAdapter(client, {
    streamName: `${REDIS_PREFIX}:events`,
    maxLen: settings.streamMaxLen,
    channelPrefix: REDIS_PREFIX,
    sessionKeyPrefix: `${REDIS_PREFIX}:session:`,
  });
  // Socket.IO calls the adapter with `new`: a plain function returning the (wrapped) adapter instance.
  const adapter = function (nsp: Namespace) {
    const instance = streams(nsp);
    guard(instance as unknown as StreamsAdapter, nsp);
    return instance;
  };

  /** Routes the adapter's writes through the grace, and never lets a session restore wait for a lost Redis. */
  const guard = (instance: StreamsAdapter, nsp: Namespace): void => {
    const publish = instance.doPublish.bind(instance);
    instance.doPublish = (message) => grace.publish(kindOf(message, nsp), () => publish(message));
    const restore = instance.restoreSession.bind(instance);
    instance.restoreSession = (pid, offset) => {
      if (cluster.state !== 'up') return Promise.reject(new Error('Redis is down: no session to recover'));
      return withDeadline(restore(pid, offset), RESTORE_TIMEOUT_MS, 'restoring the session from Redis');
    };
  };

  const cluster = new Cluster('up', adapter, async () => {
    if (closing) return;
    closing = true;
    grace.close();
    routeSync.close();
    const quit = client.status === 'ready' ? client.quit().catch(() => 'failed') : Promise.resolve('down');
    await withDeadline(quit, QUIT_TIMEOUT_MS, 'closing Redis').catch(() => undefined);
    disconnectAll();
    debug('disconnected from Redis');
  });

  grace.on('undelivered', (count) => cluster.addUndelivered(count));
  grace.on('expired', () => {
    debug('Redis has been down for more than %d s: events now reach only this node\'s clients, and each is counted until Redis is back', graceSeconds);
  });
  const onDown = (): void => {
    if (closing || cluster.state === 'down') return;
    downSince = Date.now();
    grace.down();
    cluster.setState('down');
    debug('Redis is down (%s): holding events for up to %d s; still accepting connections', lastError || 'connection closed', graceSeconds);
  };
  client.on('close', onDown);
  client.on('ready', () => {
    if (closing || cluster.state === 'up') return;
    const seconds = ((Date.now() - downSince) / 1000).toFixed(1);
    const missed = grace.missedThisOutage;
    const late = grace.expired;
    grace.up();
    cluster.setState('up');
    lastError = '';
    if (late) debug('Redis is up again after %s s; %d events published meanwhile reached only this node\'s clients', seconds, missed);
    else debug('Redis is up again after %s s; events held meanwhile are delivered now', seconds);
  });
  // Lost while the route table was loading: the 'close' above came too late to be heard.
  if (client.status !== 'ready') onDown();
  return cluster;
}

/** How an adapter message is treated during an outage. */
function kindOf(message: PublishedMessage, nsp: Namespace): PublicationKind {
  if (message.type !== BROADCAST || message.data?.requestId !== undefined) return 'other';
  const rooms = message.data?.opts?.rooms ?? [];
  return rooms.length === 1 && nsp.sockets.has(rooms[0] as string) ? 'direct' : 'event';
}

/** Resolves once `client` is ready; rejects with a one-line {@link ClusterStartError} after `timeoutMs`. */
function waitReady(client: Redis, timeoutMs: number, lastError: () => string, where: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      const why = lastError();
      reject(new ClusterStartError(`cannot reach Redis at ${where} within ${timeoutMs / 1000} s${why ? ` (${why})` : ''}`));
    }, timeoutMs);
    const onReady = (): void => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', onReady);
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
