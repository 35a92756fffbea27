/**
 * The answers that wait for Redis to take a write (acknowledgements of routed
 * events and of `register`, the cluster's `/_notify` answers), each settled by
 * the first of:
 * - the write's own outcome;
 * - Redis seen down ({@link WriteWaits.down}), for an answer that has
 *   something true to say then: an HTTP push is told that its event is held.
 *   A socket's acknowledgement has not, and waits on for its write;
 * - a bound when nothing watches Redis (`REDIS_TIMEOUT=0`: a hung Redis is
 *   then never seen down, and without the bound an answer could wait for ever).
 *
 * Each wait is kept only until it is answered: a wait settled by its write
 * leaves nothing behind (no reaction on a promise shared by every wait, no
 * timer), so a node that answers millions of acknowledgements while Redis is
 * up holds none of them. Pure logic, no Redis.
 */
import type { PublicationOutcome } from '../protocol.ts';

/** What to answer instead of the write's outcome. */
export interface EarlyAnswers {
  /** When the bound passes first (REDIS_TIMEOUT=0 only). */
  readonly late: PublicationOutcome;
  /** When Redis is seen down first; without it, the wait goes on until the write settles. */
  readonly down?: PublicationOutcome;
}

/** One answer still waiting. */
interface Waiting {
  readonly answers: EarlyAnswers;
  settle(outcome: PublicationOutcome): void;
}

/**
 * The waits in flight.
 *
 * @example
 * const waits = new WriteWaits();
 * const ack = waits.wait(written, { late }); // written's outcome, whatever happens meanwhile
 * const push = waits.wait(written, { late, down: { ok: true, held: true } });
 * waits.down(); // answers `push` now; `ack` waits on for its write
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

  /** `written`'s outcome, or one of `answers` if what it is for comes first. Never rejects. */
  wait(written: Promise<PublicationOutcome>, answers: EarlyAnswers): Promise<PublicationOutcome> {
    return new Promise<PublicationOutcome>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const entry: Waiting = {
        answers,
        settle: (outcome) => {
          if (!this.#waiting.delete(entry)) return;
          if (timer !== undefined) clearTimeout(timer);
          resolve(outcome);
        },
      };
      this.#waiting.add(entry);
      if (this.#boundMs > 0) {
        timer = setTimeout(() => entry.settle(answers.late), this.#boundMs);
        timer.unref();
      }
      written.then(
        (outcome) => entry.settle(outcome),
        (error: unknown) => entry.settle({ ok: false, error: error instanceof Error ? error.message : String(error) }),
      );
    });
  }

  /** Redis is seen down: every wait that has a `down` answer gets it now. */
  down(): void {
    for (const entry of [...this.#waiting]) if (entry.answers.down !== undefined) entry.settle(entry.answers.down);
  }
}
