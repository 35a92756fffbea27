/**
 * Access control (docs/protocol.md#access): with a shared token set, every Socket.IO
 * connection and every HTTP request but `GET /health` must present it.
 *
 * Where each client puts it:
 * - socket.io-client 4.x: `io(url, {auth: {token}})`;
 * - socket.io-client 1.x and 2.x: `{extraHeaders: {Authorization: 'Bearer ...'}}`
 *   (in Node, every generation sends it on each poll and on the WebSocket
 *   upgrade, and no access log holds it), or `io(url + '?token=...')`, or
 *   `{query: {token}}`;
 * - HTTP: `Authorization: Bearer <token>`, Basic auth with the token as password
 *   (OpenSIPS: `http://notify:<token>@host:port/_notify`), or `?token=`.
 *
 * The token is compared in constant time and never logged: logs name the
 * peer address and the path, never the query string or the headers.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import createDebug from 'debug';
import type { RequestHandler, Response } from 'express';
import { FORBIDDEN, type Refusal } from '../protocol.ts';
import { ANONYMOUS, type Principal } from './credentials.ts';
import type { Grants } from './grants.ts';
import { ATTEMPT_WINDOW_MS, FailedAttempts, TOO_MANY_ATTEMPTS } from './attempts.ts';
import { Keyring } from './keyring.ts';

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
 * One authentication: the principal behind `secret`, or the refusal to give
 * (unauthorized, or too many failed attempts from `attempt.address`, whose
 * attempts are then refused unchecked until its minute is over).
 */
function authenticate(keyring: Keyring, secret: unknown, attempt: AccessAttempt, attempts: FailedAttempts | undefined, observe: AccessObserver | undefined): Principal | Refusal {
  let refusal: Refusal = TOO_MANY_ATTEMPTS;
  if (!attempts?.blocked(attempt.address)) {
    const principal = keyring.authenticate(secret);
    if (principal) return principal;
    refusal = UNAUTHORIZED;
    const record = attempts?.failed(attempt.address);
    // Past the limit, one line for the episode rather than one per attempt.
    if (record?.episodeStarts) console.warn(`spicy-action: ${record.failures} failed authentications from ${attempt.address} within a minute; its attempts are refused unchecked until the minute is over`);
  }
  // An address past its limit is logged once for the episode (above), not once per attempt.
  if (refusal === UNAUTHORIZED) debug('refused %s from %s: %s', attempt.what, attempt.address, refusal.error);
  observe?.(attempt, refusal);
  return refusal;
}

/** Narrows what {@link authenticate} returned. */
const isRefusal = (outcome: Principal | Refusal): outcome is Refusal => 'reason' in outcome;

/**
 * Express middleware letting through only requests that present a secret of
 * `access` (the shared token, a string, or a {@link Keyring} of named
 * credentials), every request when nothing is checked; others get
 * `401 {ok: false, error: 'unauthorized'}` with a `WWW-Authenticate` header,
 * or `429` from an address past its failed attempts ({@link FailedAttempts}).
 * The client it lets through is in `res.locals.principal` ({@link principalOf}).
 * Mount it after the routes that stay open (`GET /health`).
 *
 * @example
 * app.get('/health', health.handler);
 * app.use(httpAccess(settings.token, (attempt, refusal) => telemetry.refused(attempt.what, refusal)));
 */
