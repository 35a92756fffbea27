/**
 * The model checker's runs (`npm run test:model`): seeded schedules, each on a
 * fresh Redis and two or three broker processes, with drops, Redis paused or
 * refusing writes, nodes stopped and killed, route changes
 * (test/model/schedule.ts), judged against what the docs promise every client
 * (test/model/invariants.ts). The regression seeds (test/model/regressions.ts)
 * run first, then fresh ones. A failure prints the seed and the schedule;
 * `SEED=<seed> npm run test:model` replays it.
 *
 * Short by default; `MODEL_LONG=1` runs the long run, as CI does. `npm test`
 * runs one fixed schedule (test/model.test.ts).
 */
import { describe } from 'node:test';
import { redisMissing } from '../helpers/redis.ts';
import { LONG_RUN, modelSuite, SHORT_RUN } from './suite.ts';

const LONG = process.env.MODEL_LONG === '1';

describe(`model checker (${LONG ? 'long' : 'short'})`, { skip: redisMissing() }, () => {
  modelSuite(LONG ? LONG_RUN : SHORT_RUN);
});
