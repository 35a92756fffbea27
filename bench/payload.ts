/**
 * The events the bench sends: the sample `call` of test/helpers/payloads.ts,
 * stamped so that receivers can count and time it.
 */
import { SAMPLE_CALL } from '../test/helpers/payloads.ts';

/** What the bench adds to each event so receivers can count and time it. */
export interface BenchStamp {
  /** Which measurement run sent it. */
  run: number;
  /** 1, 2, ... within the run. */
  seq: number;
  /** Wall-clock send time, ms (`performance.timeOrigin + performance.now()`). */
  t: number;
}

/**
 * The sample `call` event (about 0.5 KB of JSON), stamped.
 *
 * @example
 * JSON.stringify(callEvent({ run: 1, seq: 1, t: 0 })).length; // about 500
 */
export function callEvent(stamp: BenchStamp): Record<string, unknown> {
  return { ...SAMPLE_CALL, bench: stamp };
}
