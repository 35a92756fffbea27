/**
 * Slow consumers (docs/protocol.md#limits): a client that stops reading must not make
 * the broker's memory grow without bound. A socket whose unsent data passes
 * `maxBufferedBytes` is disconnected; a 4.x client recovers what it missed
 * when it reconnects (connection state recovery).
 *
 * Where unsent data waits, for one Engine.IO connection (read by
 * `engineBacklog`, src/internals.ts):
 * - the write buffer: packets not yet handed to the transport. Over
 *   WebSocket, the transport takes a batch and is not `writable` again until
 *   `ws` says the batch reached the kernel; meanwhile every new packet waits
 *   here. Over long-polling, packets wait here until the client polls.
 * - the `ws` socket's `bufferedAmount`: the batch handed over but not yet
 *   accepted by the kernel (it stays in Node's stream buffer while the
 *   peer's TCP window is closed).
 *
 * The check runs on a timer, not per delivery: fan-out stays a plain
 * `io.to(rooms).emit()`. Each sweep costs a few property reads per connection
 * when nothing waits; a connection with queued packets costs one pass over
 * the packets added since the previous sweep (the sum is kept per buffer).
 * The price is latency: memory may pass the cap by what is published during
 * one interval before the socket is cut.
 */
import { EventEmitter } from 'node:events';
import createDebug from 'debug';
import type { BrokerServer } from '../broker.ts';
import { engineBacklog, engineConnection, engineIdle, type EngineBacklog, type EngineConnection, type QueuedPacket } from '../internals.ts';

const debug = createDebug('spicy-action:backpressure');

/** How often the guard looks at every connection, by default. */
const DEFAULT_SWEEP_MS = 100;

/** Bytes of one queued packet (a string's length is its size in memory for the ASCII JSON clients send). */
function packetBytes(packet: QueuedPacket): number {
  const { data } = packet;
  if (typeof data === 'string') return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}

/** Running sums of write buffers: Engine.IO replaces the array on every flush, so a sum is keyed by the array. */
const sums = new WeakMap<readonly QueuedPacket[], { counted: number; bytes: number }>();

/**
 * The bytes an Engine.IO connection holds for its client and has not sent:
 * its write buffer, plus what `ws` holds when over WebSocket.
 *
 * @example
 * unsentBytes(io.of('/').sockets.get(id)!.conn); // 0 for a client that keeps up
 */
export function unsentBytes(conn: EngineConnection): number {
  return backlogBytes(engineBacklog(conn));
}

/** The bytes of what waits on a connection: its queued packets and what `ws` holds. */
function backlogBytes(backlog: EngineBacklog): number {
  const buffer = backlog.packets;
  const bytes = backlog.bufferedAmount;
  if (buffer.length === 0) return bytes;
  let sum = sums.get(buffer);
  if (sum === undefined) {
    sum = { counted: 0, bytes: 0 };
    sums.set(buffer, sum);
  }
  for (let i = sum.counted; i < buffer.length; i++) sum.bytes += packetBytes(buffer[i] as QueuedPacket);
  sum.counted = buffer.length;
  return bytes + sum.bytes;
}

/** What the guard reports. */
export interface SlowConsumerEvents {
  /** A connection was cut because `bytes` were waiting for it. */
  disconnected: [id: string, bytes: number];
}

/**
 * Watches every connection of `io` and disconnects those whose unsent data
 * passes `maxBufferedBytes`.
 *
 * @example
 * const guard = new SlowConsumerGuard(io, { maxBufferedBytes: 16_000_000 });
 * guard.on('disconnected', (id, bytes) => console.warn(`${id} did not read ${bytes} bytes`));
 * // on shutdown:
 * guard.close();
 */
export class SlowConsumerGuard extends EventEmitter<SlowConsumerEvents> {
  readonly maxBufferedBytes: number;
  readonly #io: BrokerServer;
  readonly #timer: NodeJS.Timeout;

  constructor(io: BrokerServer, options: { maxBufferedBytes: number; sweepMs?: number }) {
    super();
    this.#io = io;
    this.maxBufferedBytes = options.maxBufferedBytes;
    this.#timer = setInterval(() => this.sweep(), options.sweepMs ?? DEFAULT_SWEEP_MS);
    this.#timer.unref();
  }

  /** Looks at every connected socket once; returns how many were cut. */
  sweep(): number {
    let cut = 0;
    for (const socket of this.#io.of('/').sockets.values()) {
      // Nothing queued and the transport ready for more: nothing is waiting.
      if (engineIdle(socket.conn)) continue;
      const bytes = backlogBytes(engineBacklog(socket.conn));
      if (bytes <= this.maxBufferedBytes) continue;
      this.#disconnect(engineConnection(socket), bytes);
      cut++;
    }
    return cut;
  }

  /** Stops watching. */
  close(): void {
    clearInterval(this.#timer);
  }

  #disconnect(conn: EngineConnection, bytes: number): void {
    // Logged by address: the Engine.IO id is a session's name and stays out of logs.
    const address = conn.remoteAddress;
    debug('disconnecting a client at %s: %d bytes unsent (limit %d)', address, bytes, this.maxBufferedBytes);
    // Drop the TCP connection at once: a WebSocket close handshake would wait
    // 30 s behind the unread data, holding it in memory all along.
    try {
      conn.transport.socket?.terminate?.();
    } catch (error) {
      debug('terminate of a client at %s failed: %s', address, (error as Error).message);
    }
    // "forced close": the write buffer is dropped and Socket.IO keeps the
    // session for recovery.
    conn.close(true);
    this.emit('disconnected', conn.id, bytes);
  }
}
