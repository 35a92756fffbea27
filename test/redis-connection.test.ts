/**
 * How the broker reaches Redis (docs/cluster.md): the
 * ioredis arguments in URL and Sentinel mode, the description logs show
 * (never a password), and a Redis Cluster node refused at start in one line.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { Redis, SentinelConnector as IoredisSentinelConnector, type RedisOptions } from 'ioredis';
import { BACKOFF_MAX_MS, BACKOFF_STEP_MS, backoffMs } from '../src/cluster/backoff.ts';
import { createRedis, describeRedis, DISCONNECT_TIMEOUT_MS, redisArguments, redisConfigured, SteadyRedis } from '../src/cluster/redis-connection.ts';
import { otherSentinels, primaryAddress } from '../src/cluster/sentinel-answer.ts';
import { passwordRefusal, SentinelConnector, SentinelRoundError } from '../src/cluster/sentinel-connector.ts';
import { StartError } from '../src/server.ts';
import { DEFAULT_SETTINGS, Secret, type Settings } from '../src/settings.ts';
import { startBroker } from './helpers/broker.ts';
import { freePort, RedisServer, redisMissing } from './helpers/redis.ts';
import { FakeSentinel } from './helpers/fake-sentinel.ts';
import { sleep, until } from './helpers/wait.ts';
import { RedisProcess } from './helpers/sentinel.ts';

const PASSWORD = 'pw-4b1d-never-shown';
const SENTINELS = [
  { host: '10.0.0.5', port: 26379 },
  { host: 'fd00::6', port: 26380 },
];

describe('Redis connection settings', () => {
  const base = { maxRetriesPerRequest: null, connectionName: 'spicy-action' } satisfies RedisOptions;

  it('is off without a URL or Sentinels, on with either', () => {
    assert.equal(redisConfigured(DEFAULT_SETTINGS), false);
    assert.equal(redisConfigured({ ...DEFAULT_SETTINGS, redisUrl: 'redis://h' }), true);
    assert.equal(redisConfigured({ ...DEFAULT_SETTINGS, redisSentinels: SENTINELS }), true);
  });

  it('gives the URL and the options in URL mode, with the password kept out of the URL when given apart', () => {
    assert.deepEqual(redisArguments({ ...DEFAULT_SETTINGS, redisUrl: 'redis://10.0.0.5:6379/2' }, base), ['redis://10.0.0.5:6379/2', base]);
    const [, options] = redisArguments({ ...DEFAULT_SETTINGS, redisUrl: 'redis://10.0.0.5', redisPassword: new Secret(PASSWORD) }, base);
    assert.equal(options?.password, PASSWORD);
    assert.equal(options?.maxRetriesPerRequest, null);
  });

  it('gives Sentinels, the primary name and both passwords in Sentinel mode, following failovers', () => {
    const settings: Settings = {
      ...DEFAULT_SETTINGS,
      redisSentinels: SENTINELS,
      redisSentinelName: 'calls',
      redisPassword: new Secret(PASSWORD),
      redisSentinelPassword: new Secret(`${PASSWORD}-s`),
    };
    const args = redisArguments(settings, base);
    assert.equal(args.length, 1);
    const [options] = args;
    assert.deepEqual(options.sentinels, SENTINELS);
    assert.notEqual(options.sentinels, SENTINELS, 'a copy ioredis may extend');
    assert.equal(options.name, 'calls');
    assert.equal(options.password, PASSWORD);
    assert.equal(options.sentinelPassword, `${PASSWORD}-s`);
    assert.notEqual(options.failoverDetector, true, 'no second reconnection at the switch announcement: one down, one up per failover');
    assert.equal(options.Connector, SentinelConnector, "the broker's own Sentinel connector, which never gives up");
    assert.equal(options.connectionName, 'spicy-action');
    assert.equal(options.reconnectOnError?.(new Error("READONLY You can't write against a read only replica.")), 2, 'a write on the old primary reconnects and is resent');
    assert.equal(options.reconnectOnError?.(new Error('ERR wrong number of arguments')), false);
  });

  it('refuses a URL and Sentinels together, and nothing at all', () => {
    assert.throws(() => redisArguments({ ...DEFAULT_SETTINGS, redisUrl: 'redis://h', redisSentinels: SENTINELS }, base), /exclusive/);
    assert.throws(() => redisArguments(DEFAULT_SETTINGS, base), /no Redis configured/);
  });

  it('gives every connection, duplicates included, a short disconnect: nothing is left to send when the broker disconnects', () => {
    const client = createRedis({ ...DEFAULT_SETTINGS, redisUrl: 'redis://127.0.0.1:1' }, { lazyConnect: true });
    const reader = client.duplicate();
    assert.equal(client.options.disconnectTimeout, DISCONNECT_TIMEOUT_MS);
    assert.equal(reader.options.disconnectTimeout, DISCONNECT_TIMEOUT_MS);
    assert.ok(DISCONNECT_TIMEOUT_MS < 2_000, "shorter than ioredis's own 2 s");
    client.disconnect();
    reader.disconnect();
  });

  it('describes Redis for logs without user or password', () => {
    assert.equal(describeRedis({ ...DEFAULT_SETTINGS, redisUrl: `redis://admin:${PASSWORD}@10.0.0.5:6379/2` }), 'redis://10.0.0.5:6379/2');
    assert.equal(describeRedis({ ...DEFAULT_SETTINGS, redisUrl: `rediss://:${PASSWORD}@redis.example.net` }), 'rediss://redis.example.net');
    const sentinel = describeRedis({ ...DEFAULT_SETTINGS, redisSentinels: SENTINELS, redisPassword: new Secret(PASSWORD), redisSentinelPassword: new Secret(PASSWORD) });
    assert.equal(sentinel, 'primary mymaster of Sentinels 10.0.0.5:26379, [fd00::6]:26380');
  });
});

describe("a Sentinel's answers", () => {
  it('gives an address only for [host, port] with a port from 1 to 65535, and a reason for anything else', () => {
    assert.deepEqual(primaryAddress(['10.0.0.7', '6379']), { address: { host: '10.0.0.7', port: 6379 } });
    assert.deepEqual(primaryAddress(['fd00::7', '65535']), { address: { host: 'fd00::7', port: 65_535 } });
    assert.deepEqual(primaryAddress(null), { unusable: 'knows no primary of that name' });
    assert.deepEqual(primaryAddress([]), { unusable: 'answered [] instead of [host, port]' });
    assert.deepEqual(primaryAddress(['10.0.0.7', 'abc']), { unusable: 'answered ["10.0.0.7","abc"]: the port is not a number from 1 to 65535' });
    for (const port of ['0', '65536', '70000', '-1', '6379.5', ' 6379', '']) assert.ok('unusable' in primaryAddress(['10.0.0.7', port]), port);
    for (const host of ['', 'a b', 'x'.repeat(300), 7]) assert.ok('unusable' in primaryAddress([host, '6379']), String(host));
    assert.ok('unusable' in primaryAddress('OK'));
    assert.ok('unusable' in primaryAddress(['10.0.0.7', '6379', 'extra']));
    const long = (primaryAddress(['\n\u0007'.repeat(200)]) as { unusable: string }).unusable;
    assert.ok(long.length < 200 && !/[\n\u0007]/.test(long), `quoted short, on one line: ${long}`);
  });

  it('never throws, and gives only addresses Node accepts, whatever the answer (seeded)', () => {
    const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
    const answer = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, fc.constant(null), fc.string(), fc.integer(), fc.constantFrom('6379', '0', '65536', '127.0.0.1', '::1'), fc.array(tie('value'), { maxLength: 3 })),
    })).value;
    fc.assert(
      fc.property(answer, (reply) => {
        const read = primaryAddress(reply);
        if ('address' in read) {
          assert.ok(Number.isInteger(read.address.port) && read.address.port >= 1 && read.address.port <= 65_535);
          assert.ok(typeof read.address.host === 'string' && read.address.host.length > 0);
        } else {
          assert.doesNotMatch(read.unusable, /[\n\r]/);
        }
      }),
      { seed, numRuns: 500 },
    );
    console.log(`# Sentinel answers: seed ${seed}`);
  });

  it('learns of the other Sentinels, leaving out the disconnected and the unusable', () => {
    const entry = (ip: unknown, port: unknown, flags = 'sentinel'): unknown[] => ['name', 'x', 'ip', ip, 'port', port, 'flags', flags];
    assert.deepEqual(otherSentinels([entry('10.0.0.6', '26379'), entry('10.0.0.8', '26379', 'sentinel,disconnected'), entry('10.0.0.9', 'x'), 'junk']), [{ host: '10.0.0.6', port: 26_379 }]);
    assert.deepEqual(otherSentinels(null), []);
  });

  it('takes a refused password as final, from Redis or from every Sentinel, and nothing else', () => {
    assert.equal(passwordRefusal(new Error('WRONGPASS invalid username-password pair or user is disabled.')), 'Redis refuses the password (REDIS_PASSWORD)');
    assert.equal(passwordRefusal(new Error('Ready check failed: NOAUTH Authentication required.')), 'Redis refuses the password (REDIS_PASSWORD)');
    assert.equal(passwordRefusal(new Error('connect ECONNREFUSED 127.0.0.1:6379')), undefined);
    assert.equal(passwordRefusal(new SentinelRoundError('no Sentinel named a primary (WRONGPASS...)', false)), undefined, 'some Sentinel did not refuse it');
    assert.equal(passwordRefusal(new SentinelRoundError('no Sentinel named a primary', true)), 'every Sentinel refuses the password (REDIS_SENTINEL_PASSWORD)');
  });

  it('backs off in steps, up to a ceiling, and always retries', () => {
    assert.equal(backoffMs(1), BACKOFF_STEP_MS);
    assert.equal(backoffMs(2), 2 * BACKOFF_STEP_MS);
    assert.equal(backoffMs(1e9), BACKOFF_MAX_MS);
    assert.equal(backoffMs(Number.NaN), BACKOFF_STEP_MS);
    assert.equal(backoffMs(0), BACKOFF_STEP_MS);
  });
});

describe('a steady Redis client', { skip: redisMissing() }, () => {
  it('waits before reporting a failed stream read, so that a read loop cannot spin', async () => {
    const client = new SteadyRedis({ host: '127.0.0.1', port: await freePort(), lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => 50 });
    client.on('error', () => {});
    after(() => client.disconnect());
    assert.ok(client.duplicate({ lazyConnect: true }) instanceof SteadyRedis, 'duplicates are steady too');
    let reads = 0;
    const started = Date.now();
    // A loop as the Streams adapter's: read again at once when a read fails (here: the connection is not open).
    while (Date.now() - started < 500) {
      await client.xread('BLOCK', 10, 'STREAMS', 'k', '$').catch(() => undefined);
      reads++;
    }
    assert.ok(reads < 20, `${reads} failed reads in 0.5 s`);
  });

  it('connects again by itself after ioredis ended the connection, unless closed by its owner', async () => {
    const redis = await RedisServer.start();
    const sentinel = await FakeSentinel.start([]);
    // ioredis's own Sentinel connector ends the connection for good on an address Node refuses.
    const client = new SteadyRedis({ sentinels: [{ host: '127.0.0.1', port: sentinel.port }], name: 'mymaster', Connector: IoredisSentinelConnector as unknown as RedisOptions['Connector'], sentinelRetryStrategy: () => 50 });
    let ended = 0;
    client.on('error', () => {});
    client.on('end', () => ended++);
    after(() => client.disconnect());
    await until('ioredis ends the connection', () => ended > 0);
    sentinel.primary = ['127.0.0.1', String(redis.port)];
    await until('the client is ready again', () => client.status === 'ready');
    assert.equal(await client.ping(), 'PONG');
    client.disconnect();
    await sleep(300);
    assert.equal(client.status, 'end', 'closed by its owner: stays closed');
  });
});

describe('a refused password', { skip: redisMissing() }, () => {
  it('fails the start at once, saying so, without waiting out REDIS_CONNECT_TIMEOUT', async () => {
    const redis = await RedisServer.start();
    const admin = new Redis(redis.url);
    admin.on('error', () => {});
    await admin.config('SET', 'requirepass', PASSWORD);
    admin.disconnect();
    const cases: [string, Secret | undefined, RegExp][] = [
      ['a wrong password', new Secret(`${PASSWORD}-wrong`), /: Redis refuses the password \(REDIS_PASSWORD\): WRONGPASS/],
      ['no password', undefined, /: Redis refuses the password \(REDIS_PASSWORD\): .*NOAUTH/],
    ];
    for (const [what, redisPassword, message] of cases) {
      const started = Date.now();
      await assert.rejects(startBroker({ redisUrl: redis.url, redisPassword, redisConnectTimeoutMs: 60_000 }), (error: unknown) => {
        assert.ok(error instanceof StartError, what);
        assert.match(error.message, message, what);
        assert.ok(!error.message.includes(PASSWORD), `${what}: no password in the message`);
        return true;
      });
      const took = Date.now() - started;
      assert.ok(took < 30_000, `${what}: failed after ${took} ms, not after the 60 s REDIS_CONNECT_TIMEOUT`);
    }
  });
});

describe('Redis Cluster', { skip: redisMissing() }, () => {
  it('is refused at start in one line that says so and points to Sentinel', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spicy-action-redis-cluster-'));
    const port = await freePort();
    const conf = join(dir, 'redis.conf');
    writeFileSync(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'save ""', 'appendonly no', 'cluster-enabled yes', `cluster-config-file ${join(dir, 'nodes.conf')}`].join('\n'));
    const server = new RedisProcess(port, conf, false);
    after(async () => {
      await server.kill();
      rmSync(dir, { recursive: true, force: true });
    });
    await server.start(/Ready to accept connections/);

    await assert.rejects(startBroker({ redisUrl: `redis://127.0.0.1:${port}`, redisConnectTimeoutMs: 5_000 }), (error: unknown) => {
      assert.ok(error instanceof StartError);
      assert.match(error.message, new RegExp(`^Redis at redis://127\\.0\\.0\\.1:${port} is a Redis Cluster node \\(cluster_enabled:1\\): Redis Cluster is not supported.*REDIS_SENTINELS`));
      assert.doesNotMatch(error.message, /\n/);
      return true;
    });
  });
});
