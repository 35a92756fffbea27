/**
 * The one reader of the cluster's stream on a node (docs/cluster.md#order): an
 * XREAD BLOCK loop on a connection of its own, that hands every entry, in
 * stream order, to {@link StreamReader.onEntry}. Every event a node's clients
 * get from another node, and every event of its own, comes through here, so
 * every node delivers one sequence: the stream's.
 *
 * It starts from the stream's last entry as it is when {@link StreamReader.start}
 * resolves (nothing written after that is missed), and after a failure (Redis
 * lost, a timeout) it reads on from the last entry it handed on: an outage
 * delays entries, it does not skip them, unless the stream was trimmed past
 * that entry meanwhile (then Redis answers from its first entry). Entries
 * trimmed before the reader reached them are counted ({@link StreamReader.missed}),
 * from what `XINFO STREAM` says the stream ever took (Redis 7 and later): of
 * the entries up to the last one that `XINFO` saw, those the reader has not
 * handed on by the time it passes that entry were trimmed unread. That count
 * needs no step of Redis's to be atomic with a read, so it is taken under a
 * steady flow too, and under `maxmemory` (a `MULTI` is refused whole then).
 */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { compareOffsets } from './stream-format.ts';

/** Entries one XREAD returns at most. */
export const READ_COUNT = 100;
/** How long one XREAD blocks for new entries, in ms. */
export const BLOCK_MS = 5_000;
/** Wait before reading again after a failed read, in ms (the connection's own reconnection paces the rest). */
const RETRY_MS = 100;
/** Longest time between two checks for entries trimmed before the reader reached them, in ms (a full read checks at once). */
export const MISSED_CHECK_MS = 1_000;

/** What the reader tells. */
export interface StreamReaderEvents {
  /** `count` more entries were trimmed from the stream before the reader reached them: their events never reach this node. */
  missed: [count: number];
}

/** What `XINFO STREAM` says, of what the readers of a stream need. */
export interface StreamInfo {
  /** Entries the stream ever took (Redis 7 and later). */
  readonly added: number | undefined;
  readonly length: number;
  readonly first: string | undefined;
  readonly last: string | undefined;
}

function parseStreamInfo(reply: unknown[]): StreamInfo {
  const field = (name: string): unknown => {
    const at = reply.indexOf(name);
    return at >= 0 ? reply[at + 1] : undefined;
  };
  const id = (entry: unknown): string | undefined => (Array.isArray(entry) && typeof entry[0] === 'string' ? entry[0] : undefined);
  const added = field('entries-added');
  return { added: typeof added === 'number' ? added : undefined, length: Number(field('length') ?? 0), first: id(field('first-entry')), last: id(field('last-entry')) };
}

/**
 * `XINFO STREAM key` on `redis`, or undefined when the stream does not exist yet.
 *
 * @example
 * const info = await readStreamInfo(redis, 'spicy-action:events');
 * info?.first; // the id of its oldest entry
 */
export async function readStreamInfo(redis: Redis, key: string): Promise<StreamInfo | undefined> {
  try {
    return parseStreamInfo((await redis.xinfo('STREAM', key)) as unknown[]);
  } catch (error) {
    if (/no such key/i.test((error as Error).message)) return undefined;
    throw error;
  }
}

/** One entry as ioredis returns it: its offset and its flat fields. */
export type RawEntry = [id: string, fields: string[]];

/**
 * Reads the stream `streamName` on `connection` (which it owns: {@link close} disconnects it).
 *
 * @example
 * const reader = new StreamReader(redis.duplicate(), 'spicy-action:events', (id, fields) => deliver(id, fields));
 * await reader.start();
 * reader.close();
 */
