/**
 * Route administration (docs/protocol.md#routes,
 * docs/production.md#route-administration): `GET /routes` lists the route table, `DELETE
 * /routes/:event` removes a route. Routes are otherwise permanent: a
 * registered route never expires, since the platform's servers register once
 * at start-up; removing one is the operator's decision. Mount it behind the
 * token, as `/metrics` is.
 *
 * In a cluster, a removal reaches every node and Redis through the route
 * table's listeners (`cluster/route-sync.ts`), as a `register` does, and is
 * answered once Redis took it: a removal Redis refuses is undone and answered
 * 503 `{ok: false, error}`.
 */
import createDebug from 'debug';
import { principalOf } from '../guards/access.ts';
import { Router, type ErrorRequestHandler, type Response } from 'express';
import { HELD_STATUS, type PublicationOutcome } from '../protocol.ts';
import type { Route, RouteInfo, RouteKind, RouteTable } from '../routes.ts';
import type { RouteAdminAction, Telemetry } from '../telemetry.ts';

const debug = createDebug('spicy-action:route-admin');

/** Longest event name a log line quotes; longer ones are cut (they cannot be routes anyway). */
const LOGGED_NAME_LENGTH = 300;

/** One route in the answer of `GET /routes`. */
export interface RouteListing {
  readonly event: string;
  /** The bus, or null for `_in` delivery only. */
  readonly bus: Route;
  readonly kind: RouteKind;
  /** For a built-in route: its default bus, what `DELETE` brings back. */
  readonly default?: Route;
  /** When it was last changed (ISO 8601); absent for a built-in route never changed. */
  readonly set_at?: string;
  /** The node that last changed it (`host:pid`); absent with `set_at`. */
  readonly set_on?: string;
  /** The credential of the client that last changed it; absent when not known (a change made before credentials were recorded). */
  readonly set_by?: string;
}

/** The answer of `GET /routes`. */
export interface RouteList {
  readonly ok: true;
  /** The node that answered (`host:pid`). */
  readonly node: string;
  readonly count: number;
  /** In the order the routes were first added: built-in ones first. */
  readonly routes: readonly RouteListing[];
}

/** The answers of `DELETE /routes/:event`. */
export type RouteRemovalAnswer = { readonly ok: true; readonly held?: true; readonly event: string; readonly bus?: Route } | { readonly ok: false; readonly error: string };

/** What the router reads and changes; a {@link Broker} is one. */
export interface RouteAdminSource {
  readonly routes: Pick<RouteTable, 'list' | 'remove' | 'node'>;
  /** Where each request is reported (`route_admin`), for the metrics. */
  readonly telemetry: Telemetry;
  /**
   * Removes a route and tells, once known, whether the cluster took the
   * removal ({@link Broker.removeRoute}); without it, `routes.remove` is
   * used and the answer does not wait.
   */
  readonly removeRoute?: (event: string) => { removal: ReturnType<RouteTable['remove']>; written: Promise<PublicationOutcome> | undefined };
}

/** The status of a removal Redis refused: the route is as it was, and a retry may succeed. */
const REFUSED_BY_REDIS = 503;

/**
 * One route as `GET /routes` shows it.
 *
 * @example
 * routeListing({ event: 'queuer', bus: 'calls', kind: 'registered', stamp: { at: 0, node: 'broker1:42' } });
 * // { event: 'queuer', bus: 'calls', kind: 'registered', set_at: '1970-01-01T00:00:00.000Z', set_on: 'broker1:42' }
 */
export function routeListing(info: RouteInfo): RouteListing {
  return {
    event: info.event,
    bus: info.bus,
    kind: info.kind,
    ...(info.kind === 'built-in' ? { default: info.default ?? null } : {}),
    ...(info.stamp ? { set_at: new Date(info.stamp.at).toISOString(), set_on: info.stamp.node, ...(info.stamp.by === undefined ? {} : { set_by: info.stamp.by }) } : {}),
  };
}

