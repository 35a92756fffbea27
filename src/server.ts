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
import { httpAccess, httpGrant, openAccessWarning, socketAccess, type AccessObserver } from './guards/access.ts';
import { FailedAttempts } from './guards/attempts.ts';
import { CredentialsError } from './guards/credentials.ts';
import { Keyring, type ReloadOutcome } from './guards/keyring.ts';
import { SlowConsumerGuard } from './guards/backpressure.ts';
import { attachBroker } from './attach.ts';
import { principalOfSocket, type Broker, type BrokerServer } from './broker.ts';
import { loadBuses, type Buses } from './buses.ts';
import { Cluster, ClusterStartError, startCluster } from './cluster/cluster.ts';
import { streamBudget } from './cluster/stream-budget.ts';
import { redisConfigured } from './cluster/redis-connection.ts';
import type { Settings } from './settings.ts';
import { peerAddress, type AddressOf } from './budget.ts';
import { bodyBudget, type BodiesState, type BodyTiming } from './http/body-budget.ts';
import { errorHandler } from './http/errors.ts';
import { HealthCheck } from './http/health.ts';
import { createMetrics, metricsHandler } from './http/metrics.ts';
import { watchMessageSize } from './guards/message-size.ts';
import { jsonOnlyParser } from './internals.ts';
import { bindSessions } from './guards/session-binding.ts';
import { capPendingHandshakes, type PendingState } from './guards/pending-handshakes.ts';
import { TrustedProxies } from './client-address.ts';
import { capBacklog, type BacklogState } from './recovery-backlog.ts';
import { capKeptSessions } from './recovery-sessions.ts';
import type { KeptSessionsState } from './kept-sessions.ts';
import { monitorAssetsRouter, monitorConfigRouter } from './http/monitor.ts';
import { routeAdminRouter } from './http/routes.ts';
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
  /** The link to Redis: `state` `'off'` | `'up'` | `'down'`, events `state` and `undelivered` (docs/cluster.md). */
  readonly cluster: Cluster;
  /** The in-memory recovery backlog under its byte cap (`RECOVERY_BACKLOG_BYTES`); undefined in a cluster or without recovery. */
  readonly recoveryBacklog: { state(): BacklogState } | undefined;
  /** The sessions kept for recovery, under `MAX_RECOVERY_SESSIONS_BYTES` (docs/security.md#nothing-held-for-a-stranger); undefined without recovery. */
  readonly keptSessions: { state(): KeptSessionsState } | undefined;
  /** The sessions that have not joined the namespace yet, under `MAX_PENDING_HANDSHAKES` (docs/security.md#nothing-held-for-a-stranger). */
  readonly pendingHandshakes: { state(): PendingState };
  /** The `/_notify` bodies being read, under `MAX_BODIES_IN_FLIGHT_BYTES` (docs/security.md#nothing-held-for-a-stranger). */
  readonly bodiesInFlight: { state(): BodiesState };
  /** The credentials in force (docs/security.md#credentials). */
  readonly keyring: Keyring;
  /**
   * Re-reads the credentials file (SIGHUP): a new secret works at once; the
   * connections of a credential removed or changed are closed within
   * `CREDENTIALS_CLOSE_WITHIN`. A file that cannot be used is refused and the
   * credentials in force stay.
   */
  reloadCredentials(): ReloadOutcome;
  /** Stops accepting, disconnects every client, and resolves once all is closed. */
  close(): Promise<void>;
}

/** How a binary packet is refused and counted. */
const BINARY_REFUSAL: Refusal = Object.freeze({ reason: 'binary', error: 'binary packets are not accepted' });

/** How long after `HANDSHAKE_TIMEOUT` Socket.IO's own connect timeout would fire. */
const CONNECT_TIMEOUT_MARGIN_MS = 1_000;

