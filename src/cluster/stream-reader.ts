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
 * that entry meanwhile (then Redis answers from its first entry).
 */
import type { Redis } from 'ioredis';

/** Entries one XREAD returns at most. */
export const READ_COUNT = 100;
/** How long one XREAD blocks for new entries, in ms. */
export const BLOCK_MS = 5_000;
/** Wait before reading again after a failed read, in ms (the connection's own reconnection paces the rest). */
const RETRY_MS = 100;

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
export class StreamReader {
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

  constructor(connection: Redis, streamName: string, onEntry: (id: string, fields: string[]) => void) {
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
    const last = (await this.#connection.xrevrange(this.#streamName, '+', '-', 'COUNT', 1)) as RawEntry[];
    this.#offset = last[0]?.[0] ?? '0-0';
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
        for (const [id, fields] of reply?.[0]?.[1] ?? []) {
          this.#offset = id;
          try {
            this.#onEntry(id, fields);
          } catch (error) {
            // One entry that cannot be delivered must not stop the others.
            this.lastError = (error as Error).message;
          }
        }
      } catch (error) {
        if (this.#closed) return;
        this.failures++;
        this.lastError = (error as Error).message;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref());
      }
    }
  }
}
