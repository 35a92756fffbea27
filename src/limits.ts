/**
 * The limits on what clients may send and hold, declared once with their
 * defaults. Settings ({@link Settings}) extend them; the broker, the HTTP
 * push route, the route table and the guards each read the ones they need.
 * docs/configuration.md#limits lists them; docs/security.md says what each guards against.
 */

/** Every limit the broker enforces. */
export interface Limits {
  /** Largest Socket.IO message accepted, in bytes (Socket.IO's `maxHttpBufferSize`). */
  readonly maxMessageBytes: number;
  /** Largest `/_notify` body accepted, in bytes. */
  readonly maxBodyBytes: number;
  /** Longest room name (and event name) accepted, in characters. */
  readonly maxRoomNameLength: number;
  /** Most rooms one socket may be in (its own id room not counted). */
  readonly maxRoomsPerSocket: number;
  /** Most routes the route table may hold, built-in ones included. */
  readonly maxRoutes: number;
  /** Most `_in` entries of one event that are used; the rest are ignored and counted. */
  readonly maxInRooms: number;
  /** Unsent bytes a socket may have queued before it is disconnected as a slow consumer. */
  readonly maxBufferedBytes: number;
  /** Registered event names that get a label of their own in the metrics; the others are counted as `(other)`. */
  readonly maxMetricEvents: number;
  /** Deepest nesting of arrays and objects accepted in a payload (socket event or `/_notify` body). */
  readonly maxPayloadDepth: number;
  /** Bytes (encoded) of events a single process keeps for connection state recovery; the oldest go first. */
  readonly recoveryBacklogBytes: number;
  /** Engine.IO sessions that have not joined the namespace (authenticated) yet, all clients together; a handshake past it gets 503. */
  readonly maxPendingHandshakes: number;
  /** The same, from one client address; a handshake past it gets 429. */
  readonly maxPendingHandshakesPerAddress: number;
  /** How long (ms) a new session may take to join the namespace (authenticate) before it is closed. */
  readonly handshakeTimeoutMs: number;
  /** Bytes of `/_notify` bodies being read at once, all requests together (each counted at its Content-Length, or `maxBodyBytes` when chunked); past it, 503. */
  readonly maxBodiesInFlightBytes: number;
  /** Slowest a `/_notify` body may arrive, in bytes per second; slower, it is cut with 408. 0: no floor. */
  readonly minBodyRate: number;
  /** Bytes of sessions one process keeps for connection state recovery, all clients together; past it, a dropped socket keeps none. */
  readonly maxRecoverySessionsBytes: number;
  /** The same, for the sockets of one client address. */
  readonly maxRecoverySessionsBytesPerAddress: number;
}

/** The defaults, as docs/configuration.md#limits gives them. */
export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxMessageBytes: 1_000_000,
  maxBodyBytes: 1_000_000,
  maxRoomNameLength: 256,
  maxRoomsPerSocket: 1_000,
  maxRoutes: 10_000,
  maxInRooms: 100,
  maxBufferedBytes: 16_000_000,
  maxMetricEvents: 100,
  maxPayloadDepth: 64,
  recoveryBacklogBytes: 64_000_000,
  maxPendingHandshakes: 2_000,
  maxPendingHandshakesPerAddress: 500,
  handshakeTimeoutMs: 10_000,
  maxBodiesInFlightBytes: 32_000_000,
  minBodyRate: 10_000,
  maxRecoverySessionsBytes: 128_000_000,
  maxRecoverySessionsBytesPerAddress: 16_000_000,
});
