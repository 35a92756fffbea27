/**
 * Runs one model-checker schedule (schedule.ts) against real parts: a
 * redis-server, two or three broker processes started as `npm start` runs
 * them, publishers and subscribers on real socket.io-client of every
 * generation; faults are real (SIGSTOP, `maxmemory`, SIGTERM, SIGKILL). It
 * records what every client got, every acknowledgement, every node's
 * undelivered counter and, as the ground truth, every entry Redis added to the
 * event stream (trimmed or not; recorder.ts); invariants.ts judges.
 */
import { Worker } from 'node:worker_threads';
import { Redis } from 'ioredis';
import { io as ioV4, type Socket as ClientSocket } from 'socket.io-client';
import { spawnBroker, type BrokerProcess } from '../helpers/broker.ts';
import { connect, type TestClient } from '../helpers/clients.ts';
import { parseMetrics } from '../helpers/metrics.ts';
import { RedisServer } from '../helpers/redis.ts';
import { sleep, until } from '../helpers/wait.ts';
import type { Acked, Chain, NodeLife, Received, RunRecord, StreamEntry } from './invariants.ts';
import type { ModelPayload, RecorderData, RecorderMessage } from './recorder.ts';
import { MODEL_BUSES, MODEL_EVENTS, Random, ROUTED_EVENT, type ModelEvent, type Schedule, type Step, type SubscriberPlan } from './schedule.ts';

/** How long a node may leave a PING unanswered before it is seen down: short, so a pause is seen within the run. */
const REDIS_TIMEOUT = '1s';
/** A room every published event also goes to (`_in`), so that an event whose route is null is still published. */
const SINK_ROOM = 'model:sink';
/** Liveness bound of each wait (a shared 2-core machine). */
const WAIT_MS = 20_000;
/** How often publishers top up to their rate. */
const PUBLISH_TICK_MS = 10;
/** How long a dropped 4.x client waits for its session to be saved before reconnecting, as a client's backoff would. */
const SESSION_SAVE_WAIT_MS = 1_000;
/** Pause between a node's death and the reconnection of its clients. */
const RECONNECT_DELAY_MS = 100;
/** The stream reader's module, run in a worker thread. */
const RECORDER_URL = new URL('./recorder.ts', import.meta.url).href;
/** How long a subscriber keeps trying to reconnect, node after node. */
const RECONNECT_DEADLINE_MS = 60_000;
/** How long a broker process may take to listen. */
const NODE_START_MS = 60_000;
/** How long publishers on a node are stopped before it is sent SIGTERM (an emit racing the close is lost unseen). */
const QUIET_BEFORE_TERM_MS = 150;


/** A node's counters, as /metrics gives them. */
interface Counters {
  readonly undelivered: number;
  readonly missed: number;
}

/** One broker process of the run, and the life it is in. */
class Node {
  process: BrokerProcess | undefined;
  url = '';
  up = false;
  lives = 0;
  life!: { name: string; killed: boolean; published: string[]; baseline: Counters; undelivered: number | undefined; missed: number | undefined };
  readonly lifes: NodeLife[] = [];

  constructor(
    readonly index: number,
    private readonly env: Record<string, string>,
  ) {}

  get name(): string {
    return `node ${this.index}`;
  }

  async start(): Promise<void> {
    const process = spawnBroker(this.env);
    this.process = process;
    // Not `ready`'s own bound: a node started on a loaded machine, in the middle of a run, may take longer.
    this.url = await until(`${this.name} listening`, () => {
      if (process.child.exitCode !== null) throw new Error(`${this.name} exited before listening: ${process.stderr().trim()}`);
      return /listening on (http:\/\/\S+)/.exec(process.stdout())?.[1];
    }, NODE_START_MS);
    this.life = {
      name: `node ${this.index}${this.lives > 0 ? ` (life ${this.lives + 1})` : ''}`,
      killed: false,
      published: [],
      baseline: { undelivered: 0, missed: 0 },
      undelivered: undefined,
      missed: undefined,
    };
    this.lives++;
    this.life.baseline = (await this.counters()) ?? { undelivered: 0, missed: 0 };
    this.up = true;
  }

