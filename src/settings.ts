/**
 * Settings: read once at start-up from the environment and the command line
 * (a flag wins over its environment variable), checked, and frozen.
 *
 * Every setting has one line in {@link SETTINGS}: its environment name, its
 * flag, its default and how its text is read. The settings tables of
 * docs/configuration.md mirror it.
 */
import { constants as bufferConstants } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULT_LIMITS, type Limits } from './limits.ts';
import { parseProxyList } from './client-address.ts';
import { readCommandLine, type FlagSpec } from './command-line.ts';
import { REDACTED, redactUrl } from './redact.ts';

/** Everything the broker process can be told. */
export interface Settings extends Limits {
  /** TCP port; 0 picks a free one. */
  readonly port: number;
  /** Address to listen on. */
  readonly host: string;
  /** Path of the bus lists (docs/protocol.md#buses-and-rooms). */
  readonly busesFile: string;
  /** Browser origins allowed to connect; `'*'` allows any. */
  readonly corsOrigins: '*' | readonly string[];
  /** Redis URL for the cluster adapter; undefined runs one process in memory. */
  readonly redisUrl: string | undefined;
  /** How long (ms) to keep trying an unreachable Redis at start-up. */
  readonly redisConnectTimeoutMs: number;
  /** How long (ms) a Redis outage may delay events before nodes serve only their own clients. */
  readonly redisOutageGraceMs: number;
  /** How long (ms) Redis may leave a watchdog PING unanswered before it is taken as down (a hung process or a partition); 0: no watchdog. */
  readonly redisTimeoutMs: number;
  /** How long (ms) a 4.x client may stay away and still recover missed events; 0 turns recovery off. */
  readonly recoveryWindowMs: number;
  /** Approximate number of entries the Redis stream keeps (the recovery backlog of the cluster). */
  readonly streamMaxLen: number;
  /** Bytes a second one client (one socket) may put in the Redis event stream; past it its events are refused. 0: no cap. */
  readonly streamBytesPerClient: number;
  /** Redis Sentinels that say where the primary is; exclusive with {@link redisUrl}. */
  readonly redisSentinels: readonly SentinelAddress[] | undefined;
  /** The primary's name in the Sentinels' configuration (`sentinel monitor <name> ...`). */
  readonly redisSentinelName: string;
  /** The Redis password (`requirepass`), when not in {@link redisUrl}. */
  readonly redisPassword: Secret | undefined;
  /** The Sentinels' own password (their `requirepass`). */
  readonly redisSentinelPassword: Secret | undefined;
  /** Shared secret every client must present; undefined trusts the network (unless {@link credentialsFile} is set). */
  readonly token: string | undefined;
  /** Named credentials with their grants (docs/security.md#credentials), re-read on SIGHUP. */
  readonly credentialsFile: string | undefined;
  /** How long (ms) a client whose credential a reload removed or changed may stay connected. */
  readonly credentialsCloseWithinMs: number;
  /** Failed authentications one address may make in a minute before its attempts are refused unchecked. */
  readonly authFailuresPerMinute: number;
  /** Proxies (addresses, CIDR blocks) whose `X-Forwarded-For` names the client; none by default. */
  readonly trustProxy: readonly string[];
}

/** One Redis Sentinel. */
export interface SentinelAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * A password. Its text comes out only through {@link reveal}: printed in any
 * other way (a template string, `JSON.stringify`, `util.inspect`, a log of the
 * settings), it shows {@link REDACTED}.
 *
 * @example
 * const password = new Secret('s3cret');
 * `${password}`; // '***'
 * password.reveal(); // 's3cret', for the Redis client only
 */
export class Secret {
  readonly #text: string;

  constructor(text: string) {
    this.#text = text;
  }

  /** The password itself: hand it to what needs it, never to a log. */
  reveal(): string {
    return this.#text;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return REDACTED;
  }
}

/** A setting that could not be used: the message names it and says why. */
export class SettingsError extends Error {
  override name = 'SettingsError';
}

type Reader<T> = (text: string) => T;

