/**
 * Seeds whose schedules broke a promise, or that the checker itself could not
 * judge: each runs first in every model-checker run, with the bounds it was
 * found with, so that the defect stays fixed once it is.
 */
import { LONG_BOUNDS, SHORT_BOUNDS, type ScheduleBounds } from './schedule.ts';

export interface Regression {
  readonly seed: number;
  readonly bounds: ScheduleBounds;
  /** What it broke, in a few words. */
  readonly found: string;
}

export const REGRESSIONS: readonly Regression[] = [
  { seed: 1, bounds: SHORT_BOUNDS, found: "stream order: a node's clients get its own publications ahead of earlier ones of other nodes" },
  { seed: 13, bounds: LONG_BOUNDS, found: 'an event Redis refused (maxmemory) acknowledged {ok: true}' },
  { seed: 15, bounds: LONG_BOUNDS, found: 'a gap under recovered: true with a stream of 2,000 trimmed while the client was away' },
  { seed: 41312671, bounds: SHORT_BOUNDS, found: 'events held for a Redis seen hung on a starved CPU, then refused (maxmemory), acknowledged {ok: true}' },
  { seed: 687201238, bounds: SHORT_BOUNDS, found: "a client missed 113 events its node had counted 63 of: the node's count of entries trimmed unread waited while entries kept coming" },
  { seed: 6038982, bounds: SHORT_BOUNDS, found: "not judged: the burst after a 1.7 s pause, longer than the stream, trimmed before the checker's reader read it" },
  { seed: 252983784, bounds: SHORT_BOUNDS, found: "no fault, one event a node took missing from the record: the run ended without waiting for every node's last writes (did not reproduce)" },
];
