/**
 * docs/cluster.md#when-redis-fails: exact recovery at the trim edge. Two
 * nodes, the smallest stream the settings accept (`REDIS_STREAM_MAXLEN`
 * 1,000), a 4.x subscriber on one node, a publisher on the other. Redis trims
 * the stream approximately, a whole radix-tree node at a time
 * (`stream-node-max-entries`, set here to 3,000, with no byte limit per node: the stream then holds 1,000
 * to 4,000 entries, and each trim drops the oldest 3,000 at once).
 *
 * The subscriber drops just after a trim (its offset is among the oldest
 * entries), stays away for more than two pages of backlog, comes back and
 * stops reading during its catch-up while the publisher goes on until the
 * next trim drops its offset and the floor of its catch-up. It must come back
 * `recovered: false` or get every event, in order: never `recovered: true`
 * with a gap.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisServer, redisMissing } from '../helpers/redis.ts';
import { Flood, startRecoveryRig } from '../helpers/recovering.ts';
import { sleep, until } from '../helpers/wait.ts';

const TIMEOUT_MS = 30_000;
const STREAM = 'spicy-action:events';
/** The smallest REDIS_STREAM_MAXLEN the settings accept. */
const SMALLEST_STREAM = 1_000;
/** Entries per radix-tree node of the stream: what one approximate trim drops. */
const NODE_ENTRIES = 4_000;
/** Backlog the subscriber comes back to: three pages (RESTORE_PAGE is 1,000), all in the oldest node once the next trim is near. */
const BACKLOG = 3_000;
/** Events per second while the subscriber is connected, and while it is away or stalled. */
const SLOW = 300;
const FAST = 1_500;
/** Small events while the subscriber reads; large ones in its backlog, so that two pages fill the connection's buffers. */
/** Time given to the node to restore the session before the flood resumes. */
const RESTORE_MS = 300;
const SMALL = 'x'.repeat(100);
const LARGE = 'x'.repeat(4_000);

describe('exact recovery at the trim edge', { skip: redisMissing() }, () => {
  it('never answers recovered: true with a gap when the stream trims past the offset and the floor during the catch-up', async (t) => {
    const redis = await RedisServer.start();
    const admin = new Redis(redis.url);
    admin.on('error', () => {});
    await admin.config('SET', 'stream-node-max-entries', String(NODE_ENTRIES));
    await admin.config('SET', 'stream-node-max-bytes', '0');
    // The publisher puts about 8 MB a second in the stream while the subscriber is away: no cap per client.
    const rig = await startRecoveryRig(redis.url, { streamMaxLen: SMALLEST_STREAM, streamBytesPerClient: 0 }, TIMEOUT_MS);
    const { publisher, subscriber } = rig;
    let flood: Flood | undefined;
    try {
      flood = new Flood(publisher, SMALL, FAST);
      const oldest = async (): Promise<string | undefined> => ((await admin.xrange(STREAM, '-', '+', 'COUNT', 1)) as [string, string[]][])[0]?.[0];
      // Just after a trim: the subscriber's offset will be among the oldest entries.
      let before = await oldest();
      await until('a trim', async () => {
        const now = await oldest();
        const trimmed = before !== undefined && now !== before;
        before = now;
        return trimmed;
      }, TIMEOUT_MS);
      await subscriber.drop(TIMEOUT_MS);
      flood.pad = LARGE;
      const away = flood.published;
      await until('a backlog of more than two pages', () => flood!.published - away >= BACKLOG, TIMEOUT_MS);
      flood.pad = SMALL;
      const back = flood.published;
      let endStall = (): void => {};
      const stall = new Promise<void>((resolve) => (endStall = resolve));
      // Slowly while the node restores the session (its offset is still there), then fast until the next trim.
      flood.rate = SLOW;
      subscriber.comeBack(stall);
      const stalledAt = Date.now();
      await sleep(RESTORE_MS);
      flood.rate = FAST;
      // Until the next trim has dropped the subscriber's offset and the floor of its catch-up.
      const stallFrom = before;
      await until('the next trim', async () => (await oldest()) !== stallFrom, TIMEOUT_MS);
      await sleep(200);
      flood.rate = SLOW;
      const duringStall = [...subscriber.sessions.values()].reduce((n, seqs) => n + seqs.length, 0);
      endStall();
      await until('subscriber connected again', () => subscriber.socket.connected, TIMEOUT_MS);
      await sleep(1_000);
      flood.stop();
      const last = flood.published - 1;
      await until(`subscriber reaches event ${last}`, () => subscriber.current().includes(last), TIMEOUT_MS);
      // A session told recovered: true must have every event from its first on. (A fresh session can miss
      // what its node's reader lost to a trim: that is not a recovery, and the node counts it.)
      const gaps = subscriber.gaps().filter((gap) => subscriber.recoveredSessions.has(gap.session));
      t.diagnostic(JSON.stringify({ away, back, duringStall, stallMs: Date.now() - stalledAt, published: flood.published, recovered: subscriber.recovered, fresh: subscriber.fresh, sessions: subscriber.sessions.size, gaps: gaps.slice(0, 5), gapCount: gaps.length }));
      assert.deepEqual(gaps, [], 'no gap under recovered: true');
    } finally {
      flood?.stop();
      admin.disconnect();
      await rig.close();
      await redis.stop();
    }
  });
});
