/**
 * Browser origins (docs/security.md#origins). A web page can make a
 * visitor's browser send requests to the broker: a `POST /_notify` as a
 * `text/plain` "simple request" needs no CORS preflight, and the broker reads
 * any body as JSON, so any page could forge OpenSIPS pushes; and a WebSocket
 * (which CORS does not bind) or a polling handshake would let it join buses
 * and publish. Browsers name the page in the `Origin` header of such
 * requests; OpenSIPS, curl and the platform's servers send none.
 *
 * One rule for both surfaces ({@link originAllowed}): a request without
 * `Origin` passes, and so does one whose origin is listed (CORS_ORIGINS, or
 * the `corsOrigins` option of `attachBroker`) or is the broker's own (its `Host`: the monitor page); any other is refused.
 * The default "no list" (`*`) lists nothing.
 * - `/_notify`: refused with `403` before the body is read;
 * - Socket.IO handshakes, over long-polling or WebSocket: refused by an
 *   Engine.IO middleware that `attachBroker` installs, so embedding hosts
 *   get it too.
 * Refusals are logged and counted (`bad_origin`).
 */
import { ServerResponse } from 'node:http';
import createDebug from 'debug';
import type { RequestHandler } from 'express';
import type { Refusal } from '../protocol.ts';
import type { AccessObserver } from '../guards/access.ts';

const debug = createDebug('spicy-action:origin');

/**
 * The refusal of a request or handshake from an origin not allowed, naming
 * `setting`, the list the operator would add the origin to; its reason
 * labels `spicy_action_refused_total`.
 *
 * @example
 * badOrigin('corsOrigins').error; // 'requests from web pages are refused here: this origin is not in corsOrigins'
 */
function badOrigin(setting: string): Refusal {
  return Object.freeze({ reason: 'bad_origin', error: `requests from web pages are refused here: this origin is not in ${setting}` });
}

/** {@link badOrigin} for the process, whose list is its setting `CORS_ORIGINS`. */
export const BAD_ORIGIN: Refusal = badOrigin('CORS_ORIGINS');

/** The allowed origins as the settings give them: `'*'` (any) or a list. */
export type AllowedOrigins = '*' | readonly string[];

/** Longest origin quoted in a log line; an `Origin` header is the client's text. */
const MAX_LOGGED_ORIGIN = 200;

/** An origin as it may appear in a log line: printable ASCII, cut short. */
function loggable(origin: string): string {
  const printable = origin.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > MAX_LOGGED_ORIGIN ? `${printable.slice(0, MAX_LOGGED_ORIGIN)}…` : printable;
}

/**
 * True when `origin` is the broker's own: its host (and port) is the `Host`
 * the request was sent to, as for the monitor page the broker serves. A
 * browser cannot choose `Host`; a page that could only by DNS rebinding,
 * which would open every other route to it as well.
 */
function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

/**
 * True when a request with this `Origin` header may push or connect: no
 * `Origin` at all (not a browser), one listed, or the broker's own (`host` is
 * the request's `Host` header). `'*'` lists nothing: a page anywhere on the
 * web is neither an OpenSIPS server nor a platform program.
 *
 * @example
 * originAllowed(undefined, '*'); // true: curl, OpenSIPS, socket.io-client in Node
 * originAllowed('https://evil.example', '*'); // false
 * originAllowed('https://admin.example.net', ['https://admin.example.net']); // true
 * originAllowed('http://broker:3000', '*', 'broker:3000'); // true: the monitor page
 */
export function originAllowed(origin: string | undefined, allowed: AllowedOrigins, host?: string): boolean {
  return origin === undefined || (allowed !== '*' && allowed.includes(origin)) || sameOrigin(origin, host);
}

/** The rule of {@link originAllowed}, under the name `/_notify` has used. */
export const pushOriginAllowed = originAllowed;

/**
 * Express middleware for the push route: answers `403 {ok: false, error}`
 * to a request whose `Origin` is not allowed ({@link pushOriginAllowed}),
 * before its body is read, and reports it to `observe`. The answer names
 * `setting`, where `allowed` comes from: `CORS_ORIGINS` by default, the
 * process's setting.
 *
 * @example
 * app.use('/_notify', pushOriginGuard(settings.corsOrigins, (attempt, refusal) => telemetry.refused(attempt.what, refusal)));
 */
