/**
 * The pure half of `spicy-action tail` (docs/protocol.md#watching-the-buses): what it reads from
 * its command line, and the one line it prints per event. No Socket.IO here.
 */
import { readCommandLine, type FlagSpec } from '../command-line.ts';
import { DEFAULT_LIMITS } from '../limits.ts';
import { redactText, redactUrl } from '../redact.ts';

/** What `tail` was asked to do. */
export interface TailOptions {
  /** Broker base URL, such as `http://127.0.0.1:3000`. */
  readonly url: string;
  /** Token to present; undefined when the broker has none. */
  readonly token: string | undefined;
  /** One JSON object per line instead of text. */
  readonly json: boolean;
  /** Buses and rooms to join, in the order given, without repeats. */
  readonly rooms: readonly string[];
}

/** The command line read: run, or print the usage. */
export type TailCommand = { readonly help: true } | { readonly help: false; readonly options: TailOptions };

/**
 * A command line `tail` cannot use; the message says why in one line.
 *
 * @example
 * try { parseTailArgs([], {}); } catch (error) { if (error instanceof TailUsageError) console.error(error.message); }
 */
export class TailUsageError extends Error {
  override name = 'TailUsageError';
}

export const DEFAULT_TAIL_URL = 'http://127.0.0.1:3000';
/** The broker's default room-name limit: a longer name would be refused by any broker left at its default. */
const MAX_ROOM_NAME_LENGTH = DEFAULT_LIMITS.maxRoomNameLength;

/** What `tail` reads besides the buses and rooms to watch. */
const TAIL_FLAGS: readonly FlagSpec[] = [
  { flag: '--url', takesValue: true },
  { flag: '--token', takesValue: true },
  { flag: '--json', takesValue: false },
  { flag: '--help', takesValue: false, short: 'h' },
];

export const TAIL_USAGE = `usage: spicy-action tail [--url URL] [--token TOKEN] [--json] BUS|ROOM ...

Joins the buses and rooms given and prints one line per event they carry:
time, event, rooms, payload; or, with --json, one JSON object per line
{"time", "event", "rooms", "data"} for jq. Ctrl-C stops it.

  --url URL      the broker (BROKER_URL, default ${DEFAULT_TAIL_URL})
  --token TOKEN  the broker's token, when it has one (BROKER_TOKEN)
  --json         JSON lines

examples:
  spicy-action tail calls support
  spicy-action tail --json endpoint:alice@example.net | jq .data
`;

/**
 * Reads `tail`'s arguments (what follows `tail`) and environment
 * (`BROKER_URL`, `BROKER_TOKEN`); a flag wins over its variable.
 *
 * @example
 * parseTailArgs(['--json', 'calls', 'support'], {});
 * // { help: false, options: { url: 'http://127.0.0.1:3000', token: undefined, json: true, rooms: ['calls', 'support'] } }
 */
export function parseTailArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): TailCommand {
  let url = env.BROKER_URL || DEFAULT_TAIL_URL;
  let token = env.BROKER_TOKEN || undefined;
  let json = false;
  const rooms: string[] = [];
  for (const arg of readCommandLine(argv, TAIL_FLAGS)) {
    if (arg.kind === 'positional') {
      rooms.push(arg.value);
      continue;
    }
    if (!arg.known) throw new TailUsageError(`unknown option ${JSON.stringify(arg.flag)}`);
    if (arg.flag === '--help') return { help: true };
    if (arg.flag === '--json') {
      if (arg.inline) throw new TailUsageError('--json takes no value');
      json = true;
      continue;
    }
    if (arg.value === undefined || arg.value === '') throw new TailUsageError(`${arg.flag} needs a value`);
    if (arg.flag === '--url') url = arg.value;
    else token = arg.value;
  }
  url = checkUrl(url);
  if (rooms.length === 0) throw new TailUsageError('name at least one bus or room to watch, such as "calls"');
  for (const room of rooms) {
    if (room === '' || room.length > MAX_ROOM_NAME_LENGTH) {
      throw new TailUsageError(`room names are non-empty strings of at most ${MAX_ROOM_NAME_LENGTH} characters`);
    }
  }
  return { help: false, options: { url, token, json, rooms: [...new Set(rooms)] } };
}

function checkUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TailUsageError(`--url: expected a URL such as ${DEFAULT_TAIL_URL}, got "${redactUrl(text)}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TailUsageError(`--url: expected an http:// or https:// URL, got "${url.protocol}"`);
  }
  return text.replace(/\/+$/, '');
}

