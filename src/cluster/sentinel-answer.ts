/**
 * What a Sentinel's answers mean, read strictly: the primary's address from
 * `SENTINEL get-master-addr-by-name`, the other Sentinels from
 * `SENTINEL sentinels`. A Sentinel is a process on the network: whatever it
 * answers (nil, an empty array, a port that is not a number, a host that is
 * not a string...) is either an address Node can connect to or a one-line
 * reason why not, never an exception. Pure.
 */
import type { SentinelAddress } from '../settings.ts';

/** The highest TCP port. */
const MAX_PORT = 65_535;
/** Longest host name (RFC 1035), longer than any IP address. */
const MAX_HOST_LENGTH = 253;
/** How much of an unexpected answer a reason quotes. */
const QUOTED_CHARS = 80;

/** An address, or why there is none. */
export type AddressAnswer = { readonly address: SentinelAddress } | { readonly unusable: string };

/**
 * The primary's address from a reply to `SENTINEL get-master-addr-by-name`:
 * `[host, port]`, with a host Node can connect to and a port from 1 to 65535.
 *
 * @example
 * primaryAddress(['10.0.0.7', '6379']); // { address: { host: '10.0.0.7', port: 6379 } }
 * primaryAddress(null); // { unusable: 'knows no primary of that name' }
 * primaryAddress([]); // { unusable: 'answered [] instead of [host, port]' }
 */
export function primaryAddress(reply: unknown): AddressAnswer {
  if (reply === null || reply === undefined) return { unusable: 'knows no primary of that name' };
  const answered = `answered ${quote(reply)}`;
  if (!Array.isArray(reply) || reply.length !== 2) return { unusable: `${answered} instead of [host, port]` };
  const [host, port] = reply.map((part: unknown) => (Buffer.isBuffer(part) ? part.toString('utf8') : part));
  if (!usableHost(host)) return { unusable: `${answered}: not a host name or IP address` };
  const number = usablePort(port);
  if (number === undefined) return { unusable: `${answered}: the port is not a number from 1 to ${MAX_PORT}` };
  return { address: { host, port: number } };
}

/**
 * The Sentinels named in a reply to `SENTINEL sentinels <name>` (one flat
 * `[field, value, ...]` array per Sentinel), leaving out those flagged
 * disconnected and those whose address is not usable.
 *
 * @example
 * otherSentinels([['name', 'x', 'ip', '10.0.0.6', 'port', '26379', 'flags', 'sentinel']]); // [{ host: '10.0.0.6', port: 26379 }]
 */
export function otherSentinels(reply: unknown): SentinelAddress[] {
  if (!Array.isArray(reply)) return [];
  const found: SentinelAddress[] = [];
  for (const entry of reply) {
    if (!Array.isArray(entry)) continue;
    const fields = new Map<string, unknown>();
    for (let i = 0; i + 1 < entry.length; i += 2) fields.set(String(entry[i]), entry[i + 1]);
    const host = fields.get('ip');
    const port = usablePort(fields.get('port'));
    const flags = String(fields.get('flags') ?? '').split(',');
    if (usableHost(host) && port !== undefined && !flags.includes('disconnected')) found.push({ host, port });
  }
  return found;
}

/** Whether `host` is a string Node can resolve or parse as an address. */
function usableHost(host: unknown): host is string {
  return typeof host === 'string' && host.length > 0 && host.length <= MAX_HOST_LENGTH && /^[A-Za-z0-9.:_%-]+$/.test(host);
}

/** `port` as a TCP port number, or undefined when it is not one. */
function usablePort(port: unknown): number | undefined {
  const text = typeof port === 'number' ? String(port) : Buffer.isBuffer(port) ? port.toString('utf8') : port;
  if (typeof text !== 'string' || !/^\d{1,5}$/.test(text)) return undefined;
  const number = Number(text);
  return number >= 1 && number <= MAX_PORT ? number : undefined;
}

/** A short, printable rendering of an unexpected answer. */
function quote(reply: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(reply, (_, value: unknown) => (Buffer.isBuffer(value) ? value.toString('utf8') : value)) ?? String(reply);
  } catch {
    text = String(reply);
  }
  // Control characters would break the log line.
  text = text.replace(/[\u0000-\u001f\u007f]/g, '?');
  return text.length > QUOTED_CHARS ? `${text.slice(0, QUOTED_CHARS)}...` : text;
}
