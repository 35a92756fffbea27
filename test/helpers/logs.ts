/** The broker's own log lines, captured in a test. */
import { format } from 'node:util';
import type { TestContext } from 'node:test';
import createDebug from 'debug';

/**
 * Collects the lines of the `namespace` logs (by default the cluster's:
 * `spicy-action:cluster` and `spicy-action:cluster-node`) for the rest of the
 * test, then puts the logging back as it was.
 *
 * @example
 * const logged = captureLog(t);
 * // ... Redis goes down ...
 * assert.ok(logged.some((line) => line.includes('Redis is down')));
 */
export function captureLog(t: TestContext, namespace = 'spicy-action:cluster,spicy-action:cluster-node'): string[] {
  const logged: string[] = [];
  const originalLog = createDebug.log;
  const wasEnabled = createDebug.disable();
  createDebug.log = (...args: unknown[]) => logged.push(format(...(args as [string])));
  createDebug.enable(namespace);
  t.after(() => {
    createDebug.log = originalLog;
    createDebug.enable(wasEnabled);
  });
  return logged;
}
