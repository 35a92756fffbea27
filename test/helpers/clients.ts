/**
 * Real socket.io-client of each generation the platform runs (1.7, 2.5, 4.8),
 * behind one small interface so a test can be written once and run for all.
 */
import { request as httpRequest } from 'node:http';
import { createRequire } from 'node:module';
import { after } from 'node:test';
import { io as ioV4 } from 'socket.io-client';
import type { RunningBroker } from '../../src/server.ts';
import { until } from './wait.ts';

const require = createRequire(import.meta.url);

/** The client generations the broker must serve. */
export type Generation = 'v1' | 'v2' | 'v4';
export const GENERATIONS: readonly Generation[] = ['v1', 'v2', 'v4'];

/** What tests use of a client socket, common to every generation. */
interface RawSocket {
  id?: string;
  connected: boolean;
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener?: (...args: any[]) => void): unknown;
  emit(event: string, ...args: unknown[]): unknown;
  close(): unknown;
  io?: unknown;
  recovered?: boolean;
}
type Connect = (url: string, options: Record<string, unknown>) => RawSocket;

const FACTORIES: Record<Generation, Connect> = {
  v1: require('socket.io-client-v1') as Connect,
  v2: require('socket.io-client-v2') as Connect,
  v4: ioV4 as unknown as Connect,
};

export interface ClientOptions {
  /** `['polling']`, `['websocket']`, or the default (polling, then upgrade). */
  transports?: string[];
  /** Presented as `auth.token` by 4.x and `?token=` by 1.x and 2.x. */
  token?: string;
  /** Keep reconnecting (off by default in tests). */
  reconnection?: boolean;
  /** Extra options for the client library. */
  extra?: Record<string, unknown>;
}

/** A connected client that records everything it receives. */
export class TestClient {
  /** Every event received, in order: [event, ...args]. */
  readonly received: unknown[][] = [];
  readonly #waiters = new Set<{ event: string; resolve: (args: unknown[]) => void }>();

  constructor(
    readonly generation: Generation,
    readonly raw: RawSocket,
    /** The `welcome` payload. */
    readonly welcome: { id: string; publicId: string; name: string; version: string; public: boolean },
  ) {}

  /** The socket id the broker gave in `welcome`. */
  get id(): string {
    return this.welcome.id;
  }

  /** @internal records one event. */
  record(event: string, args: unknown[]): void {
    this.received.push([event, ...args]);
    for (const waiter of this.#waiters) {
      if (waiter.event === event) {
        this.#waiters.delete(waiter);
        waiter.resolve(args);
      }
    }
  }

  /** Payloads (first arguments) of every `event` received so far. */
  payloads(event: string): unknown[] {
    return this.received.filter((r) => r[0] === event).map((r) => r[1]);
  }

  /** How many times `event` was received. */
  count(event: string): number {
    return this.received.filter((r) => r[0] === event).length;
  }

  emit(event: string, ...args: unknown[]): void {
    this.raw.emit(event, ...args);
  }

  /** Emits with an acknowledgement callback and resolves with the answer. */
  ack<T = unknown>(event: string, ...args: unknown[]): Promise<T> {
    return withTimeout(
      new Promise<T>((resolve) => this.raw.emit(event, ...args, (answer: T) => resolve(answer))),
      `${this.generation} ack of ${event}`,
    );
  }

