/**
 * The byte budget of each socket in the cluster's event stream
 * (docs/cluster.md): what the broker asks before publishing a socket's event
 * on a cluster. Past `REDIS_STREAM_CLIENT_BYTES` a second, the event is
 * refused with a clear answer (and counted as `stream_budget`), and the broker
 * logs it once per episode.
 */
import type { Refusal } from '../protocol.ts';
import { ByteBudget } from './stream-bounds.ts';

/** The refusal of an event over budget, and whether it starts an episode (to log). */
export interface StreamBudgetRefusal {
  readonly refusal: Refusal;
  readonly first: boolean;
}

/**
 * A check of each event against its sender's budget of `bytesPerSecond`
 * (measured as the JSON of its arguments); undefined when the budget is off (0).
 *
 * @example
 * const check = streamBudget(2 * 1024 * 1024);
 * check?.(socket.id, args); // undefined, or { refusal: { reason: 'stream_budget', error }, first }
 */
export function streamBudget(bytesPerSecond: number): ((client: string, args: readonly unknown[]) => StreamBudgetRefusal | undefined) | undefined {
  if (bytesPerSecond <= 0) return undefined;
  const budget = new ByteBudget(bytesPerSecond);
  const error = `over the limit of ${bytesPerSecond} bytes a second one client may put in the cluster's stream (REDIS_STREAM_CLIENT_BYTES): event not published`;
  return (client, args) => {
    let bytes: number;
    try {
      bytes = Buffer.byteLength(JSON.stringify(args) ?? '');
    } catch {
      return undefined; // not JSON (binary is refused elsewhere): the adapter's own encoding decides
    }
    const decision = budget.take(client, bytes, Date.now());
    if (decision === 'taken') return undefined;
    return { refusal: { reason: 'stream_budget', error }, first: decision === 'refused-first' };
  };
}
