/**
 * The model checker's ground truth, in a worker thread: every event of the run
 * that Redis added to the cluster's stream, in stream order, posted to the run
 * (run.ts). It watches Redis's `MONITOR` feed, not the stream: Redis shows
 * each command there once it has run it (a refused `XADD` is never shown, one
 * in a `MULTI` is shown when `EXEC` runs it), in the order it ran them, and
 * keeps the feed for a slow reader rather than drop any of it. So a burst
 * longer than the stream, trimmed before anyone could read it, is still all
 * seen. Should the feed's connection break, events may have been missed: the
 * worker says so (`behind`), and the run cannot be judged.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Redis } from 'ioredis';
import type { StreamEntry } from './invariants.ts';

/** The stream the cluster writes every event to. */
const STREAM = 'spicy-action:events';
/** How often the entries seen are posted to the run, in ms. */
const POST_EVERY_MS = 20;

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

/**
 * The run's entry in the arguments of a command the feed showed, if it is an
 * `XADD` of one of the run's events to the stream; `n` numbers the stream's
 * additions seen, which stands for the entry's offset in messages.
 */
export function decodeAdd(args: readonly string[], tag: string, n: number): StreamEntry | undefined {
  if (args[0]?.toUpperCase() !== 'XADD' || args[1] !== STREAM) return undefined;
  // XADD key [MAXLEN|MINID [=|~] threshold [LIMIT count]] <id> field value...: the adapter gives `*` as the id.
  const id = args.indexOf('*', 2);
  if (id < 0) return undefined;
  let data: string | undefined;
  for (let i = id + 1; i + 1 < args.length; i += 2) if (args[i] === 'data') data = args[i + 1];
  if (data === undefined || !data.startsWith('{')) return undefined;
  const message = JSON.parse(data) as { packet?: { data?: unknown[] }; opts?: { rooms?: string[] } };
  const payload = message.packet?.data?.[1] as Partial<ModelPayload> | undefined;
  if (payload?.s !== tag || typeof payload.k !== 'string') return undefined;
  return { offset: `#${n}`, key: payload.k, rooms: message.opts?.rooms ?? [] };
}

async function record({ redisUrl, tag }: RecorderData): Promise<void> {
  const port = parentPort!;
  const post = (message: RecorderMessage): void => port.postMessage(message);
  const admin = new Redis(redisUrl);
  admin.on('error', () => {});
  const feed = await new Redis(redisUrl).monitor();
  feed.on('error', () => {});
  const marker = `model-recorder-stop-${process.pid}-${Date.now()}`;
  let added = 0;
  let pending: StreamEntry[] = [];
  let stopped: (() => void) | undefined;
  let broken = false;
  const flush = (): void => {
    if (pending.length === 0) return;
    post({ type: 'entries', entries: pending });
    pending = [];
  };
  feed.on('monitor', (_time: string, args: string[]) => {
    if (args[0]?.toUpperCase() === 'XADD' && args[1] === STREAM) {
      const entry = decodeAdd(args, tag, ++added);
      if (entry) pending.push(entry);
    } else if (args[0]?.toUpperCase() === 'ECHO' && args[1] === marker) stopped?.();
  });
  // A new connection would start a new feed: what ran in between is unseen.
  feed.once('close', () => {
    if (!stopped && !broken) {
      broken = true;
      post({ type: 'behind', why: 'the MONITOR connection closed: events may have been added unseen' });
    }
  });
  const timer = setInterval(flush, POST_EVERY_MS);
  post({ type: 'started' });
  await new Promise<void>((resolve) => port.on('message', (message) => message === 'stop' && resolve()));
  // Everything Redis ran before this ECHO is in the feed before it.
  const seen = new Promise<void>((resolve) => (stopped = resolve));
  await admin.echo(marker);
  await seen;
  clearInterval(timer);
  flush();
  feed.disconnect();
  admin.disconnect();
  post({ type: 'stopped' });
}

if (parentPort) await record(workerData as RecorderData);