/** Clocks a test may shorten; a broker that is not under test leaves them at their defaults. */
export interface ServerTiming {
  /** The rate window of bodies being read, and how often they are looked at. */
  readonly bodies?: BodyTiming;
}

/** A broker could not start; the message says why in one line. */
export class StartError extends Error {
  override name = 'StartError';
}

/**
 * The Socket.IO options that follow from the settings (the Origin check of
 * each handshake is `attachBroker`'s).
 */
export function socketOptions(settings: Settings): Partial<ServerOptions> {
  const origins = settings.corsOrigins;
  return {
    // socket.io-client 1.x and 2.x speak Engine.IO 3.
    allowEIO3: true,
    maxHttpBufferSize: settings.maxMessageBytes,
    // Pages of the listed origins may read the answers to their polls; the broker's own pages need no CORS.
    // CORS binds neither WebSocket nor a page that ignores the answer: attachBroker checks each handshake's Origin.
    cors: origins === '*' ? undefined : { origin: [...origins], credentials: true },
    // A 4.x client back within the window gets what it missed; middlewares (auth) run again. 0 turns it off.
    // Socket.IO's own close of a session that joined no namespace comes after the pending-handshake guard's,
    // which discards it at once (src/guards/pending-handshakes.ts); started first, it would hold it 30 s more.
    connectTimeout: settings.handshakeTimeoutMs + CONNECT_TIMEOUT_MARGIN_MS,
    connectionStateRecovery:
      settings.recoveryWindowMs > 0 ? { maxDisconnectionDuration: settings.recoveryWindowMs, skipMiddlewares: false } : undefined,
  };
}

