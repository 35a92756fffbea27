/**
 * The bus lists (docs/protocol.md#buses-and-rooms): which rooms are buses, and which room
 * names are per-entity notification rooms. Read from `buses.json` once at start-up.
 */
import { readFileSync } from 'node:fs';

/** The bus lists, checked. */
export interface Buses {
  /** Buses for every authenticated user of the public side (`everyone`). */
  readonly publicBuses: readonly string[];
  /** Buses that receive what internal servers report (`calls`, `internal`, `support`). */
  readonly privateBuses: readonly string[];
  /** Buses that carry requests towards internal hosts (`dial_calls`, `locations`, `traces`). */
  readonly hostBuses: readonly string[];
  /** Pattern of per-entity room names such as `endpoint:alice@example.net`. */
  readonly notificationRooms: RegExp;
  /** The three lists together. */
  readonly known: ReadonlySet<string>;
}

/** The bus file as written in JSON. */
export interface BusesFile {
  public_buses?: string[];
  private_buses?: string[];
  host_buses?: string[];
  notification_rooms?: string;
}

/** The bus file could not be used; the message names the file and the problem. */
export class BusesError extends Error {
  override name = 'BusesError';
}

const DEFAULTS: Required<BusesFile> = {
  public_buses: ['everyone'],
  private_buses: ['calls', 'internal', 'support'],
  host_buses: ['dial_calls', 'locations', 'traces'],
  notification_rooms: '^\\w+:',
};

const LIST_KEYS = ['public_buses', 'private_buses', 'host_buses'] as const;

/**
 * Checks parsed bus lists; a missing key takes its default.
 *
 * @example
 * const buses = parseBuses({ private_buses: ['calls'] });
 * buses.known.has('calls'); // true
 */
export function parseBuses(json: unknown): Buses {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new BusesError('expected a JSON object with public_buses, private_buses, host_buses, notification_rooms');
  }
  const file = json as Record<string, unknown>;
  for (const key of Object.keys(file)) {
    if (!(key in DEFAULTS)) throw new BusesError(`unknown key "${key}"`);
  }
  const seen = new Set<string>();
  const lists = {} as Record<(typeof LIST_KEYS)[number], readonly string[]>;
  for (const key of LIST_KEYS) {
    const list = file[key] ?? DEFAULTS[key];
    if (!Array.isArray(list)) throw new BusesError(`${key} must be an array of bus names`);
    for (const bus of list) {
      if (typeof bus !== 'string' || bus === '' || bus.length > 256) {
        throw new BusesError(`${key} holds ${JSON.stringify(bus)}: bus names are non-empty strings of at most 256 characters`);
      }
      if (seen.has(bus)) throw new BusesError(`bus "${bus}" is listed twice`);
      seen.add(bus);
    }
    lists[key] = Object.freeze([...list] as string[]);
  }
  const pattern = file.notification_rooms ?? DEFAULTS.notification_rooms;
  if (typeof pattern !== 'string') throw new BusesError('notification_rooms must be a regular expression, as a string');
  let notificationRooms: RegExp;
  try {
    notificationRooms = new RegExp(pattern);
  } catch (error) {
    throw new BusesError(`notification_rooms: ${(error as Error).message}`);
  }
  return Object.freeze({
    publicBuses: lists.public_buses,
    privateBuses: lists.private_buses,
    hostBuses: lists.host_buses,
    notificationRooms,
    known: seen,
  });
}

/** The default bus lists, as in the repository's `buses.json`. */
export const DEFAULT_BUSES: Buses = parseBuses({});

/**
 * Reads and checks a bus file; any problem throws a {@link BusesError} whose
 * one-line message names the file.
 *
 * @example
 * const buses = loadBuses('/etc/spicy-action/buses.json');
 */
export function loadBuses(file: string): Buses {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const { code } = error as NodeJS.ErrnoException;
    throw new BusesError(`bus file ${file}: cannot be read (${code ?? (error as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new BusesError(`bus file ${file}: not valid JSON (${(error as Error).message})`);
  }
  try {
    return parseBuses(json);
  } catch (error) {
    throw new BusesError(`bus file ${file}: ${(error as Error).message}`);
  }
}
