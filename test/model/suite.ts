/**
 * The model checker as node:test tests: one test per schedule, the fixed
 * regression seeds first, then fresh ones drawn from a printed base seed.
 * `SEED=<seed>` runs that one schedule alone (a replay); `MODEL_SCHEDULES=<n>`
 * changes how many fresh ones run; `MODEL_REGRESSIONS=0` leaves out the
 * regression seeds (a campaign of fresh schedules); `MODEL_DUMP=<path>` writes
 * each run's record to `<path>.<seed>.json`.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { it } from 'node:test';
import { check, summarize } from './invariants.ts';
import { REGRESSIONS } from './regressions.ts';
import { runSchedule } from './run.ts';
import { describeSchedule, LONG_BOUNDS, scheduleOf, SHORT_BOUNDS, type ScheduleBounds } from './schedule.ts';

/** Liveness bound of one schedule (processes started, faults, settling), in ms, on top of its own length. */
const SCHEDULE_SLACK_MS = 120_000;
/** Seeds are drawn below this, so that they stay short to type. */
const SEED_RANGE = 1_000_000_000;

export interface SuiteOptions {
  /** Fresh schedules to run besides the regressions. */
  readonly schedules: number;
  readonly bounds: ScheduleBounds;
}

/** The short run of `npm run test:model`. */
export const SHORT_RUN: SuiteOptions = { schedules: 2, bounds: SHORT_BOUNDS };
/** The long run: `MODEL_LONG=1 npm run test:model`, as CI runs it. */
export const LONG_RUN: SuiteOptions = { schedules: 8, bounds: LONG_BOUNDS };

/** Declares the tests (call it inside a `describe`). */
export function modelSuite({ schedules, bounds }: SuiteOptions): void {
  const replay = process.env.SEED;
  const regressions = process.env.MODEL_REGRESSIONS !== '0';
  const count = Number(process.env.MODEL_SCHEDULES ?? schedules);
  const base = Number(process.env.MODEL_SEED ?? Math.floor(Math.random() * SEED_RANGE));
  const seeds = replay !== undefined ? [Number(replay)] : [...(regressions ? REGRESSIONS.map((r) => r.seed) : []), ...Array.from({ length: count }, (_, i) => (base + i) % SEED_RANGE)];
  if (replay === undefined) console.log(`model checker: base seed ${base} (MODEL_SEED=${base} draws these schedules again)`);
  for (const seed of seeds) {
    const regression = REGRESSIONS.find((r) => r.seed === seed);
    const schedule = scheduleOf(seed, regression?.bounds ?? bounds);
    const name = regression ? `seed ${seed} (regression: ${regression.found})` : `seed ${seed}`;
    it(name, { timeout: schedule.durationMs + SCHEDULE_SLACK_MS }, async (t) => {
      const result = await runSchedule(schedule);
      const violations = check(result.record);
      if (process.env.MODEL_DUMP) writeFileSync(`${process.env.MODEL_DUMP}.${seed}.json`, JSON.stringify(result.record));
      t.diagnostic(`${result.published} published, ${result.streamed} in the stream, ${result.sessions} sessions, ${result.recoveries} recoveries`);
      const replayHint = `replay: SEED=${seed}${process.env.MODEL_LONG ? ' MODEL_LONG=1' : ''} npm run test:model`;
      assert.equal(result.inconclusive, undefined, `inconclusive: ${result.inconclusive}\n${describeSchedule(schedule)}\n${replayHint}`);
      assert.deepEqual(violations, [], `${summarize(violations)}\n${describeSchedule(schedule)}\n${replayHint}`);
    });
  }
}
