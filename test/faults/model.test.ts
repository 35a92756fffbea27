/**
 * The model checker's long run in the fault runs: the regression seeds, then
 * fresh schedules of up to three faults each, drawn from a printed base seed
 * (test/model/, docs/testing.md#the-model-checker-and-the-soak).
 */
import { describe } from 'node:test';
import { redisMissing } from '../helpers/redis.ts';
import { LONG_RUN, modelSuite } from '../model/suite.ts';

describe('model checker (long)', { skip: redisMissing() }, () => {
  modelSuite(LONG_RUN);
});
