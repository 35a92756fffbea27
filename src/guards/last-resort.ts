/**
 * The process's last resort against errors nobody caught, for the process
 * entry (src/main.ts) to install; a library host keeps its own policy.
 *
 * - An unhandled promise rejection is logged and counted, and the process
 *   goes on: the broker's asynchronous paths (cluster broadcasts, Redis
 *   commands) own no state that such a rejection could leave half-changed,
 *   and Node's default (ending the process) turns one bad message into an
 *   outage of every client of the node.
 * - An uncaught exception is logged, then the process exits non-zero after
 *   `exitDelayMs` (time for the log to reach stderr): a synchronous throw
 *   may have left any state half-changed, and a supervisor restarts a fresh
 *   process.
 */

/** What the last resort needs of the process (Node's `process` is one). */
export interface LastResortProcess {
  on(event: 'unhandledRejection', listener: (reason: unknown) => void): unknown;
  on(event: 'uncaughtException', listener: (error: Error) => void): unknown;
  exit(code: number): never;
}

/** How long an uncaught exception's log line has before the process exits. */
const EXIT_DELAY_MS = 100;

/** One line for a thrown value: its stack when it has one. */
function describe(value: unknown): string {
  return value instanceof Error ? (value.stack ?? value.message) : String(value);
}

/**
 * Installs the policy on `target`; `log` receives one line per event and
 * must not throw. Returns a reader of how many rejections were absorbed.
 *
 * @example
 * // src/main.ts, before starting the server:
 * installLastResort(process, (line) => console.error(`spicy-action: ${line}`));
 */
export function installLastResort(target: LastResortProcess, log: (line: string) => void, exitDelayMs = EXIT_DELAY_MS): () => number {
  let absorbed = 0;
  target.on('unhandledRejection', (reason) => {
    absorbed++;
    log(`unhandled rejection (the process goes on): ${describe(reason)}`);
  });
  target.on('uncaughtException', (error) => {
    log(`uncaught exception, exiting: ${describe(error)}`);
    // Not unref()ed: the exit code must be 1 even if nothing else keeps the loop alive.
    setTimeout(() => target.exit(1), exitDelayMs);
  });
  return () => absorbed;
}