  /** Its undelivered and missed counters, or undefined when it does not answer. */
  async counters(): Promise<Counters | undefined> {
    try {
      const res = await fetch(`${this.url}/metrics`, { signal: AbortSignal.timeout(5_000) });
      const metrics = parseMetrics(await res.text());
      return { undelivered: metrics.value('spicy_action_cluster_undelivered_events_total'), missed: metrics.value('spicy_action_cluster_missed_entries_total') };
    } catch {
      return undefined;
    }
  }

  /** Reads its counters into the life's record, as growth since the life began. */
  async #count(): Promise<void> {
    const counted = await this.counters();
    this.life.undelivered = counted === undefined ? undefined : counted.undelivered - this.life.baseline.undelivered;
    this.life.missed = counted === undefined ? undefined : counted.missed - this.life.baseline.missed;
  }

  /** Ends this life: SIGTERM (its counters read just before) or SIGKILL. */
  async stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const life = this.life;
    if (signal === 'SIGTERM') await this.#count();
    else life.killed = true;
    this.up = false;
    const child = this.process!;
    child.child.kill(signal);
    await child.exited;
    this.lifes.push({ ...life });
  }

  /** Ends the run for this node: its counter read, its life recorded. */
  async finish(): Promise<void> {
    if (!this.up) return;
    await this.#count();
    this.lifes.push({ ...this.life });
  }
}

/** The live nodes, the one asked for first when it is up. */
function liveNode(nodes: readonly Node[], wanted: number): Node | undefined {
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[(wanted + i) % nodes.length]!;
    if (node.up) return node;
  }
  return undefined;
}

async function waitLiveNode(nodes: readonly Node[], wanted: number): Promise<Node> {
  return until('a node up', () => liveNode(nodes, wanted), WAIT_MS);
}

/** A subscriber: one client object per connection for 1.x and 2.x; one socket, recovering, for 4.x. */
class Subscriber {
  readonly chains: { name: string; rooms: readonly string[]; recoveries: number; received: Received[]; joinedAt: number; lives: string[] }[] = [];
  /** 4.x: chain by socket id (a recovered session keeps its id). */
  readonly #byId = new Map<string, Subscriber['chains'][number]>();
  #v4: ClientSocket | undefined;
  #legacy: TestClient | undefined;
  #node: Node | undefined;
  /** Drops and reconnections of this subscriber run one at a time. */
  #queue: Promise<void> = Promise.resolve();
  #closed = false;
  /** Why a reconnection failed for good, told by {@link settled}. */
  #failure: Error | undefined;

  constructor(
    readonly index: number,
    readonly plan: SubscriberPlan,
    private readonly tag: string,
    private readonly nodes: readonly Node[],
  ) {}

  get name(): string {
    return `subscriber ${this.index} (${this.plan.generation})`;
  }

  get connected(): boolean {
    return this.#v4 ? this.#v4.connected : (this.#legacy?.raw.connected ?? false);
  }

