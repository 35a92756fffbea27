/**
 * An Engine.IO session id is not a credential. A 1.x/2.x client's socket
 * id is its Engine.IO `sid`; with BROKER_TOKEN set, a client without the
 * token that knew it could poll, post or upgrade that `sid` and read and
 * publish as the victim. So every request naming a session must come from
 * its owner, and the broker tells no one else the `sid` (not in `shouted`,
 * not in its logs).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { spawnBroker, startBroker } from './helpers/broker.ts';
import { closeAll, connect, flush, type Generation, rawRequest, type TestClient, withTimeout } from './helpers/clients.ts';

const TOKEN = 'engine-session-secret';
/** Another loopback address: Linux answers all of 127.0.0.0/8, so a request from here is "another host". */
const OTHER_ADDRESS = '127.0.0.2';

/** Tries to upgrade `sid` to a WebSocket and probe it; resolves with what came back ('refused' if the upgrade failed). */
function upgrade(url: string, localAddress?: string, headers: Record<string, string> = {}): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve) => {
      const ws = new WebSocket(url.replace(/^http/, 'ws'), { localAddress, headers });
      const received: string[] = [];
      ws.on('open', () => ws.send('2probe'));
      ws.on('message', (data) => {
        received.push(String(data));
        if (String(data) === '3probe') {
          ws.close();
          resolve('3probe');
        }
      });
      ws.on('error', () => resolve('refused'));
      ws.on('close', () => resolve(received.length > 0 ? received.join(',') : 'refused'));
    }),
    `upgrade of ${url}`,
  );
}

/** A 1.x/2.x polling payload holding one Socket.IO packet (Engine.IO 3: `<length>:<packet>`). */
const eio3Payload = (packet: string): string => `${packet.length}:${packet}`;