export function pushOriginGuard(allowed: AllowedOrigins, observe?: AccessObserver, setting = 'CORS_ORIGINS'): RequestHandler {
  const refusal = setting === 'CORS_ORIGINS' ? BAD_ORIGIN : badOrigin(setting);
  return (req, res, next) => {
    const { origin } = req.headers;
    if (originAllowed(origin, allowed, req.headers.host)) return next();
    const attempt = { what: `${req.method} ${req.originalUrl.split('?')[0] ?? ''}`, address: req.socket.remoteAddress };
    debug('refused %s from %s: origin %s', attempt.what, attempt.address, loggable(origin ?? ''));
    observe?.(attempt, refusal);
    res.status(403).json({ ok: false, error: refusal.error });
  };
}

/** What a handshake check reads of a request to the Engine.IO path. */
export interface HandshakeRequest {
  readonly url?: string | undefined;
  readonly headers: { readonly origin?: string | undefined; readonly host?: string | undefined };
  readonly socket?: { readonly remoteAddress?: string | undefined };
}

/** True when a request to the Engine.IO path names a session (`sid`): not a handshake. */
function namesSession(url: string | undefined): boolean {
  const query = url === undefined ? -1 : url.indexOf('?');
  return query >= 0 && new URLSearchParams((url as string).slice(query + 1)).has('sid');
}

/** Logs and reports a handshake refused for its origin. */
function refuseHandshake(req: HandshakeRequest, observe: AccessObserver | undefined, refusal: Refusal): void {
  const address = req.socket?.remoteAddress;
  debug('refused socket.io handshake from %s: origin %s', address, loggable(req.headers.origin ?? ''));
  observe?.({ what: 'socket.io', address }, refusal);
}

/** An Engine.IO middleware, as `io.engine.use` takes it. */
export type EngineMiddleware = (req: HandshakeRequest, res: unknown, next: (error?: Error) => void) => void;

/**
 * An Engine.IO middleware (`io.engine.use(...)`) refusing a Socket.IO
 * handshake, over long-polling or WebSocket, whose `Origin` is not allowed
 * ({@link originAllowed}). A polling handshake is answered
 * `403 {ok: false, error}`; a WebSocket upgrade is answered `400` and closed
 * by Engine.IO. Each refusal is logged and reported to `observe`. Requests
 * on an open session (`sid`) pass: their handshake was checked.
 *
 * @example
 * io.engine.use(handshakeOriginGuard(['https://admin.example.net'], observe));
 */
export function handshakeOriginGuard(allowed: AllowedOrigins, observe?: AccessObserver, setting = 'CORS_ORIGINS'): EngineMiddleware {
  const refusal = setting === 'CORS_ORIGINS' ? BAD_ORIGIN : badOrigin(setting);
  return (req, res, next) => {
    if (originAllowed(req.headers.origin, allowed, req.headers.host) || namesSession(req.url)) return next();
    refuseHandshake(req, observe, refusal);
    // An upgrade's `res` is Engine.IO's own stand-in, which it answers itself.
    if (res instanceof ServerResponse && !res.headersSent) {
      res.writeHead(403, { 'Content-Type': 'application/json' }).end(JSON.stringify({ ok: false, error: refusal.error }));
    }
    next(new Error(refusal.error));
  };
}

/**
 * The same rule as Socket.IO's `allowRequest` (which Engine.IO calls for
 * handshakes only; a refusal is answered `403`), for a host that wants it
 * there. `attachBroker` installs {@link handshakeOriginGuard} already.
 *
 * @example
 * new Server(httpServer, { allowRequest: handshakeOriginCheck(['https://admin.example.net'], observe) });
 */
export function handshakeOriginCheck(
  allowed: AllowedOrigins,
  observe?: AccessObserver,
): (req: HandshakeRequest, callback: (error: string | null | undefined, success: boolean) => void) => void {
  return (req, callback) => {
    if (originAllowed(req.headers.origin, allowed, req.headers.host)) return callback(null, true);
    refuseHandshake(req, observe, BAD_ORIGIN);
    callback(null, false);
  };
}
