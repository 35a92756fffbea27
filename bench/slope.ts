/**
 * The soak's verdict (bench/soak.ts), pure: a least-squares line through
 * memory samples, its slope per hour and per million events, and whether it
 * says the memory keeps growing.
 */

/** One sample of one process: when, how many events had been published by then, its memory after a full GC. */
export interface MemorySample {
  /** Seconds since the load started. */
  readonly seconds: number;
  readonly events: number;
  readonly heapBytes: number;
  readonly rssBytes: number;
}

/** Growth of one measure: bytes per hour and bytes per event (the same fit, against time and against events). */
export interface Growth {
  readonly bytesPerHour: number;
  readonly bytesPerEvent: number;
}

/** How much growth per event is taken as a leak: the defect the soak exists for leaked about 340 B per acknowledged event. */
export const LEAK_LIMITS = {
  /** Heap after a full GC: more than this per published event, sustained, is a leak (a plain load measured 6 to 9 B, GC noise). */
  heapBytesPerEvent: 20,
  /** Resident memory: looser, for the allocator's pools and fragmentation. */
  rssBytesPerEvent: 150,
} as const;

/**
 * The slope of the least-squares line through (x, y).
 *
 * @example
 * slope([0, 1, 2], [5, 7, 9]); // 2
 */
export function slope(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  if (n < 2) return 0;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (x[i]! - mx) * (y[i]! - my);
    den += (x[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** Heap and RSS growth over `samples`. */
export function growth(samples: readonly MemorySample[]): { heap: Growth; rss: Growth } {
  const hours = samples.map((s) => s.seconds / 3_600);
  const events = samples.map((s) => s.events);
  const of = (pick: (s: MemorySample) => number): Growth => {
    const y = samples.map(pick);
    return { bytesPerHour: slope(hours, y), bytesPerEvent: slope(events, y) };
  };
  return { heap: of((s) => s.heapBytes), rss: of((s) => s.rssBytes) };
}

/** What is wrong with `g`, or an empty list. */
export function leaks(g: { heap: Growth; rss: Growth }): string[] {
  const found: string[] = [];
  if (g.heap.bytesPerEvent > LEAK_LIMITS.heapBytesPerEvent) found.push(`heap grows ${g.heap.bytesPerEvent.toFixed(0)} B per event (limit ${LEAK_LIMITS.heapBytesPerEvent})`);
  if (g.rss.bytesPerEvent > LEAK_LIMITS.rssBytesPerEvent) found.push(`RSS grows ${g.rss.bytesPerEvent.toFixed(0)} B per event (limit ${LEAK_LIMITS.rssBytesPerEvent})`);
  return found;
}
