/**
 * How long to wait before trying Redis again, after `attempt` failures in a
 * row: a reconnection, a round over the Sentinels, a stream read. Growing in
 * steps, so that a short blip costs little, and capped, so that a Redis back
 * after a long outage is found within a second. Never "give up": every
 * attempt has a delay. Pure.
 */

/** The delay added by each failure, in ms. */
export const BACKOFF_STEP_MS = 100;
/** The longest delay, in ms. */
export const BACKOFF_MAX_MS = 1_000;

/**
 * The delay before attempt number `attempt` (1 for the first retry).
 *
 * @example
 * backoffMs(1); // 100
 * backoffMs(50); // 1000
 */
export function backoffMs(attempt: number): number {
  const steps = Math.max(1, Math.floor(attempt) || 1);
  return Math.min(BACKOFF_STEP_MS * steps, BACKOFF_MAX_MS);
}
