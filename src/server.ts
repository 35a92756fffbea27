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
import { httpAccess, openAccessWarning, socketAccess } from './guards/access.ts';
import { SlowConsumerGuard } from './guards/backpressure.ts';
import { attachBroker } from './attach.ts';
import type { Broker, BrokerServer } from './broker.ts';
import { loadBuses, type Buses } from './buses.ts';
import { Cluster, ClusterStartError, startCluster } from './cluster/cluster.ts';
import { redisConfigured } from './cluster/redis-connection.ts';
import type { Settings } from './settings.ts';
import { HealthCheck } from './http/health.ts';
import { createMetrics, metricsHandler } from './http/metrics.ts';
import { watchMessageSize } from './guards/message-size.ts';
import { monitorAssetsRouter, monitorConfigRouter } from './http/monitor.ts';
import { NAME, VERSION } from './package-info.ts';
import type { Refusal } from './protocol.ts';
import { RouteTable } from './routes.ts';
import { Telemetry } from './telemetry.ts';

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
  /** The link to Redis: `state` `'off'` | `'up'` | `'down'`, events `state` and `undelivered` (the README's *Running several brokers*). */
  readonly cluster: Cluster;
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
    // A 4.x client back within the window gets what it missed; middlewares (auth) run again. 0 turns it off.
    connectionStateRecovery:
      settings.recoveryWindowMs > 0 ? { maxDisconnectionDuration: settings.recoveryWindowMs, skipMiddlewares: false } : undefined,
  };
}

/**
 * Starts a broker with `settings` (bus lists read from `settings.busesFile`
 * unless `buses` is given) and resolves once it is ready.
 *
 * It listens first, answering only `GET /health` (503, starting) while it
 * connects to Redis and loads the cluster's routes; then Socket.IO and the
 * routes come up, and `/health` turns to 200.
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
  let cluster: Cluster | undefined;
  let io: BrokerServer | undefined;
  const connections = (): number => io?.of('/').sockets.size ?? 0;
  const routes = new RouteTable(buses, { maxRoutes: settings.maxRoutes, maxNameLength: settings.maxRoomNameLength });
  const health = new HealthCheck({
    name: NAME,
    version: VERSION,
    connections,
    // Until the cluster is up, a broker told to use Redis has no link to it yet.
    redis: { get state() { return cluster?.state ?? (redisConfigured(settings) ? 'down' : 'off'); } },
  });

  // /health answers from the first moment; everything else waits for the start to finish.
  app.get('/health', health.handler);
  app.use((_req, res, next) => {
    if (health.phase !== 'starting') return next();
    res.status(503).json({ ok: false, error: 'starting' });
  });
  await listen(httpServer, settings);

  try {
    // With Redis, the cluster's routes are loaded before anyone can connect.
    cluster = await startCluster(settings, routes, buses).catch((error: unknown) => {
      throw error instanceof ClusterStartError ? new StartError(error.message) : error;
    });
    io = new Server(httpServer, { ...socketOptions(settings), adapter: cluster.adapter });
  } catch (error) {
    httpServer.close();
    throw error;
  }
  const running = assemble(settings, buses, { app, httpServer, io, routes, cluster, health, connections });
  health.ready();
  const warning = openAccessWarning(settings.host, settings.token);
  if (warning) console.warn(`${NAME}: ${warning}`);
  return running;
}

/** Listens on the configured address, or fails with one line saying why. */
async function listen(httpServer: HttpServer, settings: Settings): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      reject(new StartError(`cannot listen on ${settings.host}:${settings.port}: ${error.code ?? error.message}`));
    };
    httpServer.once('error', onError);
    httpServer.listen(settings.port, settings.host, () => {
      httpServer.off('error', onError);
      httpServer.on('error', (error) => debug('http server error: %s', error.message));
      resolve();
    });
  });
}

/** Wires access control, the broker, the guards and the metrics onto a listening server. */
function assemble(
  settings: Settings,
  buses: Buses,
  parts: { app: Express; httpServer: HttpServer; io: BrokerServer; routes: RouteTable; cluster: Cluster; health: HealthCheck; connections: () => number },
): RunningBroker {
  const { app, httpServer, io, routes, cluster, health, connections } = parts;
  // Every part reports here: the broker, /_notify, and the guards' refusals; metrics listen here.
  const telemetry = new Telemetry();
  const refused = (attempt: { what: string }, refusal: Refusal): void => telemetry.refused(attempt.what, refusal);
  // Access (the README's Security section): /health and the monitor page (which asks for the token) stay open;
  // everything else, the page's configuration included, needs the token when one is set.
  app.use(monitorAssetsRouter());
  app.use(httpAccess(settings.token, refused));
  const socketGuard = socketAccess(settings.token, refused);
  if (socketGuard) io.use(socketGuard);
  app.get('/', (_req, res) => {
    res.json({ ok: true, name: NAME, version: VERSION });
  });

  const broker = attachBroker(io, app, {
    buses,
    routes,
    // One process sees every socket and every session kept for recovery; a cluster node does not.
    skipUnheard: !redisConfigured(settings),
    limits: settings,
    telemetry,
  });
  watchMessageSize(io, httpServer, (_address, refusal) => telemetry.refused('socket.io message', refusal));
  const slowConsumers = new SlowConsumerGuard(io, { maxBufferedBytes: settings.maxBufferedBytes });
  const metrics = createMetrics({ broker, connections, redis: cluster, backpressure: slowConsumers });
  app.get('/metrics', metricsHandler(metrics));
  app.use(monitorConfigRouter(broker));
  app.use((_req, res) => {
    res.status(404).json({ ok: false, error: 'not found' });
  });

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
    cluster,
    close() {
      closing ??= new Promise<void>((resolve) => {
        health.stopping();
        slowConsumers.close();
        broker.close();
        // io.close() disconnects every socket, then closes the HTTP server; Redis goes last.
        void io.close(() => void cluster.close().finally(resolve));
        httpServer.closeAllConnections();
      });
      return closing;
    },
  };
}
