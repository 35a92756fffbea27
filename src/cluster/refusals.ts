/**
 * Writes Redis refused (docs/cluster.md#when-redis-fails): a Redis that answers, but answers
 * "no" to writes: `maxmemory` reached with `noeviction` (OOM), a replica
 * (READONLY), a failed RDB save with `stop-writes-on-bgsave-error` (MISCONF),
 * too few replicas (NOREPLICAS). The link is up; events are not carried.
 *
 * {@link WriteRefusals} counts each refused write by reason, and tells when
 * an episode starts (the first refusal) and ends (the first write taken
 * after), so the cluster can log once per episode and show `degraded`.
 * Pure: no Redis.
 */
import { EventEmitter } from 'node:events';

/** Why Redis refused a write, from its error reply. */
export type WriteRefusalReason = 'oom' | 'readonly' | 'misconf' | 'noreplicas' | 'other';

const KNOWN: ReadonlyMap<string, WriteRefusalReason> = new Map([
  ['OOM', 'oom'],
  ['READONLY', 'readonly'],
  ['MISCONF', 'misconf'],
  ['NOREPLICAS', 'noreplicas'],
]);

/**
 * The error that made a MULTI fail: ioredis rejects EXEC with EXECABORT and
 * keeps the refused command's own reply (OOM...) in `previousErrors`.
 *
 * @example
 * await redis.multi().set('k', 'v').exec().catch((error) => causeOf(error).message); // "OOM command not allowed..."
 */
export function causeOf(error: unknown): Error {
  const failure = error instanceof Error ? error : new Error(String(error));
  const previous = (failure as { previousErrors?: unknown }).previousErrors;
  if (Array.isArray(previous) && previous[0] instanceof Error) return previous[0];
  return failure;
}

/**
 * The reason of a Redis error reply, or undefined when `error` is not one
 * (a lost connection, a timeout: an outage, not a refusal).
 *
 * @example
 * refusalReason(new ReplyError("OOM command not allowed when used memory > 'maxmemory'.")); // 'oom'
 * refusalReason(new Error('Connection is closed.')); // undefined
 */
export function refusalReason(error: unknown): WriteRefusalReason | undefined {
  if (!(error instanceof Error) || error.name !== 'ReplyError') return undefined;
  const code = /^[A-Z]+/.exec(error.message)?.[0] ?? '';
  // A MULTI with a refused command answers EXECABORT, with the command's own reply after it.
  if (code === 'EXECABORT') {
    for (const [word, reason] of KNOWN) if (error.message.includes(word)) return reason;
  }
  return KNOWN.get(code) ?? 'other';
}

/** What {@link WriteRefusals} tells. */
export interface WriteRefusalsEvents {
  /** The first refusal of an episode: Redis refuses writes from now on, for `reason` (`message` is Redis's own line). */
  refusing: [reason: WriteRefusalReason, message: string];
  /** One more write refused. */
  refused: [reason: WriteRefusalReason];
  /** The first write taken after refusals: the episode is over; `refused` writes were refused in it, over `ms`. */
  accepting: [refused: number, ms: number];
}

/**
 * Counts refused writes and frames them in episodes.
 *
 * @example
 * const refusals = new WriteRefusals();
 * refusals.on('refusing', (reason, message) => log(`Redis refuses writes: ${message}`));
 * xadd().then(() => refusals.accepted(), (error) => refusals.refused(refusalReason(error) ?? 'other', error.message));
 */
export class WriteRefusals extends EventEmitter<WriteRefusalsEvents> {
  readonly #counts = new Map<WriteRefusalReason, number>();
  #episode: { since: number; refused: number; reason: WriteRefusalReason } | undefined;

  /** True between the first refusal and the next write Redis takes. */
  get refusing(): boolean {
    return this.#episode !== undefined;
  }

  /** Why the current episode began; undefined outside one. */
  get reason(): WriteRefusalReason | undefined {
    return this.#episode?.reason;
  }

  /** Writes refused since start, by reason. */
  get counts(): ReadonlyMap<WriteRefusalReason, number> {
    return this.#counts;
  }

  /** Redis refused a write. */
  refused(reason: WriteRefusalReason, message: string): void {
    this.#counts.set(reason, (this.#counts.get(reason) ?? 0) + 1);
    if (this.#episode === undefined) {
      this.#episode = { since: Date.now(), refused: 0, reason };
      this.emit('refusing', reason, message);
    }
    this.#episode.refused++;
    this.emit('refused', reason);
  }

  /** Redis took a write. */
  accepted(): void {
    const episode = this.#episode;
    if (episode === undefined) return;
    this.#episode = undefined;
    this.emit('accepting', episode.refused, Date.now() - episode.since);
  }
}
