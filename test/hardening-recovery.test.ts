/**
 * Recovery's memory and its skip-unheard, on one process with the in-memory adapter:
 * - the recovery backlog is held under RECOVERY_BACKLOG_BYTES: a flood of
 *   1 MB pushes leaves it under the cap, and a client whose last event was
 *   pruned comes back with a fresh session (`recovered` false), never with
 *   a gap; one whose events are all still there recovers them;
 * - skip-unheard asks a room index (rooms of the sessions waiting for
 *   recovery), not every session: an event to a room only a waiting session
 *   holds is kept and recovered, one to a room nobody holds is skipped. (Its
 *   speed under churn is measured by bench/skip-unheard-churn.ts.)
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { notify, startBroker } from './helpers/broker.ts';
import { closeAll, comeBack, connect, dropTransport, type TestClient, withTimeout } from './helpers/clients.ts';

// A full GC on demand, to see that what the cap dropped is really let go.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('recovery backlog byte cap', async () => {
  const CAP = 2_000_000;
  const broker = await startBroker({ recoveryBacklogBytes: CAP, maxBodyBytes: 1_100_000 });
  const clients: TestClient[] = [];
  after(() => closeAll(clients));
  const backlog = (): { bytes: number; events: number; pruned: number } => {
    assert.ok(broker.recoveryBacklog, 'one process with recovery keeps a capped backlog');
    return broker.recoveryBacklog.state();
  };

  it('stays under the cap through a flood of 1 MB pushes, and a client whose last event was pruned gets a fresh session', async () => {
    const subscriber = await connect('v4', broker.url, { transports: ['websocket'] });
    const away = await connect('v4', broker.url, { transports: ['websocket'] });
    clients.push(subscriber, away);
    assert.equal(await subscriber.ack('join', 'calls'), true);
    assert.equal(await away.ack('join', 'calls'), true);
    assert.deepEqual((await notify(broker.url, 'call', { call: 'seen' })).body, { ok: true });
    await away.receive('call', 1);
    await dropTransport(broker, away);

    const big = { call: 'flood', pad: 'x'.repeat(1_000_000) };
    const FLOOD = 12;
    const packets = (broker.io.of('/').adapter as unknown as { packets: object[] }).packets;
    let firstOfFlood: WeakRef<object> | undefined;
    for (let i = 0; i < FLOOD; i += 4) {
      const answers = await Promise.all([0, 1, 2, 3].map(() => notify(broker.url, 'call', big)));
      for (const answer of answers) assert.equal(answer.status, 200);
      const state = backlog();
      assert.ok(state.bytes <= CAP, `backlog ${state.bytes} bytes, cap ${CAP}`);
      firstOfFlood ??= new WeakRef(packets[packets.length - 1] as object);
    }
    assert.ok(backlog().pruned > 0, 'the oldest events were dropped');
    for (let i = 0; i < 3 && firstOfFlood?.deref(); i++) {
      await new Promise((r) => setImmediate(r));
      gc();
    }
    assert.equal(firstOfFlood?.deref(), undefined, 'a dropped event is let go, not held by the cap itself');
    await subscriber.receive('call', 1 + FLOOD, 20_000);

    assert.equal(await comeBack(away), false, 'its last event is gone: a fresh session, not a gap');
    assert.equal(away.count('call'), 1, 'nothing of the flood was replayed');
  });

  it('recovers every missed event when they are all still kept', async () => {
    const away = await connect('v4', broker.url, { transports: ['websocket'] });
    clients.push(away);
    assert.equal(await away.ack('join', 'calls'), true);
    assert.deepEqual((await notify(broker.url, 'call', { call: 'before' })).body, { ok: true });
    await away.receive('call', 1);
    await dropTransport(broker, away);
    for (let i = 0; i < 5; i++) assert.deepEqual((await notify(broker.url, 'call', { call: `missed-${i}` })).body, { ok: true });
    assert.equal(await comeBack(away), true);
    await away.receive('call', 6);
    assert.deepEqual(away.payloads('call'), [{ call: 'before' }, ...[0, 1, 2, 3, 4].map((i) => ({ call: `missed-${i}` }))]);
  });
});

describe('skip-unheard with sessions waiting for recovery', async () => {
  const broker = await startBroker();
  const clients: TestClient[] = [];
  after(() => closeAll(clients));

  it('keeps an event to a room held only by a waiting session, and skips one to a room nobody holds', async () => {
    const publisher = await connect('v4', broker.url);
    const away = await connect('v4', broker.url, { transports: ['websocket'] });
    clients.push(publisher, away);
    // Many rooms each, as the churn that made the old scan slow.
    for (let i = 0; i < 50; i++) assert.equal(await away.ack('join', `endpoint:user-${i}@example.net`), true);
    assert.equal(await away.ack('join', 'endpoint:waiting@example.net'), true);
    // An event, so that the client has an offset to come back with.
    assert.deepEqual((await notify(broker.url, 'script_register', { name: 'hello', endpoint: 'waiting@example.net' })).body, { ok: true });
    await away.receive('script_register', 1);
    await dropTransport(broker, away);

    const kept = (): number => broker.recoveryBacklog!.state().events;
    const before = kept();
    // Nobody holds `endpoint:nobody@...` and nobody is on `support`: skipped, nothing kept.
    assert.deepEqual((await notify(broker.url, 'script_register', { name: 'lost', endpoint: 'nobody@example.net' })).body, { ok: true });
    assert.equal(kept(), before, 'an event nobody can receive is not kept');
    // Only the waiting session holds `endpoint:waiting@...`: kept, and recovered.
    assert.deepEqual((await notify(broker.url, 'script_register', { name: 'for you', endpoint: 'waiting@example.net' })).body, { ok: true });
    assert.equal(kept(), before + 1, 'an event a waiting session can recover is kept');

    assert.equal(await comeBack(away), true);
    await away.receive('script_register', 2);
    assert.deepEqual(away.payloads('script_register'), [
      { name: 'hello', endpoint: 'waiting@example.net' },
      { name: 'for you', endpoint: 'waiting@example.net' },
    ]);
  });
});
