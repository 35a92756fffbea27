/**
 * Recovery under churn: a publisher sends numbered events to `calls` at a
 * steady rate through one node, while 4.x subscribers have their connection
 * dropped again and again and come back alternately on the other node. Each
 * recovered session must have got every event once, in order; a session that
 * came back fresh (`recovered: false`) starts a new count.
 *
 * Used by `test/faults/cluster-recovery.test.ts` (short) and `test/faults/run.ts` (long).
 */
import { Redis } from 'ioredis';
import { io as ioV4, type Socket as ClientSocket } from 'socket.io-client';
import type { RunningBroker } from '../../src/server.ts';
import { until } from '../helpers/wait.ts';

/** How a churn run goes. */
export interface ChurnOptions {
  /** The two nodes; publisher on the first. */
  readonly nodes: readonly [RunningBroker, RunningBroker];
  readonly redisUrl: string;
  /** Events per second. */
  readonly rate: number;
  readonly subscribers: number;
  /** Drops per subscriber; each subscriber is dropped every `dropEveryMs`. */
  readonly dropsEach: number;
  readonly dropEveryMs: number;
  /** Liveness bound for each wait, in ms. */
  readonly timeoutMs?: number;
}

/** What a churn run found, summed over subscribers. */
export interface ChurnResult {
  readonly published: number;
  /** Reconnections told `recovered: true`. */
  readonly recoveries: number;
  /** Reconnections that got a fresh session. */
  readonly fresh: number;
  /** Within recovered sessions: events never received, received twice, received after a later one. */
  readonly lost: number;
  readonly duplicated: number;
  readonly reordered: number;
  /** Events per second actually published. */
  readonly rateAchieved: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** How often the publisher tops up to its rate, in ms. */
const PUBLISH_TICK_MS = 10;


interface Subscriber {
  readonly socket: ClientSocket;
  /** Seqs received, by session id (a fresh session has a new id; a recovered one keeps it). */
  readonly sessions: Map<string, number[]>;
  recoveries: number;
  fresh: number;
}

function openSubscriber(url: string): Subscriber {
  const socket = ioV4(url, { transports: ['websocket'], reconnection: false, forceNew: true });
  const subscriber: Subscriber = { socket, sessions: new Map(), recoveries: 0, fresh: 0 };
  socket.on('call', (call: { seq: number }) => {
    const id = socket.id as string;
    let seqs = subscriber.sessions.get(id);
    if (seqs === undefined) subscriber.sessions.set(id, (seqs = []));
    seqs.push(call.seq);
  });
  return subscriber;
}

/** Resolves once `socket` is connected and in `calls` (joined again when its session is fresh). */
async function joined(subscriber: Subscriber, timeoutMs: number, counted: boolean): Promise<void> {
  const { socket } = subscriber;
  await until('subscriber connected', () => socket.connected, timeoutMs);
  if (socket.recovered) {
    if (counted) subscriber.recoveries++;
    return;
  }
  if (counted) subscriber.fresh++;
  const ok = await socket.timeout(timeoutMs).emitWithAck('join', 'calls');
  if (ok !== true) throw new Error(`join refused: ${JSON.stringify(ok)}`);
}

/** Counts lost, duplicated and reordered events in one session's seqs, from its first to `last`. */
function audit(seqs: readonly number[], last: number): { lost: number; duplicated: number; reordered: number } {
  const seen = new Set<number>();
  let duplicated = 0;
  let reordered = 0;
  let max = -1;
  for (const seq of seqs) {
    if (seen.has(seq)) duplicated++;
    else if (seq < max) reordered++;
    seen.add(seq);
    max = Math.max(max, seq);
  }
  const first = seqs[0] ?? last + 1;
  return { lost: last - first + 1 - seen.size, duplicated, reordered };
}

/** Runs the churn and audits every session. */
export async function churn(options: ChurnOptions): Promise<ChurnResult> {
  const { nodes, rate, dropsEach, dropEveryMs } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const admin = new Redis(options.redisUrl, { lazyConnect: true });
  admin.on('error', () => {});
  await admin.connect();
  const publisher = ioV4(nodes[0].url, { transports: ['websocket'], reconnection: false, forceNew: true });
  const subscribers = Array.from({ length: options.subscribers }, (_, i) => openSubscriber(nodes[i % 2 === 0 ? 0 : 1].url));
  try {
    await until('publisher connected', () => publisher.connected, timeoutMs);
    for (const s of subscribers) await joined(s, timeoutMs, false);

    let published = 0;
    const started = Date.now();
    const ticker = setInterval(() => {
      const due = Math.floor(((Date.now() - started) * rate) / 1000);
      while (published < due) publisher.emit('call', { seq: published++ });
    }, PUBLISH_TICK_MS);

    const cycle = async (s: Subscriber, index: number): Promise<void> => {
      await new Promise((r) => setTimeout(r, (index * dropEveryMs) / options.subscribers));
      let node = index % 2;
      for (let drop = 0; drop < dropsEach; drop++) {
        const since = Date.now();
        const manager = s.socket.io as unknown as { engine: { close(): void }; uri: string };
        const pid = (s.socket as unknown as { _pid?: string })._pid;
        const gone = new Promise((resolve) => s.socket.once('disconnect', resolve));
        manager.engine.close();
        await gone;
        // The node saves the session as it sees the connection close: wait for it, as a real client's backoff would.
        if (pid) await until('session saved', async () => (await admin.exists(`spicy-action:session:${pid}`)) === 1, timeoutMs).catch(() => undefined);
        node = 1 - node;
        manager.uri = nodes[node === 0 ? 0 : 1].url;
        s.socket.connect();
        await joined(s, timeoutMs, true);
        const wait = dropEveryMs - (Date.now() - since);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    };
    await Promise.all(subscribers.map((s, i) => cycle(s, i)));
    clearInterval(ticker);
    const seconds = (Date.now() - started) / 1000;
    const last = published - 1;
    // Every subscriber ends connected: it must get up to the last event, and anything still coming
    // (a duplicate) would be in before an event sent last through the same node.
    for (const s of subscribers) {
      await until(`subscriber reaches event ${last}`, () => (s.sessions.get(s.socket.id as string) ?? []).includes(last), timeoutMs);
    }
    const marker = await publisher.timeout(timeoutMs).emitWithAck('call', { seq: published });
    if ((marker as { ok?: boolean }).ok !== true) throw new Error(`the last event was refused: ${JSON.stringify(marker)}`);
    for (const s of subscribers) {
      await until('subscriber gets the marker', () => (s.sessions.get(s.socket.id as string) ?? []).includes(published), timeoutMs);
    }

    let lost = 0;
    let duplicated = 0;
    let reordered = 0;
    for (const s of subscribers) {
      const ids = [...s.sessions.keys()];
      for (const [i, id] of ids.entries()) {
        const seqs = s.sessions.get(id) as number[];
        // A session replaced by a fresh one ends where it was left: audit up to its own last event.
        const end = i === ids.length - 1 ? last + 1 : Math.max(...seqs);
        const found = audit(seqs, end);
        lost += found.lost;
        duplicated += found.duplicated;
        reordered += found.reordered;
      }
    }
    return {
      published,
      recoveries: subscribers.reduce((n, s) => n + s.recoveries, 0),
      fresh: subscribers.reduce((n, s) => n + s.fresh, 0),
      lost,
      duplicated,
      reordered,
      rateAchieved: Math.round(published / seconds),
    };
  } finally {
    publisher.close();
    for (const s of subscribers) s.socket.close();
    admin.disconnect();
  }
}
