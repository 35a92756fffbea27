/**
 * What happens to events while Redis is down (docs/cluster.md#when-redis-fails). Pure: no
 * Redis, no Socket.IO; the cluster hands it each publication as a function
 * that writes the event to the stream.
 *
 * The cluster's adapter delivers an event, even to the node's own clients,
 * only once it reads it back from the stream (src/cluster/streams-adapter.ts).
 * So while the link is down:
 * - within the grace, events are held here, in order, and written once the
 *   link is back: delayed, nothing lost, order kept;
 * - when the grace runs out, every held event is released for local delivery
 *   (its publication rejects, and the adapter then serves the node's own
 *   clients), and from then on every event is released at once, until the
 *   link is back. Each event released so has missed the cluster: it is counted.
 *
 * Messages addressed to one socket of this node (`welcome`, `configured`,
 * `failed`) never wait for Redis while it is down: their only receiver is here.
 */
import { EventEmitter } from 'node:events';

/** How a publication is treated during an outage. */
export type PublicationKind =
  /** An event for rooms (buses, `_in` rooms): held within the grace, then local only and counted. */
  | 'event'
  /** An event for a single socket of this node: delivered locally at once while Redis is down. */
  | 'direct'
  /** Anything else (cluster requests, heartbeats): passed through to the Redis client untouched. */
  | 'other';

/**
 * An event the grace gave up on: it reached this node's clients only.
 *
 * @example
 * grace.publish('event', send).catch((error) => error instanceof MissedClusterError); // true past the grace
 */
export class MissedClusterError extends Error {
  override name = 'MissedClusterError';
}

/** What the grace tells the cluster. */
export interface OutageGraceEvents {
  /** The grace ran out with the link still down: from now on, events reach this node's clients only. */
  expired: [];
  /** `count` more events missed the cluster (reached this node's clients only). */
  undelivered: [count: number];
}

interface Pending {
  readonly kind: PublicationKind;
  readonly resolve: (offset: string) => void;
  readonly reject: (error: Error) => void;
  /** Writes the event to Redis; absent once it was handed to the Redis client. */
  send?: () => Promise<string>;
}

/**
 * Holds, releases and counts publications around Redis outages.
 *
 * @example
 * const grace = new OutageGrace(30_000);
 * grace.on('undelivered', (n) => counter.inc(n));
 * redis.on('close', () => grace.down());
 * redis.on('ready', () => grace.up());
 * adapter.doPublish = (message) => grace.publish('event', () => xadd(message));
 */
export class OutageGrace extends EventEmitter<OutageGraceEvents> {
  readonly #graceMs: number;
  #linkUp = true;
  #expired = false;
  #timer: NodeJS.Timeout | undefined;
  /** Held while the link is down, in publication order. */
  #held: Pending[] = [];
  /** Handed to the Redis client, not yet answered. */
  readonly #inflight = new Set<Pending>();
  #missed = 0;

  constructor(graceMs: number) {
    super();
    this.#graceMs = graceMs;
  }

  /** True while the link is down and the grace has run out: events reach this node's clients only. */
  get expired(): boolean {
    return this.#expired;
  }

  /** Events that missed the cluster in the current (or last) outage. */
  get missedThisOutage(): number {
    return this.#missed;
  }

  /**
   * Publishes through `send` (which writes to Redis and resolves with the
   * stream offset), or holds, or rejects with {@link MissedClusterError} for
   * local delivery, as the link and the grace allow.
   */
  publish(kind: PublicationKind, send: () => Promise<string>): Promise<string> {
    if (kind === 'other') return send();
    if (!this.#linkUp && (this.#expired || kind === 'direct')) {
      if (kind === 'event') this.#count(1);
      return Promise.reject(new MissedClusterError('Redis is down'));
    }
    return new Promise<string>((resolve, reject) => {
      const pending: Pending = { kind, resolve, reject, send };
      if (this.#linkUp) this.#send(pending);
      else this.#held.push(pending);
    });
  }

  /** The link to Redis is lost: hold events for the grace. */
  down(): void {
    if (!this.#linkUp) return;
    this.#linkUp = false;
    this.#missed = 0;
    this.#timer = setTimeout(() => this.#expire(), this.#graceMs);
    this.#timer.unref();
  }

  /** The link to Redis is back: write what was held, in order, and publish normally again. */
  up(): void {
    if (this.#linkUp) return;
    this.#linkUp = true;
    this.#expired = false;
    clearTimeout(this.#timer);
    const held = this.#held;
    this.#held = [];
    for (const pending of held) this.#send(pending);
  }

  /** Events held or in flight now (not yet written to Redis, nor released). */
  get holding(): number {
    let events = 0;
    for (const pending of [...this.#inflight, ...this.#held]) if (pending.kind === 'event') events++;
    return events;
  }

  /**
   * On shutdown: stops the grace timer, and releases every event still held
   * or in flight for local delivery, in order, counting each as missing the
   * cluster (nothing is dropped silently). Returns how many events were
   * released; from now on, every publication is released at once.
   */
  close(): number {
    clearTimeout(this.#timer);
    this.#linkUp = false;
    this.#expired = true;
    const before = this.#missed;
    this.#releaseAll();
    return this.#missed - before;
  }

  #send(pending: Pending): void {
    const send = pending.send as () => Promise<string>;
    pending.send = undefined;
    this.#inflight.add(pending);
    send().then(
      (offset) => {
        if (this.#inflight.delete(pending)) pending.resolve(offset);
      },
      (error: unknown) => {
        if (this.#inflight.delete(pending)) pending.reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  }

  #expire(): void {
    this.#expired = true;
    this.emit('expired');
    this.#releaseAll();
  }

  /**
   * Rejects what is held and what is in flight, oldest first, so that the
   * adapter delivers them locally in order. Events still in the Redis client's
   * queues may yet reach the other nodes when Redis is back (late, not twice).
   */
  #releaseAll(): void {
    const released = [...this.#inflight, ...this.#held];
    this.#inflight.clear();
    this.#held = [];
    let events = 0;
    for (const pending of released) {
      if (pending.kind === 'event') events++;
      pending.reject(new MissedClusterError('Redis is down'));
    }
    if (events > 0) this.#count(events);
  }

  #count(n: number): void {
    this.#missed += n;
    this.emit('undelivered', n);
  }
}
