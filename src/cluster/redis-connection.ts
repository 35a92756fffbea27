/**
 * How the broker reaches Redis, from its settings: one server named by
 * `REDIS_URL`, or a primary that can move, found through Redis Sentinel
 * (`REDIS_SENTINELS`, `REDIS_SENTINEL_NAME`). Every connection the cluster
 * opens is made by {@link createRedis} or is a `duplicate()` of one (ioredis
 * copies the options), so the adapter's, the route log's and any other
 * connection all follow the primary through a failover.
 *
 * Passwords go to ioredis and nowhere else: {@link describeRedis} is what logs
 * and errors show.
 */
import createDebug from 'debug';
import { Redis, type RedisOptions } from 'ioredis';
import type { Settings } from '../settings.ts';
import { backoffMs } from './backoff.ts';
import { SentinelConnector } from './sentinel-connector.ts';

/** The settings this module reads. */
export type RedisSettings = Pick<Settings, 'redisUrl' | 'redisSentinels' | 'redisSentinelName' | 'redisPassword' | 'redisSentinelPassword'>;

/** Redis's answer to a write on a replica: after a failover, the old primary (back as a replica) says it. */
const READONLY_ERROR = 'READONLY';
/** `reconnectOnError`'s answer that reconnects and sends the failed command again. */
const RECONNECT_AND_RESEND = 2;
/** ioredis's debug namespace that logs every command it writes: AUTH, and so the password, included. */
const COMMAND_LOG_NAMESPACE = 'ioredis:redis';
/** The command of the stream reader's loop (src/cluster/stream-reader.ts), whose failures must wait before they are told. */
const STREAM_READ = 'xread';

/**
 * Whether the settings name a Redis (a URL or Sentinels): the broker is then a
 * node of a cluster; otherwise it is one process with the in-memory adapter.
 *
 * @example
 * redisConfigured({ ...DEFAULT_SETTINGS }); // false
 * redisConfigured({ ...DEFAULT_SETTINGS, redisSentinels: [{ host: '10.0.0.5', port: 26379 }] }); // true
 */
export function redisConfigured(settings: Pick<Settings, 'redisUrl' | 'redisSentinels'>): boolean {
  return settings.redisUrl !== undefined || settings.redisSentinels !== undefined;
}

/**
 * The arguments of `new Redis(...)` for these settings, with `options` (the
 * cluster's retry and queueing choices) added: `[url, options]` in URL mode,
 * `[options]` with `sentinels`, `name`, `password` and `sentinelPassword` in
 * Sentinel mode. Throws when the settings name no Redis, or name it twice.
 *
 * In Sentinel mode, a client asks the Sentinels where the primary is each
 * time it connects ({@link SentinelConnector}: whatever they answer, it asks
 * again rather than give up), and reconnects when a write is refused as `READONLY` (it
 * reached the old primary, now a replica), so that it resends the write to
 * the new primary. ioredis's `failoverDetector` is left off: it reconnects
 * again when the Sentinels announce the switch, after the client has already
 * found the new primary, so that every node went down twice per failover.
 *
 * @example
 * const [options] = redisArguments({ ...DEFAULT_SETTINGS, redisSentinels: [{ host: '10.0.0.5', port: 26379 }] }, { maxRetriesPerRequest: null });
 * options.name; // 'mymaster'
 */
export function redisArguments(settings: RedisSettings, options: RedisOptions): [url: string, options: RedisOptions] | [options: RedisOptions] {
  const { redisUrl: url, redisSentinels: sentinels } = settings;
  if (url !== undefined && sentinels !== undefined) throw new Error('REDIS_URL and REDIS_SENTINELS are exclusive');
  const password = settings.redisPassword?.reveal();
  if (url !== undefined) return [url, password === undefined ? { ...options } : { ...options, password }];
  if (sentinels === undefined) throw new Error('no Redis configured (REDIS_URL or REDIS_SENTINELS)');
  return [
    {
      ...options,
      // A copy: ioredis adds the Sentinels it discovers to the list it is given.
      sentinels: sentinels.map(({ host, port }) => ({ host, port })),
      name: settings.redisSentinelName,
      password,
      sentinelPassword: settings.redisSentinelPassword?.reveal(),
      Connector: SentinelConnector,
      reconnectOnError: (error) => (error.message.startsWith(READONLY_ERROR) ? RECONNECT_AND_RESEND : false),
    },
  ];
}

/**
 * How long `disconnect()` leaves a connection to close by itself before
 * destroying it (ioredis's default is 2 s). The broker disconnects only once
 * nothing is left to send (after `QUIT`, or a connection that only reads),
 * and ioredis's timer holds the event loop even when the connection had
 * already closed (Redis down): a process that closes a cluster would wait
 * that long for nothing.
 */
export const DISCONNECT_TIMEOUT_MS = 200;

/**
 * A Redis client for these settings (see {@link redisArguments}); it connects at once.
 *
 * @example
 * const client = createRedis(settings, { maxRetriesPerRequest: null });
 * const reader = client.duplicate(); // same Redis, same Sentinels, same passwords
 */
export function createRedis(settings: RedisSettings, options: RedisOptions): Redis {
  const args = redisArguments(settings, { disconnectTimeout: DISCONNECT_TIMEOUT_MS, ...options });
  silenceCommandLog();
  return args.length === 2 ? new SteadyRedis(args[0], args[1]) : new SteadyRedis(args[0]);
}

