/**
 * Skip-unheard under churn (finding 5 of the hardening work): how many
 * routed events per second one process handles when their rooms have no
 * connected socket, with no session waiting for recovery, and after 200
 * sockets that joined 1,000 rooms each dropped (their sessions wait for the
 * recovery window). The old check scanned every waiting session's rooms
 * for every event; the room index answers in constant time. Target: the
 * churn leaves at least half of the throughput.
 *
 * Run: npx tsx bench/skip-unheard-churn.ts [sockets=200] [rooms=1000] [seconds=3]
 */
import { io as connectClient, type Socket } from 'socket.io-client';
import { DEFAULT_SETTINGS } from '../src/settings.ts';
import { startServer, type RunningBroker } from '../src/server.ts';

const SOCKETS = Number(process.argv[2] ?? 200);
const ROOMS = Number(process.argv[3] ?? 1_000);
const SECONDS = Number(process.argv[4] ?? 3);
/** Events routed between two looks at the clock. */
const BATCH = 200;
/** Least share of the no-churn throughput the churn may leave. */
const TARGET_RATIO = 0.5;

/** Routed events per second to rooms nobody is in (the path that asks about waiting sessions). */
async function throughput(running: RunningBroker): Promise<number> {
  const end = Date.now() + SECONDS * 1_000;
  let events = 0;
  while (Date.now() < end) {
    for (let i = 0; i < BATCH; i++) running.broker.route('call', [{ call: `c-${events + i}`, _in: [`endpoint:nobody-${i}@example.net`] }]);
    events += BATCH;
    await new Promise((r) => setImmediate(r));
  }
  return events / SECONDS;
}

/** Connects `SOCKETS` clients, puts each in `ROOMS` rooms, then drops them all: their sessions wait for recovery. */
async function churn(running: RunningBroker): Promise<void> {
  const clients: Socket[] = [];
  for (let s = 0; s < SOCKETS; s++) {
    const client = connectClient(running.url, { transports: ['websocket'], forceNew: true, reconnection: false });
    await new Promise((resolve) => client.once('welcome', resolve));
    const socket = running.io.of('/').sockets.get(client.id as string);
    if (!socket) throw new Error('socket not found on the broker');
    // Straight on the server: the state 1,000 `join`s leave, without waiting for 200,000 acks.
    socket.join(Array.from({ length: ROOMS }, (_, r) => `endpoint:user-${s}-${r}@example.net`));
    clients.push(client);
  }
  for (const client of clients) client.io.engine.close();
  while (running.io.of('/').sockets.size > 0) await new Promise((r) => setTimeout(r, 20));
}

const running = await startServer({ ...DEFAULT_SETTINGS, port: 0 });
try {
  const quiet = await throughput(running);
  await churn(running);
  const churned = await throughput(running);
  const ratio = churned / quiet;
  console.log(`routed events/s to unheard rooms: ${Math.round(quiet)} with no waiting session`);
  console.log(`routed events/s to unheard rooms: ${Math.round(churned)} with ${SOCKETS} sessions of ${ROOMS} rooms waiting`);
  console.log(`ratio ${ratio.toFixed(2)} (target ≥ ${TARGET_RATIO}): ${ratio >= TARGET_RATIO ? 'met' : 'NOT met'}`);
  process.exitCode = ratio >= TARGET_RATIO ? 0 : 1;
} finally {
  await running.close();
}
