/**
 * The model checker, short run (`npm test`): a handful of seeded schedules,
 * each on a fresh Redis and two or three broker processes, with drops,
 * Redis paused or refusing writes, nodes stopped and killed, route changes
 * (test/model/schedule.ts), checked against what the docs promise every
 * client (test/model/invariants.ts). A failure prints the seed and the
 * schedule; `SEED=<seed> npx tsx --test test/model.test.ts` replays it.
 * The long run is test/faults/model.test.ts.
 */
import { describe } from 'node:test';
import { redisMissing } from './helpers/redis.ts';
import { modelSuite } from './model/suite.ts';

describe('model checker (short)', { skip: redisMissing() }, () => {
  modelSuite({ schedules: 3, bounds: { maxNodes: 3, durationMs: 5_000, maxSubscribers: 5, maxFaults: 1 } });
});
