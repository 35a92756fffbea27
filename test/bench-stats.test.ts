/** The statistics behind the figures of BENCHMARKS.md: a wrong percentile would make every table lie. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { median, mergeSamples, percentile, ratio, Reservoir, summarizeLatency } from '../bench/stats.ts';

describe('bench statistics', () => {
  it('takes percentiles by nearest rank', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
    assert.equal(percentile(sorted, 50), 50);
    assert.equal(percentile(sorted, 99), 99);
    assert.equal(percentile(sorted, 100), 100);
    assert.equal(percentile(sorted, 0), 1);
    assert.equal(percentile([7], 99), 7);
    assert.equal(percentile([1, 2, 3, 4], 50), 2);
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.throws(() => percentile([1], 101), RangeError);
  });

  it('summarizes unsorted latency samples', () => {
    const samples = Float64Array.from([9, 1, 5, 3, 7, 2, 8, 4, 6, 10]);
    assert.deepEqual(summarizeLatency(samples), { count: 10, p50: 5, p99: 10, max: 10 });
    assert.equal(summarizeLatency(new Float64Array(0)).count, 0);
  });

  it('takes the median of repeated runs, ignoring failed ones', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([5, Number.NaN, 1, 3]), 3);
    assert.ok(Number.isNaN(median([])));
  });

  it('divides broker by baseline, NaN when there is no baseline', () => {
    assert.equal(ratio(95, 100), 0.95);
    assert.ok(Number.isNaN(ratio(1, 0)));
    assert.ok(Number.isNaN(ratio(Number.NaN, 1)));
  });

  it('keeps a bounded, uniform sample of a long run', () => {
    const keep = new Reservoir(4, () => 0.99);
    for (let i = 1; i <= 3; i++) keep.add(i);
    assert.deepEqual([...keep.values()], [1, 2, 3]);
    for (let i = 4; i <= 100; i++) keep.add(i);
    assert.equal(keep.seen, 100);
    assert.equal(keep.values().length, 4);
    // With random() near 1, later samples land past the reservoir and are dropped.
    assert.deepEqual([...keep.values()], [1, 2, 3, 4]);
    keep.clear();
    assert.equal(keep.values().length, 0);

    const uniform = new Reservoir(1_000);
    for (let i = 0; i < 100_000; i++) uniform.add(i);
    const p50 = percentile(uniform.values().sort(), 50);
    assert.ok(p50 > 40_000 && p50 < 60_000, `median of a uniform sample of 0..99999 near 50000, got ${p50}`);
  });

  it('merges samples weighting each process by what it saw', () => {
    // Process A saw 1,000 samples of 1 ms and kept 10; B saw 10 of 100 ms and kept all 10.
    const merged = mergeSamples([
      { values: new Array(10).fill(1), seen: 1_000 },
      { values: new Array(10).fill(100), seen: 10 },
    ]);
    assert.equal(merged.seen, 1_010);
    const sorted = merged.values.sort();
    assert.equal(percentile(sorted, 50), 1, 'B must not weigh as much as A');
    assert.deepEqual(mergeSamples([]), { values: new Float64Array(0), seen: 0 });
  });
});
