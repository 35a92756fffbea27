/**
 * The broker on a host's own servers: Socket.IO routing from `broker.ts`,
 * and `POST /_notify/:msg` on the host's Express app; both refused to web
 * pages of other origins (`http/origin.ts`).
 */
import type { Application, RequestHandler } from 'express';
import { auditFeed } from './audit.ts';
import { Broker, type BrokerOptions, type BrokerServer } from './broker.ts';
import { NOTIFY_PATH, notifyHandlers, notifyRouter } from './http/notify.ts';
import type { Refusal } from './protocol.ts';
import { handshakeOriginGuard, pushOriginGuard, type AllowedOrigins } from './http/origin.ts';

/** Why a Socket.IO server not yet attached to its HTTP server cannot take a broker. */
const NO_ENGINE = 'attachBroker: the Socket.IO server has no HTTP server yet; create it as new Server(httpServer, options) first, so that its handshakes can be checked';

/** How to attach a broker. */
export interface AttachOptions extends BrokerOptions {
  /**
   * Browser origins allowed to connect to Socket.IO and to push through
   * `/_notify` (besides the broker's own); `'*'`, the default, lists none: a
   * handshake or push carrying another origin is refused (403). Servers send
   * no Origin and are not concerned.
   */
  readonly corsOrigins?: AllowedOrigins;
  /** What the 403 of a refused origin calls {@link corsOrigins}: the option's own name unless the host sets its own (the process says `CORS_ORIGINS`). */
  readonly corsOriginsName?: string;
  /**
   * Middlewares every request under `/_notify` meets first, before the
   * Origin check (the host's access check, say), so that the push route
   * can be mounted ahead of the host's other routes and still be guarded.
   */
  readonly notifyChecks?: readonly RequestHandler[];
}

/**
 * Attaches the broker to a host's Socket.IO server, whose handshakes meet the
 * Origin check from now on, and, when `app` is given, mounts
 * `POST /_notify/:msg` on its Express app, where the app's routes stand now,
 * behind `notifyChecks` and the Origin check.
 *
 * @example
 * const io = new Server(httpServer, { allowEIO3: true });
 * const app = express();
 * const broker = attachBroker(io, app, { buses: DEFAULT_BUSES });
 * broker.routes.get('call'); // 'calls'
 * broker.close();
 */
export function attachBroker(io: BrokerServer, app?: Application, options: AttachOptions = {}): Broker {
  // Without an engine yet (`new Server()`, attached later), no handshake could be checked: say so now.
  if (!(io.engine as unknown)) throw new Error(NO_ENGINE);
  const broker = new Broker(io, options);
  // Who did what, for watchers in the `_audit` room; it costs nothing while no one watches.
  auditFeed(io, broker);
  const { telemetry } = broker;
  const origins = options.corsOrigins ?? '*';
  const refused = (attempt: { what: string }, refusal: Refusal): void => telemetry.refused(attempt.what, refusal);
  // A web page's WebSocket is not bound by CORS: every handshake's Origin is checked here.
  const setting = options.corsOriginsName ?? 'corsOrigins';
  io.engine.use(handshakeOriginGuard(origins, refused, setting));
  if (app) {
    const checks = [...(options.notifyChecks ?? []), pushOriginGuard(origins, refused, setting)];
    // A push meets one flat route: the checks, the body, the push; no router to enter and leave.
    app.post(NOTIFY_PATH, ...checks, ...notifyHandlers(broker));
    // Any other request under /_notify (another method or path) meets the same checks, then the
    // router as before: OPTIONS is answered `Allow: POST`, the rest goes on to the host's routes.
    app.use('/_notify', ...checks);
    app.use(notifyRouter(broker));
  }
  return broker;
}
