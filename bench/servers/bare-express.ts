/**
 * The HTTP baseline: a bare Express app with one route that parses a JSON
 * body with body-parser (the broker's limit, 1 MB) and answers, nothing else.
 * Prints `listening on http://...` like the broker.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import bodyParser from 'body-parser';
import express from 'express';
import { DEFAULT_SETTINGS } from '../../src/config.ts';

const app = express();
app.disable('x-powered-by');
app.post('/_notify/:msg', bodyParser.json({ limit: DEFAULT_SETTINGS.maxBodyBytes, strict: false, type: () => true }), (_req, res) => {
  res.json({ ok: true });
});

const httpServer = createServer(app);
httpServer.listen(0, '127.0.0.1', () => {
  const { port } = httpServer.address() as AddressInfo;
  console.log(`bare express listening on http://127.0.0.1:${port}`);
});
process.on('SIGTERM', () => process.exit(0));
