/**
 * The answers that wait for Redis to take a write (acknowledgements of routed
 * events and of `register`, the cluster's `/_notify` answers), each settled by
 * the first of: the write's own outcome, Redis seen down ({@link WriteWaits.down}),
 * or a bound when nothing watches Redis (`REDIS_TIMEOUT=0`: a hung Redis is
 * then never seen down, and without the bound an answer could wait for ever).
 *
 * Each wait is kept only until it is answered: a wait settled by its write
 * leaves nothing behind (no reaction on a promise shared by every wait, no
 * timer), so a node that answers millions of acknowledgements while Redis is
 * up holds none of them. Pure logic, no Redis.
 */
import type { PublicationOutcome } from '../protocol.ts';

/** One answer still waiting: how to settle it when Redis is seen down or its bound passes. */
interface Waiting {
  readonly whenDown: PublicationOutcome;
  settle(outcome: PublicationOutcome): void;
}

/**
 * The waits in flight.
 *
 * @example
 * const waits = new WriteWaits();
 * const answer = waits.wait(written, { ok: true }); // written's outcome, or { ok: true } once Redis is seen down
 * waits.down(); // answers every wait still pending with its own "held" outcome
 */
export class WriteWaits {
  readonly #waiting = new Set<Waiting>();
  readonly #boundMs: number;

  /** @param boundMs longest wait for a write, 0 for none (when a watchdog sees a hung Redis as down instead) */
  constructor(boundMs = 0) {
    this.#boundMs = boundMs;
  }

  /** The longest wait for a write, 0 for none. */
  get boundMs(): number {
    return this.#boundMs;
  }

  /** How many answers wait now. */
  get size(): number {
    return this.#waiting.size;
  }

  /**
   * `written`'s outcome, or `whenDown` if Redis is seen down first, or
   * `whenLate` if the bound passes first. Never rejects.
   */
  wait(written: Promise<PublicationOutcome>, whenDown: PublicationOutcome, whenLate: PublicationOutcome = whenDown): Promise<PublicationOutcome> {
    return new Promise<PublicationOutcome>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const entry: Waiting = {
        whenDown,
        settle: (outcome) => {
          if (!this.#waiting.delete(entry)) return;
          if (timer !== undefined) clearTimeout(timer);
          resolve(outcome);
        },
      };
      this.#waiting.add(entry);
      if (this.#boundMs > 0) {
        timer = setTimeout(() => entry.settle(whenLate), this.#boundMs);
        timer.unref();
      }
      written.then(
        (outcome) => entry.settle(outcome),
        (error: unknown) => entry.settle({ ok: false, error: error instanceof Error ? error.message : String(error) }),
      );
    });
  }

  /** Redis is seen down: every wait still pending gets its `whenDown` answer now (its event is held). */
  down(): void {
    for (const entry of [...this.#waiting]) entry.settle(entry.whenDown);
  }
}
