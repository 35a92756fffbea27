/**
 * docs/cluster.md#when-redis-fails: a 4.x client that stops reading during its catch-up is cut
 * within the recovery's limits instead of being held for good. Two nodes; the
 * subscriber is away while the other node publishes a backlog of several
 * pages (RESTORE_PAGE is 1,000) of 4 kB events, comes back and stops reading
 * from its TCP socket as the connection opens, while live events go on. The
 * node must drop its connection within the drain deadline (DRAIN_TIMEOUT_MS),
 * well before Engine.IO's ping timeout (25 + 20 s) would; once it reads again
 * it recovers from the last event it got, with nothing missing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RedisServer, redisMissing } from '../helpers/redis.ts';
import { Flood, startRecoveryRig } from '../helpers/recovering.ts';
import { sleep, until } from '../helpers/wait.ts';
import { DRAIN_TIMEOUT_MS } from '../../src/cluster/recovery.ts';

const TIMEOUT_MS = 60_000;
/** Engine.IO's defaults: a client that answers no ping is dropped after this. */
const PING_TIMEOUT_MS = 25_000 + 20_000;
/** Slack over the drain deadline for a loaded machine (still well under the ping timeout). */
const SLACK_MS = 10_000;
const BACKLOG = 4_000;
const LIVE_RATE = 500;

describe('a client stalled in its catch-up', { skip: redisMissing() }, () => {
  it('is cut within the drain deadline, then recovers with nothing missing', { timeout: 120_000 }, async (t) => {
    const redis = await RedisServer.start();
    // The publisher puts about 8 MB a second in the stream while the subscriber is away: no cap per client.
    const rig = await startRecoveryRig(redis.url, { streamBytesPerClient: 0 }, TIMEOUT_MS);
    const { nodes, publisher, subscriber } = rig;
    let flood: Flood | undefined;
    try {
      flood = new Flood(publisher, 'x'.repeat(100), LIVE_RATE);
      await sleep(500);
      const id = subscriber.socket.id as string;
      await subscriber.drop(TIMEOUT_MS);
      flood.pad = 'x'.repeat(4_000);
      flood.rate = 2_000;
      const away = flood.published;
      await until('a backlog of several pages', () => flood!.published - away >= BACKLOG, TIMEOUT_MS);
      flood.pad = 'x'.repeat(100);
      flood.rate = LIVE_RATE;
      let endStall = (): void => {};
      const stall = new Promise<void>((resolve) => (endStall = resolve));
      const since = Date.now();
      subscriber.comeBack(stall);
      const sockets = nodes[0].io.of('/').sockets;
      await until('the session restored', () => sockets.has(id), TIMEOUT_MS);
      await until('the stalled client cut', () => !sockets.has(id), PING_TIMEOUT_MS + SLACK_MS);
      const cutAfter = Date.now() - since;
      t.diagnostic(`cut after ${cutAfter} ms (drain deadline ${DRAIN_TIMEOUT_MS} ms, ping timeout ${PING_TIMEOUT_MS} ms)`);
      assert.ok(cutAfter < DRAIN_TIMEOUT_MS + SLACK_MS, `cut after ${cutAfter} ms, not within the drain deadline`);

      endStall();
      await until('subscriber back', () => subscriber.socket.connected, TIMEOUT_MS);
      await sleep(1_000);
      flood.stop();
      const last = flood.published - 1;
      await until(`subscriber reaches event ${last}`, () => subscriber.current().includes(last), TIMEOUT_MS);
      // socket.io-client 4.x keeps the events of a connection that closed before it handled them and
      // emits them on the next one, ahead of that one's backlog: the replays are the client's; what
      // counts here is that nothing is missing.
      const missing = subscriber.missing();
      const replays = subscriber.gaps().filter((gap) => gap.next <= gap.after).length;
      t.diagnostic(JSON.stringify({ published: flood.published, recovered: subscriber.recovered, fresh: subscriber.fresh, missing, replays }));
      assert.ok(subscriber.recovered >= 1, 'it recovered from the last event it got');
      assert.deepEqual(missing, [], 'no event missing under recovered: true');
    } finally {
      flood?.stop();
      await rig.close();
      await redis.stop();
    }
  });
});
