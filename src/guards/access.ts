/**
 * Access control (docs/protocol.md#access): with a shared token set, every Socket.IO
 * connection and every HTTP request but `GET /health` must present it.
 *
 * Where each client puts it:
 * - socket.io-client 4.x: `io(url, {auth: {token}})`;
 * - socket.io-client 1.x and 2.x: `io(url + '?token=...')` or `{query: {token}}`;
 * - HTTP: `Authorization: Bearer <token>`, Basic auth with the token as password
 *   (OpenSIPS: `http://notify:<token>@host:port/_notify`), or `?token=`.
 *
 * The token is compared in constant time and never logged: logs name the
 * peer address and the path, never the query string or the headers.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import createDebug from 'debug';
import type { RequestHandler } from 'express';
import type { Refusal } from '../protocol.ts';

const debug = createDebug('spicy-action:access');

/** The refusal every unauthorized client gets: Socket.IO's `connect_error`/`error` message, and the 401 body. */
export const UNAUTHORIZED: Refusal = Object.freeze({ reason: 'unauthorized', error: 'unauthorized' });

/** Where a refused attempt came from, for the observer. */
export interface AccessAttempt {
  /** `socket.io` for a connection, or `<METHOD> <path>` for an HTTP request (never the query). */
  readonly what: string;
  /** The peer's address. */
  readonly address: string | undefined;
}

/** Called on each refused attempt (to count it); must not throw. */
export type AccessObserver = (attempt: AccessAttempt, refusal: Refusal) => void;

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/**
 * A checker for `token`: true when `presented` is exactly the token. Both
 * sides are hashed first, so the comparison takes the same time whatever the
 * presented value, its length included.
 *
 * @example
 * const check = tokenChecker('s3cret');
 * check('s3cret'); // true
 * check('guess'); // false
 * check(undefined); // false
 */
export function tokenChecker(token: string): (presented: unknown) => boolean {
  const expected = digest(token);
  return (presented) => typeof presented === 'string' && timingSafeEqual(digest(presented), expected);
}

/** A value from a query string, a header or an auth object: the first string found. */
function firstString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && typeof value[0] === 'string') return value[0];
  return undefined;
}

/**
 * The token an HTTP request presents, if any: `Authorization: Bearer <t>`,
 * the password of `Authorization: Basic`, or `?token=` in `url`.
 *
 * @example
 * httpToken('/_notify/x', 'Basic ' + Buffer.from('notify:s3cret').toString('base64')); // 's3cret'
 * httpToken('/metrics?token=s3cret', undefined); // 's3cret'
 */
export function httpToken(url: string, authorization: string | undefined): string | undefined {
  if (authorization) {
    const match = /^\s*(\w+)\s+(\S+)\s*$/.exec(authorization);
    const scheme = match?.[1]?.toLowerCase();
    const credentials = match?.[2] ?? '';
    if (scheme === 'bearer') return credentials;
    if (scheme === 'basic') {
      const decoded = Buffer.from(credentials, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      return colon >= 0 ? decoded.slice(colon + 1) : undefined;
    }
  }
  const query = url.indexOf('?');
  if (query < 0) return undefined;
  return new URLSearchParams(url.slice(query + 1)).get('token') ?? undefined;
}

/**
 * Express middleware letting through only requests that present `token`
 * (every request when `token` is undefined); others get
 * `401 {ok: false, error: 'unauthorized'}` with a `WWW-Authenticate` header.
 * Mount it after the routes that stay open (`GET /health`).
 *
 * @example
 * app.get('/health', health.handler);
 * app.use(httpAccess(settings.token, (attempt, refusal) => telemetry.refused(attempt.what, refusal)));
 */
export function httpAccess(token: string | undefined, observe?: AccessObserver): RequestHandler {
  if (token === undefined) return (_req, _res, next) => next();
  const check = tokenChecker(token);
  return (req, res, next) => {
    if (check(httpToken(req.originalUrl, req.headers.authorization))) return next();
    const attempt = { what: `${req.method} ${req.path}`, address: req.socket.remoteAddress };
    debug('refused %s from %s: %s', attempt.what, attempt.address, UNAUTHORIZED.error);
    observe?.(attempt, UNAUTHORIZED);
    res.status(401).set('WWW-Authenticate', 'Bearer realm="spicy-action", Basic realm="spicy-action"').json({ ok: false, error: UNAUTHORIZED.error });
  };
}

/** What the Socket.IO middleware reads of a handshake. */
export interface Handshake {
  readonly auth: Record<string, unknown>;
  readonly query: Record<string, unknown>;
  readonly address: string;
}

/**
 * Socket.IO middleware (`io.use(...)`) refusing connections that do not
 * present `token` as `auth.token` (4.x) or `?token=` (1.x, 2.x) with the
 * error `unauthorized`. It runs on every connection to the namespace,
 * recovered ones included when connection state recovery is set with
 * `skipMiddlewares: false`.
 *
 * @example
 * const guard = socketAccess(settings.token);
 * if (guard) io.use(guard);
 */
export function socketAccess(
  token: string | undefined,
  observe?: AccessObserver,
): ((socket: { handshake: Handshake }, next: (error?: Error) => void) => void) | undefined {
  if (token === undefined) return undefined;
  const check = tokenChecker(token);
  return (socket, next) => {
    const { auth, query, address } = socket.handshake;
    const presented = firstString(auth?.token) ?? firstString(query?.token);
    if (check(presented)) return next();
    debug('refused socket.io connection from %s: %s', address, UNAUTHORIZED.error);
    observe?.({ what: 'socket.io', address }, UNAUTHORIZED);
    next(new Error(UNAUTHORIZED.error));
  };
}

/** True when `host` only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || /^::ffff:127\./.test(h);
}

/**
 * The start-up warning for a broker open to the network without a token, or
 * undefined when there is nothing to warn about.
 *
 * @example
 * openAccessWarning('0.0.0.0', undefined); // 'warning: listening on 0.0.0.0 without BROKER_TOKEN: ...'
 * openAccessWarning('127.0.0.1', undefined); // undefined
 */
export function openAccessWarning(host: string, token: string | undefined): string | undefined {
  if (token !== undefined || isLoopback(host)) return undefined;
  return `warning: listening on ${host} without BROKER_TOKEN: anyone who can reach this address can join every bus and publish`;
}
