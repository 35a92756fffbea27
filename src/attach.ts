/**
 * The broker on a host's own servers: Socket.IO routing from `broker.ts`,
 * and `POST /_notify/:msg` on the host's Express app, refused to web pages
 * of other origins.
 */
import type { Application } from 'express';
import { Broker, type BrokerOptions, type BrokerServer } from './broker.ts';
import { notifyRouter } from './http/notify.ts';
import { pushOriginGuard, type AllowedOrigins } from './http/origin.ts';

/** How to attach a broker. */
export interface AttachOptions extends BrokerOptions {
  /**
   * Browser origins allowed to push through `/_notify` (besides the broker's
   * own); `'*'`, the default, lists none: a request carrying another origin
   * is refused with 403. Servers send no Origin and are not concerned.
   */
  readonly corsOrigins?: AllowedOrigins;
}

/**
 * Attaches the broker to a host's Socket.IO server and, when `app` is given,
 * mounts `POST /_notify/:msg` on its Express app, behind the Origin check.
 *
 * @example
 * const io = new Server(httpServer, { allowEIO3: true });
 * const app = express();
 * const broker = attachBroker(io, app, { buses: DEFAULT_BUSES });
 * broker.routes.get('call'); // 'calls'
 * broker.close();
 */
export function attachBroker(io: BrokerServer, app?: Application, options: AttachOptions = {}): Broker {
  const broker = new Broker(io, options);
  if (app) {
    const { telemetry } = broker;
    app.use('/_notify', pushOriginGuard(options.corsOrigins ?? '*', (attempt, refusal) => telemetry.refused(attempt.what, refusal)));
    app.use(notifyRouter(broker));
  }
  return broker;
}