describe('Engine.IO sessions with a token set', async () => {
  const broker = await startBroker({ token: TOKEN });
  const clients: TestClient[] = [];
  after(() => closeAll(clients));
  const client = async (generation: Generation, transports?: string[]): Promise<TestClient> => {
    const c = await connect(generation, broker.url, { token: TOKEN, ...(transports ? { transports } : {}) });
    clients.push(c);
    return c;
  };

  for (const [generation, carrier] of [['v1', 'query'], ['v2', 'query'], ['v1', 'header'], ['v2', 'header']] as const) {
    it(`does not let a client without the token poll, post or upgrade a ${generation} session (token in its ${carrier}) it knows the sid of`, async () => {
      const victim =
        carrier === 'query'
          ? await client(generation, ['polling'])
          : await connect(generation, broker.url, { transports: ['polling'], extra: { extraHeaders: { Authorization: `Bearer ${TOKEN}` } } });
      if (carrier === 'header') clients.push(victim);
      const admin = await client('v4');
      assert.equal(await victim.ack('join', 'calls'), true);
      assert.equal(await admin.ack('join', 'internal'), true);
      const sid = victim.id;
      const base = `${broker.url}/socket.io/?EIO=3&transport=polling&sid=${encodeURIComponent(sid)}`;

      // Something to steal: a call on the victim's bus, just published.
      const publisher = await client('v4');
      publisher.emit('call', { call: 'secret-call' });
      const poll = await rawRequest(base, 'GET');
      assert.equal(poll.status, 400, 'a poll without the token is refused');
      assert.doesNotMatch(poll.body, /secret-call/);
      const wrong = await rawRequest(`${base}&token=guess`, 'GET');
      assert.equal(wrong.status, 400, 'a poll with a wrong token is refused');

      const post = await rawRequest(base, 'POST', { body: eio3Payload('42["shout","as the victim"]') });
      assert.equal(post.status, 400, 'a post without the token is refused');
      assert.equal(await upgrade(`${broker.url}/socket.io/?EIO=3&transport=websocket&sid=${encodeURIComponent(sid)}`), 'refused');

      // The victim still has its session, got the call, and nobody shouted as it.
      await victim.receive('call', 1);
      assert.deepEqual(victim.payloads('call'), [{ call: 'secret-call' }]);
      await flush(publisher, [admin]);
      assert.equal(admin.count('shouted'), 0, 'nothing was published as the victim');
      assert.equal(victim.raw.connected, true);
    });
  }

  it('binds a 4.x session (token in CONNECT only) to its route: behind a proxy, another client of the same proxy cannot poll or upgrade its sid', async () => {
    // What a proxy that appends X-Forwarded-For (HAProxy's `option forwardfor`) sends the broker, from its own
    // address: the victim's requests name the victim; a stranger's name the stranger, after whatever it wrote.
    const VICTIM = '198.51.100.7';
    const victim = await connect('v4', broker.url, { token: TOKEN, transports: ['polling'], extra: { extraHeaders: { 'X-Forwarded-For': VICTIM } } });
    clients.push(victim);
    assert.equal(await victim.ack('join', 'calls'), true);
    const sid = (victim.raw.io as { engine: { id: string } }).engine.id;
    const base = `${broker.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`;
    for (const forwarded of [undefined, '198.51.100.8', `${VICTIM}, 198.51.100.8`, `${VICTIM},${VICTIM}`]) {
      const headers: Record<string, string> = forwarded === undefined ? {} : { 'X-Forwarded-For': forwarded };
      assert.equal((await rawRequest(base, 'GET', { headers })).status, 400, `a poll from ${forwarded}`);
      assert.equal((await rawRequest(base, 'POST', { body: '42["shout","x"]', headers })).status, 400, `a post from ${forwarded}`);
      assert.equal(await upgrade(`${broker.url}/socket.io/?EIO=4&transport=websocket&sid=${encodeURIComponent(sid)}`, undefined, headers), 'refused');
    }
    const publisher = await client('v4');
    publisher.emit('call', { call: 'still mine' });
    await victim.receive('call', 1);
    assert.equal(victim.raw.connected, true);
  });

  it('binds a 4.x session (token in CONNECT only) to its address: another host cannot poll or upgrade its sid', async () => {
    const victim = await client('v4', ['polling']);
    assert.equal(await victim.ack('join', 'calls'), true);
    const sid = (victim.raw.io as { engine: { id: string } }).engine.id;
    assert.notEqual(sid, victim.id, 'a 4.x socket id is not its Engine.IO id');
    const base = `${broker.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`;
    assert.equal((await rawRequest(base, 'GET', { localAddress: OTHER_ADDRESS })).status, 400);
    assert.equal((await rawRequest(base, 'POST', { body: '42["shout","x"]', localAddress: OTHER_ADDRESS })).status, 400);
    assert.equal(await upgrade(`${broker.url}/socket.io/?EIO=4&transport=websocket&sid=${encodeURIComponent(sid)}`, OTHER_ADDRESS), 'refused');
    const publisher = await client('v4');
    publisher.emit('call', { call: 'still mine' });
    await victim.receive('call', 1);
    assert.equal(victim.raw.connected, true);
  });

  it('still lets every generation poll, then upgrade, with the token', async () => {
    for (const generation of ['v1', 'v2', 'v4'] as const) {
      const c = await client(generation);
      const engine = (c.raw.io as { engine: { transport: { name: string }; once(e: string, l: () => void): void } }).engine;
      if (engine.transport.name !== 'websocket') await withTimeout(new Promise<void>((r) => engine.once('upgrade', r)), `${generation} upgrade`);
      assert.equal(await c.ack('join', 'calls'), true);
    }
  });
});

describe('what others learn of a 1.x/2.x session', () => {
  it('shouted carries a public id, and the logs never hold the sid', async () => {
    const spawned = spawnBroker({ DEBUG: 'spicy-action:*', BROKER_TOKEN: TOKEN });
    const url = await spawned.ready;
    const [sender, admin] = await Promise.all([connect('v1', url, { token: TOKEN }), connect('v4', url, { token: TOKEN })]);
    try {
      assert.equal(await admin.ack('join', 'internal'), true);
      const shouted = admin.next('shouted');
      sender.emit('shout', 'hello');
      const [shout] = (await shouted) as [{ id: string }];
      assert.equal(shout.id, sender.welcome.publicId);
      assert.notEqual(shout.id, sender.id);
      assert.ok(!sender.id.includes(shout.id) && !shout.id.includes(sender.id));
      sender.emit('join', 42); // a refusal, logged
      await admin.ack('register', { event: 'x', default_room: null });
      sender.close();
      const deadline = Date.now() + 5_000;
      while (!/disconnect/.test(spawned.stderr()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.match(spawned.stderr(), /connect /, 'connections are logged');
      assert.doesNotMatch(spawned.stderr(), new RegExp(sender.id.replace(/[-]/g, '\\-')), 'the sid is not in the logs');
    } finally {
      closeAll([sender, admin]);
    }
  });
});
