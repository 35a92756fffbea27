/** The library API: a host's own Express and Socket.IO server with the broker attached. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import express from 'express';
import { Server } from 'socket.io';
import { attachBroker, DEFAULT_BUSES, type Route, type Targets } from '../src/index.ts';
import { NAME, VERSION } from '../src/package-info.ts';
import { notify, request } from './helpers/broker.ts';
import { closeAll, connect, flush, type TestClient } from './helpers/clients.ts';

async function host() {
  const app = express();
  app.get('/status', (_req, res) => {
    res.json({ host: 'alive' });
  });
  const httpServer = createServer(app);
  const io = new Server(httpServer, { allowEIO3: true });
  const broker = attachBroker(io, app, { buses: DEFAULT_BUSES });
  httpServer.listen(0, '127.0.0.1');
  await once(httpServer, 'listening');
  after(() => io.close());
  return { app, io, broker, url: `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}` };
}

describe('attachBroker', () => {
  const open: TestClient[] = [];
  after(() => closeAll(open));

  it('serves the broker beside the host routes, with the package name and version', async () => {
    const { url } = await host();
    const client = await connect('v1', url);
    open.push(client);
    assert.deepEqual(client.welcome, { id: client.id, publicId: client.welcome.publicId, name: NAME, version: VERSION, public: false });
    assert.deepEqual((await request(`${url}/status`)).body, { host: 'alive' });
    assert.deepEqual((await notify(url, 'report_ops', { error: 'x' })).body, { ok: true });
  });

  it('lets the host change routes and watch what the broker does', async () => {
    const { url, broker } = await host();
    const [sender, listener] = await Promise.all([connect('v4', url), connect('v2', url)]);
    open.push(sender, listener);
    const routed: [string, Route, Targets][] = [];
    broker.on('routed', (event, route, targets) => routed.push([event, route, targets]));
    const refused: string[] = [];
    broker.on('refused', (event, refusal) => refused.push(`${event}: ${refusal.reason}`));

    assert.deepEqual(broker.routes.register({ event: 'queuer', default_room: 'calls' }), { ok: true, event: 'queuer', bus: 'calls' });
    await listener.ack('join', 'calls');
    sender.emit('queuer', { waiting: 1, _in: ['queue:support'] });
    sender.emit('join', 42);
    await flush(sender, [listener]);
    assert.deepEqual(listener.payloads('queuer'), [{ waiting: 1, _in: ['queue:support'] }]);
    assert.deepEqual(routed.filter(([e]) => e === 'queuer'), [['queuer', 'calls', { rooms: ['calls', 'queue:support'], skipped: 0, overflow: 0 }]]);
    assert.deepEqual(refused, ['join: bad_room']);
  });

  it('close() detaches it: /_notify answers 503, events and new sockets are left to the host', async () => {
    const { url, broker, io } = await host();
    const [sender, listener] = await Promise.all([connect('v4', url), connect('v4', url)]);
    open.push(sender, listener);
    await listener.ack('join', 'calls');
    broker.close();
    assert.equal(broker.closed, true);

    const answer = await notify(url, 'report_ops', { error: 'x' });
    assert.equal(answer.status, 503);
    assert.deepEqual(answer.body, { ok: false, error: 'the broker is shutting down' });

    // Once the server has the event, anything the broker would send is already on its way.
    const received = once(io.sockets.sockets.get(sender.id)!, 'call');
    sender.emit('call', { after: 'close' });
    await received;
    io.on('connection', (socket) => socket.emit('welcome', { id: socket.id, name: 'host', version: '1', public: false }));
    const late = await connect('v4', url);
    open.push(late);
    assert.equal(late.welcome.name, 'host', 'only the host greets new sockets');
    io.to('calls').emit('host-event', 1);
    await listener.receive('host-event', 1);
    assert.equal(listener.count('call'), 0, 'the broker no longer routes');
  });
});
