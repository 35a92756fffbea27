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
import { connect } from 'node:net';
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

/**
 * The arguments of one line of the MONITOR feed (`+<time> [<db> <client>] "arg" "arg"...`),
 * unescaped as Redis escapes them (`\\`, `\"`, `\n`, `\r`, `\t`, `\a`, `\b`, `\xHH`).
 */
export function monitorArgs(line: string): string[] {
  const args: string[] = [];
  let at = line.indexOf('] "');
  if (at < 0) return args;
  at += 2;
  const escapes: Record<string, number> = { n: 10, r: 13, t: 9, a: 7, b: 8, '"': 34, '\\': 92 };
  while (line[at] === '"') {
    const bytes: number[] = [];
    for (at++; at < line.length && line[at] !== '"'; at++) {
      if (line[at] !== '\\') {
        bytes.push(line.charCodeAt(at));
        continue;
      }
      const next = line[++at]!;
      if (next === 'x') {
        bytes.push(parseInt(line.slice(at + 1, at + 3), 16));
        at += 2;
      } else bytes.push(escapes[next] ?? next.charCodeAt(0));
    }
    args.push(Buffer.from(bytes).toString('utf8'));
    at += 2; // the closing quote and the space
  }
  return args;
}

async function record({ redisUrl, tag }: RecorderData): Promise<void> {
  const port = parentPort!;
  const post = (message: RecorderMessage): void => port.postMessage(message);
  const { hostname, port: redisPort } = new URL(redisUrl);
  const admin = new Redis(redisUrl);
  admin.on('error', () => {});
  // A connection of its own in MONITOR mode, read line by line: a feed, not replies to commands.
  const feed = connect(Number(redisPort), hostname);
  feed.setEncoding('latin1'); // Redis writes the feed in ASCII: other bytes as \\xHH
  const marker = `model-recorder-stop-${process.pid}-${Date.now()}`;
  let added = 0;
  let pending: StreamEntry[] = [];
  let stopped: (() => void) | undefined;
  let broken = false;
  let started: (() => void) | undefined;
  const flush = (): void => {
    if (pending.length === 0) return;
    post({ type: 'entries', entries: pending });
    pending = [];
  };
  const line = (text: string): void => {
    if (text === '+OK') return started?.();
    const args = monitorArgs(text);
    const command = args[0]?.toUpperCase();
    if (command === 'XADD' && args[1] === STREAM) {
      const entry = decodeAdd(args, tag, ++added);
      if (entry) pending.push(entry);
    } else if (command === 'ECHO' && args[1] === marker) stopped?.();
  };
  let buffered = '';
  feed.on('data', (chunk: string) => {
    buffered += chunk;
    let from = 0;
    for (let end = buffered.indexOf('\r\n'); end >= 0; end = buffered.indexOf('\r\n', from)) {
      line(buffered.slice(from, end));
      from = end + 2;
    }
    buffered = buffered.slice(from);
  });
  // What ran while the feed was broken is unseen.
  const lost = (): void => {
    if (stopped || broken) return;
    broken = true;
    post({ type: 'behind', why: 'the MONITOR connection closed: events may have been added unseen' });
  };
  feed.on('error', lost);
  feed.on('close', lost);
  await new Promise<void>((resolve) => {
    started = resolve;
    feed.write('MONITOR\r\n');
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
  feed.destroy();
  admin.disconnect();
  post({ type: 'stopped' });
}

if (parentPort) await record(workerData as RecorderData);
