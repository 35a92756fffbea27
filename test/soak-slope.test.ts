/** The soak's verdict (bench/slope.ts) on samples whose growth is known. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { growth, leaks, LEAK_LIMITS, slope, type MemorySample } from '../bench/slope.ts';

/** One sample a second at 100 events/s, heap and RSS growing by the given bytes per event, plus a GC's noise. */
function samples(heapPerEvent: number, rssPerEvent: number): MemorySample[] {
  return Array.from({ length: 120 }, (_, i) => {
    const events = i * 100;
    const noise = (i % 7) * 20_000;
    return { seconds: i, events, heapBytes: 20e6 + heapPerEvent * events + noise, rssBytes: 90e6 + rssPerEvent * events + noise };
  });
}

describe('soak verdict', () => {
  it('fits the least-squares slope', () => {
    assert.equal(slope([0, 1, 2, 3], [1, 3, 5, 7]), 2);
    assert.equal(slope([0, 1, 2], [4, 4, 4]), 0);
  });

  it('finds the leak of about 340 B per event, and says per hour and per event', () => {
    const g = growth(samples(340, 340));
    assert.ok(Math.abs(g.heap.bytesPerEvent - 340) < 20, String(g.heap.bytesPerEvent));
    assert.ok(Math.abs(g.heap.bytesPerHour - 340 * 100 * 3_600) < 340 * 100 * 3_600 * 0.05, String(g.heap.bytesPerHour));
    assert.equal(leaks(g).length, 2);
  });

  it('passes flat memory with noise, and tells heap from RSS', () => {
    assert.deepEqual(leaks(growth(samples(0, 0))), []);
    assert.deepEqual(leaks(growth(samples(0, LEAK_LIMITS.rssBytesPerEvent * 2))).map((l) => l.split(' ')[0]), ['RSS']);
  });
});
