/**
 * The broker's wire protocol: what clients send, what the broker sends back,
 * and the checks applied at the edge. Pure: no Socket.IO, no Express.
 */

/** Acknowledgement of `configure`, `ping`, `shout`, `notify_users`, `register` and routed events. */
export type Ack<T extends object = object> = ({ ok: true } & T) | { ok: false; error: string };

/** Acknowledgement callback of `join`/`subscribe`/`leave`/`unsubscribe`: a boolean, as the public side does. */
export type BooleanAck = (ok: boolean) => void;

/** `register` payload: route `event` to the bus `default_room`, or to `_in` rooms only. */
export interface RegisterRequest {
  event: string;
  default_room?: string | null;
}

/** Events the broker sends to clients. Routed events carry whatever their sender gave. */
export interface ServerToClientEvents {
  /**
   * Sent to every socket on connection: `id` is its own Socket.IO id (for a
   * 1.x/2.x client, its Engine.IO session id, told to it alone), `publicId`
   * what others see of it (`shouted`).
   */
  welcome: (info: { id: string; publicId: string; name: string; version: string; public: false }) => void;
  /** Answer to `configure`, with the object that was sent. */
  configured: (request: Record<string, unknown>) => void;
  /** Bad input from a client that gave no acknowledgement callback. */
  failed: (failure: { event: string; msg: string }) => void;
  /** A `shout`, relayed to `internal`; `id` is the sender's public id (never its session id). */
  shouted: (shout: { id: string; data: unknown }) => void;
  /** A `notify_users`, relayed to `internal` and `everyone`. */
  notify: (data: unknown) => void;
  /** A `ping`, relayed to every host bus. */
  ping: (data: unknown) => void;
  /** Routed events: `call`, `location:update`, registered ones... */
  [event: string]: (...args: any[]) => void;
}

/** Events clients send to the broker; the last argument may be an acknowledgement callback. */
export interface ClientToServerEvents {
  [event: string]: (...args: any[]) => void;
}

/** Control events: handled by the broker itself, never routed, never registrable. */
export const CONTROL_EVENTS: ReadonlySet<string> = new Set([
  'configure',
  'join',
  'subscribe',
  'leave',
  'unsubscribe',
  'ping',
  'shout',
  'notify_users',
  'register',
]);

/** Names Socket.IO keeps for itself. */
export const RESERVED_EVENTS: ReadonlySet<string> = new Set([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
]);

/** The event the audit feed is sent as (docs/watching.md#who-did-what): a client's event of that name would pass for one. */
export const AUDIT_EVENT = 'audit';

/** Why an input was refused; also the label of the refusal counter. */
export type RefusalReason =
  | 'bad_payload'
  | 'bad_room'
  | 'bad_event'
  | 'too_many_rooms'
  | 'too_many_routes'
  | 'unrouted'
  | 'in_overflow'
  | 'unauthorized'
  | 'too_large'
  | 'bad_origin'
  | 'bad_request'
  | 'server_error'
  | 'too_deep'
  | 'stream_budget'
  | 'binary'
  | 'pending_handshakes'
  | 'bodies_in_flight'
  | 'slow_body'
  | 'recovery_sessions'
  | 'forbidden'
  | 'too_many_attempts';

/** A refusal: the reason (for counting) and a sentence for the client. */
export interface Refusal {
  readonly reason: RefusalReason;
  readonly error: string;
}

/** The refusal of what a client's grants do not allow (docs/security.md#grants). */
export const FORBIDDEN: Refusal = Object.freeze({ reason: 'forbidden', error: 'forbidden' });

/**
 * Checks a room name given to `join`/`leave`; undefined when it is fine.
 *
 * @example
 * roomRefusal('endpoint:alice@example.net', 256); // undefined
 * roomRefusal(42, 256)?.error; // 'room must be a non-empty string of at most 256 characters'
 */
export function roomRefusal(room: unknown, maxLength: number): Refusal | undefined {
  if (typeof room === 'string' && room.length > 0 && room.length <= maxLength) return undefined;
  return { reason: 'bad_room', error: `room must be a non-empty string of at most ${maxLength} characters` };
}

/**
 * Checks an event name given to `register`; undefined when it may be routed.
 *
 * @example
 * eventRefusal('place-call', 256); // undefined
 * eventRefusal('join', 256)?.error; // '"join" is a control event and cannot be registered'
 */
