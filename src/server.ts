/**
 * Assembles the broker: Express for HTTP, Socket.IO on the same server, the
 * broker attached to both, listening on the configured address.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import createDebug from 'debug';
import express, { type Express } from 'express';
import { Server, type ServerOptions } from 'socket.io';
import type { Registry } from 'prom-client';
import { httpAccess, openAccessWarning, socketAccess } from './access.ts';
import { SlowConsumerGuard } from './backpressure.ts';
import { attachBroker, type Broker, type BrokerServer } from './broker.ts';
import { loadBuses, type Buses } from './buses.ts';
import type { Settings } from './config.ts';
import { HealthCheck, type RedisStateSource } from './health.ts';
import { createMetrics, metricsHandler } from './metrics.ts';
import { watchMessageSize } from './message-size.ts';
import { NAME, VERSION } from './package-info.ts';
import type { Refusal } from './protocol.ts';

const debug = createDebug('spicy-action:server');

/** A broker listening for clients. */
export interface RunningBroker {
  /** Base URL clients connect to, such as `http://127.0.0.1:3000`. */
  readonly url: string;
  readonly address: AddressInfo;
  readonly broker: Broker;
  readonly io: BrokerServer;
  readonly app: Express;
  readonly httpServer: HttpServer;
  /** What `GET /health` answers; its phase turns to `stopping` when {@link close} is called. */
  readonly health: HealthCheck;
  /** The Registry `GET /metrics` exposes. */
  readonly metrics: Registry;
  /** Stops accepting, disconnects every client, and resolves once all is closed. */
  close(): Promise<void>;
}

/** A broker could not start; the message says why in one line. */
export class StartError extends Error {
  override name = 'StartError';
}

/** The Socket.IO options that follow from the settings. */
export function socketOptions(settings: Settings): Partial<ServerOptions> {
  const origins = settings.corsOrigins;
  return {
    // socket.io-client 1.x and 2.x speak Engine.IO 3.
    allowEIO3: true,
    maxHttpBufferSize: settings.maxMessageBytes,
    cors: { origin: origins === '*' ? true : [...origins], credentials: true },
    // CORS only binds browsers that honour it, and not WebSocket at all: check the Origin header
    // of every handshake when a list is set. Programs that send no Origin are not browsers.
    allowRequest:
      origins === '*'
        ? undefined
        : (req, callback) => {
            const origin = req.headers.origin;
            callback(null, origin === undefined || origins.includes(origin));
          },
  };
}

/**
 * Starts a broker with `settings` (bus lists read from `settings.busesFile`
 * unless `buses` is given) and resolves once it listens.
 *
 * @example
 * const running = await startServer({ ...DEFAULT_SETTINGS, port: 0 });
 * console.log(running.url);
 * await running.close();
 */
export async function startServer(settings: Settings, buses: Buses = loadBuses(settings.busesFile)): Promise<RunningBroker> {
  const app = express();
  app.disable('x-powered-by');
  const httpServer = createServer(app);
  const io: BrokerServer = new Server(httpServer, socketOptions(settings));
  // The cluster's link to Redis, once there is a cluster; undefined reads as `off`.
  const redis: RedisStateSource | undefined = undefined;
  const connections = (): number => io.of('/').sockets.size;
  const health = new HealthCheck({ name: NAME, version: VERSION, connections, redis });
  // Access (SPEC section 9): /health stays open; everything else needs the token when one is set.
  app.get('/health', health.handler);
  // Refused attempts are told to the broker's observers (logs, metrics); called at request time, once `broker` exists.
  const refused = (attempt: { what: string }, refusal: Refusal): boolean => broker.emit('refused', attempt.what, refusal);
  app.use(httpAccess(settings.token, refused));
  const socketGuard = socketAccess(settings.token, refused);
  if (socketGuard) io.use(socketGuard);
  app.get('/', (_req, res) => {
    res.json({ ok: true, name: NAME, version: VERSION });
  });

  const broker = attachBroker(io, app, {
    buses,
    limits: {
      maxRoomNameLength: settings.maxRoomNameLength,
      maxRoomsPerSocket: settings.maxRoomsPerSocket,
      maxRoutes: settings.maxRoutes,
      maxInRooms: settings.maxInRooms,
      maxBodyBytes: settings.maxBodyBytes,
    },
  });
  watchMessageSize(io, httpServer, (_address, refusal) => broker.emit('refused', 'socket.io message', refusal));
  const slowConsumers = new SlowConsumerGuard(io, { maxBufferedBytes: settings.maxBufferedBytes });
  const metrics = createMetrics({ broker, connections, redis, backpressure: slowConsumers });
  app.get('/metrics', metricsHandler(metrics));
  app.use((_req, res) => {
    res.status(404).json({ ok: false, error: 'not found' });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      reject(new StartError(`cannot listen on ${settings.host}:${settings.port}: ${error.code ?? error.message}`));
    };
    httpServer.once('error', onError);
    httpServer.listen(settings.port, settings.host, () => {
      httpServer.off('error', onError);
      resolve();
    });
  });
  httpServer.on('error', (error) => debug('http server error: %s', error.message));
  health.ready();
  const warning = openAccessWarning(settings.host, settings.token);
  if (warning) console.warn(`${NAME}: ${warning}`);

  const address = httpServer.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    address,
    broker,
    io,
    app,
    httpServer,
    health,
    metrics,
    close() {
      closing ??= new Promise<void>((resolve) => {
        health.stopping();
        slowConsumers.close();
        broker.close();
        // io.close() disconnects every socket, then closes the HTTP server.
        void io.close(() => resolve());
        httpServer.closeAllConnections();
      });
      return closing;
    },
  };
}
