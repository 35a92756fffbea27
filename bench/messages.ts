/**
 * What the bench's processes tell each other over Node's IPC channel: the
 * orchestrator (bench/run.ts) drives servers (through bench/servers/probe.ts),
 * subscriber generators and the publisher. Types only.
 */

/** A server to send load to: one or several processes (a cluster) behind URLs. */
export interface Target {
  /** Short name used in the report: `broker`, `socket.io`, ... */
  readonly name: string;
  /** Subscriber sockets are spread over these URLs, in turn. */
  readonly urls: readonly string[];
}

/** How subscriber sockets pick their rooms. */
export type Layout = 'bus' | 'in';

/** What a server's probe reports about its own process. */
export interface ProbeReport {
  readonly type: 'probe';
  readonly id: number;
  /** `process.cpuUsage()`, µs. */
  readonly cpu: { user: number; system: number };
  readonly mem: NodeJS.MemoryUsage;
  /** The heap snapshot written, when one was asked for. */
  readonly heapSnapshot?: string;
}

/** Orchestrator → server probe. */
export type ProbeRequest = { type: 'probe'; id: number; gc?: boolean; heapSnapshot?: string };

/** Orchestrator → subscriber generator. */
export type SubscriberCommand =
  | { type: 'connect'; targets: readonly Target[]; count: number; first: number; layout: Layout; event: string }
  | { type: 'snapshot'; id: number; target: string; startLatency?: boolean; stopLatency?: boolean }
  | { type: 'progress'; target: string | null; run: number }
  | { type: 'close' };

/** Subscriber generator → orchestrator. */
export type SubscriberReport =
  | { type: 'connected'; sockets: number; ms: number }
  | { type: 'failed'; error: string }
  | {
      type: 'snapshot';
      id: number;
      /** Events received on the target's sockets since they connected, duplicates included. */
      delivered: number;
      /** Of which the first copy each socket got of an event. */
      unique: number;
      /** Latency samples (ms) kept since `startLatency`, and how many there were, when `stopLatency`. */
      latency?: { values: number[]; seen: number };
      cpu: { user: number; system: number };
    }
  | { type: 'progress'; target: string; run: number; min: number };

/** Orchestrator → publisher. */
export type PublisherCommand =
  | { type: 'connect'; targets: readonly Target[]; event: string }
  | { type: 'start'; target: string; run: number; mode: 'max'; window: number }
  | { type: 'start'; target: string; run: number; mode: 'rate'; rate: number }
  | { type: 'allow'; run: number; upTo: number }
  | { type: 'stop' }
  | { type: 'cpu'; id: number }
  | { type: 'close' };

/** Publisher → orchestrator. */
export type PublisherReport =
  | { type: 'connected' }
  | { type: 'failed'; error: string }
  | { type: 'stopped'; sent: number; cpu: { user: number; system: number } }
  | { type: 'cpu'; id: number; cpu: { user: number; system: number } };

/** Orchestrator → HTTP load generator, and its answer. */
export type HttpCommand = { type: 'run'; url: string; connections: number; durationS: number; body: string };
export type HttpReport =
  | { type: 'started' }
  | { type: 'done'; requests: number; non2xx: number; errors: number; durationS: number; latency: { p50: number; p99: number; mean: number }; cpu: { user: number; system: number } }
  | { type: 'failed'; error: string };
