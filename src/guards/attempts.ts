/**
 * Failed authentications by source address (docs/security.md#failed-attempts):
 * past a number a minute, an address's attempts are refused without their
 * secret being checked, until its minute is over. Pure: the clock is given.
 */
import type { Refusal } from '../protocol.ts';

/** The refusal of an attempt from an address past its limit: HTTP 429, Socket.IO's `connect_error`. */
export const TOO_MANY_ATTEMPTS: Refusal = Object.freeze({ reason: 'too_many_attempts', error: 'too many failed attempts; try again later' });

/** The length of the window the limit counts in. */
export const ATTEMPT_WINDOW_MS = 60_000;
/** Addresses tracked at most; past it, those whose window is over are forgotten first, then the oldest. */
const MAX_TRACKED_ADDRESSES = 100_000;

interface Window {
  start: number;
  failures: number;
}

/** What recording a failure found. */
export interface FailureRecord {
  /** True for the failure that puts the address past its limit: the one to log, once per episode. */
  readonly episodeStarts: boolean;
  readonly failures: number;
}

export class FailedAttempts {
  readonly #limit: number;
  readonly #now: () => number;
  readonly #windows = new Map<string, Window>();

  /** `limit` failures a minute per address; `now` reads the clock (ms). */
  constructor(limit: number, now: () => number = Date.now) {
    this.#limit = limit;
    this.#now = now;
  }

  /** True when `address` is past its limit in its current minute: refuse its attempt unchecked. */
  blocked(address: string | undefined): boolean {
    const window = this.#current(address ?? '');
    return window !== undefined && window.failures >= this.#limit;
  }

  /** Records a failed attempt of `address`. */
  failed(address: string | undefined): FailureRecord {
    const key = address ?? '';
    let window = this.#current(key);
    if (window === undefined) {
      if (this.#windows.size >= MAX_TRACKED_ADDRESSES) this.#forget();
      window = { start: this.#now(), failures: 0 };
      this.#windows.set(key, window);
    }
    window.failures++;
    return { episodeStarts: window.failures === this.#limit, failures: window.failures };
  }

  /** Addresses tracked now (for tests and the memory bound). */
  get size(): number {
    return this.#windows.size;
  }

  #current(key: string): Window | undefined {
    const window = this.#windows.get(key);
    if (window === undefined) return undefined;
    if (this.#now() - window.start < ATTEMPT_WINDOW_MS) return window;
    this.#windows.delete(key);
    return undefined;
  }

  #forget(): void {
    const now = this.#now();
    for (const [key, window] of this.#windows) if (now - window.start >= ATTEMPT_WINDOW_MS) this.#windows.delete(key);
    // Still full: the oldest windows go (a Map iterates in insertion order).
    for (const key of this.#windows.keys()) {
      if (this.#windows.size < MAX_TRACKED_ADDRESSES) break;
      this.#windows.delete(key);
    }
  }
}