export function httpAccess(access: string | undefined | Keyring, observe?: AccessObserver, attempts?: FailedAttempts, clientAddress: ClientAddress = peerOnly): RequestHandler {
  const keyring = Keyring.of(access);
  return (req, res, next) => {
    if (keyring.open) return next();
    const attempt = { what: `${req.method} ${req.path}`, address: clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for']) };
    const outcome = authenticate(keyring, httpToken(req.originalUrl, req.headers.authorization), attempt, attempts, observe);
    if (!isRefusal(outcome)) {
      res.locals.principal = outcome;
      return next();
    }
    if (outcome === TOO_MANY_ATTEMPTS) res.status(429).set('Retry-After', String(ATTEMPT_WINDOW_MS / 1000));
    else res.status(401).set('WWW-Authenticate', 'Bearer realm="spicy-action", Basic realm="spicy-action"');
    res.json({ ok: false, error: outcome.error });
  };
}

/**
 * Who a request comes from, from its TCP peer and its `X-Forwarded-For`
 * (docs/security.md#behind-a-proxy-trust_proxy): failed attempts are counted
 * per client, not per proxy.
 */
export type ClientAddress = (peer: string | undefined, forwardedFor: string | readonly string[] | undefined) => string | undefined;
/** The TCP peer, whatever a header says. */
const peerOnly: ClientAddress = (peer) => peer;

/** The client {@link httpAccess} let through for this response; anyone when no access check ran. */
export function principalOf(res: Response): Principal {
  return (res.locals.principal as Principal | undefined) ?? ANONYMOUS;
}

/** What the Socket.IO middleware reads of a handshake. */
export interface Handshake {
  readonly auth: Record<string, unknown>;
  readonly query: Record<string, unknown>;
  readonly headers: { readonly authorization?: string | undefined; readonly 'x-forwarded-for'?: string | string[] | undefined };
  readonly address: string;
}

/**
 * Socket.IO middleware (`io.use(...)`) refusing connections that do not
 * present a secret of `access` (the shared token, or a {@link Keyring}) as
 * `auth.token` (4.x), `?token=` (1.x, 2.x) or in the handshake's
 * `Authorization` header (any generation, through `extraHeaders`), with the
 * error `unauthorized` (`too_many_attempts` from an address past its failed
 * attempts); the client it lets through is in `socket.data.principal`.
 * Undefined when nothing is checked. It runs on every connection to the
 * namespace, recovered ones included when connection state recovery is set
 * with `skipMiddlewares: false`.
 *
 * @example
 * const guard = socketAccess(settings.token);
 * if (guard) io.use(guard);
 */
export function socketAccess(
  access: string | undefined | Keyring,
  observe?: AccessObserver,
  attempts?: FailedAttempts,
  clientAddress: ClientAddress = peerOnly,
): ((socket: { handshake: Handshake; data: { principal?: Principal } }, next: (error?: Error) => void) => void) | undefined {
  const keyring = Keyring.of(access);
  if (keyring.open) return undefined;
  return (socket, next) => {
    const { auth, query, headers, address } = socket.handshake;
    const presented = firstString(auth?.token) ?? firstString(query?.token) ?? httpToken('', headers?.authorization);
    const outcome = authenticate(keyring, presented, { what: 'socket.io', address: clientAddress(address, headers?.['x-forwarded-for']) ?? address }, attempts, observe);
    if (isRefusal(outcome)) return next(new Error(outcome.error));
    socket.data.principal = outcome;
    next();
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

/**
 * Express middleware letting through only clients whose grants pass `test`
 * ({@link httpAccess} must have run first); others get
 * `403 {ok: false, error: 'forbidden'}`, counted and logged under their name.
 *
 * @example
 * app.get('/metrics', httpGrant((grants) => grants.mayRead('metrics'), observe), metricsHandler(registry));
 */
export function httpGrant(test: (grants: Grants) => boolean, observe?: (attempt: AccessAttempt, refusal: Refusal, by: string) => void): RequestHandler {
  return (req, res, next) => {
    const { credential } = principalOf(res);
    if (test(credential.grants)) return next();
    const attempt = { what: `${req.method} ${req.path}`, address: req.socket.remoteAddress };
    debug('refused %s from %s (%s): %s', attempt.what, attempt.address, credential.name, FORBIDDEN.error);
    observe?.(attempt, FORBIDDEN, credential.name);
    res.status(403).json({ ok: false, error: FORBIDDEN.error });
  };
}
