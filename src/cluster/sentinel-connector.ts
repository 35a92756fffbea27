/**
 * How a broker's Redis connection finds the primary through Redis Sentinel:
 * ioredis's `Connector` door, used instead of its own Sentinel connector,
 * which ends the connection for good (no retry) when a Sentinel answers an
 * address Node cannot connect to, and which resumes each reconnection where
 * the previous one stopped in its list of Sentinels, so that during a
 * failover it reports "All sentinels are unreachable" without having asked
 * any.
 *
 * Each connection asks the Sentinels in turn, starting with the one that
 * answered last, until one names a primary it can connect to (its answer is
 * read by {@link primaryAddress}); when none does, it says why for each, waits
 * ({@link backoffMs}), and asks them all again, for as long as the connection
 * is wanted. Once connected, a server that is not (or no longer) a primary is
 * left for another round ({@link SentinelConnector.check}).
 */
import { createConnection, type Socket } from 'node:net';
import { AbstractConnector, Redis } from 'ioredis';
import type { SentinelAddress } from '../settings.ts';
import { backoffMs } from './backoff.ts';
import { otherSentinels, primaryAddress } from './sentinel-answer.ts';

/** Longest wait for one Sentinel to accept a connection or answer a command, in ms. */
const SENTINEL_TIMEOUT_MS = 2_000;
/** ioredis's message when a connection is closed by its owner while connecting. */
const CONNECTION_CLOSED = 'Connection is closed.';
/** A Redis error reply that means the password was refused (or missing). */
const PASSWORD_REFUSED = /\b(?:NOAUTH|WRONGPASS)\b|invalid password/;

/** What the connector reads from the connection's options (ioredis hands it all of them). */
export interface SentinelConnectorOptions {
  readonly sentinels: readonly SentinelAddress[];
  readonly name: string;
  readonly sentinelPassword?: string | undefined;
}

/** How ioredis reports the connector's trouble: as the connection's own `'error'` events. */
type ErrorEmitter = (type: string, error: Error) => void;

/**
 * No Sentinel named a primary that could be used, in one round over all of
 * them; the message says why for each. `passwordRefused` when every one of
 * them refused the Sentinel password.
 */
export class SentinelRoundError extends Error {
  override name = 'SentinelRoundError';
  constructor(
    message: string,
    readonly passwordRefused: boolean,
  ) {
    super(message);
  }
}

/**
 * Whose password a Redis error says was refused or is missing (`NOAUTH`,
 * `WRONGPASS`), by Redis or by every Sentinel, or undefined when it says
 * something else: retrying with the same password cannot help.
 *
 * @example
 * passwordRefusal(new Error('WRONGPASS invalid username-password pair or user is disabled.')); // 'Redis refuses the password (REDIS_PASSWORD)'
 */
export function passwordRefusal(error: Error): string | undefined {
  if (error instanceof SentinelRoundError) return error.passwordRefused ? 'every Sentinel refuses the password (REDIS_SENTINEL_PASSWORD)' : undefined;
  return PASSWORD_REFUSED.test(error.message) ? 'Redis refuses the password (REDIS_PASSWORD)' : undefined;
}

/**
 * The connector: give it as `Connector` in the options of a Redis client that
 * also has `sentinels` and `name` (see redis-connection.ts).
 *
 * @example
 * const client = new Redis({ Connector: SentinelConnector, sentinels: [{ host: '10.0.0.5', port: 26379 }], name: 'mymaster' });
 */
export class SentinelConnector extends AbstractConnector {
  readonly #name: string;
  readonly #password: string | undefined;
  /** The configured Sentinels, then those they told of. */
  readonly #sentinels: SentinelAddress[];
  /** The Sentinel that answered last: asked first next time. */
  #preferred = 0;
  /** Where the current connection goes, for messages: `127.0.0.1:6380 (named by Sentinel 127.0.0.1:26379)`. */
  #target = '';
  #emit: ErrorEmitter = () => {};

  constructor(options: unknown) {
    const { sentinels, name, sentinelPassword } = options as SentinelConnectorOptions;
    super(SENTINEL_TIMEOUT_MS);
    this.#name = name;
    this.#password = sentinelPassword;
    this.#sentinels = sentinels.map(({ host, port }) => ({ host, port }));
  }

