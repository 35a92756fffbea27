/**
 * The model checker's ground truth, in a worker thread: reads the cluster's
 * event stream from Redis as it grows and posts the entries of the run's
 * events, in stream order, to the run (run.ts). A thread of its own keeps up
 * with a short stream even when the test process is busy; should the stream
 * still be trimmed past entries it had not read, it says so (`behind`), and
 * the run cannot be judged.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Redis } from 'ioredis';
import type { StreamEntry } from './invariants.ts';

/** The stream the cluster writes every event to. */
const STREAM = 'spicy-action:events';
/** How long the reader waits when it has read everything, in ms. */
const READ_IDLE_MS = 20;
/** Entries read at once. */
const READ_COUNT = 1_000;

/** A published payload: the run's tag and the event's key (`<publisher>.<n>`). */
export interface ModelPayload {
  readonly s: string;
  readonly k: string;
  readonly _in: readonly string[];
}

/** What the worker is given. */
export interface RecorderData {
  readonly redisUrl: string;
  /** Only events whose payload carries this tag are kept. */
  readonly tag: string;
}

/** What the worker posts. */
export type RecorderMessage =
  | { readonly type: 'started' }
  | { readonly type: 'entries'; readonly entries: readonly StreamEntry[] }
  | { readonly type: 'behind'; readonly why: string }
  | { readonly type: 'stopped' };

/** `entries-added` of an XINFO STREAM reply (0 when the stream does not exist yet). */
function entriesAdded(info: unknown): number {
  if (!Array.isArray(info)) return 0;
  return Number(info[info.indexOf('entries-added') + 1] ?? 0);
}

/** The run's entry in a stream entry's fields, if it is one of the run's events. */
function decode(id: string, fields: string[], tag: string): StreamEntry | undefined {
  const at = fields.indexOf('data');
  const data = at < 0 ? undefined : fields[at + 1];
  if (data === undefined || !data.startsWith('{')) return undefined;
  const message = JSON.parse(data) as { packet?: { data?: unknown[] }; opts?: { rooms?: string[] } };
  const payload = message.packet?.data?.[1] as Partial<ModelPayload> | undefined;
  if (payload?.s !== tag || typeof payload.k !== 'string') return undefined;
  return { offset: id, key: payload.k, rooms: message.opts?.rooms ?? [] };
}

async function record({ redisUrl, tag }: RecorderData): Promise<void> {
  const port = parentPort!;
  const post = (message: RecorderMessage): void => port.postMessage(message);
  const redis = new Redis(redisUrl);
  redis.on('error', () => {}); // a paused Redis: the reader waits
  let running = true;
  port.on('message', (message) => {
    if (message === 'stop') running = false;
  });
  // Where the run starts: the last entry now, and how many the stream had taken.
  const start = await redis.multi().call('XINFO', 'STREAM', STREAM).xrevrange(STREAM, '+', '-', 'COUNT', 1).exec();
  let last = (start?.[1]?.[1] as [string, string[]][] | undefined)?.[0]?.[0] ?? '0-0';
  const added0 = entriesAdded(start?.[0]?.[1]);
  let read = 0;
  let behind = false;
  post({ type: 'started' });
  // One more round after `stop`, so that everything written before it is read.
  for (let draining = false; running || !draining; ) {
    if (!running) draining = true;
    // One atomic step: how many entries the stream ever took, and what follows what was read.
    // Redis refusing writes (maxmemory) refuses a MULTI too; the stream takes nothing meanwhile: wait.
    const replies = await redis.multi().call('XINFO', 'STREAM', STREAM).xread('COUNT', READ_COUNT, 'STREAMS', STREAM, last).exec().catch(() => undefined);
    if (replies === undefined) {
      await new Promise((resolve) => setTimeout(resolve, READ_IDLE_MS));
      continue;
    }
    const reply = replies?.[1]?.[1] as [string, [string, string[]][]][] | null;
    const batch = reply?.[0]?.[1] ?? [];
    if (batch.length < READ_COUNT) {
      // Everything after what was read is in this batch: whatever else was added since the start was trimmed unread.
      const added = entriesAdded(replies?.[0]?.[1]) - added0;
      if (added > read + batch.length && !behind) {
        behind = true;
        post({ type: 'behind', why: `${added - read - batch.length} stream entries were trimmed before the run read them (after ${last})` });
      }
    }
    read += batch.length;
    const entries: StreamEntry[] = [];
    for (const [id, fields] of batch) {
      last = id;
      const entry = decode(id, fields, tag);
      if (entry) entries.push(entry);
    }
    if (entries.length > 0) post({ type: 'entries', entries });
    if (batch.length < READ_COUNT) await new Promise((resolve) => setTimeout(resolve, READ_IDLE_MS));
  }
  redis.disconnect();
  post({ type: 'stopped' });
}

await record(workerData as RecorderData);
