/** Connecting (docs/protocol.md#connecting): every client generation connects, over each transport, and is welcomed. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NAME, VERSION } from '../src/package-info.ts';
import { startBroker } from './helpers/broker.ts';
import { connect, GENERATIONS } from './helpers/clients.ts';
import { until } from './helpers/wait.ts';

const broker = await startBroker();

describe('connection', () => {
  for (const generation of GENERATIONS) {
    for (const transports of [['polling'], ['websocket'], undefined]) {
      it(`welcomes socket.io-client ${generation} over ${transports?.[0] ?? 'polling then websocket'}`, async () => {
        const client = await connect(generation, broker.url, transports ? { transports } : {});
        try {
          assert.deepEqual(client.welcome, { id: client.welcome.id, publicId: client.welcome.publicId, name: NAME, version: VERSION, public: false });
          assert.match(client.welcome.publicId, /^[\w-]{16}$/, 'a public id, not the socket id');
          assert.ok(broker.io.sockets.sockets.has(client.id), 'welcome.id is the socket id on the broker');
          // The client can use the broker straight away: join and receive a routed event.
          assert.equal(await client.ack('join', 'calls'), true);
          const arrival = client.next('call');
          client.emit('call', { state: 'end', call: generation });
          assert.deepEqual((await arrival)[0], { state: 'end', call: generation });
        } finally {
          client.close();
        }
      });
    }
  }

  it('upgrades legacy clients from polling to websocket', async () => {
    const client = await connect('v2', broker.url);
    try {
      const socket = broker.io.sockets.sockets.get(client.id)!;
      await until('the transport upgrades', () => socket.conn.transport.name === 'websocket', 5_000);
      assert.equal(socket.conn.transport.name, 'websocket');
      assert.equal(socket.conn.protocol, 3, 'socket.io-client 2.x speaks Engine.IO 3');
    } finally {
      client.close();
    }
  });
});
