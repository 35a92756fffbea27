/**
 * The model checker in `npm test`: one fixed schedule the cluster keeps (two
 * broker processes, publishers on the first, subscribers of every generation
 * on the second; a 4.x client away and recovering, a route change and Redis
 * paused (SIGSTOP) for longer than REDIS_TIMEOUT), judged against every
 * invariant of test/model/invariants.ts. Fresh seeded schedules, short
 * (`npm run test:model`) or long after the regression seeds
 * (`MODEL_LONG=1 npm run test:model`, as CI runs it), are test/model/checker.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { redisMissing } from './helpers/redis.ts';
import { check, summarize } from './model/invariants.ts';
import { runSchedule } from './model/run.ts';
import { describeSchedule, type Schedule } from './model/schedule.ts';

const SCHEDULE: Schedule = {
  seed: 424242,
  nodes: 2,
  streamMaxLen: 100_000,
  rate: 100,
  ackedShare: 0.3,
  publishers: [0, 0],
  subscribers: [
    { generation: 'v1', node: 1, rooms: ['calls'] },
    { generation: 'v2', node: 1, rooms: ['calls', 'support'] },
    { generation: 'v4', node: 1, rooms: ['calls', 'support'] },
    { generation: 'v4', node: 1, rooms: ['support'] },
  ],
  durationMs: 4_000,
  steps: [
    { at: 800, do: 'drop', subscriber: 2, to: 1, away: 500 },
    { at: 1_500, do: 'drop', subscriber: 0, to: 1, away: 0 },
    { at: 2_000, do: 'route', publisher: 0, bus: 'support' },
    { at: 2_300, do: 'pause', ms: 1_500 },
  ],
};

describe('model checker: a fixed schedule the cluster keeps', { skip: redisMissing() }, () => {
  it('keeps order, gives no duplicate and no gap, recovers exactly, answers truthfully', { timeout: 180_000 }, async (t) => {
    const result = await runSchedule(SCHEDULE);
    t.diagnostic(`${result.published} published, ${result.streamed} in the stream, ${result.sessions} sessions, ${result.recoveries} recoveries`);
    assert.equal(result.inconclusive, undefined);
    assert.ok(result.recoveries >= 1, 'the 4.x client dropped came back recovered');
    const violations = check(result.record);
    assert.deepEqual(violations, [], `${summarize(violations)}\n${describeSchedule(SCHEDULE)}`);
  });
});
