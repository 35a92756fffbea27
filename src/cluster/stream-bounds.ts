/**
 * How much of the cluster's event stream Redis keeps, in time and in bytes
 * (docs/cluster.md): entries older than what anyone may still read are
 * trimmed ({@link streamKeepMs}, {@link minTrimId}), and no one client may put
 * more than so many bytes a second in it ({@link ByteBudget}). Pure: no Redis.
 */

/** Entries are kept at least this long, in ms, whatever the settings: a node's reader may lag a little behind. */
export const MIN_STREAM_KEEP_MS = 5_000;
/** A client's budget is forgotten once unused for this long, in ms: a second refills it, so it is full again by then. */
const IDLE_FORGET_MS = 1_000;
/** At most one sweep of forgotten budgets per this many ms. */
const SWEEP_EVERY_MS = 10_000;

/**
 * How long stream entries must be kept, in ms: a 4.x session may recover
 * events for the recovery window, and a node that lost Redis for up to the
 * outage grace reads on from where it stopped.
 *
 * @example
 * streamKeepMs({ recoveryWindowMs: 120_000, redisOutageGraceMs: 30_000 }); // 120000
 */
export function streamKeepMs(settings: { readonly recoveryWindowMs: number; readonly redisOutageGraceMs: number }): number {
  return Math.max(settings.recoveryWindowMs, settings.redisOutageGraceMs, MIN_STREAM_KEEP_MS);
}

/**
 * The `MINID` below which entries may be trimmed, given Redis's clock (stream
 * ids are Redis's milliseconds, so the node's own clock does not matter).
 *
 * @example
 * minTrimId(1_700_000_120_000, 120_000); // '1700000000000-0'
 */
export function minTrimId(redisNowMs: number, keepMs: number): string {
  return `${Math.max(0, Math.floor(redisNowMs - keepMs))}-0`;
}

/** What {@link ByteBudget.take} decides. */
export type BudgetDecision =
  /** Within the budget: the bytes are counted. */
  | 'taken'
  /** Over the budget, the first refusal since the client was last within it: log it. */
  | 'refused-first'
  /** Over the budget again, in the same episode. */
  | 'refused';

/** One client's bucket. */
interface Bucket {
  /** Bytes it may still put now. */
  tokens: number;
  /** When `tokens` was last brought up to date, in ms. */
  at: number;
  /** Refused since it was last within budget. */
  refusing: boolean;
}

/**
 * A byte budget per client: `bytesPerSecond`, with a burst of one second's
 * worth, refilled continuously (a token bucket). An event larger than a
 * second's worth is always refused. Memory stays bounded: a client unseen for
 * a minute is forgotten (its bucket would be full anyway).
 *
 * @example
 * const budget = new ByteBudget(1_000_000);
 * budget.take('10.0.0.5', 600_000, Date.now()); // 'taken'
 * budget.take('10.0.0.5', 600_000, Date.now()); // 'refused-first'
 */
export class ByteBudget {
  readonly #rate: number;
  readonly #buckets = new Map<string, Bucket>();
  #lastSweep = 0;
  /** Events refused since start. */
  refused = 0;

  /** `bytesPerSecond` 0 turns the budget off: everything is taken. */
  constructor(readonly bytesPerSecond: number) {
    this.#rate = bytesPerSecond / 1000;
  }

  /** Clients with a bucket now (for tests: memory stays bounded). */
  get clients(): number {
    return this.#buckets.size;
  }

  /** Counts `bytes` from `client` at `now` (ms), or refuses them. */
  take(client: string, bytes: number, now: number): BudgetDecision {
    if (this.bytesPerSecond <= 0) return 'taken';
    this.#sweep(now);
    let bucket = this.#buckets.get(client);
    if (bucket === undefined) {
      bucket = { tokens: this.bytesPerSecond, at: now, refusing: false };
      this.#buckets.set(client, bucket);
    } else {
      bucket.tokens = Math.min(this.bytesPerSecond, bucket.tokens + Math.max(0, now - bucket.at) * this.#rate);
      bucket.at = Math.max(bucket.at, now);
    }
    if (bytes <= bucket.tokens) {
      bucket.tokens -= bytes;
      bucket.refusing = false;
      return 'taken';
    }
    this.refused++;
    if (bucket.refusing) return 'refused';
    bucket.refusing = true;
    return 'refused-first';
  }

  /** Forgets clients idle long enough for their bucket to be full again. */
  #sweep(now: number): void {
    if (now - this.#lastSweep < SWEEP_EVERY_MS) return;
    this.#lastSweep = now;
    for (const [client, bucket] of this.#buckets) {
      if (now - bucket.at > IDLE_FORGET_MS) this.#buckets.delete(client);
    }
  }
}
