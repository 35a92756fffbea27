/**
 * The broker on a host's own servers: Socket.IO routing from `broker.ts`,
 * and `POST /_notify/:msg` on the host's Express app.
 */
import type { Application } from 'express';
import { Broker, type BrokerOptions, type BrokerServer } from './broker.ts';
import { notifyRouter } from './http/notify.ts';

/**
 * Attaches the broker to a host's Socket.IO server and, when `app` is given,
 * mounts `POST /_notify/:msg` on its Express app.
 *
 * @example
 * const io = new Server(httpServer, { allowEIO3: true });
 * const app = express();
 * const broker = attachBroker(io, app, { buses: DEFAULT_BUSES });
 * broker.routes.get('call'); // 'calls'
 * broker.close();
 */
export function attachBroker(io: BrokerServer, app?: Application, options: BrokerOptions = {}): Broker {
  const broker = new Broker(io, options);
  if (app) app.use(notifyRouter(broker));
  return broker;
}
