/**
 * `DEBUG` as the process was given it. The `debug` package deletes an empty
 * `DEBUG` from `process.env` as it loads, so `DEBUG=` (logs off) would look
 * unset, and the entry would turn its default logs on. This module imports
 * nothing: imported first, it reads the environment before `debug` loads.
 */
export const DEBUG_AT_START: string | undefined = process.env.DEBUG;

/** What the broker logs when `DEBUG` is unset: everything but the audit's line per routed event. */
export const DEFAULT_DEBUG = 'spicy-action:*,-spicy-action:audit';
