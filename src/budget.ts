/**
 * Budgets: what strangers may make the broker hold, counted per client
 * address and in total, and the refusals past them told once per episode.
 * Pure bookkeeping (no Socket.IO, Express or timers): the guards that hold
 * pending handshakes (src/guards/pending-handshakes.ts), request bodies in
 * flight (src/http/body-budget.ts) and sessions kept for recovery
 * (src/recovery-backlog.ts) each keep one.
 */

/** What a client's address is read from: the request that brought it. */
export interface AddressedRequest {
  readonly socket?: { readonly remoteAddress?: string | undefined } | null | undefined;
  readonly headers: { readonly [name: string]: string | string[] | undefined };
}

/**
 * Who sent a request, for every budget counted per client address: the
 * broker gives its guards one such function (src/server.ts), so that all of
 * them agree on who a client is.
 */
export type AddressOf = (req: AddressedRequest) => string;

/** Stands for a request whose peer address is unknown (its socket already closed). */
export const UNKNOWN_ADDRESS = 'unknown';

/**
 * The TCP peer's address.
 *
 * @example
 * peerAddress(req); // '10.0.0.7'
 */
export const peerAddress: AddressOf = (req) => req.socket?.remoteAddress ?? UNKNOWN_ADDRESS;

/** The two caps of a budget, in its own unit (sessions, bytes). */
export interface BudgetCaps {
  /** Most one client address may hold at once. */
  readonly perAddress: number;
  /** Most all clients together may hold at once. */
  readonly total: number;
}

/** Which cap a refused amount would have passed. */
export type BudgetRefusal = 'per_address' | 'total';

/**
 * Amounts held per key (a client address) under a cap per key and a cap in
 * total. `take` either takes all of an amount or nothing; `give` returns
 * what was taken.
 *
 * @example
 * const budget = new Budget({ perAddress: 2, total: 3 });
 * budget.take('10.0.0.1', 2); // undefined: taken
 * budget.take('10.0.0.1', 1); // 'per_address': refused, nothing taken
 * budget.take('10.0.0.2', 2); // 'total': refused
 * budget.give('10.0.0.1', 2);
 */
export class Budget {
  readonly #held = new Map<string, number>();
  #total = 0;

  constructor(readonly caps: BudgetCaps) {}

  /** What taking `amount` for `key` would pass, or undefined when it fits. */
  check(key: string, amount: number): BudgetRefusal | undefined {
    if ((this.#held.get(key) ?? 0) + amount > this.caps.perAddress) return 'per_address';
    if (this.#total + amount > this.caps.total) return 'total';
    return undefined;
  }

  /** Takes `amount` for `key` when it fits both caps; otherwise takes nothing and says which cap it would pass. */
  take(key: string, amount: number): BudgetRefusal | undefined {
    const refusal = this.check(key, amount);
    if (refusal !== undefined) return refusal;
    if (amount > 0) {
      this.#held.set(key, (this.#held.get(key) ?? 0) + amount);
      this.#total += amount;
    }
    return undefined;
  }

  /** Returns `amount` that `key` took (never more than it holds). */
  give(key: string, amount: number): void {
    const held = this.#held.get(key);
    if (held === undefined || amount <= 0) return;
    const returned = Math.min(held, amount);
    if (held - returned > 0) this.#held.set(key, held - returned);
    else this.#held.delete(key);
    this.#total -= returned;
  }

  /** What `key` holds now. */
  heldBy(key: string): number {
    return this.#held.get(key) ?? 0;
  }

  /** What all keys hold now. */
  get total(): number {
    return this.#total;
  }

  /** How many keys hold something. */
  get holders(): number {
    return this.#held.size;
  }
}

/** How long refusals must pause before the next one starts a new episode (and is logged again). */
export const EPISODE_QUIET_MS = 60_000;

/**
 * Refusals grouped into episodes: a refusal starts one unless the previous
 * came less than `quietMs` before. A flood of refusals is thus logged once
 * when it starts, with the count of the one before, not once per refusal.
 *
 * @example
 * const episodes = new RefusalEpisodes();
 * episodes.refused(0); // { starts: true, previous: 0 }
 * episodes.refused(10); // { starts: false, ... }
 * episodes.refused(120_000); // { starts: true, previous: 2 }
 */
export class RefusalEpisodes {
  #last = -Infinity;
  #inEpisode = 0;
  #count = 0;

  constructor(readonly quietMs: number = EPISODE_QUIET_MS) {}

  /** Records a refusal at `now` (ms): whether it starts an episode, and how many the previous episode had. */
  refused(now: number): { readonly starts: boolean; readonly previous: number } {
    const starts = now - this.#last >= this.quietMs;
    const previous = starts ? this.#inEpisode : 0;
    if (starts) this.#inEpisode = 0;
    this.#inEpisode++;
    this.#count++;
    this.#last = now;
    return { starts, previous };
  }

  /** Refusals since the start. */
  get count(): number {
    return this.#count;
  }
}
