/**
 * The fan-out baseline: a bare Socket.IO server that does nothing but
 * `io.to(room).emit` for each event, with the broker's own Socket.IO options
 * (`socketOptions` of src/server.ts, so allowEIO3, maxHttpBufferSize, CORS
 * stay in step with the product). `BENCH_RECOVERY_MS` turns on connection
 * state recovery, set by the bench when the broker has it on.
 *
 * `BENCH_IN` says what to do with `_in`:
 * - `ignore` (default): emit to `calls` only, the limit for scenario 1;
 * - `union`: one `io.to(['calls', ..._in]).emit`, each socket once (what the broker must do);
 * - `per-room`: one emit per room, as the original broker did (duplicates).
 *
 * `BENCH_REDIS_URL` makes it a cluster node: the official Redis Streams
 * adapter on that Redis (a stream of its own, `bench:socket.io`), as the
 * broker's cluster uses it, and nothing else.
 *
 * Prints `listening on http://...` like the broker.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import { Redis } from 'ioredis';
import { Server, type ServerOptions } from 'socket.io';
import { DEFAULT_SETTINGS } from '../../src/settings.ts';
import { socketOptions } from '../../src/server.ts';

const mode = process.env.BENCH_IN ?? 'ignore';
if (!['ignore', 'union', 'per-room'].includes(mode)) throw new Error(`BENCH_IN must be ignore, union or per-room, got ${mode}`);
const recoveryMs = Number(process.env.BENCH_RECOVERY_MS ?? '0');

const options: Partial<ServerOptions> = { ...socketOptions(DEFAULT_SETTINGS) };
if (recoveryMs > 0 && options.connectionStateRecovery === undefined) {
  options.connectionStateRecovery = { maxDisconnectionDuration: recoveryMs, skipMiddlewares: true };
}

const redisUrl = process.env.BENCH_REDIS_URL;
if (redisUrl) {
  const redis = new Redis(redisUrl);
  redis.on('error', (error: Error) => console.error(`bare socket.io: Redis: ${error.message}`));
  options.adapter = createAdapter(redis, { streamName: 'bench:socket.io' });
}

const httpServer = createServer();
const io = new Server(httpServer, options);

function inRooms(data: unknown): string[] {
  const field = typeof data === 'object' && data !== null ? (data as { _in?: unknown })._in : undefined;
  return Array.isArray(field) ? field.filter((r): r is string => typeof r === 'string') : typeof field === 'string' ? [field] : [];
}

io.on('connection', (socket) => {
  socket.on('join', (room: string, ack?: (ok: boolean) => void) => {
    void socket.join(room);
    ack?.(true);
  });
  socket.on('call', (data: unknown) => {
    if (mode === 'ignore') {
      io.to('calls').emit('call', data);
    } else if (mode === 'union') {
      io.to(['calls', ...inRooms(data)]).emit('call', data);
    } else {
      for (const room of ['calls', ...inRooms(data)]) io.to(room).emit('call', data);
    }
  });
});

httpServer.listen(0, '127.0.0.1', () => {
  const { port } = httpServer.address() as AddressInfo;
  console.log(`bare socket.io (${mode}) listening on http://127.0.0.1:${port}`);
});
process.on('SIGTERM', () => process.exit(0));
