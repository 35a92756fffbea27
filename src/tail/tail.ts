/**
 * `spicy-action tail` (docs/protocol.md#watching-the-buses): joins buses and rooms with
 * socket.io-client 4.x and prints one line per event on stdout; what it has
 * to say about the connection goes to stderr, so stdout stays clean for `jq`.
 * It comes back by itself when the broker restarts, and Ctrl-C ends it with 0.
 */
import createDebug from 'debug';
import { io, type Socket } from 'socket.io-client';
import { DEFAULT_BUSES } from '../buses.ts';
import { DEFAULT_ROUTES } from '../routes.ts';
import { BROKER_EVENTS, isUnauthorized } from '../../monitor/model.js';
import { eventRooms, formatEvent, parseTailArgs, statusLine, TAIL_USAGE, TailUsageError, unknownRooms, type TailOptions } from './tail-format.ts';

const debug = createDebug('spicy-action:tail');

const ACK_TIMEOUT_MS = 10_000;
/** Least time between two reads of the route table (an event of unknown name asks for one). */
const ROUTES_REFRESH_MS = 2_000;

/** What `tail` reads of the broker's `GET /monitor/config.json`; anything may be missing. */
interface MonitorConfigAnswer {
  routes?: Record<string, string | null>;
  buses?: { public?: unknown; private?: unknown; host?: string[] };
  notification_rooms?: unknown;
}

/** Where `tail` reads and writes; the process's own by default. */
export interface TailContext {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Signals that end it cleanly. */
  readonly signals: NodeJS.EventEmitter;
}

const PROCESS_CONTEXT: TailContext = { stdout: process.stdout, stderr: process.stderr, env: process.env, signals: process };

/** Exit codes: 0 stopped by a signal, 1 refused by the broker, 2 bad command line. */
export type TailExit = 0 | 1 | 2;

/**
 * Runs `spicy-action tail ARGS...` until SIGINT or SIGTERM (resolves 0), a
 * refusal by the broker (1) or a bad command line (2).
 *
 * @example
 * process.exitCode = await runTail(['--json', 'calls', 'support']);
 */
export async function runTail(argv: readonly string[], context: TailContext = PROCESS_CONTEXT): Promise<TailExit> {
  let command;
  try {
    command = parseTailArgs(argv, context.env);
  } catch (error) {
    if (!(error instanceof TailUsageError)) throw error;
    context.stderr.write(`spicy-action tail: ${error.message}\n\n${TAIL_USAGE}`);
    return 2;
  }
  if (command.help) {
    context.stdout.write(TAIL_USAGE);
    return 0;
  }
  return watch(command.options, context);
}

