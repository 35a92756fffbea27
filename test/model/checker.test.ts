/**
 * The model checker's runs (`npm run test:model`): seeded schedules, each on a
 * fresh Redis and two or three broker processes, with drops, Redis paused or
 * refusing writes, nodes stopped and killed, route changes
 * (test/model/schedule.ts), judged against what the docs promise every client
 * (test/model/invariants.ts). The regression seeds (test/model/regressions.ts)
 * run first, then fresh ones. A failure prints the seed and the schedule;
 * `SEED=<seed> npm run test:model` replays it.
 *
 * Short by default (a few schedules); `MODEL_LONG=1` runs more and longer
 * ones, with up to three faults each.
 *
 * Not in `npm test` nor `test:faults` yet: on the code of 4.1 the
 * regression seeds broke stream order (fixed: every node delivers from the
 * stream, src/cluster/streams-adapter.ts), gaps (under `recovered: true` too)
 * and truthful acknowledgements (an event Redis refused acknowledged
 * `{ok: true}`). Once those two are shown fixed, this short run joins
 * `npm test` and the long one `test:faults`.
 */
import { describe } from 'node:test';
import { redisMissing } from '../helpers/redis.ts';
import { modelSuite } from './suite.ts';

const LONG = process.env.MODEL_LONG === '1';

describe(`model checker (${LONG ? 'long' : 'short'})`, { skip: redisMissing() }, () => {
  modelSuite(
    LONG
      ? { schedules: 8, bounds: { maxNodes: 3, durationMs: 10_000, maxSubscribers: 8, maxFaults: 3 } }
      : { schedules: 2, bounds: { maxNodes: 3, durationMs: 5_000, maxSubscribers: 5, maxFaults: 1 } },
  );
});
