/**
 * Request bodies in flight (docs/security.md#nothing-held-for-a-stranger): a
 * `/_notify` body is held in memory as it arrives (up to `MAX_BODY_BYTES`),
 * and a client that stops short of its Content-Length would otherwise keep
 * it held for Node's `requestTimeout` (5 min), on as many connections as it
 * opens. This guard, mounted in front of the body parser:
 * - counts every body being read at what it may grow to (its Content-Length;
 *   `MAX_BODY_BYTES` when chunked or compressed), all requests together, and
 *   answers a request past `MAX_BODIES_IN_FLIGHT_BYTES` at once with `503`
 *   (`bodies_in_flight`), before reading any of it;
 * - cuts a body that arrives slower than `MIN_BODY_RATE` bytes per second
 *   (measured over each window of {@link RATE_WINDOW_MS}) with `408`
 *   (`slow_body`) and closes its connection, which frees what was read.
 * Refusals are counted, and logged once per episode.
 */
import createDebug from 'debug';
import type { Request, RequestHandler, Response } from 'express';
import { Budget, RefusalEpisodes, type AddressOf } from '../budget.ts';
import type { Refusal } from '../protocol.ts';

const debug = createDebug('spicy-action:bodies');

/** The window over which a body's rate is measured: a body must bring `MIN_BODY_RATE` × this in each. */
export const RATE_WINDOW_MS = 5_000;
/** How often bodies in flight are looked at. */
const CHECK_EVERY_MS = 1_000;
/** The one key of the budget: bodies are capped in total, not per address. */
const ALL = 'all';

/** The guard's clock: {@link RATE_WINDOW_MS} and how often bodies are looked at, unless a test shortens them. */
export interface BodyTiming {
  readonly rateWindowMs?: number;
  readonly checkEveryMs?: number;
}

/** What the guard reads of the limits. */
export interface BodyLimits {
  readonly maxBodyBytes: number;
  readonly maxBodiesInFlightBytes: number;
  /** Bytes per second; 0: no floor. */
  readonly minBodyRate: number;
}

/** What the guard reports, read by tests. */
export interface BodiesState {
  /** Bytes counted for the bodies being read now. */
  readonly bytes: number;
  /** Bodies being read now. */
  readonly bodies: number;
}

/** A body being read. */
interface InFlight {
  readonly req: Request;
  readonly res: Response;
  /** The socket's `bytesRead` at the start of the current window. */
  windowBytes: number;
  windowStart: number;
}

/** The bytes a request's body may take once read, or 0 when it has none (or one the parser refuses unread). */
function bodyBytes(req: Request, maxBodyBytes: number): number {
  const { 'content-length': length, 'transfer-encoding': chunked, 'content-encoding': encoding } = req.headers;
  const declared = Number(length);
  const compressed = encoding !== undefined && encoding.toLowerCase() !== 'identity';
  if (chunked !== undefined || compressed) return maxBodyBytes;
  // Past MAX_BODY_BYTES the parser answers 413 without reading it.
  return Number.isFinite(declared) && declared > 0 && declared <= maxBodyBytes ? declared : 0;
}

const TOO_MANY: Refusal = Object.freeze({ reason: 'bodies_in_flight', error: 'too many request bodies are being read; retry later' });

/**
 * The guard, as an Express middleware for the routes whose bodies are read
 * (`notifyChecks`), with its state; the log names the client as `addressOf`
 * tells it; `refused` is told of each refusal (to
 * count it) and must not throw. `close()` stops its timer.
 *
 * @example
 * const bodies = bodyBudget(settings, peerAddress, (what, refusal) => telemetry.refused(what, refusal));
 * app.post(NOTIFY_PATH, bodies.guard, ...notifyHandlers(broker));
 */
export function bodyBudget(
  limits: BodyLimits,
  addressOf: AddressOf,
  refused: (what: string, refusal: Refusal) => void,
  timing: BodyTiming = {},
): { readonly guard: RequestHandler; state(): BodiesState; close(): void } {
  const windowMs = timing.rateWindowMs ?? RATE_WINDOW_MS;
  const checkEveryMs = timing.checkEveryMs ?? CHECK_EVERY_MS;
  const budget = new Budget({ perAddress: limits.maxBodiesInFlightBytes, total: limits.maxBodiesInFlightBytes });
  const episodes = new RefusalEpisodes();
  // The bodies whose rate is watched (all of them, unless there is no floor).
  const inFlight = new Set<InFlight>();
  let reading = 0;
  const floor = limits.minBodyRate * (windowMs / 1_000);
  const slow: Refusal = Object.freeze({ reason: 'slow_body', error: `the body arrived slower than ${limits.minBodyRate} bytes per second` });
  let timer: NodeJS.Timeout | undefined;

  const tell = (what: string, refusal: Refusal, address: string): void => {
    const episode = episodes.refused(Date.now());
    if (episode.starts) {
      debug('refusing bodies (%s) from %s and others: %d bytes in flight in %d bodies, cap %d; the previous episode refused %d',
        refusal.reason, address, budget.total, inFlight.size, limits.maxBodiesInFlightBytes, episode.previous);
    }
    refused(what, refusal);
  };

  const check = (): void => {
    const now = Date.now();
    for (const body of inFlight) {
      const { req, res } = body;
      if (req.complete || now - body.windowStart < windowMs) continue;
      const read = req.socket.bytesRead;
      if (read - body.windowBytes >= floor) {
        body.windowBytes = read;
        body.windowStart = now;
        continue;
      }
      // Too slow: answer, then close the connection, which ends the parser's read and frees its buffers.
      inFlight.delete(body);
      tell(`${req.method} ${req.path}`, slow, addressOf(req));
      if (!res.headersSent) res.status(408).set('Connection', 'close').json({ ok: false, error: slow.error });
      req.socket.destroySoon();
    }
    if (inFlight.size === 0) stop();
  };
  const stop = (): void => {
    clearInterval(timer);
    timer = undefined;
  };

  const guard: RequestHandler = (req, res, next) => {
    const bytes = bodyBytes(req, limits.maxBodyBytes);
    if (bytes === 0) return next();
    if (budget.take(ALL, bytes) !== undefined) {
      tell(`${req.method} ${req.path}`, TOO_MANY, addressOf(req));
      res.status(503).set({ 'Retry-After': '1', Connection: 'close' }).json({ ok: false, error: TOO_MANY.error });
      return;
    }
    const body: InFlight = { req, res, windowBytes: req.socket.bytesRead, windowStart: Date.now() };
    if (floor > 0) {
      inFlight.add(body);
      if (timer === undefined) {
        timer = setInterval(check, checkEveryMs);
        timer.unref();
      }
    }
    reading++;
    res.once('close', () => {
      reading--;
      inFlight.delete(body);
      budget.give(ALL, bytes);
    });
    next();
  };

  return {
    guard,
    state() {
      return { bytes: budget.total, bodies: reading };
    },
    close: stop,
  };
}
