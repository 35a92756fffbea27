/**
 * Sessions kept for connection state recovery, counted in bytes
 * (docs/security.md#nothing-held-for-a-stranger): every 4.x socket that drops
 * leaves a session holding its rooms for `RECOVERY_WINDOW`, up to
 * `MAX_ROOMS_PER_SOCKET` names of `MAX_ROOM_NAME_LENGTH` each. The
 * bookkeeping alone, pure (no Socket.IO, the clock given): what a session
 * costs ({@link sessionBytes}) and which fit under the caps per client
 * address and in total ({@link KeptSessions}). src/recovery-sessions.ts
 * hooks it into the adapter.
 */
import { Budget, type BudgetCaps } from './budget.ts';

/** What a kept session costs besides its rooms: its ids, its object, its entry in the table. */
export const SESSION_BYTES = 300;
/** What each room of a kept session costs besides its characters: the string, its slot in the session, its entry in the room index (whose hash table may be twice the size of its entries). */
export const ROOM_BYTES = 100;

/**
 * What a kept session holding `rooms` costs, in bytes of heap (one byte a
 * character: room names are ASCII in practice, and a string of other
 * characters costs two; the estimate errs on the heavy side otherwise).
 *
 * @example
 * sessionBytes(['calls', 'endpoint:alice@example.net']); // 300 + 2 × 100 + 31
 */
export function sessionBytes(rooms: unknown): number {
  let bytes = SESSION_BYTES;
  if (!Array.isArray(rooms)) return bytes;
  for (const room of rooms) bytes += ROOM_BYTES + (typeof room === 'string' ? room.length : 0);
  return bytes;
}

/** What the budget reports, read by tests and metrics. */
export interface KeptSessionsState {
  /** Sessions counted now. */
  readonly sessions: number;
  /** Their bytes ({@link sessionBytes}). */
  readonly bytes: number;
  /** Dropped sockets that kept no session since start. */
  readonly refused: number;
}

/** One counted session. */
interface Kept {
  readonly address: string;
  readonly bytes: number;
  readonly until: number;
}

/**
 * Kept sessions by their private id, counted per client address and in total
 * for `windowMs` after they were kept (as long as the adapter keeps them).
 *
 * @example
 * const kept = new KeptSessions({ perAddress: 1_000, total: 5_000 }, 120_000);
 * kept.keep('pid1', '10.0.0.1', 600, Date.now()); // true
 * kept.keep('pid2', '10.0.0.1', 600, Date.now()); // false: 1,200 bytes for one address
 */
export class KeptSessions {
  readonly #budget: Budget;
  // In the order they were kept (a session kept again moves to the end), so that expiry looks at the front only.
  readonly #kept = new Map<string, Kept>();
  #refused = 0;

  constructor(caps: BudgetCaps, readonly windowMs: number) {
    this.#budget = new Budget(caps);
  }

  /**
   * Counts the session `pid` of `address`, costing `bytes`, kept at `now`,
   * if it fits; a session `pid` already counted is replaced (whether or not
   * the new one fits). False when it does not fit: it must not be kept.
   */
  keep(pid: string, address: string, bytes: number, now: number): boolean {
    this.expire(now);
    this.forget(pid);
    if (this.#budget.take(address, bytes) !== undefined) {
      this.#refused++;
      return false;
    }
    this.#kept.set(pid, { address, bytes, until: now + this.windowMs });
    return true;
  }

  /** Stops counting the session `pid`. */
  forget(pid: string): void {
    const kept = this.#kept.get(pid);
    if (kept === undefined) return;
    this.#kept.delete(pid);
    this.#budget.give(kept.address, kept.bytes);
  }

  /** Stops counting the sessions whose window is over at `now`. */
  expire(now: number): void {
    for (const [pid, kept] of this.#kept) {
      if (kept.until > now) break;
      this.#kept.delete(pid);
      this.#budget.give(kept.address, kept.bytes);
    }
  }

  /** What is counted now (after expiring what is over at `now`). */
  state(now: number): KeptSessionsState {
    this.expire(now);
    return { sessions: this.#kept.size, bytes: this.#budget.total, refused: this.#refused };
  }

  /** Bytes counted for `address` now. */
  heldBy(address: string): number {
    return this.#budget.heldBy(address);
  }
}
