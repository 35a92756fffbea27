/**
 * What a node of the cluster knows of its link to Redis, and what it decides
 * around each write (docs/cluster.md#when-redis-fails): the state (`up`,
 * `degraded`, `down`), the outage grace, refused writes, and the outcome told
 * to a sender. No Redis and no Socket.IO: it is told what the link does
 * ({@link ClusterNode.linkClosed}, {@link ClusterNode.linkReady},
 * {@link ClusterNode.watchdogChanged}...), and given each write as a
 * function, so every transition is tested without a server
 * (test/cluster-node.test.ts). `startCluster` (cluster.ts) wires it to the
 * connections, and the adapter (streams-adapter.ts) asks it as its
 * {@link PublicationPolicy}.
 */
import { EventEmitter } from 'node:events';
import createDebug from 'debug';
import type { PublicationOutcome, RedisState } from '../protocol.ts';
import { MissedClusterError, OutageGrace, type PublicationKind } from './outage-grace.ts';
import { refusalReason, WriteRefusals, type WriteRefusalReason } from './refusals.ts';
import type { PublicationPolicy } from './streams-adapter.ts';
import { WriteWaits } from './write-waits.ts';

const debug = createDebug('spicy-action:cluster-node');

/**
 * Longest an answer waits for Redis to take a write when no watchdog runs
 * (`REDIS_TIMEOUT=0`): the most the default watchdog (5 s, × 1.5) takes to
 * see a hung Redis down.
 */
export const UNWATCHED_WRITE_WAIT_MS = 7_500;

/** The answer to a push (or a route removal) whose write waits for Redis, seen down: its fate is not known yet. */
export const HELD: PublicationOutcome = Object.freeze({ ok: true, held: true });

const WRITTEN: PublicationOutcome = Object.freeze({ ok: true });

/**
 * An event Redis refused to write (OOM, READONLY, MISCONF...): it reached
 * this node's clients only.
 */
export class RefusedWriteError extends Error {
  override name = 'RefusedWriteError';
  constructor(
    readonly reason: WriteRefusalReason,
    message: string,
  ) {
    super(message);
  }
}

/** What to tell the sender of an event that did not reach the stream, from why. */
function notWritten(error: unknown): PublicationOutcome {
  if (error instanceof RefusedWriteError) return { ok: false, error: error.message };
  if (error instanceof MissedClusterError) return { ok: false, error: "Redis is down: delivered to this node's clients only" };
  return { ok: false, error: `not published to the cluster: ${(error as Error).message}` };
}

/** A {@link ClusterNode.track} under way. */
interface Tracking {
  readonly answerHeld: boolean;
  /** What became of the write its publication made, once made. */
  outcome?: Promise<PublicationOutcome>;
}

/** What the node reads of the PING watchdog (liveness.ts), and asks of it. */
export interface Watchdog {
  /** No PING answered for REDIS_TIMEOUT. */
  readonly hung: boolean;
  /** When a PING was last answered, in ms since the epoch. */
  readonly answeredAt: number;
  /** Also probe writes, while Redis refuses them (to see the episode end). */
  probeWrites: boolean;
}

/** What the node tells the stream trimmer (stream-trimmer.ts). */
export interface TrimmerSignals {
  accepted(): void;
  refusedForMemory(): void;
}

export interface ClusterNodeOptions {
  /** REDIS_OUTAGE_GRACE, in ms. */
  readonly graceMs: number;
  /** REDIS_TIMEOUT, in ms; 0 when no watchdog runs (answers then wait at most {@link UNWATCHED_WRITE_WAIT_MS}). */
  readonly redisTimeoutMs: number;
  /** How long an answer waits for an unwatched write, in ms ({@link UNWATCHED_WRITE_WAIT_MS} unless given). */
  readonly unwatchedWaitMs?: number;
  readonly watchdog?: Watchdog;
  readonly trimmer?: TrimmerSignals;
}

