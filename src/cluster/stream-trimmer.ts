/**
 * Keeps the cluster's event stream within its time bound (docs/cluster.md):
 * every few seconds, and at once when Redis refuses an event for memory,
 * `XTRIM MINID` drops the entries older than {@link streamKeepMs}. The
 * adapter's XADD trims by entries (`REDIS_STREAM_MAXLEN`) as it writes, but
 * under `maxmemory` with `noeviction` an XADD is refused before it runs, so
 * its trim never runs either: the stream would stay full for good, and every
 * event reach only its own node. XTRIM is allowed under OOM, so the trimmer
 * also trims by entries while Redis refuses writes for memory, and the
 * stream is `full` until a write is taken again.
 */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { minTrimId } from './stream-bounds.ts';

/** How often the stream is trimmed by time, in ms. */
export const TRIM_EVERY_MS = 2_000;

/** What the trimmer tells. */
export interface StreamTrimmerEvents {
  /** Redis refused an event for memory: the stream is trimmed on its own until it takes one again. */
  full: [];
  /** Redis takes events again after `full`; `trimmed` entries were dropped meanwhile. */
  relieved: [trimmed: number];
  /** A trim failed (Redis down...): tried again at the next tick. */
  failed: [error: Error];
}

/**
 * @example
 * const trimmer = new StreamTrimmer(redis, 'spicy-action:events', { keepMs: 120_000, maxLen: 100_000 });
 * // on an XADD refused with OOM:
 * trimmer.refusedForMemory();
 * // on an XADD taken:
 * trimmer.accepted();
 */
export class StreamTrimmer extends EventEmitter<StreamTrimmerEvents> {
  readonly #redis: Redis;
  readonly #stream: string;
  readonly #keepMs: number;
  readonly #maxLen: number;
  readonly #timer: NodeJS.Timeout;
  #full = false;
  #trimming = false;
  /** Entries dropped since the stream became full. */
  #trimmedWhileFull = 0;

  constructor(redis: Redis, stream: string, bounds: { readonly keepMs: number; readonly maxLen: number }) {
    super();
    this.#redis = redis;
    this.#stream = stream;
    this.#keepMs = bounds.keepMs;
    this.#maxLen = bounds.maxLen;
    this.#timer = setInterval(() => void this.trim(), TRIM_EVERY_MS);
    this.#timer.unref();
  }

  /** True while Redis refuses events for memory. */
  get full(): boolean {
    return this.#full;
  }

  /** Redis refused an event for memory (OOM): trim now, and on each tick until {@link accepted}. */
  refusedForMemory(): void {
    if (!this.#full) {
      this.#full = true;
      this.#trimmedWhileFull = 0;
      this.emit('full');
    }
    void this.trim();
  }

  /** Redis took an event. */
  accepted(): void {
    if (!this.#full) return;
    this.#full = false;
    this.emit('relieved', this.#trimmedWhileFull);
  }

  /** Drops the entries older than the time bound (and past the entry bound while full); resolves with how many. */
  async trim(): Promise<number> {
    if (this.#trimming) return 0;
    this.#trimming = true;
    try {
      const [seconds, micros] = (await this.#redis.time()) as [string | number, string | number];
      const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
      let trimmed = await this.#redis.xtrim(this.#stream, 'MINID', '~', minTrimId(now, this.#keepMs));
      if (this.#full) trimmed += await this.#redis.xtrim(this.#stream, 'MAXLEN', '~', this.#maxLen);
      if (this.#full) this.#trimmedWhileFull += trimmed;
      return trimmed;
    } catch (error) {
      this.emit('failed', error instanceof Error ? error : new Error(String(error)));
      return 0;
    } finally {
      this.#trimming = false;
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
