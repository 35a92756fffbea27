/** The budgets' bookkeeping (src/budget.ts), alone: seeded random runs checking its invariants. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Budget, RefusalEpisodes } from '../src/budget.ts';

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const RUNS = Number(process.env.FUZZ_RUNS ?? 200);

type Step = { readonly op: 'take' | 'give'; readonly key: string; readonly amount: number };
const step = fc.record({ op: fc.constantFrom<'take' | 'give'>('take', 'give'), key: fc.constantFrom('a', 'b', 'c', 'd'), amount: fc.integer({ min: 0, max: 40 }) });

describe('Budget', () => {
  it(`takes all or nothing, never past either cap, and gives back what was taken (seed ${SEED})`, () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 120 }), fc.array(step, { maxLength: 200 }), (perAddress, total, steps: Step[]) => {
        const budget = new Budget({ perAddress, total });
        const model = new Map<string, number>();
        const sum = (): number => [...model.values()].reduce((a, b) => a + b, 0);
        for (const { op, key, amount } of steps) {
          const held = model.get(key) ?? 0;
          if (op === 'take') {
            const expected = held + amount > perAddress ? 'per_address' : sum() + amount > total ? 'total' : undefined;
            assert.equal(budget.take(key, amount), expected);
            if (expected === undefined) model.set(key, held + amount);
          } else {
            budget.give(key, amount);
            model.set(key, Math.max(0, held - amount));
          }
          assert.equal(budget.heldBy(key), model.get(key) ?? 0);
          assert.equal(budget.total, sum());
          assert.ok(budget.total <= total && budget.heldBy(key) <= perAddress);
          assert.equal(budget.holders, [...model.values()].filter((v) => v > 0).length);
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

describe('RefusalEpisodes', () => {
  it('starts an episode after a quiet spell only, and tells the count of the one before', () => {
    const episodes = new RefusalEpisodes(1_000);
    assert.deepEqual(episodes.refused(0), { starts: true, previous: 0 });
    assert.deepEqual(episodes.refused(999), { starts: false, previous: 0 });
    assert.deepEqual(episodes.refused(1_998), { starts: false, previous: 0 });
    assert.deepEqual(episodes.refused(2_998), { starts: true, previous: 3 });
    assert.deepEqual(episodes.refused(10_000), { starts: true, previous: 1 });
    assert.equal(episodes.count, 5);
  });
});
