/**
 * Binary packets: Socket.IO keeps a packet's attachments until the last one
 * arrives, even before authentication (a header announcing 10 attachments,
 * then 9 frames of 1 MB, would hold 9 MB for as long as the socket stays).
 * The platform's clients send JSON only (docs/protocol.md, docs/security.md),
 * so the broker refuses binary packets outright: the header closes the
 * connection before any attachment is read, and the refusal is counted
 * (`binary`). JSON events, the only thing the docs promise to carry, go on
 * as usual.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { request, startBroker } from './helpers/broker.ts';
import { closeAll, connect, flush, GENERATIONS, withTimeout, type TestClient } from './helpers/clients.ts';
import { parseMetrics } from './helpers/metrics.ts';

const TOKEN = 'binary-test-token';
const broker = await startBroker({ token: TOKEN });

async function refused(reason: string): Promise<number> {
  const text = (await request(`${broker.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).body as string;
  return parseMetrics(text).value('spicy_action_refused_total', { reason });
}

/** Resolves once the client is disconnected, with the reason it was given. */
function disconnected(client: TestClient): Promise<string> {
  return withTimeout(new Promise<string>((resolve) => client.raw.on('disconnect', (reason: string) => resolve(reason))), `${client.generation} disconnect`);
}

describe('binary packets', () => {
  const clients: TestClient[] = [];
  after(() => closeAll(clients));

  for (const generation of GENERATIONS) {
    it(`closes a ${generation} connection that sends a binary event, and routes none of it`, async () => {
      const [sender, subscriber] = await Promise.all([
        connect(generation, broker.url, { token: TOKEN, transports: ['websocket'] }),
        connect('v4', broker.url, { token: TOKEN }),
      ]);
      clients.push(sender, subscriber);
      assert.equal(await subscriber.ack('join', 'calls'), true);
      const before = await refused('binary');
      const gone = disconnected(sender);
      sender.emit('call', { call: 'c-1', recording: Buffer.alloc(1_000, 7) });
      assert.match(await gone, /transport close|io server disconnect|transport error/);
      assert.equal(await refused('binary'), before + 1);
      // JSON goes on as ever, for everyone else.
      const publisher = await connect(generation, broker.url, { token: TOKEN });
      clients.push(publisher);
      assert.deepEqual(await publisher.ack('call', { call: 'c-2', note: 'JSON only' }), { ok: true, rooms: 1 });
      await flush(publisher, [subscriber]);
      assert.deepEqual(subscriber.payloads('call'), [{ call: 'c-2', note: 'JSON only' }]);
    });
  }

  it('holds nothing of an unauthenticated connection that announces attachments: the header alone closes it', async () => {
    const before = await refused('binary');
    const ws = new WebSocket(`${broker.url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`);
    const closed = withTimeout(new Promise<number>((resolve) => ws.on('close', (code) => resolve(code))), 'the broker to close the connection');
    await withTimeout(new Promise<void>((resolve) => ws.once('message', () => resolve())), 'the Engine.IO open packet');
    // No CONNECT, no token: a BINARY_EVENT header announcing 10 attachments, then the first 1 MB frame.
    const placeholders = Array.from({ length: 10 }, (_, num) => ({ _placeholder: true, num }));
    ws.send(`451-${JSON.stringify(['call', ...placeholders])}`);
    ws.send(Buffer.alloc(1_000_000), { binary: true }, () => undefined);
    await closed;
    assert.equal(await refused('binary'), before + 1);
    assert.equal(broker.io.engine.clientsCount, openClients(), 'the attacker holds no Engine.IO session');
  });

  /** Engine.IO sessions that belong to this file's own clients. */
  const openClients = (): number => clients.filter((c) => c.raw.connected).length;
});