/** What the node tells. */
export interface ClusterNodeEvents {
  /** The link changed: `'up'`, `'degraded'` (writes refused) or `'down'`. */
  state: [state: RedisState];
  /** `count` more events reached only this node's clients. */
  undelivered: [count: number];
  /** Redis refused one more write, for `reason`. */
  refused: [reason: WriteRefusalReason];
}

/**
 * A node's link state and write decisions.
 *
 * @example
 * const node = new ClusterNode({ graceMs: 30_000, redisTimeoutMs: 5_000, watchdog: liveness });
 * redis.on('close', () => node.linkClosed());
 * redis.on('ready', () => node.linkReady());
 * const outcome = node.track(() => io.to('calls').emit('call', call)); // the adapter calls node.publish inside
 */
export class ClusterNode extends EventEmitter<ClusterNodeEvents> implements PublicationPolicy {
  /** Writes refused, by reason, and their episodes. */
  readonly refusals = new WriteRefusals();
  readonly #options: ClusterNodeOptions;
  readonly #grace: OutageGrace;
  /** The answers waiting for Redis to take a write. */
  readonly #waits: WriteWaits;
  #state: RedisState = 'up';
  /** The main connection is closed (or not yet ready again). */
  #closed = false;
  #closing = false;
  #downSince = 0;
  #lastError = '';
  /** The answers when a write is not answered within the bound (REDIS_TIMEOUT=0 only). */
  readonly #late: { readonly event: PublicationOutcome; readonly route: PublicationOutcome };
  /** The {@link track} under way, and the outcome its publication got. */
  #tracking: Tracking | undefined;