export class StreamReader extends EventEmitter<StreamReaderEvents> {
  readonly #connection: Redis;
  readonly #streamName: string;
  readonly #onEntry: (id: string, fields: string[]) => void;
  #offset = '$';
  #closed = false;
  #running = false;
  /** Reads that failed, since start (for tests and debugging). */
  failures = 0;
  /** What the last failed read said. */
  lastError = '';
  /** Entries trimmed before this reader reached them, since start. */
  missed = 0;
  /** Entries the stream had taken when the reader started (undefined: Redis does not say, or not started). */
  #addedAtStart: number | undefined;
  /** Entries handed on since start. */
  #read = 0;
  #checkedAt = 0;
  /** The last check's reading, until the reader passes the entry it ends on. */
  #check: { readonly added: number; readonly last: string } | undefined;

  constructor(connection: Redis, streamName: string, onEntry: (id: string, fields: string[]) => void) {
    super();
    this.#connection = connection;
    this.#streamName = streamName;
    this.#onEntry = onEntry;
  }

  /** The offset of the last entry handed on (or the stream's last entry at start; `0-0` for an empty stream). */
  get offset(): string {
    return this.#offset;
  }

  /**
   * Learns where the stream ends now, then starts reading from there: every
   * entry written after this resolves reaches {@link StreamReader.onEntry}.
   */
  async start(): Promise<void> {
    const info = await readStreamInfo(this.#connection, this.#streamName);
    this.#offset = info?.last ?? '0-0';
    // A stream not written yet counts its entries from zero.
    this.#addedAtStart = info === undefined ? 0 : info.added;
    this.#checkedAt = Date.now();
    if (this.#closed || this.#running) return;
    this.#running = true;
    void this.#loop();
  }

  /** Stops reading and disconnects the reader's connection. */
  close(): void {
    this.#closed = true;
    this.#connection.disconnect();
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      try {
        const reply = (await this.#connection.xread('COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', this.#streamName, this.#offset)) as [string, RawEntry[]][] | null;
        const entries = reply?.[0]?.[1] ?? [];
        for (const [id, fields] of entries) {
          // An entry past the checked one: the checked one was trimmed unread, and counted in `added`.
          if (this.#check !== undefined && compareOffsets(id, this.#check.last) > 0) this.#settle(this.#check.added);
          this.#offset = id;
          this.#read++;
          if (this.#check !== undefined && id === this.#check.last) this.#settle(this.#check.added);
          try {
            this.#onEntry(id, fields);
          } catch (error) {
            // One entry that cannot be delivered must not stop the others.
            this.lastError = (error as Error).message;
          }
        }
        if (this.#check === undefined && (entries.length === READ_COUNT || Date.now() - this.#checkedAt >= MISSED_CHECK_MS)) await this.#checkMissed();
      } catch (error) {
        if (this.#closed) return;
        this.failures++;
        this.lastError = (error as Error).message;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref());
      }
    }
  }

  /**
   * Reads what the stream took so far, to count the entries trimmed before the
   * reader reached them: the stream took `added - addedAtStart` entries since
   * the reader started, up to its last entry `last`; once the reader has passed
   * `last`, those it did not hand on were trimmed unread. The reader is at
   * `last` now (nothing written since) or a few entries behind it (a steady
   * flow, or a node behind the stream): then the count is settled as it passes.
   */
  async #checkMissed(): Promise<void> {
    this.#checkedAt = Date.now();
    if (this.#addedAtStart === undefined) return;
    const info = await readStreamInfo(this.#connection, this.#streamName);
    if (info?.added === undefined) return;
    // An empty stream (trimmed to nothing): every entry it took was handed on or missed.
    if (info.last === undefined || compareOffsets(this.#offset, info.last) >= 0) this.#settle(info.added);
    else this.#check = { added: info.added, last: info.last };
  }

  /** Counts as missed, and tells, the entries of the `added` the stream took that were not handed on. */
  #settle(added: number): void {
    this.#check = undefined;
    const missed = added - (this.#addedAtStart ?? added) - this.#read;
    if (missed <= this.missed) return;
    const count = missed - this.missed;
    this.missed = missed;
    this.emit('missed', count);
  }
}
