/**
 * Who a request comes from when proxies stand between the client and the
 * broker (`TRUST_PROXY`, docs/security.md#behind-a-proxy-trust_proxy).
 *
 * A proxy (HAProxy with `option forwardfor`) appends the address it received
 * the request from to `X-Forwarded-For`; the broker sees the proxy as its
 * peer. Anyone can send that header, so it is believed only from the proxies
 * the operator lists, as Express's `trust proxy` does: walking from the peer
 * towards the client, each trusted hop hands over to the address it names,
 * and the first hop not trusted is the client. With no proxy listed (the
 * default) the peer is the client.
 *
 * The *route* of a request is the whole chain, from the first address the
 * header names to the peer, less the trusted proxies at the broker's end. It
 * is what an Engine.IO session is bound to (`src/guards/session-binding.ts`):
 * comparing the untrusted part as well only refuses more, never less, since
 * a proxy appends the real peer of every request after whatever its client
 * wrote. Behind a proxy nobody listed, two clients share the peer address but
 * not the route.
 */
import { BlockList, isIP } from 'node:net';

/** `::ffff:192.0.2.7` (an IPv4 peer on a dual-stack socket) is `192.0.2.7`. */
const MAPPED_IPV4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** The address in its plain form: IPv4-mapped IPv6 as IPv4, brackets dropped. */
function plain(address: string): string {
  const bare = address.trim().replace(/^\[(.*)\]$/, '$1');
  return MAPPED_IPV4.exec(bare)?.[1] ?? bare;
}

/** `4` or `6` for an IP address, 0 for anything else. */
function family(address: string): 0 | 4 | 6 {
  return isIP(address) as 0 | 4 | 6;
}

/** The longest prefix of each family. */
const MAX_PREFIX = { 4: 32, 6: 128 } as const;

/**
 * Reads a list of proxies as an operator writes it: addresses and CIDR
 * blocks, comma-separated. Throws an Error naming the first entry that is
 * neither.
 *
 * @example
 * parseProxyList('10.0.0.5, 10.0.1.0/24,::1'); // ['10.0.0.5', '10.0.1.0/24', '::1']
 * parseProxyList('haproxy'); // throws: expected addresses or CIDR blocks ...
 */
export function parseProxyList(text: string): readonly string[] {
  const entries = text.split(',').map((s) => s.trim()).filter(Boolean);
  for (const entry of entries) {
    const [address = '', prefix, ...rest] = entry.split('/');
    const kind = family(plain(address));
    const bits = prefix === undefined ? undefined : /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
    if (kind === 0 || rest.length > 0 || (bits !== undefined && !(bits >= 0 && bits <= MAX_PREFIX[kind]))) {
      throw new Error(`expected addresses or CIDR blocks such as 10.0.0.5,10.0.1.0/24, got "${entry}"`);
    }
  }
  return Object.freeze(entries);
}

/** The entries of an `X-Forwarded-For` header (Node joins repeated ones with `, `), client first. */
function forwardedList(header: string | readonly string[] | undefined): string[] {
  if (header === undefined) return [];
  const text = typeof header === 'string' ? header : header.join(',');
  return text.split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * The proxies whose `X-Forwarded-For` is believed.
 *
 * @example
 * const proxies = new TrustedProxies(['10.0.0.2']);
 * proxies.clientAddress('10.0.0.2', '198.51.100.7'); // '198.51.100.7': the proxy forwarded it
 * proxies.clientAddress('203.0.113.9', '198.51.100.7'); // '203.0.113.9': not a proxy, not believed
 * proxies.route('10.0.0.2', '198.51.100.7'); // '198.51.100.7'
 * new TrustedProxies([]).route('10.0.0.2', '198.51.100.7'); // '198.51.100.7,10.0.0.2'
 */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly #empty: boolean;

  /** `entries` as {@link parseProxyList} reads them; throws as it does. */
  constructor(entries: readonly string[] = []) {
    this.#empty = entries.length === 0;
    for (const entry of parseProxyList(entries.join(','))) {
      const [address = '', prefix] = entry.split('/');
      const bare = plain(address);
      const type = family(bare) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.#list.addAddress(bare, type);
      else this.#list.addSubnet(bare, Number(prefix), type);
    }
  }

  /** True when `address` is one of the listed proxies. */
  trusts(address: string | undefined): boolean {
    if (this.#empty || address === undefined) return false;
    const bare = plain(address);
    const kind = family(bare);
    return kind !== 0 && this.#list.check(bare, kind === 6 ? 'ipv6' : 'ipv4');
  }

  /**
   * The addresses a request came through, client first, peer last, less the
   * trusted proxies at the broker's end (never all of them: the last one left
   * stands for the client). Untrusted entries are kept as they were written.
   */
  hops(peer: string | undefined, forwardedFor: string | readonly string[] | undefined): string[] {
    const chain = [...forwardedList(forwardedFor), plain(peer ?? '')];
    let end = chain.length;
    // A trusted hop hands over to the entry before it, if that entry is an address at all.
    while (end > 1 && this.trusts(chain[end - 1]) && family(plain(chain[end - 2] as string)) !== 0) end--;
    return chain.slice(0, end);
  }

  /** The client's address: the peer's, or the one the trusted proxies forwarded for. */
  clientAddress(peer: string | undefined, forwardedFor: string | readonly string[] | undefined): string | undefined {
    if (peer === undefined) return undefined;
    if (this.#empty) return plain(peer);
    const hops = this.hops(peer, forwardedFor);
    return plain(hops[hops.length - 1] as string);
  }

  /** The request's route (the module comment): one string, equal for every request that came the same way. */
  route(peer: string | undefined, forwardedFor: string | readonly string[] | undefined): string {
    return this.hops(peer, forwardedFor).join(',');
  }
}