  /** The chain being written, if any. */
  get current(): Subscriber['chains'][number] | undefined {
    if (this.#v4) return this.#v4.id === undefined ? undefined : this.#byId.get(this.#v4.id);
    return this.chains.at(-1);
  }

  #newChain(): Subscriber['chains'][number] {
    const chain = { name: `${this.name} session ${this.chains.length + 1}`, rooms: this.plan.rooms, recoveries: 0, received: [], joinedAt: 0, lives: [this.#node!.life.name] };
    this.chains.push(chain);
    return chain;
  }

  #record(chain: Subscriber['chains'][number] | undefined, args: unknown[]): void {
    const payload = args[0] as Partial<ModelPayload> | null;
    if (chain === undefined || payload?.s !== this.tag || typeof payload.k !== 'string') return;
    chain.received.push({ key: payload.k, offset: args.at(-1) });
  }

  /** Connects to node `wanted` (or the next one up) and joins its rooms unless its session was recovered. */
  async open(wanted: number): Promise<void> {
    const deadline = Date.now() + RECONNECT_DEADLINE_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#openOnce(wanted + attempt);
      } catch (error) {
        // Its node went away meanwhile, or is too loaded to answer in time: try the next one.
        if (this.#closed || Date.now() > deadline) throw error;
        if (this.#v4?.connected === false) this.#v4.disconnect();
        await sleep(RECONNECT_DELAY_MS);
      }
    }
  }

  async #openOnce(wanted: number): Promise<void> {
    const node = await waitLiveNode(this.nodes, wanted);
    this.#node = node;
    if (this.plan.generation === 'v4') {
      let socket = this.#v4;
      if (socket === undefined) {
        socket = ioV4(node.url, { transports: ['websocket'], reconnection: false, forceNew: true });
        this.#v4 = socket;
        const s = socket;
        s.onAny((_event: string, ...args: unknown[]) => this.#record(s.id === undefined ? undefined : this.#byId.get(s.id), args));
        s.on('disconnect', (reason) => this.#lost(reason));
      } else {
        (socket.io as unknown as { uri: string }).uri = node.url;
        socket.connect();
      }
      const s = socket;
      await until(`${this.name} connected to ${node.life.name}`, () => s.connected || this.#closed, WAIT_MS);
      if (this.#closed) return;
      const known = this.#byId.get(s.id!);
      if (s.recovered && known) {
        known.recoveries++;
        known.lives.push(node.life.name);
        return;
      }
      const chain = this.#newChain();
      this.#byId.set(s.id!, chain);
      for (const room of this.plan.rooms) await s.timeout(WAIT_MS).emitWithAck('join', room);
      chain.joinedAt = chain.received.length;
      return;
    }
    const client = await connect(this.plan.generation, node.url, { transports: ['websocket'] });
    const chain = this.#newChain();
    // Everything from the welcome on goes to this session's chain.
    const recorded = client.received.length;
    for (const [, ...args] of client.received.slice(0, recorded)) this.#record(chain, args);
    const push = client.record.bind(client);
    client.record = (event, args) => {
      push(event, args);
      this.#record(chain, args);
    };
    this.#legacy = client;
    client.raw.on('disconnect', (reason: string) => this.#lost(reason));
    for (const room of this.plan.rooms) await client.ack('join', room);
    chain.joinedAt = chain.received.length;
  }

  /** The connection dropped without the run asking (its node went away): come back on another node. */
  #lost(reason: string): void {
    if (this.#closed || reason === 'io client disconnect' || reason === 'forced close') return;
    const from = this.#node?.index ?? 0;
    this.#enqueue(async () => {
      if (this.connected) return;
      await sleep(RECONNECT_DELAY_MS);
      await this.open(from + 1);
    });
  }

  #enqueue(work: () => Promise<void>): void {
    this.#queue = this.#queue.then(work).catch((error: unknown) => {
      if (!this.#closed) this.#failure ??= error as Error;
    });
  }

  /** Drops the connection and reconnects to node `to`. */
  drop(to: number, away: number, admin: Redis): void {
    this.#enqueue(async () => {
      if (this.#v4) {
        const socket = this.#v4;
        if (socket.connected) {
          const pid = (socket as unknown as { _pid?: string })._pid;
          const gone = new Promise((resolve) => socket.once('disconnect', resolve));
          (socket.io as unknown as { engine: { close(): void } }).engine.close();
          await gone;
          // The node saves the session as it sees the close; a real client's backoff gives it that time.
          if (pid) await until('session saved', async () => (await admin.exists(`spicy-action:session:${pid}`)) === 1, SESSION_SAVE_WAIT_MS).catch(() => undefined);
        }
      } else {
        const client = this.#legacy;
        this.#legacy = undefined;
        client?.raw.off('disconnect');
        client?.close();
      }
      await sleep(away);
      await this.open(to);
    });
  }

  /** Resolves once every drop and reconnection asked so far is done and the subscriber is connected. */
  async settled(): Promise<void> {
    await until(`${this.name} settled`, async () => {
      const queue = this.#queue;
      await queue;
      if (this.#failure) throw this.#failure;
      return queue === this.#queue && this.connected;
    }, WAIT_MS * 2);
  }

  close(): void {
    this.#closed = true;
    this.#v4?.close();
    this.#legacy?.close();
  }
}

