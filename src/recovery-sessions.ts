/**
 * Sessions kept for recovery, bounded
 * (docs/security.md#nothing-held-for-a-stranger): a dropped socket's session is kept only while the
 * sessions of its client address, and of all clients, stay under their
 * caps in bytes ({@link KeptSessions}); past them it keeps none, and its
 * client comes back with a fresh session (`recovered` false), counted
 * (`recovery_sessions`) and logged once per episode. The hook sits in front
 * of the adapter's `persistSession`, the one door Socket.IO hands every
 * session through, whatever the adapter: the in-memory one of a single
 * process, or the cluster's, which writes sessions to Redis (each node
 * then bounds what it writes).
 */
import createDebug from 'debug';
import type { BrokerServer } from './broker.ts';
import { RefusalEpisodes, UNKNOWN_ADDRESS, type AddressOf, type BudgetCaps } from './budget.ts';
import { forgetWaitingSession, wrapPersistSession, type PersistedSession } from './internals.ts';
import { KeptSessions, sessionBytes, type KeptSessionsState } from './kept-sessions.ts';
import type { Refusal } from './protocol.ts';

const debug = createDebug('spicy-action:recovery-sessions');

/** How a dropped socket that keeps no session is counted. */
const NO_ROOM: Refusal = Object.freeze({ reason: 'recovery_sessions', error: 'no room left for this session: its client will not recover' });

/**
 * Bounds the sessions `io`'s adapter keeps for recovery by `caps` (bytes per
 * client address, as `addressOf` tells it, and in total) over `windowMs`, as the module comment says;
 * `refused` is told of each session not kept (to count it) and must not
 * throw. Undefined when the adapter keeps no sessions (recovery off).
 *
 * @example
 * const kept = capKeptSessions(io, { perAddress: 16_000_000, total: 128_000_000 }, 120_000, peerAddress, (r) => telemetry.refused('recovery', r));
 */
export function capKeptSessions(
  io: BrokerServer,
  caps: BudgetCaps,
  windowMs: number,
  addressOf: AddressOf,
  refused: (refusal: Refusal) => void,
): { state(): KeptSessionsState } | undefined {
  const kept = new KeptSessions(caps, windowMs);
  const episodes = new RefusalEpisodes();
  const nsp = io.of('/');
  const wrapped = wrapPersistSession(io, (persist, session: PersistedSession) => {
    // Socket.IO persists a socket's session before removing it from its namespace.
    const socket = nsp.sockets.get(session.sid);
    const address = socket ? addressOf(socket.request) : UNKNOWN_ADDRESS;
    if (kept.keep(session.pid, address, sessionBytes(session.rooms), Date.now())) return persist(session);
    // An older session under the same id (kept before the client recovered once) must not be restored instead.
    forgetWaitingSession(io, session.pid);
    const episode = episodes.refused(Date.now());
    if (episode.starts) {
      debug('keeping no session for dropped sockets from %s and others: %d bytes kept for that address, caps %d per address and %d in total; the previous episode refused %d',
        address, kept.heldBy(address), caps.perAddress, caps.total, episode.previous);
    }
    refused(NO_ROOM);
    return undefined;
  });
  if (!wrapped) return undefined;
  return { state: () => kept.state(Date.now()) };
}
