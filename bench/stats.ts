/**
 * Statistics for the benchmarks: percentiles of latency samples, medians of
 * repeated runs, broker/baseline ratios, and a bounded sample keeper. Pure:
 * no I/O, no clocks.
 */

/**
 * The `p`-th percentile (0 to 100) of `sorted` (ascending), by the
 * nearest-rank method: the smallest sample such that at least p% of the
 * samples are at or below it. NaN for no samples.
 *
 * @example
 * percentile([1, 2, 3, 4], 50); // 2
 * percentile([1, 2, 3, 4], 99); // 4
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be from 0 to 100, got ${p}`);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] as number;
}

/**
 * The median of `values` (any order): the middle one, or the mean of the two
 * middle ones. NaN for none; NaN values are left out.
 *
 * @example
 * median([3, 1, 2]); // 2
 * median([4, 1, 3, 2]); // 2.5
 */
export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const mid = Math.floor(n / 2);
  return n % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** p50, p99 and max of latency samples, and how many there were. */
export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/**
 * Summarizes unsorted latency samples (sorted in place).
 *
 * @example
 * summarizeLatency(Float64Array.from([5, 1, 3])); // { count: 3, p50: 3, p99: 5, max: 5 }
 */
export function summarizeLatency(samples: Float64Array): LatencySummary {
  samples.sort();
  return {
    count: samples.length,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: samples.length === 0 ? Number.NaN : (samples[samples.length - 1] as number),
  };
}

/**
 * broker ÷ baseline; NaN when either is missing or the baseline is 0.
 *
 * @example
 * ratio(95, 100); // 0.95
 */
export function ratio(broker: number, baseline: number): number {
  if (!Number.isFinite(broker) || !Number.isFinite(baseline) || baseline === 0) return Number.NaN;
  return broker / baseline;
}

/**
 * Keeps at most `capacity` samples out of any number offered, each offered
 * sample with the same chance (reservoir sampling), so that percentiles of a
 * long run cost bounded memory. `random` is injectable for tests.
 *
 * @example
 * const keep = new Reservoir(10_000);
 * keep.add(1.25);
 * keep.values(); // Float64Array [1.25]
 */
export class Reservoir {
  readonly #samples: Float64Array;
  #seen = 0;

  constructor(
    readonly capacity: number,
    private readonly random: () => number = Math.random,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.#samples = new Float64Array(capacity);
  }

  /** How many samples were offered since the last clear. */
  get seen(): number {
    return this.#seen;
  }

  add(value: number): void {
    const seen = this.#seen++;
    if (seen < this.capacity) {
      this.#samples[seen] = value;
      return;
    }
    const slot = Math.floor(this.random() * (seen + 1));
    if (slot < this.capacity) this.#samples[slot] = value;
  }

  /** A copy of the kept samples. */
  values(): Float64Array {
    return this.#samples.slice(0, Math.min(this.#seen, this.capacity));
  }

  clear(): void {
    this.#seen = 0;
  }
}

/**
 * Merges reservoirs of different processes into one sample set in which each
 * process weighs by how many samples it saw, not by how many it kept.
 * Returns the samples and the total seen.
 *
 * @example
 * mergeSamples([{ values: [1, 2], seen: 2 }, { values: [3], seen: 1 }]); // { values: Float64Array [1, 2, 3], seen: 3 }
 */
export function mergeSamples(parts: readonly { values: ArrayLike<number>; seen: number }[]): { values: Float64Array; seen: number } {
  const seen = parts.reduce((sum, p) => sum + p.seen, 0);
  const kept = parts.reduce((sum, p) => sum + p.values.length, 0);
  if (kept === 0) return { values: new Float64Array(0), seen };
  // The part with the highest seen/kept ratio sets the scale; others are thinned to match it.
  const scale = Math.max(...parts.filter((p) => p.values.length > 0).map((p) => p.seen / p.values.length));
  const out: number[] = [];
  for (const part of parts) {
    if (part.values.length === 0) continue;
    const take = Math.max(1, Math.round(part.seen / scale));
    const step = part.values.length / take;
    for (let i = 0; i < take; i++) out.push(part.values[Math.floor(i * step)] as number);
  }
  return { values: Float64Array.from(out), seen };
}
