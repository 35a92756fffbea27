/**
 * A broker with a token, assembled the way the host mounts the monitor: the
 * page's files before the token check, everything else behind it. It stands
 * in for the token check of SPEC section 9 so that the monitor page and
 * `tail` can be tested against a broker that refuses strangers.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';
import express from 'express';
import { Server } from 'socket.io';
import { attachBroker, type BrokerServer } from '../../src/broker.ts';
import { DEFAULT_BUSES } from '../../src/buses.ts';
import { DEFAULT_SETTINGS } from '../../src/config.ts';
import { monitorAssetsRouter, monitorConfigRouter } from '../../src/monitor.ts';
import { NAME, VERSION } from '../../src/package-info.ts';
import { socketOptions } from '../../src/server.ts';

/** Starts a broker that wants `token` (4.x `auth: {token}`, HTTP `Authorization: Bearer`); closed when the file ends. */
export async function startGuardedBroker(token: string): Promise<{ url: string; io: BrokerServer }> {
  const app = express();
  const httpServer = createServer(app);
  const io: BrokerServer = new Server(httpServer, socketOptions(DEFAULT_SETTINGS));
  io.use((socket, next) => next(socket.handshake.auth.token === token ? undefined : new Error('unauthorized')));
  app.use(monitorAssetsRouter());
  app.use((req, res, next) => {
    if (req.headers.authorization === `Bearer ${token}`) next();
    else res.status(401).json({ ok: false, error: 'unauthorized' });
  });
  const broker = attachBroker(io, app, { buses: DEFAULT_BUSES });
  app.use(monitorConfigRouter(broker, { name: NAME, version: VERSION }));
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  after(() => new Promise<void>((resolve) => io.close(() => resolve())));
  return { url: `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`, io };
}
