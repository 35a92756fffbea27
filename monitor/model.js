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
export const BROKER_EVENTS = new Set(['shouted', 'notify', 'ping', 'configured', 'failed']);

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
