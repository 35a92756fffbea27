/**
 * Connection state recovery (docs/protocol.md#connection-state-recovery) on
 * one process, in-memory adapter: a 4.x client whose connection drops gets what it missed on
 * reconnecting within RECOVERY_WINDOW, middlewares run again, 0 turns it off,
 * and 1.x/2.x clients are unaffected by the offsets recovery adds.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { DEFAULT_SETTINGS } from '../src/settings.ts';
import { socketOptions, type RunningBroker } from '../src/server.ts';
import { startBroker } from './helpers/broker.ts';
import { closeAll, connect, flush, type TestClient } from './helpers/clients.ts';
import { sleep } from './helpers/wait.ts';

const clients: TestClient[] = [];
after(() => closeAll(clients));

/** A 4.x client whose connection can be dropped (as a network failure would) and brought back. */
async function droppable(url: string): Promise<{ client: TestClient; drop(): Promise<void>; reconnect(): Promise<void> }> {
  const client = await connect('v4', url, { transports: ['websocket'], reconnection: false });
  clients.push(client);
  const manager = client.raw.io as { engine: { close(): void } };
  return {
    client,
    async drop() {
      const gone = new Promise((resolve) => client.raw.on('disconnect', resolve));
      manager.engine.close();
      await gone;
    },
    async reconnect() {
      const welcomed = client.next('welcome');
      (client.raw as unknown as { connect(): void }).connect();
      await welcomed;
    },
  };
}

async function publisherOn(running: RunningBroker): Promise<TestClient> {
  const publisher = await connect('v2', running.url, { transports: ['websocket'] });
  clients.push(publisher);
  return publisher;
}

describe('connection state recovery, one process', () => {
  it('gives a 4.x client back the events it missed, in order, and runs the middlewares again', async () => {
    const running = await startBroker();
    const middlewareRuns: string[] = [];
    running.io.use((socket, next) => {
      middlewareRuns.push(socket.id);
      next();
    });
    const { client, drop, reconnect } = await droppable(running.url);
    assert.equal(await client.ack('join', 'calls'), true);
    assert.equal(await client.ack('join', 'endpoint:alice@example.net'), true);
    const publisher = await publisherOn(running);
    publisher.emit('call', { seq: 0 });
    await client.receive('call', 1);

    await drop();
    for (let seq = 1; seq <= 200; seq++) publisher.emit('call', { seq, _in: ['endpoint:alice@example.net'] });
    publisher.emit('shout', 'not for calls');
    await flush(publisher, [publisher]);
    await reconnect();

    assert.equal(client.raw.recovered, true);
    assert.equal(client.raw.id, client.id, 'the same socket id');
    assert.equal(middlewareRuns.filter((id) => id === client.id).length, 2, 'the middlewares ran on the first connection and again on recovery');
    const seqs = (client.payloads('call') as { seq: number }[]).map((p) => p.seq);
    assert.deepEqual(seqs, Array.from({ length: 201 }, (_, i) => i), 'each missed event once (bus and _in room), in order');
    assert.equal(client.count('shouted'), 0, 'nothing from rooms it was not in');
  });

  it('gives a fresh session to a client that stayed away longer than RECOVERY_WINDOW', async () => {
    const running = await startBroker({ recoveryWindowMs: 500 });
    const { client, drop, reconnect } = await droppable(running.url);
    const firstId = client.id;
    assert.equal(await client.ack('join', 'calls'), true);
    const publisher = await publisherOn(running);
    await drop();
    publisher.emit('call', { seq: 1 });
    await sleep(800); // past the window: time itself is the condition
    await reconnect();
    assert.equal(client.raw.recovered, false);
    assert.notEqual(client.raw.id, firstId);
    await flush(publisher, [client]);
    assert.equal(client.count('call'), 0, 'what was missed past the window is not replayed');
  });

  it('is off with RECOVERY_WINDOW=0', async () => {
    const running = await startBroker({ recoveryWindowMs: 0 });
    assert.equal(socketOptions({ ...DEFAULT_SETTINGS, recoveryWindowMs: 0 }).connectionStateRecovery, undefined);
    const { client, drop, reconnect } = await droppable(running.url);
    assert.equal(await client.ack('join', 'calls'), true);
    const publisher = await publisherOn(running);
    await drop();
    publisher.emit('call', { seq: 1 });
    await reconnect();
    assert.ok(!client.raw.recovered);
    await flush(publisher, [client]);
    assert.equal(client.count('call'), 0);
    // Without recovery, broadcasts carry no offset argument.
    assert.equal(await client.ack('join', 'calls'), true);
    const arrival = client.next('call');
    publisher.emit('call', { seq: 2 });
    assert.deepEqual(await arrival, [{ seq: 2 }]);
  });

  it('keeps the payload as the first argument for 1.x and 2.x clients with recovery on', async () => {
    const running = await startBroker();
    const legacy = [await connect('v1', running.url), await connect('v2', running.url)];
    clients.push(...legacy);
    for (const client of legacy) assert.equal(await client.ack('join', 'internal'), true);
    legacy[0]!.emit('location:update', { aor: 'alice@example.net' });
    legacy[1]!.emit('shout', 'hello');
    for (const client of legacy) {
      const [update] = await client.receive('location:update', 1);
      assert.deepEqual(update, { aor: 'alice@example.net' });
      const [shout] = await client.receive('shouted', 1);
      assert.deepEqual(shout, { id: legacy[1]!.welcome.publicId, data: 'hello' });
    }
  });
});
