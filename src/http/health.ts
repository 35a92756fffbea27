/**
 * `GET /health` (docs/protocol.md#health): whether this broker is serving, for load
 * balancers and supervisors. It is answered without a token.
 */
import createDebug from 'debug';
import type { RequestHandler } from 'express';
import type { RedisState } from '../protocol.ts';

const debug = createDebug('spicy-action:health');

/**
 * The cluster's link to Redis, as health and metrics read it. The cluster
 * module provides it; without a cluster the state is `off`.
 */
export interface RedisStateSource {
  readonly state: RedisState;
  on(event: 'state', listener: (state: RedisState) => void): unknown;
  on(event: 'undelivered', listener: (count: number) => void): unknown;
  /** Redis refused one write (`reason`: oom, readonly, misconf, noreplicas, other). */
  on(event: 'refused', listener: (reason: string) => void): unknown;
  /** `count` more entries of the stream were trimmed before this node read them. */
  on(event: 'missed', listener: (count: number) => void): unknown;
}

/** Where the broker is in its life: `/health` answers 200 only while `ready`. */
export type Phase = 'starting' | 'ready' | 'stopping';

/** The body of `/health`. */
export interface HealthReport {
  readonly ok: boolean;
  readonly name: string;
  readonly version: string;
  /** Seconds since the process started. */
  readonly uptime: number;
  /** Sockets connected to this node. */
  readonly connections: number;
  readonly redis: RedisState;
  /** Present while Redis refuses events for memory and the broker trims the cluster's stream on its own. */
  readonly stream?: 'full';
  /** Present while not ready: `starting` or `stopping`. */
  readonly phase?: Phase;
}

/** What the health check reads. */
export interface HealthOptions {
  readonly name: string;
  readonly version: string;
  /** Number of sockets connected now. */
  readonly connections: () => number;
  /** The cluster's link to Redis, read at each request; omitted: `off`. */
  readonly redis?: Pick<RedisStateSource, 'state'> & { readonly streamFull?: boolean };
}

/**
 * The broker's health: its phase (set by whoever starts and stops it) and
 * the report `/health` gives.
 *
 * @example
 * const health = new HealthCheck({ name, version, connections: () => io.engine.clientsCount });
 * app.get('/health', health.handler);
 * health.ready(); // once listening: 200 from now on
 * health.stopping(); // first thing on shutdown: 503 until the server closes
 */
export class HealthCheck {
  #phase: Phase = 'starting';
  readonly #options: HealthOptions;

  constructor(options: HealthOptions) {
    this.#options = options;
  }

  get phase(): Phase {
    return this.#phase;
  }

  /** The broker serves: `/health` answers 200. */
  ready(): void {
    if (this.#phase === 'stopping') return;
    this.#phase = 'ready';
    debug('ready');
  }

  /** The broker is shutting down: `/health` answers 503 from now on. */
  stopping(): void {
    this.#phase = 'stopping';
    debug('stopping');
  }

  /** The report and its HTTP status. */
  report(): { status: number; body: HealthReport } {
    const { name, version, connections, redis } = this.#options;
    const ok = this.#phase === 'ready';
    const body: HealthReport = {
      ok,
      name,
      version,
      uptime: Math.round(process.uptime() * 1000) / 1000,
      connections: connections(),
      redis: redis?.state ?? 'off',
      ...(redis?.streamFull ? { stream: 'full' as const } : {}),
      ...(ok ? {} : { phase: this.#phase }),
    };
    return { status: ok ? 200 : 503, body };
  }

  /** Express handler of `GET /health`. */
  readonly handler: RequestHandler = (_req, res) => {
    const { status, body } = this.report();
    res.status(status).set('Cache-Control', 'no-store').json(body);
  };
}
