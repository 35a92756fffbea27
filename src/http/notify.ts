/**
 * `POST /_notify/:msg` (SPEC section 6): OpenSIPS cannot speak Socket.IO, so
 * it posts its notifications as JSON and the broker re-emits them on the
 * message's bus, and to `endpoint:<endpoint>` where a customer's dashboard may
 * be listening.
 */
import bodyParser from 'body-parser';
import createDebug from 'debug';
import { Router, type ErrorRequestHandler, type RequestHandler, type Response } from 'express';
import type { Broker } from '../broker.ts';
import { isObject } from '../protocol.ts';

const debug = createDebug('spicy-action:notify');

/** Errors of body-parser, by their `type`, as HTTP answers. */
const BODY_ERRORS: Record<string, { status: number; error: string }> = {
  'entity.parse.failed': { status: 400, error: 'body is not valid JSON' },
  'entity.too.large': { status: 413, error: 'body is too large' },
  'entity.empty': { status: 400, error: 'body must be a JSON object' },
  'request.aborted': { status: 400, error: 'request was aborted' },
  'request.size.invalid': { status: 400, error: 'body is shorter or longer than its Content-Length' },
  'encoding.unsupported': { status: 415, error: 'unsupported Content-Encoding' },
  'charset.unsupported': { status: 415, error: 'unsupported charset' },
};

/** body-parser reads an empty body as `{}`; an empty body is not a JSON object. */
function refuseEmpty(_req: unknown, _res: unknown, body: Buffer): void {
  if (body.length === 0) throw Object.assign(new Error('empty body'), { type: 'entity.empty' });
}

/**
 * The router of `POST /_notify/:msg`, bound to `broker`.
 *
 * @example
 * app.use(notifyRouter(broker));
 * // curl -H 'Content-Type: application/json' -d '{"name":"invalid_source","endpoint":"alice@example.net"}' \
 * //   http://127.0.0.1:3000/_notify/script_register
 */
export function notifyRouter(broker: Broker): Router {
  const router = Router();
  // Any Content-Type is read as JSON: OpenSIPS sends application/json, and a
  // forgotten header in a `curl` should not turn into a puzzling 400.
  const json = bodyParser.json({ limit: broker.limits.maxBodyBytes, strict: false, type: () => true, verify: refuseEmpty });

  /** Answers, and tells the observers; `msg` is only named when it has a route (labels stay bounded). */
  const answer = (res: Response, msg: string, status: number, body: object): void => {
    broker.emit('notified', broker.routes.get(msg) === undefined ? undefined : msg, status);
    res.status(status).json(body);
  };

  const push: RequestHandler<{ msg: string }> = (req, res) => {
    const { msg } = req.params;
    if (broker.closed) {
      res.status(503).json({ ok: false, error: 'the broker is shutting down' });
      return;
    }
    const body: unknown = req.body;
    if (!isObject(body)) return answer(res, msg, 400, { ok: false, error: 'body must be a JSON object' });
    if (broker.push(msg, body) === undefined) {
      debug('ignored %s: no route, or a null one', msg);
      return answer(res, msg, 200, { ok: false, ignore: true });
    }
    answer(res, msg, 200, { ok: true });
  };

  const refuse: ErrorRequestHandler<{ msg: string }> = (err: { type?: string; status?: number }, req, res, _next) => {
    const known = err.type ? BODY_ERRORS[err.type] : undefined;
    const status = known?.status ?? err.status ?? 500;
    const error = known?.error ?? 'the request could not be handled';
    debug('refused %s: %d %s', req.params.msg, status, error);
    if (status === 413) broker.emit('refused', req.params.msg, { reason: 'too_large', error });
    answer(res, req.params.msg, status, { ok: false, error: status === 413 ? `${error} (limit ${broker.limits.maxBodyBytes} bytes)` : error });
  };

  router.post('/_notify/:msg', json, push, refuse);
  return router;
}