/** The bus lists a broker announces (`GET /monitor/config.json`). */
export interface KnownRooms {
  readonly buses: readonly string[];
  /** Source of the pattern of per-entity room names, such as `^\\w+:`. */
  readonly notificationRooms: string | undefined;
}

/**
 * The rooms among `rooms` that are no bus of the broker and match no room
 * pattern of it: most likely a typing error, though the broker lets anyone
 * watch any room.
 *
 * @example
 * unknownRooms(['calls', 'endpoint:alice@example.net', 'cals'], { buses: ['calls'], notificationRooms: '^\\w+:' }); // ['cals']
 */
export function unknownRooms(rooms: readonly string[], known: KnownRooms): string[] {
  let pattern: RegExp | undefined;
  try {
    pattern = known.notificationRooms === undefined ? undefined : new RegExp(known.notificationRooms);
  } catch {
    pattern = undefined;
  }
  return rooms.filter((room) => !known.buses.includes(room) && !(pattern?.test(room) ?? false));
}

/** One event as `tail` received it. */
export interface TailEvent {
  readonly time: Date;
  readonly event: string;
  /** The watched rooms it was sent to, as far as `tail` can tell. */
  readonly rooms: readonly string[];
  /** What followed the event name; the broker forwards the first argument only. */
  readonly args: readonly unknown[];
}

/**
 * The line printed for an event, without its newline: text
 * (`<ISO time> <event> <rooms> <payload JSON>`) or, with `json`, one JSON
 * object `{time, event, rooms, data}` (`data` absent for an event without
 * payload). Always exactly one line, and nothing in it that a terminal acts
 * on: see {@link escapeTerminal}. The JSON stays valid and means the same,
 * since `\u009b` in a JSON string is the character itself.
 *
 * @example
 * formatEvent({ time: new Date(0), event: 'call', rooms: ['calls'], args: [{ state: 'end' }] }, false);
 * // '1970-01-01T00:00:00.000Z call calls {"state":"end"}'
 */
export function formatEvent(record: TailEvent, json: boolean): string {
  const time = record.time.toISOString();
  if (json) {
    const line: Record<string, unknown> = { time, event: record.event, rooms: record.rooms };
    if (record.args.length > 0) line.data = record.args[0];
    return escapeTerminal(stringify(line));
  }
  const rooms = record.rooms.length > 0 ? record.rooms.join(',') : '-';
  const parts = [time, record.event, rooms];
  if (record.args.length > 0) parts.push(stringify(record.args[0]));
  return escapeTerminal(parts.join(' '));
}

/** JSON on one line; what JSON cannot hold (a cycle, a BigInt) becomes a string saying so. */
function stringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch (error) {
    return JSON.stringify(`(not JSON: ${(error as Error).message})`);
  }
}

/**
 * Code points a terminal may act on, or that reorder or break what follows:
 * C0 controls (newline and escape included), DEL, C1 controls (U+009B is a
 * CSI to xterm), the bidirectional marks, embeddings, overrides and isolates
 * (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069), the line and
 * paragraph separators (U+2028, U+2029), and unpaired surrogates.
 */
const TERMINAL_UNSAFE =
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * `text` with every code point a terminal could act on written as a visible
 * `\uXXXX` escape, so that what a client sends (a payload, a registered event
 * name) cannot move the cursor, recolour, clear or reorder the screen, nor
 * add a line.
 *
 * @example
 * escapeTerminal('a\u009b2Jb'); // 'a\\u009b2Jb', printed as a\u009b2Jb
 */
export function escapeTerminal(text: string): string {
  return text.replace(TERMINAL_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A status line of `tail` (what it says on stderr) made safe to print: the
 * token and any secret in a URL hidden (src/redact.ts), and the characters
 * a terminal acts on escaped (the broker's `welcome` is not to be trusted
 * more than a payload).
 *
 * @example
 * statusLine('cannot reach http://broker/?token=s3cret', ['s3cret']); // 'cannot reach http://broker/?token=***'
 */
export function statusLine(line: string, secrets: readonly (string | undefined)[]): string {
  return escapeTerminal(redactText(line, secrets));
}

/**
 * The rooms, among `joined`, that an event was sent to: the monitor page's
 * own function, so that the page and `tail` always name the same rooms.
 */
export { eventRooms } from '../../monitor/model.js';
