/**
 * The monitor page (docs/protocol.md#monitor): `GET /monitor` serves a plain page that
 * watches the buses through the Socket.IO client the broker itself serves,
 * and `GET /monitor/config.json` tells it the bus lists and the route table.
 *
 * Two routers, so the host can put the page's files before an access check
 * (the page must load to ask for a token) and the configuration behind it.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import createDebug from 'debug';
import { Router, type Response } from 'express';
import type { Buses } from '../buses.ts';
import { NAME, VERSION } from '../package-info.ts';
import type { Route, RouteTable } from '../routes.ts';

const debug = createDebug('spicy-action:monitor');

/** The folder of the page's files: `monitor/` beside package.json, from `src/` and from `dist/` alike. */
export const MONITOR_DIR: string = fileURLToPath(new URL('../../monitor/', import.meta.url));

/** The page's files, by the name under `/monitor/`, with their type. Nothing else in the folder is served. */
const ASSETS: ReadonlyMap<string, string> = new Map([
  ['monitor.js', 'text/javascript; charset=utf-8'],
  ['model.js', 'text/javascript; charset=utf-8'],
  ['monitor.css', 'text/css; charset=utf-8'],
]);

/**
 * What the page may do: load its own files and the broker's Socket.IO client,
 * talk to the broker, and nothing on the internet.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The answer of `GET /monitor/config.json`. */
export interface MonitorConfig {
  readonly name: string;
  readonly version: string;
  readonly buses: { readonly public: readonly string[]; readonly private: readonly string[]; readonly host: readonly string[] };
  /** Source of the notification-room pattern, such as `^\w+:`. */
  readonly notification_rooms: string;
  /** Every route: event → bus, or null for `_in` delivery only. */
  readonly routes: Readonly<Record<string, Route>>;
}

/** What the page's configuration is read from; a {@link Broker} is one. */
export interface MonitorSource {
  readonly buses: Buses;
  readonly routes: Pick<RouteTable, 'entries'>;
}

/**
 * The page's configuration as the broker holds it now (routes included, so
 * routes registered at run time show up on the next request).
 *
 * @example
 * monitorConfig(broker).routes.call; // 'calls'
 */
export function monitorConfig(broker: MonitorSource): MonitorConfig {
  return {
    name: NAME,
    version: VERSION,
    buses: { public: broker.buses.publicBuses, private: broker.buses.privateBuses, host: broker.buses.hostBuses },
    notification_rooms: broker.buses.notificationRooms.source,
    // Object.fromEntries defines own properties: `__proto__` stays a plain event name.
    routes: Object.fromEntries(broker.routes.entries()),
  };
}

function securityHeaders(res: Response): void {
  res.set({
    'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-cache',
  });
}

/**
 * The page and its files: `GET /monitor` and `GET /monitor/<file>`. They hold
 * no secret and must load without a token, so that the page can ask for one.
 *
 * @example
 * app.use(monitorAssetsRouter()); // before any access check
 */
export function monitorAssetsRouter(dir: string = MONITOR_DIR): Router {
  if (!existsSync(`${dir}index.html`)) debug('no monitor page in %s: /monitor will answer 404', dir);
  const router = Router({ strict: true });
  const send = (res: Response, file: string, type: string): void => {
    securityHeaders(res);
    res.type(type);
    res.sendFile(file, { root: dir, dotfiles: 'deny' }, (error) => {
      if (!error || res.headersSent) return;
      debug('cannot send %s: %s', file, error.message);
      res.status(404).json({ ok: false, error: 'not found' });
    });
  };
  router.get('/monitor', (_req, res) => send(res, 'index.html', 'text/html; charset=utf-8'));
  // Relative links of the page resolve against `/monitor`, without the slash.
  router.get('/monitor/', (_req, res) => res.redirect(301, '../monitor'));
  router.get('/monitor/:file', (req, res, next) => {
    const type = ASSETS.get(req.params.file);
    if (type === undefined) return next();
    send(res, req.params.file, type);
  });
  return router;
}

/**
 * `GET /monitor/config.json`: the bus lists and the route table, for the
 * page. Mount it where the other HTTP routes are (behind the token, if any).
 *
 * @example
 * app.use(monitorConfigRouter(broker));
 */
export function monitorConfigRouter(broker: MonitorSource): Router {
  const router = Router({ strict: true });
  router.get('/monitor/config.json', (_req, res) => {
    res.set('Cache-Control', 'no-store');
    res.json(monitorConfig(broker));
  });
  return router;
}
