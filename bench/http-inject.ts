/**
 * `npx tsx bench/http-inject.ts [requests=4000] [rounds=8] [other broker checkout]`: the CPU one
 * `POST /_notify/report_ops` costs each HTTP stack, without the network or a
 * load generator: the broker (`startServer` with the default settings), bare
 * Express + body-parser (the route of bench/servers/bare-express.ts) and,
 * when given, the broker of another checkout, all in this process, each fed
 * raw HTTP/1.1 requests over in-memory keep-alive connections (ten at a
 * time, one request in flight on each), in alternating rounds. The figure is
 * this process's CPU per request (`process.cpuUsage()`), steadier than a
 * loopback run on a shared machine, since neither autocannon nor the
 * kernel's TCP share it; what it leaves out (syscalls, the parser's reads
 * from a real socket) is the same for every stack.
 */
import { createServer, type Server } from 'node:http';
import { Duplex } from 'node:stream';
import bodyParser from 'body-parser';
import express from 'express';
import { DEFAULT_SETTINGS } from '../src/settings.ts';
import { startServer } from '../src/server.ts';
import { reportOpsBody } from '../test/helpers/payloads.ts';
import { median } from './stats.ts';

const [requestsArg, roundsArg, other] = process.argv.slice(2);
const REQUESTS = Number(requestsArg ?? 4_000);
const ROUNDS = Number(roundsArg ?? 8);
const CONNECTIONS = 10;

const body = reportOpsBody();
const request = Buffer.from(
  `POST /_notify/report_ops HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: keep-alive\r\n\r\n${body}`,
);

/** An in-memory connection to `server`: write a request, get a callback per complete answer. */
function connection(server: Server, answered: () => void): { send(): void } {
  let seen = '';
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      // Answers are small: count their status lines (a line may be cut between chunks).
      seen += chunk.toString('latin1');
      let at: number;
      while ((at = seen.indexOf('HTTP/1.1 ')) >= 0) {
        const status = seen.slice(at + 9, at + 12);
        if (status.length < 3) break;
        if (status !== '200') throw new Error(`answer ${status}: ${seen.slice(at, at + 300)}`);
        seen = seen.slice(at + 12);
        answered();
      }
      if (seen.length > 4_096) seen = seen.slice(-16);
      callback();
    },
  });
  Object.assign(socket, { remoteAddress: '127.0.0.1', remotePort: 40_000, setTimeout() {}, setNoDelay() {}, setKeepAlive() {} });
  server.emit('connection', socket);
  return { send: () => void socket.push(request) };
}

/** Sends `count` requests to `server` over {@link CONNECTIONS} connections; resolves with CPU µs per request. */
async function round(server: Server, count: number): Promise<number> {
  const start = process.cpuUsage();
  await new Promise<void>((resolve) => {
    let sent = 0;
    let done = 0;
    const conns: { send(): void }[] = [];
    for (let i = 0; i < CONNECTIONS; i++) {
      const conn = connection(server, () => {
        done++;
        if (done === count) resolve();
        else if (sent < count) {
          sent++;
          conn.send();
        }
      });
      conns.push(conn);
    }
    for (const conn of conns) {
      sent++;
      conn.send();
    }
  });
  const used = process.cpuUsage(start);
  return (used.user + used.system) / count;
}

function bareExpress(): Server {
  const app = express();
  app.disable('x-powered-by');
  app.post('/_notify/:msg', bodyParser.json({ limit: DEFAULT_SETTINGS.maxBodyBytes, strict: false, type: () => true }), (_req, res) => {
    res.json({ ok: true });
  });
  return createServer(app);
}

const settings = { ...DEFAULT_SETTINGS, port: 0, host: '127.0.0.1' };
const stacks: { name: string; server: Server; close(): Promise<void> }[] = [];
const broker = await startServer(settings);
stacks.push({ name: 'broker', server: broker.httpServer, close: () => broker.close() });
stacks.push({ name: 'express', server: bareExpress(), close: async () => undefined });
if (other) {
  const module = (await import(`${other}/src/server.ts`)) as { startServer: typeof startServer };
  const old = await module.startServer(settings);
  stacks.push({ name: 'other broker', server: old.httpServer, close: () => old.close() });
}
// STACKS=broker (a comma list) keeps only some, to profile one: node --cpu-prof --import tsx bench/http-inject.ts
const only = process.env.STACKS?.split(',');
if (only) stacks.splice(0, stacks.length, ...stacks.filter((s) => only.includes(s.name)));
const results = new Map<string, number[]>(stacks.map((s) => [s.name, []]));
for (const stack of stacks) await round(stack.server, REQUESTS); // warm-up: JIT
for (let r = 0; r < ROUNDS; r++) {
  const order = stacks.map((_, i) => stacks[(i + r) % stacks.length]!);
  for (const stack of order) results.get(stack.name)!.push(await round(stack.server, REQUESTS));
}
const express0 = median(results.get('express') ?? [Number.NaN]);
for (const [name, values] of results) {
  console.log(`${name.padEnd(13)} ${median(values).toFixed(1).padStart(6)} µs CPU/request (${(median(values) / express0).toFixed(3)}× Express)  rounds: ${values.map((v) => v.toFixed(1)).join(' ')}`);
}
for (const stack of stacks) await stack.close();
process.exit(0);
