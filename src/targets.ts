/**
 * Who receives an event: its bus and the notification rooms its payload names
 * (docs/protocol.md#notification-rooms). Pure: the caller hands the result to one
 * `io.to(rooms).emit(...)`, which reaches each socket once however many of
 * the rooms it is in.
 */
import type { Route } from './routes.ts';

/** The rooms an event goes to, and what was left out. */
export interface Targets {
  /** Distinct rooms, the bus first. */
  readonly rooms: readonly string[];
  /** `_in` entries that were not usable room names (not strings, too long, not matching the pattern). */
  readonly skipped: number;
  /** Usable `_in` entries past the per-event cap, ignored. */
  readonly overflow: number;
}

/** Limits that apply to `_in`. */
export interface TargetLimits {
  /** Pattern a notification room must match (`^\w+:` by default). */
  readonly notificationRooms: RegExp;
  /** Most `_in` rooms used per event. */
  readonly maxInRooms: number;
  /** Longest room name used. */
  readonly maxRoomNameLength: number;
}

/**
 * The rooms a routed event goes to: its bus (unless the route is null) and each
 * string of `data._in` (a string or an array of strings) that is a notification
 * room, without repeats.
 *
 * @example
 * computeTargets('calls', { _in: ['endpoint:alice@example.net', 42, 'junk'] }, limits);
 * // { rooms: ['calls', 'endpoint:alice@example.net'], skipped: 2, overflow: 0 }
 */
export function computeTargets(route: Route, data: unknown, limits: TargetLimits): Targets {
  const rooms = new Set<string>();
  if (route !== null) rooms.add(route);
  const inField = typeof data === 'object' && data !== null ? (data as { _in?: unknown })._in : undefined;
  if (inField === undefined || inField === null) return { rooms: [...rooms], skipped: 0, overflow: 0 };

  const entries: readonly unknown[] = Array.isArray(inField) ? inField : [inField];
  let skipped = 0;
  let overflow = 0;
  let used = 0;
  for (const room of entries) {
    if (typeof room !== 'string' || room.length > limits.maxRoomNameLength || !limits.notificationRooms.test(room)) {
      skipped++;
    } else if (used >= limits.maxInRooms) {
      overflow++;
    } else {
      used++;
      rooms.add(room);
    }
  }
  return { rooms: [...rooms], skipped, overflow };
}

/**
 * The rooms a `/_notify` push goes to: the route's bus and, when the body names
 * an `endpoint`, the room `endpoint:<endpoint>`. `_in` in a body is not used.
 *
 * @example
 * notifyTargets('support', { endpoint: 'alice@example.net' }, 256); // ['support', 'endpoint:alice@example.net']
 */
export function notifyTargets(bus: string, body: Record<string, unknown>, maxRoomNameLength: number): string[] {
  const { endpoint } = body;
  if (typeof endpoint !== 'string' || endpoint === '') return [bus];
  const room = `endpoint:${endpoint}`;
  return room.length <= maxRoomNameLength && room !== bus ? [bus, room] : [bus];
}
