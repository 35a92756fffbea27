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
 * from what `XINFO STREAM` says the stream ever took (Redis 7 and later).
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
          this.#offset = id;
          this.#read++;
          try {
            this.#onEntry(id, fields);
          } catch (error) {
            // One entry that cannot be delivered must not stop the others.
            this.lastError = (error as Error).message;
          }
        }
        if (entries.length === READ_COUNT || Date.now() - this.#checkedAt >= MISSED_CHECK_MS) await this.#checkMissed();
      } catch (error) {
        if (this.#closed) return;
        this.failures++;
        this.lastError = (error as Error).message;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref());
      }
    }
  }

  /**
   * Counts the entries trimmed before the reader reached them: the stream took
   * `added - addedAtStart` entries since the reader started; those neither
   * read nor still unread in the stream were trimmed unread. What is unread is
   * known when the reader is at the stream's last entry (nothing), or when the
   * stream's first entry is past the reader's offset (everything: trims drop
   * the oldest entries first); otherwise the count waits for the next check.
   */
  async #checkMissed(): Promise<void> {
    this.#checkedAt = Date.now();
    if (this.#addedAtStart === undefined) return;
    const info = await readStreamInfo(this.#connection, this.#streamName);
    if (info?.added === undefined) return;
    let unread: number;
    if (info.last === this.#offset) unread = 0;
    else if (info.first === undefined || compareOffsets(info.first, this.#offset) > 0) unread = info.length;
    else return;
    const missed = info.added - this.#addedAtStart - this.#read - unread;
    if (missed <= this.missed) return;
    const count = missed - this.missed;
    this.missed = missed;
    this.emit('missed', count);
  }
}