export function eventRefusal(event: unknown, maxLength: number): Refusal | undefined {
  if (typeof event !== 'string' || event.length === 0 || event.length > maxLength) {
    return { reason: 'bad_event', error: `event must be a non-empty string of at most ${maxLength} characters` };
  }
  if (CONTROL_EVENTS.has(event)) return { reason: 'bad_event', error: `"${event}" is a control event and cannot be registered` };
  if (RESERVED_EVENTS.has(event)) return { reason: 'bad_event', error: `"${event}" is reserved by Socket.IO and cannot be registered` };
  if (event === AUDIT_EVENT) return { reason: 'bad_event', error: `"${event}" is sent by the broker and cannot be registered` };
  return undefined;
}

/**
 * True when `value` nests arrays and objects deeper than `maxDepth` (a
 * scalar has depth 0, `{}` and `[]` depth 1). Iterative, so no payload can
 * overflow the stack, and it stops at the first branch past the limit: a
 * deep payload costs at most `maxDepth` steps down one branch, a shallow one
 * one look at each value. Socket.IO's encoder and the cluster's serializer
 * recurse once per level, so a payload past a few thousand levels would
 * throw where no one catches it; {@link depthRefusal} keeps those out.
 *
 * @example
 * tooDeep({ a: [1, { b: 2 }] }, 3); // false: depth 3
 * tooDeep({ a: [1, { b: 2 }] }, 2); // true
 */
export function tooDeep(value: unknown, maxDepth: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  // Pending containers and their depth, as two parallel stacks (no recursion, no pair objects).
  const values: object[] = [value];
  const depths: number[] = [1];
  while (values.length > 0) {
    const current = values.pop() as Record<string, unknown>;
    const depth = depths.pop() as number;
    if (depth > maxDepth) return true;
    // Scalars are skipped where they stand; only containers are pushed. `for...in` walks an
    // object's keys without building an array of its values (parsed JSON has no inherited keys).
    if (Array.isArray(current)) {
      for (let i = 0; i < current.length; i++) {
        const child: unknown = current[i];
        if (typeof child === 'object' && child !== null && !ArrayBuffer.isView(child)) {
          values.push(child);
          depths.push(depth + 1);
        }
      }
    } else {
      for (const key in current) {
        const child = current[key];
        if (typeof child === 'object' && child !== null && !ArrayBuffer.isView(child)) {
          values.push(child);
          depths.push(depth + 1);
        }
      }
    }
  }
  return false;
}

/**
 * The refusal of a payload nested deeper than `maxDepth` (the setting
 * `MAX_PAYLOAD_DEPTH`, docs/configuration.md#limits); undefined when it is fine. `args` are all the
 * arguments of an event (or a body alone): the limit applies to each.
 *
 * @example
 * depthRefusal([{ a: 1 }], 64); // undefined
 * depthRefusal([JSON.parse('['.repeat(100) + ']'.repeat(100))], 64)?.reason; // 'too_deep'
 */
export function depthRefusal(args: readonly unknown[], maxDepth: number): Refusal | undefined {
  for (const arg of args) {
    if (tooDeep(arg, maxDepth)) return tooDeepRefusal(maxDepth);
  }
  return undefined;
}

/** The refusal of a payload found nested deeper than `maxDepth` (by {@link tooDeep}). */
export function tooDeepRefusal(maxDepth: number): Refusal {
  return { reason: 'too_deep', error: `payload nested deeper than ${maxDepth} levels` };
}

/** True for a plain JSON object: not null, not an array. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The cluster's link to Redis, as `/health` and the metrics tell it: no Redis
 * configured, reachable, reachable but refusing writes (OOM, READONLY,
 * MISCONF: events reach this node's clients only), or not reachable (closed,
 * or not answering within REDIS_TIMEOUT).
 */
export type RedisState = 'off' | 'up' | 'degraded' | 'down';

/**
 * What became of one event's publication to the cluster, as a sender's
 * acknowledgement (or a `/_notify` answer) tells it: `ok` when Redis took
 * it; not `ok`, with why, when it reached this node's clients only. Only a
 * `/_notify` push (or a route removal) is ever answered `held`: Redis is
 * down, and the event waits for it within the outage grace, its fate not yet
 * known (docs/cluster.md#what-an-answer-says).
 */
export type PublicationOutcome = { readonly ok: true; readonly held?: true } | { readonly ok: false; readonly error: string };

/** The HTTP status of an answer `held`: accepted, not yet done. */
export const HELD_STATUS = 202;
