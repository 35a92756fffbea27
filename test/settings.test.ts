/** Settings from the environment and flags (README.md#settings). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_SETTINGS, loadSettings, SettingsError } from '../src/settings.ts';

describe('settings', () => {
  it('defaults to 127.0.0.1:3000, the repository buses.json, any origin, no Redis, no token', () => {
    const s = loadSettings([], {});
    assert.equal(s.port, 3000);
    assert.equal(s.host, '127.0.0.1');
    assert.match(s.busesFile, /\/buses\.json$/);
    assert.equal(s.corsOrigins, '*');
    assert.equal(s.redisUrl, undefined);
    assert.equal(s.token, undefined);
    assert.equal(s.maxBodyBytes, 1_000_000);
    assert.deepEqual(s, DEFAULT_SETTINGS);
  });

  it('reads environment variables, and flags win over them', () => {
    const s = loadSettings(['--port', '4100', '--host=0.0.0.0'], { PORT: '4000', HOST: '::1', BUSES_FILE: '/etc/b.json' });
    assert.equal(s.port, 4100);
    assert.equal(s.host, '0.0.0.0');
    assert.equal(s.busesFile, '/etc/b.json');
  });

  it('reads durations and sizes with units', () => {
    const s = loadSettings(['--recovery-window', '2m', '--max-body-bytes', '2mb'], { REDIS_OUTAGE_GRACE: '500ms', MAX_BUFFERED_BYTES: '1MiB' });
    assert.equal(s.recoveryWindowMs, 120_000);
    assert.equal(s.redisOutageGraceMs, 500);
    assert.equal(s.maxBodyBytes, 2_000_000);
    assert.equal(s.maxBufferedBytes, 1024 * 1024);
    assert.equal(loadSettings([], { REDIS_CONNECT_TIMEOUT: '45' }).redisConnectTimeoutMs, 45_000, 'a bare duration is seconds');
  });

  it('splits CORS origins, and * means any', () => {
    assert.deepEqual(loadSettings([], { CORS_ORIGINS: 'https://a.example.net, https://b.example.net' }).corsOrigins, [
      'https://a.example.net',
      'https://b.example.net',
    ]);
    assert.equal(loadSettings([], { CORS_ORIGINS: '*' }).corsOrigins, '*');
  });

  it('ignores empty environment variables', () => {
    assert.equal(loadSettings([], { PORT: '' }).port, 3000);
  });

  const bad: [string, string[], Record<string, string>, RegExp][] = [
    ['a port that is not a number', [], { PORT: 'http' }, /^PORT: expected a whole number/],
    ['a port out of range', ['--port', '70000'], {}, /^--port: expected a number from 0 to 65535/],
    ['an unknown flag', ['--prot', '1'], {}, /unknown argument "--prot"/],
    ['a flag without value', ['--port'], {}, /--port needs a value/],
    ['a malformed Redis URL', [], { REDIS_URL: 'localhost:6379' }, /^REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL/],
    ['a Redis URL that is not a URL', [], { REDIS_URL: 'not a url' }, /^REDIS_URL: expected a URL/],
    ['a duration with an unknown unit', [], { RECOVERY_WINDOW: '2 weeks' }, /^RECOVERY_WINDOW: expected a duration/],
    ['a size that is not one', ['--max-body-bytes', 'big'], {}, /^--max-body-bytes: expected a size/],
    ['an origin that is not a URL', [], { CORS_ORIGINS: 'admin' }, /^CORS_ORIGINS: expected origins/],
    ['an empty token flag', ['--token', ' '], {}, /^--token: expected a value/],
  ];
  for (const [what, argv, env, message] of bad) {
    it(`refuses ${what}, naming the setting`, () => {
      assert.throws(() => loadSettings(argv, env), (error: unknown) => {
        assert.ok(error instanceof SettingsError);
        assert.match(error.message, message);
        assert.doesNotMatch(error.message, /\n/, 'one line');
        return true;
      });
    });
  }
});
