/**
 * Issue 19, item 8: every dropped 4.x socket left a session for
 * `RECOVERY_WINDOW` holding its rooms, without bound. Kept sessions are now
 * counted in bytes per client address (`MAX_RECOVERY_SESSIONS_BYTES_PER_ADDRESS`)
 * and in total (`MAX_RECOVERY_SESSIONS_BYTES`); past either, a dropped socket
 * keeps none, its client comes back `recovered: false`, and it is counted
 * (`recovery_sessions`). On one process, with real 4.x clients from two
 * loopback addresses, and a full GC to see what the sessions really hold;
 * and on a cluster node, whose sessions go to a real Redis.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { sessionBytes } from '../src/kept-sessions.ts';
import type { RunningBroker } from '../src/server.ts';
import { request, startBroker } from './helpers/broker.ts';
import { closeAll, comeBack, connect, dropTransport, type TestClient, withTimeout } from './helpers/clients.ts';
import { captureLog } from './helpers/logs.ts';
import { parseMetrics } from './helpers/metrics.ts';
import { RedisServer, redisMissing } from './helpers/redis.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const NAME_LENGTH = 250;
/** The rooms of client `n`: `rooms` names of NAME_LENGTH characters, its own. */
const roomsOf = (n: number, rooms: number): string[] => Array.from({ length: rooms }, (_, r) => `${n}-${r}-`.padEnd(NAME_LENGTH, 'r'));
/** What a session of `rooms` such rooms costs, with its own (its id, 20 characters). */
const sessionOf = (rooms: number): number => sessionBytes(['x'.repeat(20), ...roomsOf(0, rooms)]);
const SESSION = sessionOf(100);

/** Connects client `n` from `from` and joins its rooms. */
async function joined(broker: RunningBroker, n: number, from: string, rooms = 100): Promise<TestClient> {
  const client = await connect('v4', broker.url, { transports: ['websocket'], extra: { localAddress: from } });
  const answers = await Promise.all(roomsOf(n, rooms).map((room) => client.ack('join', room)));
  assert.ok(answers.every((a) => a === true));
  return client;
}

describe('sessions kept for recovery', () => {
  const clients: TestClient[] = [];
  after(() => closeAll(clients));

  it('are bounded in bytes per address and in total: past either, a dropped socket keeps none and comes back unrecovered', async (t) => {
    const log = captureLog(t, 'spicy-action:recovery-sessions');
    // Room for three such sessions per address, five in all (the own-id room counts too).
    const perAddress = 3 * SESSION + SESSION / 2;
    const total = 5 * SESSION + SESSION / 2;
    const broker = await startBroker({ maxRecoverySessionsBytesPerAddress: perAddress, maxRecoverySessionsBytes: total });
    const kept = (): { sessions: number; bytes: number; refused: number } => {
      assert.ok(broker.keptSessions);
      return broker.keptSessions.state();
    };

    const fromA: TestClient[] = [];
    const fromB: TestClient[] = [];
    for (const n of [0, 1, 2, 3]) fromA.push(await joined(broker, n, '127.0.0.2'));
    for (const n of [4, 5, 6]) fromB.push(await joined(broker, n, '127.0.0.3'));
    clients.push(...fromA, ...fromB);
    for (const client of fromA) await dropTransport(broker, client);
    assert.deepEqual({ ...kept(), bytes: undefined }, { sessions: 3, refused: 1, bytes: undefined }, 'the fourth from one address keeps none');
    assert.ok(kept().bytes <= perAddress);
    for (const client of fromB) await dropTransport(broker, client);
    assert.deepEqual({ ...kept(), bytes: undefined }, { sessions: 5, refused: 2, bytes: undefined }, 'past the total, none either');
    assert.ok(kept().bytes <= total);

    // What the adapter holds is what is counted: no session for the refused ones.
    const waiting = (broker.io.of('/').adapter as unknown as { sessions: Map<string, unknown> }).sessions;
    assert.equal(waiting.size, 5);

    const recovered = await Promise.all([...fromA, ...fromB].map((client) => comeBack(client)));
    assert.deepEqual(recovered, [true, true, true, false, true, true, false]);

    const text = (await request(`${broker.url}/metrics`)).body as string;
    assert.equal(parseMetrics(text).value('spicy_action_refused_total', { reason: 'recovery_sessions' }), 2);
    assert.equal(log.filter((line) => line.includes('keeping no session')).length, 1, log.join('\n'));
  });

  it('hold the heap to what they count, at MAX_ROOMS_PER_SOCKET rooms of MAX_ROOM_NAME_LENGTH', async (t) => {
    const ROOMS = 1_000;
    const broker = await startBroker({ maxRoomNameLength: NAME_LENGTH, maxRecoverySessionsBytesPerAddress: 4 * sessionOf(ROOMS), maxRecoverySessionsBytes: 4 * sessionOf(ROOMS) });
    const crowd: TestClient[] = [];
    for (const n of [10, 11, 12, 13, 14, 15]) crowd.push(await joined(broker, n, '127.0.0.4', ROOMS));
    clients.push(...crowd);
    for (const client of crowd) await dropTransport(broker, client);
    for (const client of crowd) (client.raw as unknown as { io: { reconnection(on: boolean): void } }).io.reconnection(false);
    gc();
    const dropped = process.memoryUsage().heapUsed;
    const state = broker.keptSessions!.state();
    assert.deepEqual({ sessions: state.sessions, refused: state.refused }, { sessions: 4, refused: 2 });
    // Let the sessions go: what they held is what comes back, and it is no more than what was counted.
    (broker.io.of('/').adapter as unknown as { sessions: Map<string, unknown> }).sessions.clear();
    gc();
    const held = dropped - process.memoryUsage().heapUsed;
    t.diagnostic(`4 sessions of ${ROOMS} rooms of ${NAME_LENGTH} characters held ${held} bytes of heap; counted ${state.bytes}`);
    assert.ok(held <= state.bytes, `held ${held} bytes, counted ${state.bytes}`);
    assert.ok(held > state.bytes / 2, `held ${held} bytes, counted ${state.bytes}: the estimate is far off`);
  });
});

describe('sessions kept for recovery on a cluster', { skip: redisMissing() }, () => {
  const clients: TestClient[] = [];
  after(() => closeAll(clients));

  it('are bounded as on one process: what a node writes to Redis stays under its caps', async () => {
    const redis = await RedisServer.start();
    const broker = await startBroker({ redisUrl: redis.url, maxRecoverySessionsBytesPerAddress: 2 * SESSION + SESSION / 2 });
    after(() => redis.stop());
    const crowd: TestClient[] = [];
    for (const n of [20, 21, 22]) crowd.push(await joined(broker, n, '127.0.0.5'));
    clients.push(...crowd);
    for (const client of crowd) await dropTransport(broker, client);
    assert.deepEqual({ ...broker.keptSessions!.state(), bytes: undefined }, { sessions: 2, refused: 1, bytes: undefined });
    assert.deepEqual(await Promise.all(crowd.map((client) => comeBack(client))), [true, true, false]);
  });
});

