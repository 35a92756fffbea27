/**
 * Browser origins (docs/security.md#origins). A web page can make a
 * visitor's browser send requests to the broker: a `POST /_notify` as a
 * `text/plain` "simple request" needs no CORS preflight, and the broker reads
 * any body as JSON, so any page could forge OpenSIPS pushes. Browsers name
 * the page in the `Origin` header of such requests; OpenSIPS, curl and the
 * platform's servers send none.
 *
 * - `/_notify`: a request with an `Origin` not listed (CORS_ORIGINS, or the `corsOrigins` option of `attachBroker`) is
 *   refused with `403`. The default "any origin" (`*`) of Socket.IO does not
 *   extend to it: without a list, every request with an `Origin` is refused,
 *   but for the broker's own pages (the monitor page's test push), whose
 *   `Origin` names the host the request was sent to.
 * - Socket.IO handshakes: with a list, one from an origin not in it is
 *   refused (CORS does not bind WebSocket); now logged and counted too.
 */
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
 * True when a request with this `Origin` header may push: no `Origin` at all
 * (not a browser), one listed, or the broker's own (`host` is the request's
 * `Host` header). `'*'` lists nothing: a page anywhere on the web is not an
 * OpenSIPS server.
 *
 * @example
 * pushOriginAllowed(undefined, '*'); // true: curl, OpenSIPS
 * pushOriginAllowed('https://evil.example', '*'); // false
 * pushOriginAllowed('https://admin.example.net', ['https://admin.example.net']); // true
 * pushOriginAllowed('http://broker:3000', '*', 'broker:3000'); // true: the monitor page
 */
export function pushOriginAllowed(origin: string | undefined, allowed: AllowedOrigins, host?: string): boolean {
  return origin === undefined || (allowed !== '*' && allowed.includes(origin)) || sameOrigin(origin, host);
}

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
    if (pushOriginAllowed(origin, allowed, req.headers.host)) return next();
    const attempt = { what: `${req.method} ${req.originalUrl.split('?')[0] ?? ''}`, address: req.socket.remoteAddress };
    debug('refused %s from %s: origin %s', attempt.what, attempt.address, loggable(origin ?? ''));
    observe?.(attempt, refusal);
    res.status(403).json({ ok: false, error: refusal.error });
  };
}

/** What Socket.IO's `allowRequest` is given of a handshake. */
export interface HandshakeRequest {
  readonly headers: { readonly origin?: string | undefined };
  readonly socket?: { readonly remoteAddress?: string | undefined };
}

/**
 * Socket.IO's `allowRequest` for a list of origins: a handshake without
 * `Origin` (not a browser) or with a listed one passes; others are refused
 * (HTTP 403 from Engine.IO), logged and reported to `observe`. Undefined for
 * `'*'`: any origin may connect, and the token (if set) decides.
 *
 * @example
 * new Server(httpServer, { allowRequest: handshakeOriginCheck(['https://admin.example.net'], observe) });
 */
export function handshakeOriginCheck(
  allowed: AllowedOrigins,
  observe?: AccessObserver,
): ((req: HandshakeRequest, callback: (error: string | null | undefined, success: boolean) => void) => void) | undefined {
  if (allowed === '*') return undefined;
  return (req, callback) => {
    const { origin } = req.headers;
    if (origin === undefined || allowed.includes(origin)) return callback(null, true);
    const address = req.socket?.remoteAddress;
    debug('refused socket.io handshake from %s: origin %s', address, loggable(origin));
    observe?.({ what: 'socket.io', address }, BAD_ORIGIN);
    callback(null, false);
  };
}
