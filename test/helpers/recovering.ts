/**
 * A 4.x subscriber to `calls` that keeps what it receives per session: a
 * recovered session keeps its id, a fresh one gets a new id (and joins again).
 * Used by the recovery tests at the trim edge and in a stalled catch-up,
 * through {@link startRecoveryRig}.
 */
import { Redis } from 'ioredis';
import { io as ioV4, type Socket as ClientSocket } from 'socket.io-client';
import type { Settings } from '../../src/settings.ts';
import type { RunningBroker } from '../../src/server.ts';
import { startBroker } from './broker.ts';
import { until } from './wait.ts';

/** The WebSocket under a 4.x client, which can stop reading from its TCP socket. */
interface PausableWs {
  pause(): void;
  resume(): void;
}

export class RecoveringSubscriber {
  readonly socket: ClientSocket;
  /** Seqs received, by session id. */
  readonly sessions = new Map<string, number[]>();
  recovered = 0;
  /** Sessions told `recovered: true` at least once. */
  readonly recoveredSessions = new Set<string>();
  fresh = 0;
  /** Reconnect by itself when the node cuts the connection (as a client's backoff would). */
  reconnecting = true;
  readonly #admin: Redis;

  constructor(url: string, redisUrl: string) {
    this.#admin = new Redis(redisUrl, { lazyConnect: true });
    this.#admin.on('error', () => {});
    this.socket = ioV4(url, { transports: ['websocket'], reconnection: false, forceNew: true });
    this.socket.on('call', (call: { seq: number }) => {
      const id = this.socket.id as string;
      let seqs = this.sessions.get(id);
      if (seqs === undefined) this.sessions.set(id, (seqs = []));
      seqs.push(call.seq);
    });
    this.socket.on('connect', () => {
      if (this.socket.recovered) {
        this.recovered++;
        this.recoveredSessions.add(this.socket.id as string);
        return;
      }
      this.fresh++;
      this.socket.emit('join', 'calls');
    });
    this.socket.on('disconnect', () => {
      if (this.reconnecting) void this.#reconnect();
    });
  }

  /** Resolves once connected to `calls`. */
  async joined(timeoutMs: number): Promise<void> {
    await this.#admin.connect().catch(() => undefined);
    await until('subscriber connected', () => this.socket.connected, timeoutMs);
  }

  /** The PID of the session the node will save when the connection drops. */
  get pid(): string | undefined {
    return (this.socket as unknown as { _pid?: string })._pid;
  }

  /** Waits for the node to save the session, then connects again. */
  async #reconnect(): Promise<void> {
    const pid = this.pid;
    if (pid !== undefined) await until('session saved', async () => (await this.#admin.exists(`spicy-action:session:${pid}`)) === 1, 5_000).catch(() => undefined);
    this.socket.connect();
  }

  /** Drops the connection (as a network loss would) and stays away until {@link comeBack}. */
  async drop(timeoutMs: number): Promise<void> {
    this.reconnecting = false;
    const gone = new Promise((resolve) => this.socket.once('disconnect', resolve));
    (this.socket.io as unknown as { engine: { close(): void } }).engine.close();
    await gone;
    const pid = this.pid;
    if (pid !== undefined) await until('session saved', async () => (await this.#admin.exists(`spicy-action:session:${pid}`)) === 1, timeoutMs);
  }

  /**
   * Connects again; with `stall`, the client stops reading from its TCP socket
   * as soon as the connection opens (it still sends), until `stall` resolves.
   */
  comeBack(stall?: Promise<void>): void {
    this.reconnecting = true;
    if (stall !== undefined) {
      this.socket.io.once('open', () => {
        const ws = (this.socket.io as unknown as { engine: { transport: { ws: PausableWs } } }).engine.transport.ws;
        ws.pause();
        void stall.then(() => ws.resume());
      });
    }
    this.socket.connect();
  }

  /** The seqs of the current session. */
  current(): number[] {
    return this.sessions.get(this.socket.id as string) ?? [];
  }

  /** Events missing inside sessions (a recovered session must have every event from its first on). */
  gaps(): { session: string; after: number; next: number }[] {
    const found: { session: string; after: number; next: number }[] = [];
    for (const [session, seqs] of this.sessions) {
      for (let i = 1; i < seqs.length; i++) {
        if (seqs[i] !== (seqs[i - 1] as number) + 1) found.push({ session, after: seqs[i - 1] as number, next: seqs[i] as number });
      }
    }
    return found;
  }

  /** Events never received inside each session told `recovered: true`, from its first event to its last. */
  missing(): { session: string; seqs: number }[] {
    const found: { session: string; seqs: number }[] = [];
    for (const session of this.recoveredSessions) {
      const seqs = this.sessions.get(session) ?? [];
      const seen = new Set(seqs);
      const lost = Math.max(...seqs) - Math.min(...seqs) + 1 - seen.size;
      if (lost > 0) found.push({ session, seqs: lost });
    }
    return found;
  }

  close(): void {
    this.reconnecting = false;
    this.socket.close();
    this.#admin.disconnect();
  }
}

/** Publishes numbered events to `calls` at `rate` events per second (changeable), until stopped. */
export class Flood {
  published = 0;
  rate: number;
  /** Padding carried by each event (changeable): the size of what a backlog holds. */
  pad: string;
  #due = 0;
  #last = Date.now();
  readonly #ticker: NodeJS.Timeout;

  constructor(publisher: ClientSocket, pad: string, rate: number) {
    this.rate = rate;
    this.pad = pad;
    this.#ticker = setInterval(() => {
      const now = Date.now();
      this.#due += ((now - this.#last) * this.rate) / 1000;
      this.#last = now;
      while (this.published < Math.floor(this.#due)) publisher.emit('call', { seq: this.published++, pad: this.pad });
    }, FLOOD_TICK_MS);
  }

  stop(): void {
    clearInterval(this.#ticker);
  }
}

/** How often a flood tops up to its rate, in ms. */
const FLOOD_TICK_MS = 10;

/** Two brokers on one Redis, a publisher on the second and a {@link RecoveringSubscriber} on the first. */
export interface RecoveryRig {
  readonly nodes: readonly [RunningBroker, RunningBroker];
  readonly publisher: ClientSocket;
  readonly subscriber: RecoveringSubscriber;
  /** Closes the clients, then the nodes. */
  close(): Promise<void>;
}

/**
 * Starts a {@link RecoveryRig} on `redisUrl` with `settings`, and returns once
 * the subscriber has joined `calls` and received an event of the publisher's
 * (seq -1, then forgotten), so that the next event's path is known to work.
 */
export async function startRecoveryRig(redisUrl: string, settings: Partial<Settings>, timeoutMs: number): Promise<RecoveryRig> {
  const config = { redisUrl, ...settings };
  const nodes = await Promise.all([startBroker(config), startBroker(config)]);
  const publisher = ioV4(nodes[1].url, { transports: ['websocket'], reconnection: false, forceNew: true });
  const subscriber = new RecoveringSubscriber(nodes[0].url, redisUrl);
  const close = async (): Promise<void> => {
    publisher.close();
    subscriber.close();
    await Promise.all(nodes.map((node) => node.close()));
  };
  try {
    await until('publisher connected', () => publisher.connected, timeoutMs);
    await subscriber.joined(timeoutMs);
    await until('joined', async () => (await publisher.timeout(timeoutMs).emitWithAck('call', { seq: -1 })) !== undefined && subscriber.current().includes(-1), timeoutMs);
  } catch (error) {
    await close();
    throw error;
  }
  subscriber.sessions.clear();
  return { nodes, publisher, subscriber, close };
}
