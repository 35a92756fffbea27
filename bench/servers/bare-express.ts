/**
 * The HTTP baselines: a bare Express app with one route that parses a JSON
 * body with body-parser (the broker's limit, 1 MB) and answers, nothing else;
 * with `BENCH_EMIT=1`, the same route also does the one thing a push must do,
 * `io.to('support').emit(msg, body)`, on a Socket.IO server with the broker's
 * options (connection state recovery included). Prints `listening on http://...`
 * like the broker.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import bodyParser from 'body-parser';
import express from 'express';
import { Server } from 'socket.io';
import { DEFAULT_SETTINGS } from '../../src/settings.ts';
import { socketOptions } from '../../src/server.ts';

const app = express();
app.disable('x-powered-by');
const httpServer = createServer(app);
const io = process.env.BENCH_EMIT === '1' ? new Server(httpServer, socketOptions(DEFAULT_SETTINGS)) : undefined;
app.post('/_notify/:msg', bodyParser.json({ limit: DEFAULT_SETTINGS.maxBodyBytes, strict: false, type: () => true }), (req, res) => {
  io?.to('support').emit(req.params.msg as string, req.body);
  res.json({ ok: true });
});

httpServer.listen(0, '127.0.0.1', () => {
  const { port } = httpServer.address() as AddressInfo;
  console.log(`bare express listening on http://127.0.0.1:${port}`);
});
process.on('SIGTERM', () => process.exit(0));
