/**
 * The last word on HTTP errors (docs/security.md#error-answers):
 * whatever fails in a route, including a path Express cannot decode
 * (`/_notify/%E0%A4%A`), is answered `{ok: false, error}` in JSON with its
 * status, never with Express's HTML page (which shows the stack and the
 * install paths), and counted in `spicy_action_refused_total`.
 */
import createDebug from 'debug';
import type { ErrorRequestHandler } from 'express';
import type { Refusal, RefusalReason } from '../protocol.ts';
import type { AccessObserver } from '../guards/access.ts';

const debug = createDebug('spicy-action:http');

const BAD_REQUEST = 400;
const TOO_LARGE = 413;
const INTERNAL = 500;

/** The sentence each status gets; a status not listed gets the one of its class. */
const ERRORS: ReadonlyMap<number, string> = new Map([
  [400, 'bad request'],
  [401, 'unauthorized'],
  [403, 'forbidden'],
  [404, 'not found'],
  [405, 'method not allowed'],
  [408, 'request timeout'],
  [411, 'length required'],
  [413, 'request too large'],
  [414, 'URI too long'],
  [415, 'unsupported media type'],
  [431, 'request header fields too large'],
  [500, 'internal error'],
  [503, 'service unavailable'],
]);

/** The answer to a request whose path holds a broken percent-escape. */
export const BAD_PATH_ERROR = 'the path is not valid: it holds a broken percent-escape';

/** An HTTP error answer: status, the JSON body's sentence, and the reason it is counted under. */
export interface ErrorAnswer {
  readonly status: number;
  readonly refusal: Refusal;
}

/** The status an error carries (`status` or `statusCode`, as http-errors and body-parser set), if it is one. */
function carriedStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { status, statusCode } = error as { status?: unknown; statusCode?: unknown };
  const value = typeof status === 'number' ? status : statusCode;
  return typeof value === 'number' && Number.isInteger(value) && value >= 400 && value <= 599 ? value : undefined;
}

/**
 * How an error thrown in a route is answered: a `URIError` (a path that does
 * not decode) is `400`; an error carrying a 4xx or 5xx status keeps it; any
 * other is `500`. The sentence is the status's own, never the error's
 * message (which may quote the path or an internal detail).
 *
 * @example
 * errorAnswer(new URIError('URI malformed')); // { status: 400, refusal: { reason: 'bad_request', error: 'the path is not valid: ...' } }
 * errorAnswer(new Error('boom')); // { status: 500, refusal: { reason: 'server_error', error: 'internal error' } }
 */
export function errorAnswer(error: unknown): ErrorAnswer {
  const status = error instanceof URIError ? BAD_REQUEST : (carriedStatus(error) ?? INTERNAL);
  const reason: RefusalReason = status === TOO_LARGE ? 'too_large' : status >= INTERNAL ? 'server_error' : 'bad_request';
  const sentence = error instanceof URIError ? BAD_PATH_ERROR : (ERRORS.get(status) ?? (status >= INTERNAL ? 'internal error' : 'bad request'));
  return { status, refusal: { reason, error: sentence } };
}

/**
 * Express's last error handler: answers {@link errorAnswer} as
 * `{ok: false, error}` and reports it to `observe` (refused inputs, by
 * reason). Mount it after every route.
 *
 * @example
 * app.use(errorHandler((attempt, refusal) => telemetry.refused(attempt.what, refusal)));
 */
export function errorHandler(observe?: AccessObserver): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    // Half an answer is already out: only closing the connection is left, which Express does.
    if (res.headersSent) return next(error);
    const { status, refusal } = errorAnswer(error);
    const attempt = { what: `${req.method} ${req.path}`, address: req.socket.remoteAddress };
    if (status >= INTERNAL) debug('%s from %s failed: %s', attempt.what, attempt.address, error instanceof Error ? error.stack : String(error));
    else debug('refused %s from %s: %d %s', attempt.what, attempt.address, status, refusal.error);
    observe?.(attempt, refusal);
    res.status(status).set('X-Content-Type-Options', 'nosniff').json({ ok: false, error: refusal.error });
  };
}
