// The monitor page's pure logic: the event log it keeps, the filters, the
// one-line summaries and the rooms an event came through. No DOM, no socket:
// the same file is unit-tested in Node (test/monitor-model.test.ts).

/** Longest one-line summary of a payload, in characters. */
export const SUMMARY_LENGTH = 240;

/**
 * Events the broker sends on its own rather than routes: none of them is in
 * the route table, so an unknown name among these is no reason to read the
 * table again. (`welcome`, to one socket at its connection, is left out: the
 * page and `tail` handle it apart.)
 */
export const BROKER_EVENTS = new Set(['shouted', 'notify', 'ping', 'configured', 'failed', 'audit']);

/**
 * The room of the broker's audit feed: who sent each event, push, route change
 * and refusal, by credential and public id (docs/watching.md#who-did-what).
 */
export const AUDIT_ROOM = '_audit';

/**
 * True when a connection error is a refusal for want of the right token: the
 * broker's `unauthorized`, from its Socket.IO middleware, or an HTTP 401/403
 * answer to the handshake itself.
 *
 * @example
 * socket.on('connect_error', (error) => { if (isUnauthorized(error)) askForToken(); });
 */
export function isUnauthorized(error) {
  return error?.message === 'unauthorized' || error?.description === 401 || error?.description === 403;
}

/**
 * The last `capacity` events, oldest dropped first. A ring: pushing is O(1)
 * however many events arrive.
 *
 * @example
 * const log = new EventLog(2); log.push('a'); log.push('b'); log.push('c');
 * log.newestFirst(); // ['c', 'b']
 */
export class EventLog {
  #items;
  #start = 0;
  #size = 0;

  constructor(capacity) {
    this.#items = new Array(checkCapacity(capacity));
  }

  get capacity() {
    return this.#items.length;
  }

  get size() {
    return this.#size;
  }

  push(item) {
    const capacity = this.#items.length;
    if (this.#size < capacity) {
      this.#items[(this.#start + this.#size) % capacity] = item;
      this.#size++;
    } else {
      this.#items[this.#start] = item;
      this.#start = (this.#start + 1) % capacity;
    }
  }

  /** Up to `limit` items, newest first, that pass `keep`. */
  newestFirst(keep = () => true, limit = Infinity) {
    const out = [];
    const capacity = this.#items.length;
    for (let i = this.#size - 1; i >= 0 && out.length < limit; i--) {
      const item = this.#items[(this.#start + i) % capacity];
      if (keep(item)) out.push(item);
    }
    return out;
  }

  /** Keeps the newest `capacity` items. */
  resize(capacity) {
    const kept = this.newestFirst(undefined, checkCapacity(capacity)).reverse();
    this.#items = new Array(capacity);
    this.#start = 0;
    this.#size = 0;
    for (const item of kept) this.push(item);
  }

  clear() {
    this.#items = new Array(this.#items.length);
    this.#start = 0;
    this.#size = 0;
  }
}