/**
 * The router of `GET /routes` and `DELETE /routes/:event`. Every answer is
 * JSON; each request is reported to the telemetry and logged with the event
 * and the peer's address (never a header, so never the token).
 *
 * @example
 * app.use(httpAccess(settings.token));
 * app.use(routeAdminRouter(broker));
 * // curl -s -X DELETE -H "Authorization: Bearer $BROKER_TOKEN" http://127.0.0.1:3000/routes/queuer
 * // {"ok":true,"event":"queuer"}
 */
export function routeAdminRouter(source: RouteAdminSource): Router {
  const { routes, telemetry } = source;
  const router = Router();
  const answer = (res: Response, action: RouteAdminAction, status: number, body: RouteList | RouteRemovalAnswer): void => {
    telemetry.routeAdmin(action, status);
    res.status(status).set('Cache-Control', 'no-store').json(body);
  };

  router.get('/routes', (req, res) => {
    const listed = Array.from(routes.list(), routeListing);
    debug('GET /routes from %s: %d routes', req.socket.remoteAddress, listed.length);
    answer(res, 'list', 200, { ok: true, node: routes.node, count: listed.length, routes: listed });
  });

  router.delete('/routes', (req, res) => {
    debug('DELETE /routes from %s: no event named', req.socket.remoteAddress);
    answer(res, 'remove', 400, { ok: false, error: 'name the event: DELETE /routes/<event> (percent-encoded)' });
  });

  router.delete('/routes/:event', (req, res) => {
    const { event } = req.params;
    const shown = JSON.stringify(event.length > LOGGED_NAME_LENGTH ? `${event.slice(0, LOGGED_NAME_LENGTH)}…` : event);
    const { removal, written } = source.removeRoute ? source.removeRoute(event) : { removal: routes.remove(event), written: undefined };
    if (removal === undefined) {
      debug('DELETE route %s from %s: no such route', shown, req.socket.remoteAddress);
      return answer(res, 'remove', 404, { ok: false, error: `no route for ${shown}` });
    }
    const by = principalOf(res).credential.name;
    const done = (outcome: PublicationOutcome): void => {
      if (!outcome.ok) {
        debug('DELETE route %s from %s (%s): refused, the route is as it was: %s', shown, req.socket.remoteAddress, by, outcome.error);
        return answer(res, 'remove', REFUSED_BY_REDIS, { ok: false, error: outcome.error });
      }
      telemetry.routeChanged(event, removal.bus, by);
      const after = removal.bus === undefined ? 'gone' : `back to its default ${removal.bus ?? '(_in only)'}`;
      debug('DELETE route %s from %s (%s): %s%s', shown, req.socket.remoteAddress, by, after, removal.changed ? '' : ' (it was already)');
      const removed = removal.bus === undefined ? { event } : { event, bus: removal.bus };
      // Held: removed here, its write waits for Redis, down (docs/cluster.md#what-an-answer-says).
      if (outcome.held) answer(res, 'remove', HELD_STATUS, { ok: true, held: true, ...removed });
      else answer(res, 'remove', 200, { ok: true, ...removed });
    };
    // On a cluster, the answer waits for Redis, as a `register` acknowledgement does (but not through an outage).
    if (written === undefined) done({ ok: true });
    else void written.then(done);
  });

  // A name that is not valid percent-encoding (`%E0%A4%A`): Express fails to decode it, with status 400.
  const refuse: ErrorRequestHandler = (error: { status?: number; message?: string }, req, res, _next) => {
    const status = error.status === 400 ? 400 : 500;
    // The path without its query string, which may hold the token.
    const path = (req.originalUrl.split('?')[0] ?? '').slice(0, LOGGED_NAME_LENGTH);
    debug('%s %s from %s: %d %s', req.method, path, req.socket.remoteAddress, status, error.message);
    const action: RouteAdminAction = req.method === 'DELETE' ? 'remove' : 'list';
    answer(res, action, status, { ok: false, error: status === 400 ? 'the event name is not valid percent-encoding' : 'the request could not be handled' });
  };
  router.use('/routes', refuse);
  return router;
}
