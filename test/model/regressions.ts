/**
 * Seeds whose schedules once broke a promise: each runs in every model-checker
 * run, with the bounds it was found with, so that the defect stays fixed.
 */
import type { ScheduleBounds } from './schedule.ts';

export interface Regression {
  readonly seed: number;
  readonly bounds: ScheduleBounds;
  /** What it broke, in a few words. */
  readonly found: string;
}

export const REGRESSIONS: readonly Regression[] = [];