function checkCapacity(capacity) {
  if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a whole number above 0, got ${capacity}`);
  return capacity;
}

/**
 * Reads a "keep the last N events" setting: a whole number from `min` to
 * `max`, or undefined when the text is not one.
 *
 * @example
 * parseLimit('500'); // 500
 * parseLimit('lots'); // undefined
 */
export function parseLimit(text, min = 10, max = 100_000) {
  const value = String(text).trim();
  if (!/^\d+$/.test(value)) return undefined;
  const n = Number(value);
  return n >= min && n <= max ? n : undefined;
}

/** JSON of a payload on one line; `undefined` (an event without payload) shows as nothing. */
export function payloadJson(data) {
  if (data === undefined) return '';
  try {
    return JSON.stringify(data) ?? String(data);
  } catch {
    return String(data);
  }
}

/**
 * The payload on one line, cut at `max` characters with an ellipsis.
 *
 * @example
 * summary({ state: 'end' }); // '{"state":"end"}'
 */
export function summary(data, max = SUMMARY_LENGTH) {
  const json = payloadJson(data);
  return json.length > max ? `${json.slice(0, max - 1)}…` : json;
}

/** The payload as indented JSON, for the unfolded view. */
export function prettyJson(data) {
  if (data === undefined) return '(no payload)';
  try {
    return JSON.stringify(data, null, 2) ?? String(data);
  } catch {
    return String(data);
  }
}

/**
 * The filters as typed: event words (an event passes when its name contains
 * any of them) and a text that the payload or rooms must contain, both
 * ignoring case.
 *
 * @example
 * const filter = makeFilter('call, report', 'alice');
 * matches({ event: 'report_ops', rooms: ['support'], data: { endpoint: 'alice@x' } }, filter); // true
 */
export function makeFilter(eventText, text) {
  const events = String(eventText ?? '')
    .toLowerCase()
    .split(/[\s,]+/)
    .filter(Boolean);
  return { events, text: String(text ?? '').trim().toLowerCase() };
}

/** True when no filter is set. */
export function isEmptyFilter(filter) {
  return filter.events.length === 0 && filter.text === '';
}

/**
 * True when `entry` ({event, rooms, data}) passes `filter`. The lower-case
 * JSON of the payload is computed once per entry, only when a text is sought.
 */
export function matches(entry, filter) {
  if (filter.events.length > 0) {
    const name = entry.event.toLowerCase();
    if (!filter.events.some((word) => name.includes(word))) return false;
  }
  if (filter.text === '') return true;
  entry.haystack ??= `${payloadJson(entry.data)}\n${entry.rooms.join(' ')}`.toLowerCase();
  return entry.haystack.includes(filter.text);
}

/**
 * The rooms, among those this page is in, that an event was sent to: its
 * route's bus, the `_in` rooms it names, `endpoint:<endpoint>` for a
 * `/_notify` push, and the fixed rooms of the broker's own events.
 *
 * @example
 * eventRooms('call', { _in: ['endpoint:alice@x'] }, new Set(['calls', 'endpoint:alice@x']), new Map([['call', 'calls']]), []);
 * // ['calls', 'endpoint:alice@x']
 */
export function eventRooms(event, data, joined, routes, hostBuses) {
  const candidates = [];
  const route = routes.get(event);
  if (typeof route === 'string') candidates.push(route);
  if (event === 'shouted') candidates.push('internal');
  if (event === 'notify') candidates.push('internal', 'everyone');
  if (event === 'ping') candidates.push(...hostBuses);
  if (event === 'audit') candidates.push(AUDIT_ROOM);
  if (typeof data === 'object' && data !== null) {
    const inField = data._in;
    if (typeof inField === 'string') candidates.push(inField);
    else if (Array.isArray(inField)) for (const room of inField) if (typeof room === 'string') candidates.push(room);
    if (typeof data.endpoint === 'string' && data.endpoint !== '') candidates.push(`endpoint:${data.endpoint}`);
  }
  return [...new Set(candidates)].filter((room) => joined.has(room));
}

/**
 * A time of day with milliseconds, in the page's time zone.
 *
 * @example
 * formatTime(new Date(2026, 0, 1, 9, 5, 7, 42).getTime()); // '09:05:07.042'
 */
export function formatTime(ms) {
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/**
 * Reads the JSON typed in the test form: an object, or an error sentence.
 *
 * @example
 * parsePayload('{"a":1}'); // { ok: true, value: { a: 1 } }
 * parsePayload('[1]').ok; // false
 */
export function parsePayload(text, { objectOnly = false } = {}) {
  const source = String(text).trim();
  if (source === '') return objectOnly ? { ok: false, error: 'the body must be a JSON object' } : { ok: true, value: undefined };
  let value;
  try {
    value = JSON.parse(source);
  } catch (error) {
    return { ok: false, error: `not valid JSON: ${error.message}` };
  }
  if (objectOnly && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    return { ok: false, error: 'the body must be a JSON object' };
  }
  return { ok: true, value };
}

/** Order of the route table on the page: what someone registered first, then built-in routes changed, then the rest. */
const ROUTE_ORIGINS = ['registered', 'built-in, changed', 'built-in'];

/**
 * A time from `GET /routes` (ISO 8601) to the second, in UTC: `2026-11-27 00:42:01Z`.
 *
 * @example
 * formatStamp('2026-11-27T00:42:01.123Z'); // '2026-11-27 00:42:01Z'
 */
export function formatStamp(iso) {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return String(iso);
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/**
 * The answer of `GET /routes` as rows to show, and a one-line summary.
 * Each row: `event`, `bus` (a bus, or `(_in only)`), `origin` (`registered`,
 * `built-in, changed`, `built-in`) and `set` (`set <time> by <credential> on <node>`, or '').
 * Registered routes come first, then changed built-in ones, each by name.
 * Entries that are not routes are skipped.
 *
 * @example
 * routeTable({ routes: [{ event: 'queuer', bus: 'calls', kind: 'registered', set_at: '2026-11-27T00:42:01.000Z', set_by: 'call-handler', set_on: 'b1:42' }] });
 * // { rows: [{ event: 'queuer', bus: 'calls', origin: 'registered', set: 'set 2026-11-27 00:42:01Z by call-handler on b1:42' }],
 * //   summary: '1 route: 1 registered, 0 built-in' }
 */
export function routeTable(answer) {
  const listed = Array.isArray(answer?.routes) ? answer.routes : [];
  const rows = [];
  for (const route of listed) {
    if (typeof route?.event !== 'string') continue;
    const builtIn = route.kind === 'built-in';
    const stamped = typeof route.set_at === 'string';
    const origin = builtIn ? (stamped ? 'built-in, changed' : 'built-in') : 'registered';
    const by = (typeof route.set_by === 'string' ? ` by ${route.set_by}` : '') + (typeof route.set_on === 'string' ? ` on ${route.set_on}` : '');
    rows.push({ event: route.event, bus: typeof route.bus === 'string' ? route.bus : '(_in only)', origin, set: stamped ? `set ${formatStamp(route.set_at)}${by}` : '' });
  }
  const rank = (row) => ROUTE_ORIGINS.indexOf(row.origin);
  rows.sort((a, b) => rank(a) - rank(b) || (a.event < b.event ? -1 : a.event > b.event ? 1 : 0));
  const registered = rows.filter((row) => row.origin === 'registered').length;
  const changed = rows.filter((row) => row.origin === 'built-in, changed').length;
  const total = rows.length;
  const summary = `${total.toLocaleString('en')} route${total === 1 ? '' : 's'}: ${registered.toLocaleString('en')} registered, ${(total - registered).toLocaleString('en')} built-in${changed > 0 ? ` (${changed} changed)` : ''}`;
  return { rows, summary };
}
