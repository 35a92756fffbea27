/**
 * `POST /_notify/:msg` (docs/protocol.md#notify-endpoint): OpenSIPS cannot speak Socket.IO, so
 * it posts its notifications as JSON and the broker re-emits them on the
 * message's bus, and to `endpoint:<endpoint>` where a customer's dashboard may
 * be listening.
 */
import bodyParser from 'body-parser';
import createDebug from 'debug';
import { Router, type ErrorRequestHandler, type RequestHandler, type Response } from 'express';
import { principalOf } from '../guards/access.ts';
import { FORBIDDEN, HELD_STATUS, isObject, tooDeep, tooDeepRefusal, type PublicationOutcome } from '../protocol.ts';
import type { Targets } from '../targets.ts';
import type { Telemetry } from '../telemetry.ts';

const debug = createDebug('spicy-action:notify');

/** The refusal of a body that is not a JSON object (none, an array, a number...). */
const NOT_AN_OBJECT = 'body must be a JSON object';

/** Errors of body-parser, by their `type`, as HTTP answers. */
const BODY_ERRORS: Record<string, { status: number; error: string }> = {
  'entity.parse.failed': { status: 400, error: 'body is not valid JSON' },
  'entity.too.large': { status: 413, error: 'body is too large' },
  'entity.empty': { status: 400, error: NOT_AN_OBJECT },
  'request.aborted': { status: 400, error: 'request was aborted' },
  'request.size.invalid': { status: 400, error: 'body is shorter or longer than its Content-Length' },
  'encoding.unsupported': { status: 415, error: 'unsupported Content-Encoding' },
  'charset.unsupported': { status: 415, error: 'unsupported charset' },
};

/** body-parser reads an empty body as `{}`; an empty body is not a JSON object. */
function refuseEmpty(_req: unknown, _res: unknown, body: Buffer): void {
  if (body.length === 0) throw Object.assign(new Error('empty body'), { type: 'entity.empty' });
}

/** What the push route needs of the broker; a {@link Broker} is one. */
export interface PushTarget {
  /** True once the broker is detached: pushes are answered 503. */
  readonly closed: boolean;
  readonly limits: { readonly maxBodyBytes: number; readonly maxPayloadDepth: number };
  /** Where requests and refusals are reported. */
  readonly telemetry: Telemetry;
  /** True when {@link push} can tell whether a push reached the whole cluster (a broker on a cluster). */
  readonly confirms: boolean;
  /**
   * Routes `msg` with `body`; undefined when it has no route or a null one
   * (nothing sent). Otherwise `confirmed` hears, once known, whether the push
   * reached the whole cluster (`{ok: true}`) or this node's clients only, or
   * first that it is held for Redis, down (`{ok: true, held: true}`).
   */
  push(msg: string, body: Record<string, unknown>, confirmed?: (outcome: PublicationOutcome) => void, by?: string): Targets | undefined;
}

/**
 * The path of the push route, `/_notify/<msg>`: what Express matches for
 * `/_notify/:msg` (any case, one segment, a trailing slash allowed), but
 * without decoding `<msg>` on the way, so that the checks mounted before the
 * route (the token, the Origin) answer first, as they did in front of a
 * router; the route decodes it after them ({@link notifyHandlers}).
 */
export const NOTIFY_PATH = /^\/_notify\/[^/]+\/?$/i;

/** Where `<msg>` starts in a path {@link NOTIFY_PATH} matched. */
const MSG_AT = '/_notify/'.length;

/**
 * `<msg>` of a `/_notify/<msg>` request, decoded as Express decodes a route
 * parameter; a broken percent-escape throws the `URIError` Express would
 * (status 400), which the app's error handler answers.
 */
function messageName(path: string): string {
  const end = path.endsWith('/') ? path.length - 1 : path.length;
  const raw = path.slice(MSG_AT, end);
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch (error) {
    if (error instanceof URIError) Object.assign(error, { message: `Failed to decode param '${raw}'`, status: 400, statusCode: 400 });
    throw error;
  }
}

/**
 * The handlers of `POST /_notify/:msg`, in order, pushing through `broker`,
 * to mount on {@link NOTIFY_PATH} after whatever checks come first, as one
 * flat route: `app.post(NOTIFY_PATH, check, ...notifyHandlers(broker))`.
 * A push then costs one route match, with no router of its own to enter
 * and leave.
 */