/**
 * Starts a broker with `settings` (bus lists read from `settings.busesFile`
 * unless `buses` is given; `timing` only for tests) and resolves once it is ready.
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
export async function startServer(settings: Settings, buses: Buses = loadBuses(settings.busesFile), timing: ServerTiming = {}): Promise<RunningBroker> {
  const keyring = loadKeyring(settings);
  const app = express();
  app.disable('x-powered-by');
  const httpServer = createServer(app);
  let cluster: Cluster | undefined;
  let io: BrokerServer | undefined;
  const connections = (): number => io?.of('/').sockets.size ?? 0;
  const routes = new RouteTable(buses, { maxRoutes: settings.maxRoutes, maxNameLength: settings.maxRoomNameLength });
  // Every part reports here: the broker, /_notify, and the guards' refusals; metrics listen here.
  const telemetry = new Telemetry();
  const refused: AccessObserver = (attempt, refusal) => telemetry.refused(attempt.what, refusal);
  const health = new HealthCheck({
    name: NAME,
    version: VERSION,
    connections,
    // Until the cluster is up, a broker told to use Redis has no link to it yet.
    redis: {
      get state() { return cluster?.state ?? (redisConfigured(settings) ? 'down' : 'off'); },
      get streamFull() { return cluster?.streamFull ?? false; },
    },
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
    io = new Server(httpServer, {
      ...socketOptions(settings),
      adapter: cluster.adapter,
      // The platform's clients send JSON only: a binary packet closes its connection before anything of it is held.
      parser: jsonOnlyParser(() => telemetry.refused('socket.io message', BINARY_REFUSAL)),
    });
  } catch (error) {
    httpServer.close();
    throw error;
  }
  const running = assemble(settings, buses, { app, httpServer, io, routes, cluster, health, connections, telemetry, keyring }, timing);
  health.ready();
  const warning = openAccessWarning(settings.host, settings.token ?? settings.credentialsFile);
  if (warning) console.warn(`${NAME}: ${warning}`);
  return running;
}

/** The credentials the settings name, or a {@link StartError} naming the file and the line. */
function loadKeyring(settings: Settings): Keyring {
  try {
    return new Keyring({ token: settings.token, file: settings.credentialsFile });
  } catch (error) {
    if (error instanceof CredentialsError) throw new StartError(error.message);
    const code = (error as NodeJS.ErrnoException).code;
    throw new StartError(`cannot read the credentials file ${settings.credentialsFile}: ${code ?? (error as Error).message}`);
  }
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
  parts: {
    app: Express;
    httpServer: HttpServer;
    io: BrokerServer;
    routes: RouteTable;
    cluster: Cluster;
    health: HealthCheck;
    connections: () => number;
    telemetry: Telemetry;
    keyring: Keyring;
  },
  timing: ServerTiming,
): RunningBroker {
  const { app, httpServer, io, routes, cluster, health, connections, telemetry, keyring } = parts;
  const refused: AccessObserver = (attempt, refusal) => telemetry.refused(attempt.what, refusal);
  // Who a client is, for every cap per client address: one function for all of them.
  // The proxies whose X-Forwarded-For is believed (TRUST_PROXY): behind HAProxy, the client's own address.
  const proxies = new TrustedProxies(settings.trustProxy);
  const addressOf: AddressOf = (req) => proxies.clientAddress(req.socket?.remoteAddress ?? undefined, req.headers['x-forwarded-for']) ?? peerAddress(req);
  // Sessions not yet joined are capped per address and in total, before anything else is held for them.
  const pendingHandshakes = capPendingHandshakes(
    io,
    { perAddress: settings.maxPendingHandshakesPerAddress, total: settings.maxPendingHandshakes, timeoutMs: settings.handshakeTimeoutMs },
    addressOf,
    (refusal) => telemetry.refused('engine.io handshake', refusal),
  );
  // One count of failed attempts per address for Socket.IO and HTTP alike.
  const attempts = new FailedAttempts(settings.authFailuresPerMinute);
  const socketGuard = socketAccess(keyring, refused, attempts, (peer, forwarded) => proxies.clientAddress(peer, forwarded));
  if (socketGuard) io.use(socketGuard);
  // An Engine.IO session id is not a credential: every request on a session must come from its owner.
  bindSessions(io, keyring, proxies, (refusal) => telemetry.refused('engine.io', refusal));
  // Sessions kept for recovery are bounded in bytes, per client address and in total (on a cluster, what each node writes to Redis).
  const keptSessions = capKeptSessions(
    io,
    { perAddress: settings.maxRecoverySessionsBytesPerAddress, total: settings.maxRecoverySessionsBytes },
    settings.recoveryWindowMs,
    addressOf,
    (refusal) => telemetry.refused('recovery session', refusal),
  );
  // One process keeps the recovery backlog in memory: hold it under its byte cap (a cluster keeps it in Redis).
  const recoveryBacklog = !redisConfigured(settings) ? capBacklog(io, settings.recoveryBacklogBytes) : undefined;

  // Access (docs/security.md#credentials): /health and the monitor page (which asks for the token) stay open;
  // everything else, the page's configuration included, needs the token when one is set.
  const access = httpAccess(keyring, refused, attempts, (peer, forwarded) => proxies.clientAddress(peer, forwarded));
  // Bodies being read are capped in bytes and cut when slower than the floor; after the token, so that a
  // stranger's body is never read at all.
  const bodies = bodyBudget(settings, addressOf, (what, refusal) => telemetry.refused(what, refusal), timing.bodies);
  // /_notify comes first, behind the token and the Origin check: a push, the hot path of HTTP, meets one
  // flat route and none of the others (which all answer other paths, so their order does not change an answer).
  const broker = attachBroker(io, app, {
    buses,
    routes,
    // One process sees every socket and every session kept for recovery; a cluster node does not.
    skipUnheard: !redisConfigured(settings),
    // On a cluster, a sender's acknowledgement says whether Redis took its event.
    track: cluster.state === 'off' ? undefined : (publish, answerHeld) => cluster.track(publish, answerHeld),
    streamBudget: cluster.state === 'off' ? undefined : streamBudget(settings.streamBytesPerClient),
    limits: settings,
    telemetry,
    // Pushes come from servers, never from a web page: a browser's Origin not listed is refused.
    corsOrigins: settings.corsOrigins,
    corsOriginsName: 'CORS_ORIGINS',
    notifyChecks: keyring.open ? [bodies.guard] : [access, bodies.guard],
  });
  app.use(monitorAssetsRouter());
  app.use(access);
  app.get('/', (_req, res) => {
    res.json({ ok: true, name: NAME, version: VERSION });
  });
  // It hears of disconnections through the broker's one listener per socket, not one of its own.
  watchMessageSize(io, httpServer, (_address, refusal) => telemetry.refused('socket.io message', refusal), telemetry);
  const slowConsumers = new SlowConsumerGuard(io, { maxBufferedBytes: settings.maxBufferedBytes });
  const metrics = createMetrics({ broker, connections, redis: cluster, backpressure: slowConsumers, maxMetricEvents: settings.maxMetricEvents });
  // What each credential may read or change (docs/security.md#grants); the shared token may do everything.
  const forbidden = (attempt: { what: string }, refusal: Refusal, by: string): void => telemetry.refused(attempt.what, refusal, by);
  app.get('/metrics', httpGrant((grants) => grants.mayRead('metrics'), forbidden), metricsHandler(metrics));
  app.get('/routes', httpGrant((grants) => grants.mayRead('routes'), forbidden));
  app.delete(/^\/routes(\/|$)/, httpGrant((grants) => grants.mayChangeRoutes, forbidden));
  app.use(routeAdminRouter(broker));
  app.get('/monitor/config.json', httpGrant((grants) => grants.mayRead('monitor'), forbidden));
  app.use(monitorConfigRouter(broker));
  app.use((_req, res) => {
    res.status(404).json({ ok: false, error: 'not found' });
  });
  // Last: whatever failed above (a path that does not decode, a bug) is answered in JSON, without a stack.
  app.use(errorHandler(refused));

  const address = httpServer.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  const revocations = new Set<NodeJS.Timeout>();
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
    recoveryBacklog,
    pendingHandshakes,
    bodiesInFlight: bodies,
    keptSessions,
    keyring,
    reloadCredentials() {
      const outcome = keyring.reload();
      if (!outcome.ok) {
        console.error(`${NAME}: credentials not reloaded: ${outcome.error}; the previous ones stay in force`);
        return outcome;
      }
      // Each connection of a credential removed or changed closes at a random moment within the bound, so that
      // a rotation of a credential many clients share does not bring them all back in the same instant.
      let closingCount = 0;
      for (const socket of io.of('/').sockets.values()) {
        const principal = principalOfSocket(socket);
        if (keyring.keeps(principal)) continue;
        closingCount++;
        const timer = setTimeout(() => {
          revocations.delete(timer);
          // A later reload may have given the credential back.
          if (!socket.connected || keyring.keeps(principal)) return;
          console.warn(`${NAME}: closing ${broker.publicId(socket)} (${principal.credential.name}): its credential was removed or changed`);
          socket.disconnect(true);
        }, Math.random() * settings.credentialsCloseWithinMs);
        timer.unref();
        revocations.add(timer);
      }
      console.warn(`${NAME}: credentials reloaded: ${outcome.names.length} client(s); ${closingCount} connection(s) of removed or changed credentials close within ${settings.credentialsCloseWithinMs / 1000} s`);
      return outcome;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const timer of revocations) clearTimeout(timer);
        health.stopping();
        slowConsumers.close();
        bodies.close();
        broker.close();
        // Events held for Redis reach this node's clients before they go (counted as undelivered).
        // io.close() disconnects every socket, then closes the HTTP server; Redis goes last.
        void cluster.drain().then(() => {
          void io.close(() => void cluster.close().finally(resolve));
          httpServer.closeAllConnections();
        });
      });
      return closing;
    },
  };
}