function watch(options: TailOptions, context: TailContext): Promise<TailExit> {
  const { url, token, json, rooms } = options;
  const say = (line: string): void => void context.stderr.write(`tail: ${statusLine(line, [token])}\n`);
  const joined = new Set(rooms);
  let routes: ReadonlyMap<string, string | null> = DEFAULT_ROUTES;
  let hostBuses: readonly string[] = DEFAULT_BUSES.hostBuses;
  let routesAskedAt = 0;

  /** Rooms already said to be unknown to the broker: once each. */
  const unknownSaid = new Set<string>();
  const sayUnknown = (config: MonitorConfigAnswer): void => {
    const { public: pub, private: priv, host } = config.buses ?? {};
    const lists = [pub, priv, host];
    if (!lists.every(Array.isArray)) return;
    const known = { buses: lists.flat() as string[], notificationRooms: typeof config.notification_rooms === 'string' ? config.notification_rooms : undefined };
    for (const room of unknownRooms(rooms, known)) {
      if (unknownSaid.has(room)) continue;
      unknownSaid.add(room);
      say(`no bus or room pattern of that name is known: ${JSON.stringify(room)} (watching it anyway)`);
    }
  };

  // The route table tells which bus an event came through; the defaults serve until the broker answers.
  const loadRoutes = async (): Promise<void> => {
    routesAskedAt = Date.now();
    try {
      const res = await fetch(`${url}/monitor/config.json`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
      if (!res.ok) {
        debug('no route table from the broker: HTTP %d', res.status);
        return;
      }
      const config = (await res.json()) as MonitorConfigAnswer;
      if (config.routes) routes = new Map(Object.entries(config.routes));
      if (Array.isArray(config.buses?.host)) hostBuses = config.buses.host;
      sayUnknown(config);
    } catch (error) {
      debug('no route table from the broker: %s', (error as Error).message);
    }
  };

  const socket: Socket = io(url, {
    auth: token ? { token } : {},
    reconnectionDelay: 500,
    reconnectionDelayMax: 5_000,
  });

  return new Promise<TailExit>((resolve) => {
    let connectedBefore = false;
    let unreachableSaid = false;
    let done = false;

    const finish = (code: TailExit): void => {
      if (done) return;
      done = true;
      context.signals.off('SIGINT', onSignal);
      context.signals.off('SIGTERM', onSignal);
      context.stdout.off('error', onStdoutError);
      socket.close();
      resolve(code);
    };
    const onSignal = (): void => finish(0);
    // `tail ... | head` closes the pipe: stop quietly.
    const onStdoutError = (error: NodeJS.ErrnoException): void => {
      if (error.code !== 'EPIPE') say(`cannot write: ${error.message}`);
      finish(error.code === 'EPIPE' ? 0 : 1);
    };
    context.signals.on('SIGINT', onSignal);
    context.signals.on('SIGTERM', onSignal);
    context.stdout.on('error', onStdoutError);

    socket.on('welcome', (info: { name?: unknown; version?: unknown }) => {
      const about = typeof info?.name === 'string' ? ` (${info.name} ${String(info.version ?? '')})` : '';
      say(`${connectedBefore ? 'reconnected' : 'connected'} to ${url}${about}`);
      connectedBefore = true;
      unreachableSaid = false;
    });

    socket.on('connect', () => {
      void loadRoutes();
      // Every connection starts in no room (unless recovered): join them all again.
      const acks = rooms.map((room) =>
        socket
          .timeout(ACK_TIMEOUT_MS)
          .emitWithAck('join', room)
          .then(
            (ok: unknown) => ({ room, ok: ok === true, why: 'refused' }),
            () => ({ room, ok: false, why: 'no answer' }),
          ),
      );
      void Promise.all(acks).then((answers) => {
        if (done || !socket.connected) return;
        const failed = answers.filter((a) => !a.ok);
        if (failed.length > 0) {
          for (const { room, why } of failed) say(`cannot join "${room}": ${why}`);
          finish(1);
          return;
        }
        say(`watching ${rooms.join(', ')} (Ctrl-C to stop)`);
      });
    });

    socket.on('disconnect', (reason) => {
      if (done) return;
      say(`connection lost (${reason}); reconnecting…`);
      // The broker let us go on purpose (a slow reader, say): the client will not come back by itself.
      if (reason === 'io server disconnect') setTimeout(() => done || socket.connect(), 1_000).unref();
    });

    socket.on('connect_error', (error: Error) => {
      if (done) return;
      if (isUnauthorized(error)) {
        say(token ? 'the broker refused the token' : 'the broker needs a token: --token or BROKER_TOKEN');
        finish(1);
        return;
      }
      if (!socket.active) {
        say(`the broker refused the connection: ${error.message}`);
        finish(1);
        return;
      }
      if (!unreachableSaid) say(`cannot reach ${url} (${error.message}); retrying…`);
      unreachableSaid = true;
    });

    socket.onAny((event: string, ...args: unknown[]) => {
      if (event === 'welcome') return;
      const data = args[0];
      if (!routes.has(event) && !BROKER_EVENTS.has(event) && Date.now() - routesAskedAt > ROUTES_REFRESH_MS) void loadRoutes();
      const line = formatEvent({ time: new Date(), event, rooms: eventRooms(event, data, joined, routes, hostBuses), args }, json);
      context.stdout.write(`${line}\n`);
    });
  });
}

