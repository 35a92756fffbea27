/**
 * Nothing held for a stranger (docs/security.md#nothing-held-for-a-stranger):
 * an Engine.IO handshake creates a session (about 6 KB of heap) before the
 * client has shown anything, and the client authenticates only when its
 * socket joins the namespace (4.x: the CONNECT packet carrying `auth`;
 * 1.x/2.x: their handshake query, checked as Socket.IO joins them). Until
 * then the session is *pending*:
 * - in time: a session that joined no namespace `HANDSHAKE_TIMEOUT` after
 *   its handshake, whether it never asked or was refused, is discarded at
 *   once. (Socket.IO's own `connectTimeout`, 45 s, would only start a close
 *   that waits up to 30 s more for a polling client's next request, and
 *   once started, that close cannot be hurried: src/server.ts sets it a
 *   little later than this guard's timer.)
 * - in number: this guard counts pending sessions per client address and in
 *   total, and refuses a handshake past either cap before Engine.IO creates
 *   anything: `429` (this address) or `503` (everyone) with
 *   `{ok: false, error}` in JSON and `Retry-After`; a WebSocket handshake
 *   gets the same answer on its socket, which is then closed. Each refusal is
 *   counted (`pending_handshakes`), and the log says so once per episode.
 */
import { ServerResponse } from 'node:http';
import createDebug from 'debug';
import type { BrokerServer } from '../broker.ts';
import { Budget, RefusalEpisodes, type AddressOf, type BudgetCaps, type BudgetRefusal } from '../budget.ts';
import { onEngineSession, useEngineMiddleware, type EngineRequest, type EngineSession } from '../internals.ts';
import type { Refusal } from '../protocol.ts';

const debug = createDebug('spicy-action:handshakes');

/** The answer past each cap. */
const ANSWERS: Record<BudgetRefusal, { readonly status: number; readonly text: string; readonly refusal: Refusal }> = {
  per_address: {
    status: 429,
    text: 'Too Many Requests',
    refusal: Object.freeze({ reason: 'pending_handshakes', error: 'too many handshakes from this address have not joined yet; retry later' }),
  },
  total: {
    status: 503,
    text: 'Service Unavailable',
    refusal: Object.freeze({ reason: 'pending_handshakes', error: 'too many handshakes have not joined yet; retry later' }),
  },
};

/** What the guard reports, read by tests and metrics. */
export interface PendingState {
  /** Sessions that have not joined the namespace yet. */
  readonly pending: number;
  /** Handshakes refused since start. */
  readonly refused: number;
}

/** The caps and the time a session has to join. */
export interface PendingLimits extends BudgetCaps {
  /** How long (ms) a session may stay pending; said in `Retry-After`. */
  readonly timeoutMs: number;
}

/** What an Engine.IO middleware is given as the response: Node's for polling, a stand-in holding the socket for an upgrade. */
type EngineResponse = ServerResponse | { readonly socket?: { write(data: string): unknown; destroy(): void } };

/** Answers `status` with a JSON body on a polling response, or writes it on an upgrade's socket and closes it. */
function answer(req: EngineRequest, res: EngineResponse, status: number, text: string, body: object, retryAfterS: number): void {
  const json = JSON.stringify(body);
  const headers = { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(json)), 'Retry-After': String(retryAfterS), Connection: 'close' };
  if (res instanceof ServerResponse) {
    if (!res.headersSent) res.writeHead(status, headers);
    res.end(json);
    return;
  }
  const socket = (req as { socket?: { write?(data: string): unknown; destroy?(): void } }).socket;
  if (typeof socket?.write !== 'function' || typeof socket.destroy !== 'function') return;
  const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.write(`HTTP/1.1 ${status} ${text}\r\n${head}\r\n${json}`);
  socket.destroy();
}

/**
 * Counts the pending sessions of `io` per client address (as `addressOf`
 * tells it) and in total, and refuses handshakes past `limits`,
 * as the module comment says; `refused` is told of each refusal (to count
 * it) and must not throw.
 *
 * @example
 * const pending = capPendingHandshakes(io, { perAddress: 100, total: 5_000, timeoutMs: 10_000 }, peerAddress, (r) => telemetry.refused('engine.io', r));
 * pending.state().pending; // ≤ 5000
 */
export function capPendingHandshakes(io: BrokerServer, limits: PendingLimits, addressOf: AddressOf, refused: (refusal: Refusal) => void): { state(): PendingState } {
  const budget = new Budget(limits);
  const episodes = new RefusalEpisodes();
  // Engine.IO session → the address it counts against, its deadline and its close listener, until it joins or closes.
  const pending = new Map<object, { readonly address: string; readonly deadline: NodeJS.Timeout; readonly session: EngineSession; readonly closed: () => void }>();
  const retryAfterS = Math.max(1, Math.ceil(limits.timeoutMs / 1_000));

  const settle = (session: object): void => {
    const entry = pending.get(session);
    if (entry === undefined) return;
    pending.delete(session);
    clearTimeout(entry.deadline);
    // A session that joined lives on without it: nothing of this guard stays with a connected client.
    entry.session.off('close', entry.closed);
    budget.give(entry.address, 1);
  };

  useEngineMiddleware(io, (req, res, next) => {
    if (req._query.sid) return next(); // a request on a session, not a handshake
    const address = addressOf(req);
    const over = budget.check(address, 1);
    if (over === undefined) return next();
    const { status, text, refusal } = ANSWERS[over];
    const episode = episodes.refused(Date.now());
    if (episode.starts) {
      debug(
        'refusing handshakes: %d pending (%d from %s), caps %d per address and %d in total; the previous episode refused %d',
        budget.total, budget.heldBy(address), address, limits.perAddress, limits.total, episode.previous,
      );
    }
    refused(refusal);
    answer(req, res as EngineResponse, status, text, { ok: false, error: refusal.error }, retryAfterS);
    next(new Error(refusal.error));
  });

  onEngineSession(io, (session) => {
    const address = addressOf(session.request);
    // The middleware checked this handshake moments ago, in the same turn of the event loop (Engine.IO's
    // verification and id are promises, not I/O), so this take succeeds; were it not to, the session is
    // left uncounted, and Socket.IO's connectTimeout still closes it.
    if (budget.take(address, 1) !== undefined) return;
    const deadline = setTimeout(() => session.close(true), limits.timeoutMs);
    const closed = (): void => settle(session);
    pending.set(session, { address, deadline, session, closed });
    session.once('close', closed);
  });

  io.on('connection', (socket) => settle(socket.conn));

  return {
    state() {
      return { pending: pending.size, refused: episodes.count };
    },
  };
}