interface SettingSpec<K extends keyof Settings> {
  readonly key: K;
  readonly env: string;
  readonly flag: `--${string}`;
  readonly read: Reader<Settings[K]>;
  /** The default as an operator would write it, for `--help`, where it is not the default value itself. */
  readonly shown?: string;
  /** What the setting does, one line for `--help`. */
  readonly help: string;
  /**
   * For a secret read from a file (`env` and `flag` name the file): an
   * environment variable that may hold the secret itself instead. There is no
   * flag for it, so that it never shows in `ps`.
   */
  readonly inlineEnv?: string;
}

const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The defaults, as docs/configuration.md#settings gives them. */
export const DEFAULT_SETTINGS: Settings = Object.freeze({
  port: 3000,
  host: '127.0.0.1',
  busesFile: `${PACKAGE_ROOT}buses.json`,
  corsOrigins: '*',
  redisUrl: undefined,
  redisConnectTimeoutMs: 30_000,
  redisOutageGraceMs: 30_000,
  redisTimeoutMs: 5_000,
  recoveryWindowMs: 120_000,
  streamMaxLen: 100_000,
  streamBytesPerClient: 2 * 1024 * 1024,
  redisSentinels: undefined,
  redisSentinelName: 'mymaster',
  redisPassword: undefined,
  redisSentinelPassword: undefined,
  token: undefined,
  credentialsFile: undefined,
  credentialsCloseWithinMs: 10_000,
  authFailuresPerMinute: 30,
  trustProxy: Object.freeze([]),
  ...DEFAULT_LIMITS,
});

const integer =
  (min: number, max: number): Reader<number> =>
  (text) => {
    if (!/^\d+$/.test(text.trim())) throw new SettingsError(`expected a whole number, got "${text}"`);
    const n = Number(text);
    if (n < min || n > max) throw new SettingsError(`expected a number from ${min} to ${max}, got ${text.trim()}`);
    return n;
  };

const UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const UNITS_BYTES: Record<string, number> = { b: 1, kb: 1_000, mb: 1_000_000, gb: 1_000_000_000, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** Longest delay Node's timers hold: a longer one fires at once (`TimeoutOverflowWarning`). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** Longest string V8 holds: a message or body is read whole into one before it is parsed. */
export const MAX_TEXT_BYTES = bufferConstants.MAX_STRING_LENGTH;

/** A reader of a number with a unit, and what `--help` and its errors need to write one. */
interface QuantityReader extends Reader<number> {
  readonly units: Record<string, number>;
  /** The units to write a value in, largest first. */
  readonly order: readonly string[];
}

/**
 * A number with an optional unit (a bare number is in `bare` units), from
 * `min` to `max` in the smallest unit; `why` says what the largest stands for.
 */
const quantity = (
  units: Record<string, number>,
  bare: string,
  what: string,
  range: { readonly min: number; readonly max: number; readonly why: string },
): QuantityReader => {
  const order = Object.keys(units).sort((a, b) => (units[b] as number) - (units[a] as number));
  const read = (text: string): number => {
    const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
    const factor = units[(match?.[2] || bare).toLowerCase()];
    if (!match || factor === undefined) {
      throw new SettingsError(`expected ${what} such as ${Object.keys(units).map((u) => `10${u}`).join(', ')}, got "${text}"`);
    }
    const n = Math.round(Number(match[1]) * factor);
    if (!(n >= range.min && n <= range.max)) {
      const show = (v: number): string => showQuantity(v, units, order);
      throw new SettingsError(`expected ${what} from ${show(range.min)} to ${show(range.max)} (${range.why}), got "${text.trim()}"`);
    }
    return n;
  };
  return Object.assign(read, { units, order });
};

/** Durations: `30s`, `2m`, `500ms`; a bare number is seconds. Any of them may become a timer. */
const duration = quantity(UNITS_MS, 's', 'a duration', { min: 0, max: MAX_TIMER_MS, why: "the longest delay Node's timers hold" });
/** Sizes of a message or body, read whole into one string: `1mb`, `16MiB`, `512kb`; a bare number is bytes. */
const textBytes = quantity(UNITS_BYTES, 'b', 'a size', { min: 0, max: MAX_TEXT_BYTES, why: 'the longest string Node holds' });
/** Sizes that are only counted: bytes queued or kept. */
const bytes = quantity(UNITS_BYTES, 'b', 'a size', { min: 0, max: Number.MAX_SAFE_INTEGER, why: 'the largest whole number JavaScript counts exactly' });

const text: Reader<string> = (t) => {
  if (t.trim() === '') throw new SettingsError('expected a value, got an empty string');
  return t;
};

/** `t` with whatever stands between `//` and `@` (a user and password) hidden, for error messages. */

const redisUrl: Reader<string> = (t) => {
  let url: URL;
  try {
    url = new URL(t);
  } catch {
    // Its password stays out of the error line (docs/security.md#what-is-logged).
    throw new SettingsError(`expected a URL such as redis://127.0.0.1:6379, got "${redactUrl(t)}"`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new SettingsError(`expected a redis:// or rediss:// URL, got "${url.protocol}"`);
  }
  if (!url.hostname) throw new SettingsError('the Redis URL names no host');
  return t;
};

/** Sentinel's own default port, for an address given without one. */
const SENTINEL_PORT = 26_379;

/** `host:port,host:port,...`; an IPv6 host in brackets (`[::1]:26379`); a missing port is 26379. */
const sentinels: Reader<readonly SentinelAddress[]> = (t) => {
  const list = t.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new SettingsError('expected Sentinels such as 10.0.0.5:26379,10.0.0.6:26379, got none');
  return Object.freeze(
    list.map((address) => {
      const match = /^(?:\[([^\]]+)\]|([^:\s[\]]+))(?::(\d+))?$/.exec(address);
      const port = match?.[3] === undefined ? SENTINEL_PORT : Number(match[3]);
      if (!match || port < 1 || port > 65_535) throw new SettingsError(`expected Sentinels such as 10.0.0.5:26379,10.0.0.6:26379, got "${address}"`);
      return Object.freeze({ host: (match[1] ?? match[2]) as string, port });
    }),
  );
};

/** Longest password file read, to refuse a path that names something else (a device, a log). */
const MAX_SECRET_FILE_BYTES = 4_096;

/** The secret itself, never echoed in an error. */
const secretText: Reader<Secret> = (t) => {
  if (t.trim() === '') throw new SettingsError('expected a password, got an empty one');
  return new Secret(t);
};

/** A file holding a secret (one trailing newline dropped); errors name the file, never its content. */
const secretFile: Reader<Secret> = (path) => {
  let content: Buffer;
  try {
    content = readFileSync(path.trim());
  } catch (error) {
    throw new SettingsError(`cannot read the password file ${path.trim()} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (content.length > MAX_SECRET_FILE_BYTES) throw new SettingsError(`the password file ${path.trim()} is larger than ${MAX_SECRET_FILE_BYTES} bytes`);
  const text = content.toString('utf8').replace(/\r?\n$/, '');
  if (text.trim() === '') throw new SettingsError(`the password file ${path.trim()} is empty`);
  return new Secret(text);
};

const origins: Reader<'*' | readonly string[]> = (t) => {
  const list = t.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0 || list.includes('*')) return '*';
  for (const origin of list) {
    try {
      new URL(origin);
    } catch {
      throw new SettingsError(`expected origins such as https://admin.example.net, got "${redactUrl(origin)}"`);
    }
  }
  return Object.freeze(list);
};

/** Addresses and CIDR blocks; an empty text lists none. */
const proxies: Reader<readonly string[]> = (t) => parseProxyList(t);

/** One line per setting: environment variable, flag, reader. */
const SETTINGS: readonly SettingSpec<keyof Settings>[] = [
  { key: 'port', env: 'PORT', flag: '--port', read: integer(0, 65_535), help: 'TCP port to listen on (0: any free port)' },
  { key: 'host', env: 'HOST', flag: '--host', read: text, help: 'address to listen on' },
  { key: 'busesFile', env: 'BUSES_FILE', flag: '--buses', read: text, shown: 'buses.json beside package.json', help: 'the bus lists (JSON)' },
  { key: 'corsOrigins', env: 'CORS_ORIGINS', flag: '--cors-origins', read: origins, shown: '*', help: 'comma-separated browser origins allowed to connect and to push to /_notify, besides the broker\'s own pages; * lists none (programs send no Origin and are not concerned)' },
  { key: 'redisUrl', env: 'REDIS_URL', flag: '--redis', read: redisUrl, shown: 'unset (one process, in memory)', help: 'redis:// or rediss:// URL of the Redis the cluster shares' },
  { key: 'redisConnectTimeoutMs', env: 'REDIS_CONNECT_TIMEOUT', flag: '--redis-connect-timeout', read: duration, help: 'how long an unreachable Redis is retried at start-up' },
  { key: 'redisOutageGraceMs', env: 'REDIS_OUTAGE_GRACE', flag: '--redis-outage-grace', read: duration, help: 'how long a Redis outage may delay events before each node serves only its own clients' },
  { key: 'redisTimeoutMs', env: 'REDIS_TIMEOUT', flag: '--redis-timeout', read: duration, help: 'how long Redis may leave a PING unanswered before it counts as down; 0 turns the watchdog off' },
  { key: 'recoveryWindowMs', env: 'RECOVERY_WINDOW', flag: '--recovery-window', read: duration, help: 'how long a 4.x client may stay away and still recover missed events; 0 turns recovery off' },
  { key: 'streamMaxLen', env: 'REDIS_STREAM_MAXLEN', flag: '--redis-stream-maxlen', read: integer(1_000, 1e9), help: "entries the Redis event stream keeps (the cluster's recovery backlog)" },
  { key: 'streamBytesPerClient', env: 'REDIS_STREAM_CLIENT_BYTES', flag: '--redis-stream-client-bytes', read: integer(0, 1e12), help: 'bytes a second one socket may put in the Redis event stream; past it its events are refused; 0: no cap' },
  { key: 'redisSentinels', env: 'REDIS_SENTINELS', flag: '--redis-sentinels', read: sentinels, shown: 'unset (REDIS_URL names Redis)', help: 'comma-separated host:port of the Redis Sentinels that say where the primary is; instead of REDIS_URL' },
  { key: 'redisSentinelName', env: 'REDIS_SENTINEL_NAME', flag: '--redis-sentinel-name', read: text, shown: 'mymaster', help: "the primary's name in the Sentinels' configuration (sentinel monitor <name> ...)" },
  { key: 'redisPassword', env: 'REDIS_PASSWORD_FILE', flag: '--redis-password-file', inlineEnv: 'REDIS_PASSWORD', read: secretFile, shown: 'unset (none, or the one in REDIS_URL)', help: 'file holding the Redis password (requirepass); or the password itself in REDIS_PASSWORD (environment only)' },
  { key: 'redisSentinelPassword', env: 'REDIS_SENTINEL_PASSWORD_FILE', flag: '--redis-sentinel-password-file', inlineEnv: 'REDIS_SENTINEL_PASSWORD', read: secretFile, shown: 'unset (none)', help: "file holding the Sentinels' own password; or the password itself in REDIS_SENTINEL_PASSWORD (environment only)" },
  { key: 'token', env: 'BROKER_TOKEN', flag: '--token', read: text, shown: 'unset (no check)', help: 'shared secret every client and HTTP request must present (/health excepted)' },
  { key: 'credentialsFile', env: 'CREDENTIALS_FILE', flag: '--credentials', read: text, shown: 'unset (BROKER_TOKEN alone)', help: 'named credentials and their grants (JSON, made by `spicy-action credentials add`), re-read on SIGHUP' },
  { key: 'credentialsCloseWithinMs', env: 'CREDENTIALS_CLOSE_WITHIN', flag: '--credentials-close-within', read: duration, help: 'how long after a reload a client whose credential was removed or changed may stay connected' },
  { key: 'authFailuresPerMinute', env: 'AUTH_FAILURES_PER_MINUTE', flag: '--auth-failures-per-minute', read: integer(1, 1e6), help: 'failed authentications an address may make in a minute; past it, its attempts are refused unchecked' },
  { key: 'trustProxy', env: 'TRUST_PROXY', flag: '--trust-proxy', read: proxies, shown: 'unset (none: the peer is the client)', help: 'comma-separated addresses or CIDR blocks of the proxies (HAProxy) whose X-Forwarded-For names the client' },
  { key: 'maxMessageBytes', env: 'MAX_MESSAGE_BYTES', flag: '--max-message-bytes', read: textBytes, help: 'largest Socket.IO message accepted; a sender past it is disconnected' },
  { key: 'maxBodyBytes', env: 'MAX_BODY_BYTES', flag: '--max-body-bytes', read: textBytes, help: 'largest /_notify body accepted (413 past it)' },
  { key: 'maxRoomNameLength', env: 'MAX_ROOM_NAME_LENGTH', flag: '--max-room-name-length', read: integer(1, 65_536), help: 'longest room or event name accepted, in characters' },
  { key: 'maxRoomsPerSocket', env: 'MAX_ROOMS_PER_SOCKET', flag: '--max-rooms-per-socket', read: integer(1, 1e7), help: 'most rooms one socket may join' },
  { key: 'maxRoutes', env: 'MAX_ROUTES', flag: '--max-routes', read: integer(1, 1e7), help: 'most routes the route table may hold, built-in ones included' },
  { key: 'maxInRooms', env: 'MAX_IN_ROOMS', flag: '--max-in-rooms', read: integer(0, 1e6), help: 'most _in entries of one event that are used; the rest are ignored' },
  { key: 'maxBufferedBytes', env: 'MAX_BUFFERED_BYTES', flag: '--max-buffered-bytes', read: bytes, help: 'unsent bytes a socket may have queued before it is cut as a slow consumer' },
  { key: 'maxMetricEvents', env: 'MAX_METRIC_EVENTS', flag: '--max-metric-events', read: integer(0, 1e6), help: 'registered event names that get their own metrics label; the rest count as (other)' },
  { key: 'maxPayloadDepth', env: 'MAX_PAYLOAD_DEPTH', flag: '--max-payload-depth', read: integer(1, 10_000), help: 'deepest nesting of arrays and objects accepted in a payload (socket event or /_notify body)' },
  { key: 'recoveryBacklogBytes', env: 'RECOVERY_BACKLOG_BYTES', flag: '--recovery-backlog-bytes', read: bytes, help: 'encoded bytes of events one process keeps for connection state recovery; the oldest go first' },
  { key: 'maxPendingHandshakes', env: 'MAX_PENDING_HANDSHAKES', flag: '--max-pending-handshakes', read: integer(1, 1e7), help: 'connections not yet joined (authenticated), all clients together; a handshake past it gets 503' },
  { key: 'maxPendingHandshakesPerAddress', env: 'MAX_PENDING_HANDSHAKES_PER_ADDRESS', flag: '--max-pending-handshakes-per-address', read: integer(1, 1e7), help: 'connections not yet joined (authenticated) from one client address; a handshake past it gets 429' },
  { key: 'handshakeTimeoutMs', env: 'HANDSHAKE_TIMEOUT', flag: '--handshake-timeout', read: duration, help: 'how long a new connection may take to join (authenticate) before it is closed' },
  { key: 'maxBodiesInFlightBytes', env: 'MAX_BODIES_IN_FLIGHT_BYTES', flag: '--max-bodies-in-flight-bytes', read: bytes, help: '/_notify bodies being read at once, in bytes (each at its Content-Length); a request past it gets 503' },
  { key: 'minBodyRate', env: 'MIN_BODY_RATE', flag: '--min-body-rate', read: bytes, help: 'slowest a /_notify body may arrive, in bytes per second (408 if slower); 0: no floor' },
  { key: 'maxRecoverySessionsBytes', env: 'MAX_RECOVERY_SESSIONS_BYTES', flag: '--max-recovery-sessions-bytes', read: bytes, help: 'bytes of sessions kept for connection state recovery, all clients together; past it a dropped socket keeps none' },
  { key: 'maxRecoverySessionsBytesPerAddress', env: 'MAX_RECOVERY_SESSIONS_BYTES_PER_ADDRESS', flag: '--max-recovery-sessions-bytes-per-address', read: bytes, help: 'bytes of sessions kept for connection state recovery for the sockets of one client address' },
] as const;

/** The flags of {@link SETTINGS}, for the command-line reader: each takes a value. */
const SETTING_FLAGS: readonly FlagSpec[] = SETTINGS.map(({ flag }) => ({ flag, takesValue: true }));

/** One setting as `--help` shows it. */
export interface SettingHelp {
  readonly env: string;
  readonly flag: string;
  /** The default, as an operator would write it (`30s`, `1mb`). */
  readonly shown: string;
  readonly help: string;
  /** For a password read from the file `env` names: the variable that may hold the password itself. */
  readonly inlineEnv?: string;
}

/** `value` in the largest of `units` that writes it whole: 30000 ms → `30s`, 16000000 bytes → `16mb`. */
function showQuantity(value: number, units: Record<string, number>, order: readonly string[]): string {
  const unit = order.find((u) => value % (units[u] as number) === 0 && value >= (units[u] as number)) ?? (order[order.length - 1] as string);
  return `${value / (units[unit] as number)}${unit}`;
}

/** How a default is written for `--help`, by the reader of its setting. */
function showDefault(spec: SettingSpec<keyof Settings>): string {
  const value = DEFAULT_SETTINGS[spec.key];
  if (spec.shown !== undefined) return spec.shown;
  if (spec.read === duration) return showQuantity(value as number, UNITS_MS, duration.order);
  if (spec.read === bytes || spec.read === textBytes) return showQuantity(value as number, UNITS_BYTES, ['gb', 'mb', 'kb', 'b']);
  return String(value);
}

/** The settings the broker understands, for `--help`. */
export const SETTING_NAMES: readonly SettingHelp[] = SETTINGS.map((spec) => {
  const shown = showDefault(spec);
  const { env, flag, help, inlineEnv } = spec;
  return inlineEnv === undefined ? { env, flag, shown, help } : { env, flag, shown, help, inlineEnv };
});

/** The units durations and sizes take, for `--help` and docs/configuration.md. */
export const DURATION_UNITS: readonly string[] = Object.keys(UNITS_MS);
export const SIZE_UNITS: readonly string[] = Object.keys(UNITS_BYTES);

/** What the broker's command line asks for: its usage, its version, or to run. */
export type BrokerRequest = 'help' | 'version' | 'serve';

/** The flags that ask the broker for its usage or its version instead of running, as written. */
const ASKING_FLAGS: Readonly<Record<string, Exclude<BrokerRequest, 'serve'>>> = { '--help': 'help', '-h': 'help', '--version': 'version', '-v': 'version' };

/**
 * Whether `argv` asks for the usage (`--help`, `-h`), the version
 * (`--version`, `-v`) or to run the broker. Read as {@link loadSettings}
 * reads flags, so that a setting's value that looks like a flag
 * (`--host --help`) is a value, not a question.
 *
 * @example
 * brokerRequest(['--port', '4000', '-h']); // 'help'
 * brokerRequest(['--host', '--help']); // 'serve' (a host named --help, refused by loadSettings)
 */
export function brokerRequest(argv: readonly string[]): BrokerRequest {
  const asked = new Set<BrokerRequest>();
  for (const arg of readCommandLine(argv, SETTING_FLAGS)) {
    if (arg.kind === 'flag' && !arg.known && !arg.inline) asked.add(ASKING_FLAGS[arg.flag] ?? 'serve');
  }
  return asked.has('help') ? 'help' : asked.has('version') ? 'version' : 'serve';
}

/**
 * Reads the settings from environment variables and flags (`--port 4000` or
 * `--port=4000`); a flag wins over its variable. Unknown flags, missing flag
 * values and unusable values throw a {@link SettingsError} naming the setting.
 *
 * @example
 * const settings = loadSettings(process.argv.slice(2), process.env);
 * settings.port; // 3000 unless PORT or --port says otherwise
 */
export function loadSettings(argv: readonly string[], env: NodeJS.ProcessEnv): Settings {
  const given = new Map<SettingSpec<keyof Settings>, { text: string; from: string }>();
  const inline = new Map<SettingSpec<keyof Settings>, { text: string; from: string }>();
  for (const spec of SETTINGS) {
    const value = env[spec.env];
    if (value !== undefined && value !== '') given.set(spec, { text: value, from: spec.env });
    const secret = spec.inlineEnv === undefined ? undefined : env[spec.inlineEnv];
    if (secret !== undefined && secret !== '') inline.set(spec, { text: secret, from: spec.inlineEnv as string });
  }
  for (const arg of readCommandLine(argv, SETTING_FLAGS)) {
    // Never the text after `=`, nor a stray value: a mistyped `--tokn=s3cret` holds a secret.
    if (arg.kind === 'positional') {
      throw new SettingsError(`argument ${arg.index + 1} is not a flag: a value follows its flag, as in --port 4000 (try --help)`);
    }
    const spec = SETTINGS.find((s) => s.flag === arg.flag);
    if (!arg.known || !spec) throw new SettingsError(`unknown argument ${JSON.stringify(arg.flag)} (try --help)`);
    if (arg.value === undefined) throw new SettingsError(`${arg.flag} needs a value`);
    given.set(spec, { text: arg.value, from: arg.flag });
  }
  const settings: Record<string, unknown> = { ...DEFAULT_SETTINGS };
  /** Where each setting given came from (a variable or a flag), to name it in errors. */
  const source = new Map<keyof Settings, string>();
  const read = <T>(reader: Reader<T>, value: string, from: string): T => {
    try {
      return reader(value);
    } catch (error) {
      throw new SettingsError(`${from}: ${(error as Error).message}`);
    }
  };
  for (const [spec, { from }] of inline) {
    const file = given.get(spec);
    if (file) throw new SettingsError(`${from} and ${file.from} are both set: give the password once`);
  }
  for (const [spec, { text: value, from }] of given) {
    settings[spec.key] = read(spec.read, value, from);
    source.set(spec.key, from);
  }
  for (const [spec, { text: value, from }] of inline) {
    settings[spec.key] = read(secretText, value, from);
    source.set(spec.key, from);
  }
  const checked = Object.freeze(settings as unknown as Settings);
  checkRedis(checked, (key) => source.get(key) ?? key);
  return checked;
}

/**
 * The Redis settings that only make sense together: one way to find Redis
 * (a URL, or Sentinels), one password for it, and Sentinel settings only with
 * Sentinels. `from` names a setting as the operator gave it.
 */
function checkRedis(settings: Settings, from: (key: keyof Settings) => string): void {
  const { redisUrl: url, redisSentinels, redisPassword, redisSentinelPassword } = settings;
  if (url !== undefined && redisSentinels !== undefined) {
    throw new SettingsError(
      `${from('redisUrl')} and ${from('redisSentinels')} are exclusive: name one Redis by its URL, or the Sentinels that find the primary`,
    );
  }
  if (redisPassword !== undefined) {
    if (url === undefined && redisSentinels === undefined) {
      throw new SettingsError(`${from('redisPassword')} is set, but no Redis is (REDIS_URL or REDIS_SENTINELS)`);
    }
    if (url !== undefined && new URL(url).password !== '') {
      throw new SettingsError(`${from('redisUrl')} holds a password and ${from('redisPassword')} another: give it once`);
    }
  }
  if (redisSentinelPassword !== undefined && redisSentinels === undefined) {
    throw new SettingsError(`${from('redisSentinelPassword')} is set, but REDIS_SENTINELS is not`);
  }
}
