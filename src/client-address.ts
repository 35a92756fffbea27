/**
 * The client's address, as every budget counts it (pending handshakes,
 * bodies in flight, sessions kept for recovery): one function, so that all
 * of them agree on who a client is.
 */

/** What the address is read from: an HTTP request (Express's, Node's, or Engine.IO's handshake). */
export interface AddressedRequest {
  readonly socket?: { readonly remoteAddress?: string | undefined } | null | undefined;
}

/** Stands for a request whose peer address is unknown (its socket already closed). */
export const UNKNOWN_ADDRESS = 'unknown';

/**
 * The address of the client that sent `req`: the TCP peer's.
 *
 * @example
 * clientAddress(req); // '10.0.0.7'
 */
export function clientAddress(req: AddressedRequest): string {
  return req.socket?.remoteAddress ?? UNKNOWN_ADDRESS;
}
