/** The kept sessions' budget (src/kept-sessions.ts), alone: seeded random runs against a model. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { KeptSessions, ROOM_BYTES, SESSION_BYTES, sessionBytes } from '../src/kept-sessions.ts';

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const RUNS = Number(process.env.FUZZ_RUNS ?? 200);

type Step =
  | { readonly op: 'keep'; readonly pid: string; readonly address: string; readonly bytes: number; readonly dt: number }
  | { readonly op: 'forget'; readonly pid: string; readonly dt: number };

const pid = fc.constantFrom('p1', 'p2', 'p3', 'p4', 'p5', 'p6');
const dt = fc.integer({ min: 0, max: 400 });
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constant('keep' as const), pid, address: fc.constantFrom('a', 'b', 'c'), bytes: fc.integer({ min: 1, max: 50 }), dt }),
  fc.record({ op: fc.constant('forget' as const), pid, dt }),
);

describe('KeptSessions', () => {
  it(`keeps a session only within both caps, replaces one kept again, and lets each go after the window (seed ${SEED})`, () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 1_000 }), fc.array(step, { maxLength: 120 }), (perAddress, total, windowMs, steps) => {
        const kept = new KeptSessions({ perAddress, total }, windowMs);
        // The model: pid → what is counted, and until when.
        const model = new Map<string, { address: string; bytes: number; until: number }>();
        let now = 0;
        let refused = 0;
        const expire = (): void => {
          for (const [p, s] of model) if (s.until <= now) model.delete(p);
        };
        const held = (address?: string): number => [...model.values()].filter((s) => address === undefined || s.address === address).reduce((a, s) => a + s.bytes, 0);
        for (const s of steps) {
          now += s.dt;
          expire();
          if (s.op === 'keep') {
            model.delete(s.pid);
            const fits = held(s.address) + s.bytes <= perAddress && held() + s.bytes <= total;
            assert.equal(kept.keep(s.pid, s.address, s.bytes, now), fits);
            if (fits) model.set(s.pid, { address: s.address, bytes: s.bytes, until: now + windowMs });
            else refused++;
          } else {
            kept.forget(s.pid);
            model.delete(s.pid);
          }
          assert.deepEqual(kept.state(now), { sessions: model.size, bytes: held(), refused });
          for (const address of ['a', 'b', 'c']) assert.ok(kept.heldBy(address) === held(address) && held(address) <= perAddress);
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('prices a session by its rooms', () => {
    assert.equal(sessionBytes([]), SESSION_BYTES);
    assert.equal(sessionBytes(['calls', 'endpoint:alice@example.net']), SESSION_BYTES + 2 * ROOM_BYTES + 5 + 26);
    assert.equal(sessionBytes(undefined), SESSION_BYTES);
    assert.equal(sessionBytes([42]), SESSION_BYTES + ROOM_BYTES);
  });
});
