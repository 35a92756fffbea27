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
  /** The next read also counts what was trimmed (a full read came back: the reader may be behind). */
  #checkNext = false;

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
        const checking = this.#addedAtStart !== undefined && (this.#checkNext || Date.now() - this.#checkedAt >= MISSED_CHECK_MS);
        const from = this.#offset;
        const { entries, info } = checking ? await this.#readAndCount() : { entries: await this.#readNext(), info: undefined };
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
        this.#checkNext = entries.length === READ_COUNT;
        if (info !== undefined) this.#count(info, from, entries.length);
      } catch (error) {
        if (this.#closed) return;
        this.failures++;
        this.lastError = (error as Error).message;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref());
      }
    }
  }

  /** The next entries, waiting up to {@link BLOCK_MS} for some. */
  async #readNext(): Promise<RawEntry[]> {
    const reply = (await this.#connection.xread('COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', this.#streamName, this.#offset)) as [string, RawEntry[]][] | null;
    return reply?.[0]?.[1] ?? [];
  }

  /**
   * The next entries without waiting, and what `XINFO STREAM` says in the same
   * instant (one MULTI): so the count of what was trimmed cannot be thrown off
   * by entries added between the two, as under a steady flow.
   */
  async #readAndCount(): Promise<{ entries: RawEntry[]; info: StreamInfo | undefined }> {
    this.#checkedAt = Date.now();
    const replies = await this.#connection.multi().xinfo('STREAM', this.#streamName).xread('COUNT', READ_COUNT, 'STREAMS', this.#streamName, this.#offset).exec();
    const [infoReply, readReply] = replies ?? [];
    // A stream not written yet has no XINFO: nothing to count, nothing to read.
    const info = infoReply?.[0] ? undefined : parseStreamInfo(infoReply?.[1] as unknown[]);
    if (readReply?.[0]) throw readReply[0];
    const entries = (readReply?.[1] as [string, RawEntry[]][] | null)?.[0]?.[1] ?? [];
    return { entries, info };
  }

  /**
   * Counts the entries trimmed before the reader reached them, from `info`,
   * taken with the read that returned `got` entries after `from`: the stream
   * took `added - addedAtStart` entries since the reader started; those
   * neither read nor still unread in the stream were trimmed unread. What is
   * still unread after that read is known when it returned less than a full
   * read (nothing), or when the stream's first entry was past `from` (the
   * rest of the stream: trims drop the oldest entries first); otherwise the
   * count waits for the next check, which comes with the next read.
   */
  #count(info: StreamInfo, from: string, got: number): void {
    if (info.added === undefined || this.#addedAtStart === undefined) return;
    let unread: number;
    if (got < READ_COUNT) unread = 0;
    else if (info.first === undefined || compareOffsets(info.first, from) > 0) unread = info.length - got;
    else return;
    const missed = info.added - this.#addedAtStart - this.#read - unread;
    if (missed <= this.missed) return;
    const count = missed - this.missed;
    this.missed = missed;
    this.emit('missed', count);
  }
}
