/**
 * Notices a Redis that stops answering (docs/cluster.md#when-redis-fails): a hung or stopped
 * process, or a network partition that drops packets, keeps the TCP
 * connection open, so the client never sees it close. A watchdog PINGs on a
 * connection of its own; a PING left unanswered for the timeout means Redis
 * is down, exactly as a closed connection does, until a PING is answered.
 *
 * While writes are refused, it also probes with a small SET, so that the end
 * of a refusal episode is seen even when no event is published.
 */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';

/** PINGs per timeout: a hang is seen at most timeout + timeout / PINGS_PER_TIMEOUT after it starts. */
const PINGS_PER_TIMEOUT = 4;
/** Shortest interval between two PINGs, in ms. */
const MIN_INTERVAL_MS = 50;
/** How long the write probe's key lives, in ms. */
const PROBE_TTL_MS = 10_000;

/** What the watchdog tells. */
export interface LivenessEvents {
  /** A PING has been left unanswered for longer than the timeout. */
  hung: [];
  /** A PING was answered after `hung`. */
  answering: [];
  /** The write probe was taken (sent only while {@link Liveness.probeWrites} is on). */
  writable: [];
  /** The write probe was refused. */
  unwritable: [error: Error];
}

/**
 * A PING watchdog on `connection` (a connection of its own, with
 * `enableOfflineQueue: false`, so that PINGs fail at once while it is
 * reconnecting rather than queue up).
 *
 * @example
 * const liveness = new Liveness(redis.duplicate({ enableOfflineQueue: false }), 5_000, 'spicy-action:probe:node1');
 * liveness.on('hung', () => grace.down());
 * liveness.on('answering', () => grace.up());
 * liveness.close();
 */
export class Liveness extends EventEmitter<LivenessEvents> {
  readonly #connection: Redis;
  readonly #timeoutMs: number;
  readonly #probeKey: string;
  readonly #timer: NodeJS.Timeout;
  /** When the PING waiting for its answer was sent; undefined when none waits. */
  #sentAt: number | undefined;
  #hung = false;
  #probing = false;
  /** When a PING was last answered (or the watchdog started). */
  #answeredAt = Date.now();
  /** Also probe writes at each PING. */
  probeWrites = false;

  constructor(connection: Redis, timeoutMs: number, probeKey: string) {
    super();
    this.#connection = connection;
    this.#timeoutMs = timeoutMs;
    this.#probeKey = probeKey;
    this.#timer = setInterval(() => this.#tick(), Math.max(MIN_INTERVAL_MS, Math.floor(timeoutMs / PINGS_PER_TIMEOUT)));
    this.#timer.unref();
    // A connection made ready has had its commands answered.
    connection.on('ready', () => (this.#answeredAt = Date.now()));
  }

  /** The last moment Redis was known to answer: when a PING was last answered, in ms since the epoch. */
  get answeredAt(): number {
    return this.#answeredAt;
  }

  /** True from `hung` until `answering`. */
  get hung(): boolean {
    return this.#hung;
  }

  /** Stops the watchdog (the connection is closed by its owner). */
  close(): void {
    clearInterval(this.#timer);
  }

  #tick(): void {
    const now = Date.now();
    if (this.#sentAt !== undefined) {
      if (!this.#hung && now - this.#sentAt > this.#timeoutMs) {
        this.#hung = true;
        this.emit('hung');
      }
      return;
    }
    if (this.#connection.status !== 'ready') return; // reconnecting: the main connection's 'close' says down
    this.#sentAt = now;
    this.#connection.ping().then(
      () => {
        this.#sentAt = undefined;
        this.#answeredAt = Date.now();
        if (this.#hung) {
          this.#hung = false;
          this.emit('answering');
        }
      },
      () => {
        this.#sentAt = undefined; // the connection closed: not a hang
      },
    );
    if (this.probeWrites && !this.#probing) {
      this.#probing = true;
      this.#connection.set(this.#probeKey, '1', 'PX', PROBE_TTL_MS).then(
        () => {
          this.#probing = false;
          this.emit('writable');
        },
        (error: unknown) => {
          this.#probing = false;
          this.emit('unwritable', error instanceof Error ? error : new Error(String(error)));
        },
      );
    }
  }
}
