/** Waiting in tests: on a condition wherever there is one, on the clock only where time itself is the point. */

/**
 * Polls `check` every 20 ms until it gives something truthy, and resolves with
 * it; rejects with `timed out: <what>` after `ms`.
 *
 * @example
 * await until('both nodes see Redis down', () => a.cluster.state === 'down' && b.cluster.state === 'down');
 * const answer = await until('the broker listens', () => request(url).catch(() => undefined));
 */
export async function until<T>(
  what: string,
  check: () => T | false | null | undefined | Promise<T | false | null | undefined>,
  ms = 10_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

/**
 * Resolves after `ms`. For what a condition cannot say: that nothing arrives
 * meanwhile, or that a time limit runs out.
 *
 * @example
 * await sleep(800); // past a 500 ms recovery window
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise, and what it resolved with so far: `answer` is undefined while it waits. */
export interface Watched<T> {
  readonly outcome: Promise<T>;
  readonly answer: T | undefined;
}

/**
 * Watches `outcome`, so that a test can say it has not been answered yet.
 *
 * @example
 * const ack = watched(publisher.ack('call', { seq: 1 }));
 * assert.equal(ack.answer, undefined, 'held: not answered yet');
 * assert.deepEqual(await ack.outcome, { ok: true, rooms: 1 });
 */
export function watched<T>(outcome: Promise<T>): Watched<T> {
  let answer: T | undefined;
  void outcome.then((value) => (answer = value));
  return {
    outcome,
    get answer() {
      return answer;
    },
  };
}