/**
 * A Redis client that never gives up while its owner wants it: ioredis ends a
 * connection for good (status `end`, every command then failing at once)
 * when it cannot even start connecting; this one starts again after a
 * back-off ({@link backoffMs}) unless it was closed by `disconnect()` or
 * `QUIT`. And a failed stream read (`XREAD`) is reported only after a
 * back-off: a read loop that reads again soon after a read fails would,
 * with a Redis that fails it at once, take much of the CPU and starve
 * `/health` and signals. Its duplicates are steady too.
 *
 * @example
 * const client = new SteadyRedis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
 * client.duplicate() instanceof SteadyRedis; // true
 */
export class SteadyRedis extends Redis {
  /** Closed by its owner: stays closed. */
  #closed = false;
  /** Starts in a row that ended the connection, for the back-off. */
  #ends = 0;
  /** Stream reads failed in a row, for the back-off. */
  #readFailures = 0;
  /** Stream reads sent once: ioredis sends them again itself after a reconnection, and that promise has no taker. */
  readonly #reads = new WeakSet<object>();

  constructor(...args: [url: string, options: RedisOptions] | [options: RedisOptions]) {
    // ioredis reads its arguments by their types: one signature stands for both.
    super(...(args as [string, RedisOptions]));
    this.on('ready', () => (this.#ends = 0));
    this.on('end', () => {
      if (this.#closed) return;
      const timer = setTimeout(() => {
        if (!this.#closed && this.status === 'end') this.connect().catch(() => {});
      }, backoffMs(++this.#ends));
      timer.unref();
    });
  }

  override duplicate(override?: Partial<RedisOptions>): Redis {
    return new SteadyRedis({ ...this.options, ...override });
  }

  override disconnect(reconnect = false): void {
    if (!reconnect) this.#closed = true;
    super.disconnect(reconnect);
  }

  override sendCommand(...args: Parameters<Redis['sendCommand']>): unknown {
    const [command] = args;
    if (command.name === 'quit') this.#closed = true;
    const result = super.sendCommand(...args);
    if (command.name !== STREAM_READ || !(result instanceof Promise) || this.#reads.has(command)) return result;
    this.#reads.add(command);
    return result.then(
      (reply: unknown) => {
        this.#readFailures = 0;
        return reply;
      },
      async (error: unknown) => {
        await new Promise((resolve) => setTimeout(resolve, backoffMs(++this.#readFailures)));
        throw error;
      },
    );
  }
}

/**
 * Turns off ioredis's command log if `DEBUG` turned it on (`DEBUG=*`,
 * `DEBUG=ioredis:*`): it would print the password of every AUTH. Its other
 * namespaces (connection, Sentinel) stay as `DEBUG` says.
 */
function silenceCommandLog(): void {
  if (!createDebug.enabled(COMMAND_LOG_NAMESPACE)) return;
  createDebug.enable(`${createDebug.disable()},-${COMMAND_LOG_NAMESPACE}`);
}

/**
 * Where Redis is, for logs and errors, without any password:
 * `redis://10.0.0.5:6379` (user, password and query dropped), or
 * `primary mymaster of Sentinels 10.0.0.5:26379, 10.0.0.6:26379`.
 *
 * @example
 * describeRedis({ ...DEFAULT_SETTINGS, redisUrl: 'redis://:s3cret@10.0.0.5:6379/2' }); // 'redis://10.0.0.5:6379/2'
 */
export function describeRedis(settings: RedisSettings): string {
  if (settings.redisSentinels !== undefined) {
    const where = settings.redisSentinels.map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`).join(', ');
    return `primary ${settings.redisSentinelName} of Sentinels ${where}`;
  }
  if (settings.redisUrl === undefined) return 'no Redis';
  const { protocol, host, pathname } = new URL(settings.redisUrl);
  return `${protocol}//${host}${pathname === '/' ? '' : pathname}`;
}

/**
 * Why the broker cannot use the Redis `client` reached, in one line, or
 * undefined when it can. Read from `INFO`, once connected:
 * - a Redis Cluster node (`cluster_enabled:1`): the cluster keeps all
 *   events in one stream, and the route table's writes span keys that Redis
 *   Cluster would put on different nodes, so it is refused rather than half
 *   working;
 * - a Sentinel (`redis_mode:sentinel`) given as `REDIS_URL`;
 * - a replica in URL mode (`role:slave`): it refuses every write.
 *
 * @example
 * const why = await refuseServer(client); // 'is a Redis Cluster node (cluster_enabled:1): ...' or undefined
 */
export async function refuseServer(client: Redis): Promise<string | undefined> {
  const info = parseInfo(await client.info());
  if (info.get('cluster_enabled') === '1') {
    return 'is a Redis Cluster node (cluster_enabled:1): Redis Cluster is not supported, the events stream must live on one server; use one Redis, or Redis Sentinel (REDIS_SENTINELS)';
  }
  if (info.get('redis_mode') === 'sentinel') return 'is a Redis Sentinel, not a Redis server: give its address in REDIS_SENTINELS, not REDIS_URL';
  if (info.get('role') === 'slave' && client.options.sentinels == null) {
    return 'is a replica, which refuses writes: give the address of the primary, or use REDIS_SENTINELS';
  }
  return undefined;
}

/** `INFO`'s `field:value` lines as a map. */
function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}