  /** Resolves with a socket to the primary; rejects only when the connection is closed by its owner meanwhile. */
  override async connect(emit: ErrorEmitter): Promise<Socket> {
    this.connecting = true;
    this.#emit = emit;
    for (let round = 1; ; round++) {
      const reasons: string[] = [];
      let refusedPasswords = 0;
      for (const index of this.#order()) {
        const sentinel = this.#sentinels[index] as SentinelAddress;
        const where = hostPort(sentinel);
        let reply: unknown;
        let failure: string | undefined;
        try {
          reply = await this.#ask(sentinel);
        } catch (error) {
          failure = (error as Error).message;
        }
        if (!this.connecting) throw new Error(CONNECTION_CLOSED);
        if (failure !== undefined) {
          if (PASSWORD_REFUSED.test(failure)) refusedPasswords++;
          reasons.push(`Sentinel ${where}: ${failure}`);
          continue;
        }
        const answer = primaryAddress(reply);
        if ('unusable' in answer) {
          reasons.push(`Sentinel ${where} ${answer.unusable}`);
          continue;
        }
        const socket = this.#open(answer.address, where, reasons);
        if (socket === undefined) continue;
        this.#preferred = index;
        return socket;
      }
      const error = new SentinelRoundError(
        `no Sentinel named a primary "${this.#name}" that can be reached: ${reasons.join('; ')}`,
        refusedPasswords === this.#sentinels.length,
      );
      emit('error', error);
      await new Promise((resolve) => setTimeout(resolve, backoffMs(round)));
      if (!this.connecting) throw new Error(CONNECTION_CLOSED);
    }
  }

  /**
   * Called by ioredis with the server's `INFO` once connected: false (so that
   * ioredis reconnects, and the Sentinels are asked again) when it is not a
   * primary, as the old primary of a failover that the Sentinels still name.
   */
  override check(info: { role?: string }): boolean {
    if (info.role === undefined || info.role === 'master') return true;
    this.#emit('error', new Error(`${this.#target} is a ${info.role === 'slave' ? 'replica' : info.role}, not the primary (a failover under way): asking the Sentinels again`));
    return false;
  }

  /** Every Sentinel's index, the one that answered last first. */
  #order(): number[] {
    const count = this.#sentinels.length;
    const first = this.#preferred < count ? this.#preferred : 0;
    return Array.from({ length: count }, (_, i) => (first + i) % count);
  }

  /** A socket to `address`, or undefined (with the reason added to `reasons`) when Node refuses it at once. */
  #open(address: SentinelAddress, where: string, reasons: string[]): Socket | undefined {
    const named = `the primary "${this.#name}" as Sentinel ${where} names it`;
    let socket: Socket;
    try {
      socket = createConnection({ host: address.host, port: address.port });
    } catch (error) {
      reasons.push(`Sentinel ${where} named ${hostPort(address)}: ${(error as Error).message}`);
      return undefined;
    }
    this.#target = `${hostPort(address)} (${named})`;
    socket.once('error', (error) => {
      // Registered before ioredis's own listener: the connection's 'error' says where the address came from.
      error.message = `${error.message} (${named})`;
      this.firstError = error;
    });
    this.stream = socket;
    return socket;
  }

  /** One Sentinel's answer to `SENTINEL get-master-addr-by-name`; learns of the other Sentinels on the way. */
  async #ask(sentinel: SentinelAddress): Promise<unknown> {
    const client = new Redis({
      host: sentinel.host,
      port: sentinel.port,
      password: this.#password,
      lazyConnect: true,
      retryStrategy: () => null,
      enableReadyCheck: false,
      enableOfflineQueue: true,
      maxRetriesPerRequest: 0,
      connectTimeout: SENTINEL_TIMEOUT_MS,
      commandTimeout: SENTINEL_TIMEOUT_MS,
      disableClientInfo: true,
    });
    client.on('error', () => {}); // the command's rejection says it
    try {
      await client.connect();
      const reply = await client.call('SENTINEL', 'get-master-addr-by-name', this.#name);
      const others = await client.call('SENTINEL', 'sentinels', this.#name).catch(() => []);
      for (const found of otherSentinels(others)) {
        if (!this.#sentinels.some((known) => known.host === found.host && known.port === found.port)) this.#sentinels.push(found);
      }
      return reply;
    } finally {
      client.disconnect();
    }
  }
}

/** `host:port`, with an IPv6 host in brackets. */
function hostPort({ host, port }: SentinelAddress): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
