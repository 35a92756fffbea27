/**
 * How cluster messages and sessions are written to Redis
 * (docs/cluster.md#the-stream): the format of `@socket.io/redis-streams-adapter`
 * 0.3, kept so that nodes of the previous release read what this one writes
 * and the other way round, during a rolling upgrade.
 *
 * A stream entry has the fields `uid` (the adapter that wrote it), `nsp`,
 * `type` (socket.io-adapter `MessageType`, in decimal) and `data` (JSON, or
 * base64 msgpack when the message holds binary), and this release adds `seq`
 * (the writer's own count of its publications, which other readers ignore).
 * A session is msgpack, base64. Pure: no Redis.
 */
import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack';

/** `MessageType.BROADCAST` of socket.io-adapter 2.5: a cluster message carrying an event to rooms. */
export const BROADCAST = 3;
/** A stream offset, `<ms>-<seq>`. */
export const OFFSET = /^[0-9]+-[0-9]+$/;

/** A cluster message as socket.io-adapter hands it to `doPublish` (loosely: `data` is read only where it matters here). */
export interface WireMessage {
  readonly uid?: string;
  readonly nsp?: string;
  readonly type: number;
  readonly data?: unknown;
}

/** The fields of a broadcast's `data` the cluster reads. */
export interface BroadcastData {
  readonly packet: { type: number; id?: number; data: unknown[]; nsp?: string };
  readonly opts: { readonly rooms: readonly string[]; readonly except: readonly string[]; readonly flags?: Record<string, unknown> };
  readonly requestId?: string;
}

/** What one stream entry decodes to. */
export interface StreamMessage extends WireMessage {
  readonly uid: string;
  readonly nsp: string;
  /** The writer's count of its own publications; undefined when a node of an earlier release wrote it. */
  readonly seq: number | undefined;
}

/** A session as saved for recovery (socket.io-adapter `SessionToPersist`). */
export interface SavedSession {
  readonly sid: string;
  readonly pid: string;
  readonly rooms: readonly string[];
  readonly data: unknown;
}

/** The message types whose data may hold binary (encoded with msgpack then). */
const MAY_HOLD_BINARY: ReadonlySet<number> = new Set([3, 8, 9, 10, 12]);

/** True when `value` holds an ArrayBuffer or a typed array somewhere. */
export function hasBinary(value: unknown, depth = 0): boolean {
  if (value === null || typeof value !== 'object' || depth > 64) return false;
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return true;
  if (Array.isArray(value)) return value.some((item) => hasBinary(item, depth + 1));
  for (const key of Object.keys(value)) if (hasBinary((value as Record<string, unknown>)[key], depth + 1)) return true;
  return false;
}

/**
 * The fields of a stream entry for `message`, flat (`[name, value, ...]`), as
 * XADD takes them.
 *
 * @example
 * encodeEntry({ uid: 'a1', nsp: '/', type: 3, data: { packet, opts } }, 7); // ['uid', 'a1', 'nsp', '/', 'type', '3', 'data', '{...}', 'seq', '7']
 */
export function encodeEntry(message: WireMessage, seq: number): string[] {
  const fields = ['uid', message.uid ?? '', 'nsp', message.nsp ?? '/', 'type', String(message.type)];
  if (message.data !== undefined) {
    const binary = MAY_HOLD_BINARY.has(message.type) && hasBinary(message.data);
    fields.push('data', binary ? Buffer.from(msgpackEncode(message.data)).toString('base64') : JSON.stringify(message.data));
  }
  fields.push('seq', String(seq));
  return fields;
}

/** Decodes a stream entry's flat fields; undefined for an entry of another shape (never throws). */
export function decodeEntry(fields: readonly string[]): StreamMessage | undefined {
  const raw: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) raw[fields[i] as string] = fields[i + 1] as string;
  if (raw.uid === undefined || raw.nsp === undefined || raw.type === undefined) return undefined;
  const type = Number.parseInt(raw.type, 10);
  if (!Number.isSafeInteger(type)) return undefined;
  let data: unknown;
  try {
    if (raw.data !== undefined) data = raw.data.startsWith('{') ? JSON.parse(raw.data) : msgpackDecode(Buffer.from(raw.data, 'base64'));
  } catch {
    return undefined;
  }
  const seq = raw.seq === undefined ? undefined : Number(raw.seq);
  return { uid: raw.uid, nsp: raw.nsp, type, data, seq: Number.isSafeInteger(seq) ? seq : undefined };
}

/** The broadcast an entry carries (an event for rooms, without acknowledgement); undefined for any other message. */
export function broadcastOf(message: WireMessage): BroadcastData | undefined {
  if (message.type !== BROADCAST) return undefined;
  const data = message.data as Partial<BroadcastData> | undefined;
  if (data === undefined || data.requestId !== undefined || !Array.isArray(data.packet?.data)) return undefined;
  const opts = data.opts ?? { rooms: [], except: [] };
  return { packet: data.packet, opts: { rooms: Array.isArray(opts.rooms) ? opts.rooms : [], except: Array.isArray(opts.except) ? opts.except : [], flags: opts.flags } };
}

/** A session, ready to save under its key. */
export function encodeSession(session: SavedSession): string {
  return Buffer.from(msgpackEncode(session)).toString('base64');
}

/** A saved session; throws on one of an unknown shape. */
export function decodeSession(raw: string): SavedSession {
  const session = msgpackDecode(Buffer.from(raw, 'base64')) as { sid?: unknown; pid?: unknown; rooms?: unknown; data?: unknown } | null;
  if (session === null || typeof session !== 'object' || typeof session.sid !== 'string' || typeof session.pid !== 'string' || !Array.isArray(session.rooms)) {
    throw new Error('a saved session of an unknown shape');
  }
  return { sid: session.sid, pid: session.pid, rooms: session.rooms as string[], data: session.data };
}

/**
 * Compares two stream offsets: negative, zero or positive.
 *
 * @example
 * compareOffsets('9-1', '10-0'); // < 0
 */
export function compareOffsets(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  return am.length !== bm.length ? am.length - bm.length : am !== bm ? (am < bm ? -1 : 1) : Number(as) - Number(bs);
}

/** Upstream's rule: a broadcast to no room reaches everyone in the namespace; `except` rooms are left out. */
export function reaches(rooms: Iterable<string>, opts: { readonly rooms: readonly string[] | ReadonlySet<string>; readonly except: readonly string[] | ReadonlySet<string> }): boolean {
  const to = opts.rooms instanceof Set ? opts.rooms : new Set(opts.rooms);
  const except = opts.except instanceof Set ? opts.except : new Set(opts.except);
  let included = to.size === 0;
  for (const room of rooms) {
    if (except.has(room)) return false;
    if (to.has(room)) included = true;
  }
  return included;
}