  /** The arguments of the next `event` received after this call. */
  next(event: string, timeoutMs = 5_000): Promise<unknown[]> {
    return withTimeout(
      new Promise<unknown[]>((resolve) => this.#waiters.add({ event, resolve })),
      `${this.generation} waiting for ${event}`,
      timeoutMs,
    );
  }

  /** Resolves once `n` events named `event` have been received in all. */
  async receive(event: string, n: number, timeoutMs = 10_000): Promise<unknown[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.count(event) < n) {
      if (Date.now() > deadline) throw new Error(`${this.generation} received ${this.count(event)} of ${n} ${event}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.payloads(event);
  }

  close(): void {
    this.raw.close();
  }
}

/** Rejects after `ms` with a message naming what was awaited. */
export function withTimeout<T>(promise: Promise<T>, what: string, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    }),
  ]);
}

function open(generation: Generation, url: string, options: ClientOptions): RawSocket {
  const { token, transports, reconnection = false, extra } = options;
  const base: Record<string, unknown> = { forceNew: true, reconnection, ...extra };
  if (transports) base.transports = transports;
  if (token !== undefined) {
    if (generation === 'v4') base.auth = { token };
    else base.query = { token };
  }
  return FACTORIES[generation](url, base);
}

/** The events a generation uses for a refused or failed connection. */
const ERROR_EVENTS = ['connect_error', 'error'];

/**
 * Connects a client of `generation` and resolves on the broker's `welcome`.
 *
 * @example
 * const client = await connect('v1', broker.url, { transports: ['websocket'] });
 */
export async function connect(generation: Generation, url: string, options: ClientOptions = {}): Promise<TestClient> {
  const raw = open(generation, url, options);
  let client: TestClient | undefined;
  const early: unknown[][] = [];
  // Record from the first packet, so nothing sent right after `welcome` is missed.
  const anyListener = (event: string) => (...args: unknown[]) => {
    if (client) client.record(event, args);
    else early.push([event, ...args]);
  };
  // 1.x and 2.x have no onAny: wrap emit of the client's own event emitter.
  if (generation === 'v4') {
    (raw as unknown as { onAny(l: (event: string, ...args: unknown[]) => void): void }).onAny((event, ...args) => anyListener(event)(...args));
  } else {
    const target = raw as unknown as { onevent: (packet: { data: unknown[] }) => void };
    const original = target.onevent.bind(raw);
    target.onevent = (packet) => {
      const [event, ...args] = packet.data as [string, ...unknown[]];
      anyListener(event)(...args);
      original(packet);
    };
  }
  const welcome = await withTimeout(
    new Promise<TestClient['welcome']>((resolve, reject) => {
      raw.on('welcome', resolve);
      for (const name of ERROR_EVENTS) {
        raw.on(name, (error: unknown) => {
          raw.close();
          reject(new ConnectError(error instanceof Error ? error.message : String(error)));
        });
      }
    }),
    `${generation} welcome from ${url}`,
  );
  client = new TestClient(generation, raw, welcome);
  for (const [event, ...args] of early) client.record(event as string, args);
  return client;
}

/** A connection the broker refused; `message` is what the client was told. */
export class ConnectError extends Error {
  override name = 'ConnectError';
}

/** Connects, expecting a refusal; resolves with the error message the client got. */
export async function connectRefused(generation: Generation, url: string, options: ClientOptions = {}): Promise<string> {
  try {
    const client = await connect(generation, url, options);
    client.close();
  } catch (error) {
    if (error instanceof ConnectError) return error.message;
    throw error;
  }
  throw new Error(`${generation} was let in`);
}

/**
 * Waits until every event `publisher` sent before now has reached each of
 * `receivers`: it sends a marker through the broker behind them and waits
 * for it. Socket.IO keeps order per connection, so once the marker is in,
 * anything earlier (a duplicate, say) would be in too. Use it instead of
 * sleeping before asserting that something did *not* arrive.
 */
export async function flush(publisher: TestClient, receivers: readonly TestClient[]): Promise<void> {
  const room = `flush:${Math.random().toString(36).slice(2)}`;
  await Promise.all(receivers.map((r) => r.ack('join', room)));
  await publisher.ack('register', { event: 'flush', default_room: null });
  const arrivals = receivers.map((r) => r.next('flush'));
  publisher.emit('flush', { _in: [room] });
  await Promise.all(arrivals);
  await Promise.all(receivers.map((r) => r.ack('leave', room)));
}

/** Closes every client given, ignoring those already closed. */
export function closeAll(clients: Iterable<TestClient | undefined>): void {
  for (const client of clients) client?.close();
}

/** Opens a client closed when the suite ends; `keep` adds one opened otherwise. */
export interface ClientOpener {
  (generation: Generation, url: string): Promise<TestClient>;
  /** Closes `client` too when the suite ends; returns it. */
  keep(client: TestClient): TestClient;
}

/**
 * A way to open WebSocket clients that are all closed when the current suite
 * ends (call it inside a `describe`).
 *
 * @example
 * const open = clientsClosedAfter();
 * const client = await open('v4', broker.url);
 * open.keep(await connect('v2', broker.url, { transports: ['polling'] }));
 */
export function clientsClosedAfter(options: ClientOptions = { transports: ['websocket'] }): ClientOpener {
  const clients: TestClient[] = [];
  after(() => closeAll(clients));
  const keep = (client: TestClient): TestClient => {
    clients.push(client);
    return client;
  };
  return Object.assign(async (generation: Generation, url: string) => keep(await connect(generation, url, options)), { keep });
}

/** What a 4.x client offers to drop its transport and come back with its session. */
interface Recovering {
  io: { engine: { close(): void } };
  connect(): void;
  once(event: 'connect', listener: () => void): void;
  recovered: boolean;
}

/** Drops a 4.x client's transport, as a network cut does (Socket.IO keeps the session for recovery), and waits until `broker` has seen it go. */
export async function dropTransport(broker: RunningBroker, client: TestClient): Promise<void> {
  const id = client.raw.id ?? client.id;
  (client.raw as unknown as Recovering).io.engine.close();
  await until('the broker sees the socket go', () => !broker.io.of('/').sockets.has(id));
}

/** Reconnects a 4.x client dropped by {@link dropTransport}; resolves with whether its session was recovered. */
export async function comeBack(client: TestClient): Promise<boolean> {
  const raw = client.raw as unknown as Recovering;
  const connected = withTimeout(new Promise<void>((resolve) => raw.once('connect', resolve)), 'reconnection');
  raw.connect();
  await connected;
  return raw.recovered;
}

/** An HTTP answer's status and body. */
export interface RawAnswer {
  readonly status: number;
  readonly body: string;
}

/** A raw HTTP request, as a stranger would write it: from `localAddress` if given, with `body` sent as text. */
export function rawRequest(url: string, method: 'GET' | 'POST', options: { body?: string; localAddress?: string; headers?: Record<string, string> } = {}): Promise<RawAnswer> {
  const { body, localAddress, headers = {} } = options;
  return withTimeout(
    new Promise<RawAnswer>((resolve, reject) => {
      const req = httpRequest(url, { method, localAddress, headers: { ...headers, ...(body ? { 'Content-Type': 'text/plain;charset=UTF-8' } : {}) } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    }),
    `${method} ${url}`,
  );
}