export function notifyHandlers(broker: PushTarget): RequestHandler[] {
  // Any Content-Type is read as JSON: OpenSIPS sends application/json, and a
  // forgotten header in a `curl` should not turn into a puzzling 400.
  const options = { limit: broker.limits.maxBodyBytes, strict: false, type: () => true };
  const checked = bodyParser.json({ ...options, verify: refuseEmpty });
  const plain = bodyParser.json(options);
  // A body sent as it is (no Content-Encoding) with a Content-Length above 0 cannot be empty (Node's
  // parser takes that header only as a number, and body-parser refuses a body of another length): it
  // is read without the emptiness check, which makes body-parser read it as bytes and decode it apart.
  // Any other body (none, 0, chunked, compressed: a gzip of nothing is not empty) is checked.
  const json: RequestHandler = (req, res, next) => {
    const { 'content-length': length, 'content-encoding': encoding } = req.headers;
    if (Number(length) > 0 && (encoding === undefined || encoding.toLowerCase() === 'identity')) plain(req, res, next);
    else checked(req, res, next);
  };

  const { telemetry } = broker;
  /** Answers, and reports the request. */
  const answer = (res: Response, msg: string, status: number, body: object): void => {
    telemetry.notified(msg, status);
    // A fresh answer's status is 200 already: it is stored only when it is another (bench/notes.md says what that saves).
    if (status !== 200) res.status(status);
    res.json(body);
  };

  /** Answers a refusal, and logs it: every refused push gets the same line. */
  const refused = (res: Response, msg: string, status: number, error: string): void => {
    debug('refused %s: %d %s', msg, status, error);
    answer(res, msg, status, { ok: false, error });
  };

  // `<msg>`, decoded once the checks before the route passed; it is `req.params.msg` from here on.
  // A message the client's grants do not name is refused before its body is read.
  const name: RequestHandler = (req, res, next) => {
    const msg = messageName(req.path);
    (req.params as { msg?: string }).msg = msg;
    const { credential } = principalOf(res);
    if (credential.grants.may('notify', msg)) return next();
    debug('refused %s from %s: %s', msg, credential.name, FORBIDDEN.error);
    telemetry.refused(msg, FORBIDDEN, credential.name);
    answer(res, msg, 403, { ok: false, error: FORBIDDEN.error });
  };

  const push: RequestHandler<{ msg: string }> = (req, res) => {
    const { msg } = req.params;
    if (broker.closed) {
      res.status(503).json({ ok: false, error: 'the broker is shutting down' });
      return;
    }
    const body: unknown = req.body;
    if (!isObject(body)) return refused(res, msg, 400, NOT_AN_OBJECT);
    if (tooDeep(body, broker.limits.maxPayloadDepth)) {
      const deep = tooDeepRefusal(broker.limits.maxPayloadDepth);
      telemetry.refused(msg, deep, principalOf(res).credential.name);
      return refused(res, msg, 400, deep.error);
    }
    // On a cluster the answer waits, as a socket's acknowledgement does, to say whether Redis took the push;
    // but not through an outage: a push held for Redis is answered so at once (202).
    const confirmed = broker.confirms
      ? (outcome: PublicationOutcome): void => {
          if (!outcome.ok) return answer(res, msg, 200, { ok: false, error: outcome.error });
          if (outcome.held) return answer(res, msg, HELD_STATUS, outcome);
          answer(res, msg, 200, PUSHED);
        }
      : undefined;
    if (broker.push(msg, body, confirmed, principalOf(res).credential.name) === undefined) {
      debug('ignored %s: no route, or a null one', msg);
      return answer(res, msg, 200, IGNORED);
    }
    if (confirmed === undefined) answer(res, msg, 200, PUSHED);
  };

  const refuse: ErrorRequestHandler<{ msg: string }> = (err: { type?: string; status?: number }, req, res, next) => {
    // A path that does not decode is the app's to answer, as when Express itself decoded it; so is the
    // end of a body already answered (cut for its slowness, src/http/body-budget.ts).
    if (err instanceof URIError || res.headersSent) return next(err);
    const known = err.type ? BODY_ERRORS[err.type] : undefined;
    const status = known?.status ?? err.status ?? 500;
    const error = known?.error ?? 'the request could not be handled';
    if (status === 413) telemetry.refused(req.params.msg, { reason: 'too_large', error }, principalOf(res).credential.name);
    refused(res, req.params.msg, status, status === 413 ? `${error} (limit ${broker.limits.maxBodyBytes} bytes)` : error);
  };

  return [name, json, push as RequestHandler, refuse as unknown as RequestHandler];
}

/** The two answers of a push that was read: sent, or ignored (no route, or a null one). */
const PUSHED = Object.freeze({ ok: true });
const IGNORED = Object.freeze({ ok: false, ignore: true });

/**
 * The router of `POST /_notify/:msg`, pushing through `broker`, for a host
 * that mounts routers. Its route decodes `<msg>` as it matches, whatever the
 * method: a broken percent-escape under `/_notify/` is a 400 for any method.
 *
 * @example
 * app.use(notifyRouter(broker));
 * // curl -H 'Content-Type: application/json' -d '{"name":"invalid_source","endpoint":"alice@example.net"}' \
 * //   http://127.0.0.1:3000/_notify/script_register
 */
export function notifyRouter(broker: PushTarget): Router {
  const router = Router();
  // Express has decoded `<msg>` into req.params already: the handlers but the first.
  router.post('/_notify/:msg', ...notifyHandlers(broker).slice(1));
  return router;
}
