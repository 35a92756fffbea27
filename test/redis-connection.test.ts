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
import type { RedisOptions } from 'ioredis';
import { describeRedis, redisArguments, redisConfigured } from '../src/cluster/redis-connection.ts';
import { StartError } from '../src/server.ts';
import { DEFAULT_SETTINGS, Secret, type Settings } from '../src/settings.ts';
import { startBroker } from './helpers/broker.ts';
import { freePort, redisMissing } from './helpers/redis.ts';
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
    assert.equal(options.connectionName, 'spicy-action');
    assert.equal(options.reconnectOnError?.(new Error("READONLY You can't write against a read only replica.")), 2, 'a write on the old primary reconnects and is resent');
    assert.equal(options.reconnectOnError?.(new Error('ERR wrong number of arguments')), false);
  });

  it('refuses a URL and Sentinels together, and nothing at all', () => {
    assert.throws(() => redisArguments({ ...DEFAULT_SETTINGS, redisUrl: 'redis://h', redisSentinels: SENTINELS }, base), /exclusive/);
    assert.throws(() => redisArguments(DEFAULT_SETTINGS, base), /no Redis configured/);
  });

  it('describes Redis for logs without user or password', () => {
    assert.equal(describeRedis({ ...DEFAULT_SETTINGS, redisUrl: `redis://admin:${PASSWORD}@10.0.0.5:6379/2` }), 'redis://10.0.0.5:6379/2');
    assert.equal(describeRedis({ ...DEFAULT_SETTINGS, redisUrl: `rediss://:${PASSWORD}@redis.example.net` }), 'rediss://redis.example.net');
    const sentinel = describeRedis({ ...DEFAULT_SETTINGS, redisSentinels: SENTINELS, redisPassword: new Secret(PASSWORD), redisSentinelPassword: new Secret(PASSWORD) });
    assert.equal(sentinel, 'primary mymaster of Sentinels 10.0.0.5:26379, [fd00::6]:26380');
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
