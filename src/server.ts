/**
 * Assembles the broker: Express for HTTP, Socket.IO on the same server, the
 * broker attached to both, listening on the configured address.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import createDebug from 'debug';
import express, { type Express } from 'express';
import { Server, type ServerOptions } from 'socket.io';
import { attachBroker, type Broker, type BrokerServer } from './broker.ts';
import { loadBuses, type Buses } from './buses.ts';
import type { Settings } from './config.ts';
import { monitorAssetsRouter, monitorConfigRouter } from './monitor.ts';
import { NAME, VERSION } from './package-info.ts';

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
  app.get('/', (_req, res) => {
    res.json({ ok: true, name: NAME, version: VERSION });
  });

  const httpServer = createServer(app);
  const io: BrokerServer = new Server(httpServer, socketOptions(settings));
  const broker = attachBroker(io, app, {
    buses,
    name: NAME,
    version: VERSION,
    limits: {
      maxRoomNameLength: settings.maxRoomNameLength,
      maxRoomsPerSocket: settings.maxRoomsPerSocket,
      maxRoutes: settings.maxRoutes,
      maxInRooms: settings.maxInRooms,
      maxBodyBytes: settings.maxBodyBytes,
    },
  });
  // The monitor page loads without a token (it asks for one); its configuration does not.
  app.use(monitorAssetsRouter());
  app.use(monitorConfigRouter(broker, { name: NAME, version: VERSION }));
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
    close() {
      closing ??= new Promise<void>((resolve) => {
        broker.close();
        // io.close() disconnects every socket, then closes the HTTP server.
        void io.close(() => resolve());
        httpServer.closeAllConnections();
      });
      return closing;
    },
  };
}