  constructor(options: ClusterNodeOptions) {
    super();
    this.#options = options;
    this.#grace = new OutageGrace(options.graceMs);
    this.#waits = new WriteWaits(options.redisTimeoutMs > 0 ? 0 : (options.unwatchedWaitMs ?? UNWATCHED_WRITE_WAIT_MS));
    const unwatched = `Redis has not answered within ${(options.unwatchedWaitMs ?? UNWATCHED_WRITE_WAIT_MS) / 1000} s (REDIS_TIMEOUT=0: no watchdog)`;
    this.#late = {
      event: { ok: false, error: `${unwatched}: the event waits to be written, and reaches the cluster only if Redis answers` },
      route: { ok: false, error: `${unwatched}: the route change waits to be written, and takes effect only if Redis answers` },
    };
    this.#grace.on('undelivered', (count) => this.emit('undelivered', count));
    this.#grace.on('expired', () => {
      debug("Redis has been down for more than %d s: events now reach only this node's clients, and each is counted until Redis is back", options.graceMs / 1000);
    });
    this.refusals.on('refused', (reason) => this.emit('refused', reason));
    this.refusals.on('refusing', (reason, message) => {
      debug("Redis refuses writes (%s: %s): events reach only this node's clients, and each is counted until Redis takes writes again", reason, message);
      if (options.watchdog) options.watchdog.probeWrites = true;
      this.#update();
    });
    this.refusals.on('accepting', (refused, ms) => {
      debug('Redis takes writes again after %s s; %d writes were refused meanwhile', (ms / 1000).toFixed(1), refused);
      if (options.watchdog) options.watchdog.probeWrites = false;
      this.#update();
    });
  }

  /** `'up'`, `'degraded'` (Redis refuses writes) or `'down'`. */
  get state(): RedisState {
    return this.#state;
  }

  /** Events held for Redis or on their way to it, not yet written. */
  get holding(): number {
    return this.#grace.holding;
  }

  /** Answers waiting for Redis to take their write. */
  get waiting(): number {
    return this.#waits.size;
  }

  // --- What the link does

  /** The main connection closed: down. */
  linkClosed(): void {
    this.#closed = true;
    this.#update();
  }

  /** The main connection is ready (again). */
  linkReady(): void {
    this.#closed = false;
    this.#update();
  }

  /** What the main connection last said went wrong (for the log line of the next outage). */
  linkError(message: string): void {
    this.#lastError = message;
  }

  /** The watchdog saw Redis hang, or answer again. */
  watchdogChanged(): void {
    this.#update();
  }

  /**
   * The watchdog's write probe was taken. It ends an episode of refusals that
   * concern every write (memory, replica, disk); an `'other'` refusal may
   * concern the stream alone (WRONGTYPE...): only an event written ends it.
   */
  writable(): void {
    this.#options.trimmer?.accepted(); // memory for a write: the stream can take events again
    if (this.refusals.reason !== 'other') this.refusals.accepted();
  }

  // --- What the adapter asks (PublicationPolicy)

  /** Writes one message through the grace, accounting for refusals; an event's outcome is kept for {@link track}. */
  publish(kind: PublicationKind, write: () => Promise<string>): Promise<string> {
    let sent: Promise<string> | undefined;
    const send = (): Promise<string> =>
      (sent = write().then(
        (offset) => {
          this.refusals.accepted();
          this.#options.trimmer?.accepted();
          return offset;
        },
        (error: unknown) => {
          const reason = refusalReason(error);
          if (reason === undefined) throw error;
          if (reason === 'oom') this.#options.trimmer?.refusedForMemory();
          this.refusals.refused(reason, (error as Error).message);
          // Delivered to this node's clients by the adapter, and to no other node.
          if (kind === 'event') this.emit('undelivered', 1);
          throw new RefusedWriteError(reason, `Redis refused the event (${(error as Error).message}): delivered to this node's clients only`);
        },
      ));
    const result = this.#grace.publish(kind, send);
    // Only a tracked event is told its fate: nothing more is built for the others, on every publication.
    const tracking = kind === 'event' ? this.#awaitingOutcome() : undefined;
    if (tracking) tracking.outcome = this.#outcomeOf(result, () => sent, tracking.answerHeld);
    return result;
  }

  /** A write nobody waits for failed: a refusal is counted (and logged once per episode), anything else logged. */
  failed(command: string, error: Error): void {
    const reason = refusalReason(error);
    if (reason) this.refusals.refused(reason, error.message);
    else debug('%s failed: %s', command, error.message);
  }

  /** Sessions are restored only while Redis is not down. */
  restorable(): boolean {
    return this.#state !== 'down';
  }

  // --- What the broker asks

  /**
   * Runs `publish` (which emits one event to rooms, or changes a route) and
   * returns what became of its write to Redis, or undefined when nothing
   * was written. With `answerHeld`, the answer is {@link HELD} as soon as
   * the write is known to wait for Redis down; without it, the answer waits
   * for the write's fate. Never rejects; see `Cluster#track`.
   */
  track(publish: () => void, answerHeld = false): Promise<PublicationOutcome> | undefined {
    const outer = this.#tracking;
    const tracking: Tracking = { answerHeld };
    this.#tracking = tracking;
    try {
      publish();
      return tracking.outcome;
    } finally {
      this.#tracking = outer;
    }
  }

  /** A route change's write to Redis: its outcome is kept for {@link track}. */
  routeWritten(write: Promise<void>): void {
    const tracking = this.#awaitingOutcome();
    if (tracking) tracking.outcome = this.#routeOutcome(write, tracking.answerHeld);
  }

  /**
   * Before the sockets close: releases the events held for Redis to this
   * node's clients, counting each as undelivered; resolves with how many,
   * once the adapter has had the turn it delivers them in.
   */
  async drain(): Promise<number> {
    // With Redis up, what is in flight is being written: the cluster gets it.
    if (this.#state !== 'down') return 0;
    const released = this.#grace.close();
    if (released > 0) {
      debug("stopping with Redis down: %d held events delivered to this node's clients only, not to the cluster", released);
      // The adapter delivers released events in the microtasks that follow; let them reach the sockets.
      await new Promise((resolve) => setImmediate(resolve));
    }
    return released;
  }

  /** The node stops: the state changes no more, and what is still held is released (and counted). */
  close(): void {
    this.#closing = true;
    this.#grace.close();
  }

  /** The {@link track} under way, if its publication's outcome is not set yet (the first write decides). */
  #awaitingOutcome(): Tracking | undefined {
    return this.#tracking?.outcome === undefined ? this.#tracking : undefined;
  }

  /**
   * What to tell the sender of an event being published as `result`, whose
   * write to Redis, once sent, is `sent()`: its fate (in the stream, refused,
   * or released to this node's clients only), however long Redis takes.
   */
  #outcomeOf(result: Promise<string>, sent: () => Promise<string> | undefined, answerHeld: boolean): Promise<PublicationOutcome> {
    const fate = result.then(
      () => WRITTEN,
      (error: unknown): PublicationOutcome | Promise<PublicationOutcome> => {
        // Released by the grace after its write was sent: that write may still reach the stream, and decides.
        const write = error instanceof MissedClusterError ? sent() : undefined;
        return write === undefined ? notWritten(error) : write.then(() => WRITTEN, notWritten);
      },
    );
    return this.#answer(fate, answerHeld && !this.#grace.expired, this.#late.event);
  }

  /** What to tell the sender of a route change whose write to Redis is `write`. */
  #routeOutcome(write: Promise<void>, answerHeld: boolean): Promise<PublicationOutcome> {
    const fate = write.then(
      () => WRITTEN,
      (error: unknown): PublicationOutcome => ({ ok: false, error: `Redis refused the route (${(error as Error).message}): the route is unchanged` }),
    );
    return this.#answer(fate, answerHeld, this.#late.route);
  }

  /** `fate`, or {@link HELD} first when `answerHeld` and Redis is (or is then seen) down. */
  #answer(fate: Promise<PublicationOutcome>, answerHeld: boolean, late: PublicationOutcome): Promise<PublicationOutcome> {
    if (this.#state !== 'down') return this.#waits.wait(fate, { late, down: answerHeld ? HELD : undefined });
    // Redis is known down: no bound, the fate comes with Redis back, the grace's end, or the node's.
    return answerHeld ? Promise.resolve(HELD) : fate;
  }

  #setState(state: RedisState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.emit('state', state);
  }

  /** Up, degraded or down, from what is known of the link. */
  #update(): void {
    if (this.#closing) return;
    const watchdog = this.#options.watchdog;
    const down = this.#closed || (watchdog?.hung ?? false);
    const before = this.#state;
    if (down && before !== 'down') {
      // The outage began when Redis last answered, which for a hang is a REDIS_TIMEOUT before it is seen.
      this.#downSince = Math.min(Date.now(), watchdog?.answeredAt ?? Date.now());
      this.#grace.down();
      this.#setState('down');
      this.#waits.down();
      const why = watchdog?.hung && !this.#closed ? `no answer within ${this.#options.redisTimeoutMs / 1000} s` : this.#lastError || 'connection closed';
      debug('Redis is down (%s): holding events for up to %d s; still accepting connections', why, this.#options.graceMs / 1000);
      return;
    }
    if (down) return;
    if (before === 'down') {
      const seconds = ((Date.now() - this.#downSince) / 1000).toFixed(1);
      const missed = this.#grace.missedThisOutage;
      const late = this.#grace.expired;
      this.#setState(this.refusals.refusing ? 'degraded' : 'up');
      this.#grace.up();
      this.#lastError = '';
      if (late) debug("Redis is up again after %s s; %d events published meanwhile reached only this node's clients", seconds, missed);
      else debug('Redis is up again after %s s; events held meanwhile are delivered now', seconds);
      return;
    }
    this.#setState(this.refusals.refusing ? 'degraded' : 'up');
  }
}