/** A publisher: a 4.x client on one node, moving only when its node goes away. */
class Publisher {
  #socket: ClientSocket | undefined;
  #node: Node | undefined;
  #sent = 0;
  /** Stopped from publishing (its node is about to be stopped, or the run is over). */
  quiet = false;
  /** Acknowledged events waiting for their answer. */
  readonly #waiting = new Set<Promise<Acked | undefined>>();
  readonly #random: Random;

  constructor(
    readonly index: number,
    private readonly home: number,
    private readonly schedule: Schedule,
    private readonly tag: string,
    private readonly nodes: readonly Node[],
    private readonly acks: Acked[],
    private readonly unanswered: string[],
  ) {
    this.#random = new Random(schedule.seed * 31 + index);
  }

  get node(): Node | undefined {
    return this.#node;
  }

  /** Connected to a node that is up: what it publishes now reaches a broker. */
  get connected(): boolean {
    return this.#socket?.connected === true && this.#node?.up === true;
  }

  async open(): Promise<void> {
    const node = await waitLiveNode(this.nodes, this.#node ? this.#node.index + 1 : this.home);
    const socket = ioV4(node.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    this.#socket = socket;
    this.#node = node;
    await until(`publisher ${this.index} connected`, () => socket.connected, WAIT_MS);
    socket.on('disconnect', (reason) => {
      if (reason === 'io client disconnect') return;
      void sleep(RECONNECT_DELAY_MS).then(() => this.open());
    });
  }

  /** Publishes until it has sent `due` events in all. */
  topUp(due: number): void {
    while (this.#sent < due) {
      if (this.quiet || !this.connected) return;
      const event = this.#random.pick(Object.keys(MODEL_EVENTS) as ModelEvent[]);
      this.publish(event, this.#random.chance(this.schedule.ackedShare));
    }
  }

  /** Publishes one event; resolves with its key and, when acknowledged, the answer. */
  publish(event: ModelEvent, acked: boolean): Promise<Acked | undefined> {
    const socket = this.#socket!;
    const key = `${this.index}.${this.#sent++}`;
    const payload: ModelPayload = { s: this.tag, k: key, _in: [SINK_ROOM] };
    this.#node!.life.published.push(key);
    if (!acked) {
      socket.emit(event, payload);
      return Promise.resolve(undefined);
    }
    const answered = new Promise<Acked | undefined>((resolve) => {
      // The connection ended first (its node went away): nothing was promised.
      const lost = (): void => resolve(undefined);
      socket.once('disconnect', lost);
      socket.timeout(WAIT_MS).emit(event, payload, (error: Error | null, answer: unknown) => {
        socket.off('disconnect', lost);
        if (error) {
          if (socket.connected) this.unanswered.push(key);
          return resolve(undefined);
        }
        const acked = { key, answer };
        this.acks.push(acked);
        resolve(acked);
      });
    });
    this.#waiting.add(answered);
    void answered.then(() => this.#waiting.delete(answered));
    return answered;
  }

  /** Resolves once every acknowledged event it sent has its answer (or its connection ended, or WAIT_MS passed). */
  async answered(): Promise<void> {
    await Promise.all([...this.#waiting]);
  }

  async register(bus: string | null): Promise<unknown> {
    const socket = this.#socket;
    if (!socket?.connected) return undefined;
    return socket.timeout(WAIT_MS).emitWithAck('register', { event: ROUTED_EVENT, default_room: bus }).catch(() => undefined);
  }

  close(): void {
    this.quiet = true;
    this.#socket?.close();
  }
}

/** Every entry of the run's events Redis added to the stream, as the worker of recorder.ts sees them. */
class StreamRecorder {
  readonly entries: StreamEntry[] = [];
  readonly #keys = new Set<string>();
  /** Set when the recorder may have missed entries (its feed broke): the run cannot be judged. */
  behind: string | undefined;
  #worker: Worker | undefined;
  #failed: Error | undefined;

  constructor(
    private readonly redisUrl: string,
    private readonly tag: string,
  ) {}

  has(key: string): boolean {
    if (this.#failed) throw this.#failed;
    return this.#keys.has(key);
  }

  async start(): Promise<void> {
    // A worker does not inherit the test's TypeScript loader: it loads recorder.ts through tsx's API.
    const source = `import('tsx/esm/api').then(({ tsImport }) => tsImport(${JSON.stringify(RECORDER_URL)}, ${JSON.stringify(import.meta.url)}))`;
    const worker = new Worker(source, { eval: true, workerData: { redisUrl: this.redisUrl, tag: this.tag } satisfies RecorderData });
    this.#worker = worker;
    worker.on('error', (error) => (this.#failed = error));
    await new Promise<void>((resolve, reject) => {
      worker.on('message', (message: RecorderMessage) => {
        if (message.type === 'started') resolve();
        if (message.type === 'entries') {
          for (const entry of message.entries) {
            this.#keys.add(entry.key);
            this.entries.push(entry);
          }
        }
        if (message.type === 'behind') this.behind ??= message.why;
      });
      worker.once('error', reject);
    });
  }

  /** Stops the worker once it has sent everything it read. */
  async stop(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    this.#worker = undefined;
    const done = new Promise<void>((resolve) => worker.on('message', (m: RecorderMessage) => m.type === 'stopped' && resolve()));
    worker.postMessage('stop');
    // A timer left running would hold the test process for WAIT_MS after its last test.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, WAIT_MS)))]);
    clearTimeout(timer);
    await worker.terminate();
  }
}

/** What a run gives: the record to judge, and figures for the log. */
export interface RunResult {
  readonly record: RunRecord;
  readonly published: number;
  readonly streamed: number;
  readonly recoveries: number;
  readonly sessions: number;
  /** Why the run could not be judged, if it could not. */
  readonly inconclusive?: string;
}

/**
 * Runs `schedule` on a fresh Redis and fresh nodes (inside a node:test test:
 * what it starts is stopped when the test file ends, at the latest).
 */
export async function runSchedule(schedule: Schedule): Promise<RunResult> {
  const tag = `m${schedule.seed}`;
  const redis = await RedisServer.start({ appendOnly: false });
  const admin = new Redis(redis.url);
  admin.on('error', () => {});
  await admin.config('SET', 'maxmemory-policy', 'noeviction');
  const env = { REDIS_URL: redis.url, REDIS_TIMEOUT, REDIS_STREAM_MAXLEN: String(schedule.streamMaxLen) };
  const nodes = Array.from({ length: schedule.nodes }, (_, i) => new Node(i, env));
  const acks: Acked[] = [];
  const unanswered: string[] = [];
  const publishers = schedule.publishers.map((home, i) => new Publisher(i, home, schedule, tag, nodes, acks, unanswered));
  const subscribers = schedule.subscribers.map((plan, i) => new Subscriber(i, plan, tag, nodes));
  const recorder = new StreamRecorder(redis.url, tag);
  let ticker: NodeJS.Timeout | undefined;
  try {
    await Promise.all(nodes.map((node) => node.start()));
    await recorder.start();
    await Promise.all(subscribers.map((s) => s.open(s.plan.node)));
    await Promise.all(publishers.map((p) => p.open()));
    await publishers[0]!.register(MODEL_EVENTS[ROUTED_EVENT]);

    const started = Date.now();
    ticker = setInterval(() => {
      const due = Math.floor(((Math.min(Date.now(), started + schedule.durationMs) - started) * schedule.rate) / 1000);
      for (const p of publishers) p.topUp(due);
    }, PUBLISH_TICK_MS);
    const stepping = schedule.steps.map(async (step) => {
      await sleep(step.at - (Date.now() - started));
      await perform(step);
    });
    await Promise.all(stepping);
    await sleep(schedule.durationMs - (Date.now() - started));
    clearInterval(ticker);

    // Settle: Redis whole again, every node up and every subscriber connected, then one last event per bus.
    await until('every node sees Redis up', async () => {
      for (const node of nodes) {
        if (!node.up) return false;
        const health = await fetch(`${node.url}/health`).then((r) => r.json() as Promise<{ redis?: string }>).catch(() => undefined);
        if (health?.redis !== 'up') return false;
      }
      return true;
    }, WAIT_MS * 2);
    await Promise.all(subscribers.map((s) => s.settled()));
    await until('publisher 0 connected', () => publishers[0]!.node?.up, WAIT_MS);
    for (const p of publishers) p.quiet = false;
    // One last acknowledged event from every publisher on its node: a node writes a connection's
    // events in order on one Redis connection, so once it is in the stream, so is every event that
    // node took from that publisher before it (or the node never wrote it). Without it, a node
    // starved of CPU could write its last events after the recorder stopped.
    const flushes = await Promise.all(publishers.slice(1).map((p) => (p.connected ? p.publish('call', true) : undefined)));
    const finals = [await publishers[0]!.publish('call', true), await publishers[0]!.publish('report_dev', true)];
    const finalKeys = finals.map((f) => f?.key).filter((k): k is string => k !== undefined);
    const lastKeys = [...finalKeys, ...flushes.filter((f) => (f?.answer as { ok?: unknown } | undefined)?.ok === true).map((f) => f!.key)];
    await until('the final events in the stream', () => lastKeys.every((k) => recorder.has(k)), WAIT_MS);
    // Every connected subscriber gets the final event of each of its buses (or the check says what it missed).
    const busOf = new Map(finalKeys.map((key, i) => [key, MODEL_BUSES[i]]));
    await until('every subscriber has the final events', () => subscribers.every((s) => {
      const got = new Set(s.current?.received.map((r) => r.key));
      return finalKeys.every((key) => !s.plan.rooms.includes(busOf.get(key)!) || got.has(key));
    }), WAIT_MS).catch(() => undefined);
    // Every acknowledgement sent is answered by now, Redis being up: one still waiting is told as unanswered.
    await Promise.all(publishers.map((p) => p.answered()));
    await recorder.stop();
    await Promise.all(nodes.map((node) => node.finish()));

    const chains: Chain[] = subscribers.flatMap((s) => s.chains);
    return {
      record: { stream: recorder.entries, chains, acks, unanswered, nodes: nodes.flatMap((n) => n.lifes) },
      published: nodes.reduce((n, node) => n + node.lifes.reduce((m, life) => m + life.published.length, 0), 0),
      streamed: recorder.entries.length,
      recoveries: chains.reduce((n, c) => n + c.recoveries, 0),
      sessions: chains.length,
      ...(recorder.behind === undefined ? {} : { inconclusive: recorder.behind }),
    };
  } finally {
    clearInterval(ticker);
    for (const s of subscribers) s.close();
    for (const p of publishers) p.close();
    await recorder.stop().catch(() => undefined);
    if (redis.pid !== undefined) process.kill(redis.pid, 'SIGCONT');
    for (const node of nodes) node.process?.child.kill('SIGKILL');
    admin.disconnect();
    await redis.remove();
  }

  async function perform(step: Step): Promise<void> {
    switch (step.do) {
      case 'drop':
        subscribers[step.subscriber]!.drop(step.to, step.away, admin);
        return;
      case 'route':
        await publishers[step.publisher]!.register(step.bus);
        return;
      case 'pause':
        process.kill(redis.pid!, 'SIGSTOP');
        await sleep(step.ms);
        process.kill(redis.pid!, 'SIGCONT');
        return;
      case 'refuse':
        await admin.config('SET', 'maxmemory', '1');
        await sleep(step.ms);
        await admin.config('SET', 'maxmemory', '0');
        return;
      case 'term':
      case 'kill': {
        const node = nodes[step.node]!;
        if (!node.up) return;
        const on = publishers.filter((p) => p.node === node);
        if (step.do === 'term') {
          for (const p of on) p.quiet = true;
          await sleep(QUIET_BEFORE_TERM_MS);
        }
        await node.stop(step.do === 'term' ? 'SIGTERM' : 'SIGKILL');
        for (const p of on) p.quiet = false;
        await node.start();
      }
    }
  }
}
