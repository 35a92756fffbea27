/**
 * Socket.IO messages over the size limit (docs/protocol.md#limits, `MAX_MESSAGE_BYTES`,
 * Socket.IO's `maxHttpBufferSize`). Engine.IO enforces the limit itself:
 * - over WebSocket, `ws` closes the connection (close code 1009) and the
 *   socket disconnects with "transport error: Max payload size exceeded";
 * - over long-polling, the POST carrying the message is answered `413` and
 *   the client drops the connection.
 * Either way the message is not delivered and the client reconnects. This
 * module only notices these refusals, to log and count them.
 */
import type { Server as HttpServer } from 'node:http';
import createDebug from 'debug';
import type { BrokerServer, BrokerSocket } from '../broker.ts';
import type { Refusal } from '../protocol.ts';
import type { DisconnectDetails } from '../telemetry.ts';

const debug = createDebug('spicy-action:message-size');

/** Where the guard can hear of disconnections without a listener per socket: the broker's {@link Telemetry}. */
export interface DisconnectSource {
  on(event: 'disconnection', listener: (id: string, reason: string, details: DisconnectDetails) => void): unknown;
}

/** True for the disconnection of a WebSocket whose client sent a message over the limit. */
function oversized(reason: string, description: unknown): boolean {
  if (reason !== 'transport error') return false;
  const message = description instanceof Error ? description.message : '';
  return message.includes('Max payload size exceeded');
}

/**
 * Calls `refused` once for each Socket.IO message refused as too large, with
 * the peer's address. With `disconnects` (the broker's telemetry), it hears
 * of WebSocket refusals there; otherwise it listens on every socket.
 *
 * @example
 * watchMessageSize(io, httpServer, (address, refusal) => telemetry.refused('socket.io message', refusal), telemetry);
 */
export function watchMessageSize(
  io: BrokerServer,
  httpServer: HttpServer,
  refused: (address: string | undefined, refusal: Refusal) => void,
  disconnects?: DisconnectSource,
): void {
  const limit = io.engine.opts.maxHttpBufferSize;
  const refusal: Refusal = { reason: 'too_large', error: `message larger than ${limit} bytes` };
  const report = (address: string): void => {
    debug('a client at %s sent a message larger than %d bytes over websocket', address, limit);
    refused(address, refusal);
  };
  // WebSocket: ws reports the oversized frame as the transport error that ends the connection.
  if (disconnects) {
    disconnects.on('disconnection', (_id, reason, { description, address }) => {
      if (oversized(reason, description)) report(address);
    });
  } else {
    // One listener for every socket (Node's EventEmitter calls it with `this` set to the socket), not a closure per socket.
    const onDisconnect = function (this: BrokerSocket, reason: string, description: unknown): void {
      if (oversized(reason, description)) report(this.handshake.address);
    };
    io.on('connection', (socket) => {
      socket.on('disconnect', onDisconnect);
    });
  }
  // Long-polling: Engine.IO answers the POST 413 without an event; read the answer's status.
  const prefix = `${io.path()}/`;
  httpServer.prependListener('request', (req, res) => {
    if (req.method !== 'POST' || !req.url?.startsWith(prefix)) return;
    res.once('finish', () => {
      if (res.statusCode !== 413) return;
      debug('a message larger than %d bytes from %s over polling was refused', limit, req.socket.remoteAddress);
      refused(req.socket.remoteAddress, refusal);
    });
  });
}
