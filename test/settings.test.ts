/** Settings from the environment and flags (docs/configuration.md#settings). */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { after, describe, it } from 'node:test';
import { REDACTED } from '../src/redact.ts';
import { brokerRequest, DEFAULT_SETTINGS, loadSettings, MAX_TEXT_BYTES, MAX_TIMER_MS, Secret, SettingsError } from '../src/settings.ts';

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

  it('trusts no proxy by default, and reads TRUST_PROXY as addresses and CIDR blocks', () => {
    assert.deepEqual(loadSettings([], {}).trustProxy, []);
    assert.deepEqual(loadSettings(['--trust-proxy', '10.0.0.5,10.0.1.0/24'], {}).trustProxy, ['10.0.0.5', '10.0.1.0/24']);
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
    ['a proxy that is not an address', [], { TRUST_PROXY: '10.0.0.5,haproxy' }, /^TRUST_PROXY: expected addresses or CIDR blocks .*"haproxy"/],
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

describe('settings in range', () => {
  const DURATIONS = ['REDIS_CONNECT_TIMEOUT', 'REDIS_OUTAGE_GRACE', 'REDIS_TIMEOUT', 'RECOVERY_WINDOW'];
  const TEXT_SIZES = ['MAX_MESSAGE_BYTES', 'MAX_BODY_BYTES'];
  const COUNTED_SIZES = ['MAX_BUFFERED_BYTES', 'RECOVERY_BACKLOG_BYTES'];
  const refused = (env: Record<string, string>, argv: string[], message: RegExp): void => {
    assert.throws(() => loadSettings(argv, env), (error: unknown) => {
      assert.ok(error instanceof SettingsError);
      assert.match(error.message, message);
      assert.doesNotMatch(error.message, /\n/, 'one line');
      return true;
    });
  };

  it("takes every duration up to the longest delay Node's timers hold, and refuses a millisecond more", () => {
    for (const name of DURATIONS) {
      assert.equal((loadSettings([], { [name]: `${MAX_TIMER_MS}ms` }) as unknown as Record<string, number>)[keyOf(name)], MAX_TIMER_MS, name);
      refused({ [name]: `${MAX_TIMER_MS + 1}ms` }, [], new RegExp(`^${name}: expected a duration from 0ms to 2147483647ms \\(the longest delay Node's timers hold\\), got "2147483648ms"$`));
    }
    refused({}, ['--redis-outage-grace', '600h'], /^--redis-outage-grace: expected a duration from 0ms to 2147483647ms .*got "600h"$/);
    refused({}, ['--redis-connect-timeout=600h'], /^--redis-connect-timeout: expected a duration from 0ms to 2147483647ms/);
    refused({ RECOVERY_WINDOW: '9'.repeat(400) }, [], /^RECOVERY_WINDOW: expected a duration from 0ms to/);
  });

  it('takes a message or body size up to the longest string Node holds, and a counted size up to the largest exact whole number', () => {
    for (const name of TEXT_SIZES) {
      assert.equal((loadSettings([], { [name]: `${MAX_TEXT_BYTES}` }) as unknown as Record<string, number>)[keyOf(name)], MAX_TEXT_BYTES, name);
      refused({ [name]: `${MAX_TEXT_BYTES + 1}` }, [], new RegExp(`^${name}: expected a size from 0b to ${MAX_TEXT_BYTES}b \\(the longest string Node holds\\), got`));
    }
    refused({}, ['--max-body-bytes', '1gb'], /^--max-body-bytes: expected a size from 0b to \d+b/);
    for (const name of COUNTED_SIZES) {
      assert.equal((loadSettings([], { [name]: '4gib' }) as unknown as Record<string, number>)[keyOf(name)], 4 * 1024 ** 3, name);
      refused({ [name]: '9999999999gib' }, [], new RegExp(`^${name}: expected a size from 0b to ${Number.MAX_SAFE_INTEGER}b`));
    }
  });

  it('refuses a whole number past its range, quoting it as written', () => {
    refused({ PORT: '9'.repeat(400) }, [], /^PORT: expected a number from 0 to 65535, got 9{400}$/);
    refused({ REDIS_STREAM_MAXLEN: '999' }, [], /^REDIS_STREAM_MAXLEN: expected a number from 1000 to 1000000000, got 999$/);
  });
});

/** The settings key of an environment variable, as the settings table pairs them. */
function keyOf(env: string): string {
  const keys: Record<string, string> = {
    REDIS_CONNECT_TIMEOUT: 'redisConnectTimeoutMs',
    REDIS_OUTAGE_GRACE: 'redisOutageGraceMs',
    REDIS_TIMEOUT: 'redisTimeoutMs',
    RECOVERY_WINDOW: 'recoveryWindowMs',
    MAX_MESSAGE_BYTES: 'maxMessageBytes',
    MAX_BODY_BYTES: 'maxBodyBytes',
    MAX_BUFFERED_BYTES: 'maxBufferedBytes',
    RECOVERY_BACKLOG_BYTES: 'recoveryBacklogBytes',
  };
  return keys[env] as string;
}

describe('Redis Sentinel and password settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'spicy-action-settings-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const PASSWORD = 'pw-9f3a-not-for-logs';
  const file = (name: string, content: string): string => {
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    return path;
  };

  it('reads Sentinels as host:port, a bracketed IPv6 host, or a host alone (port 26379), and the primary name', () => {
    const s = loadSettings(['--redis-sentinel-name', 'calls'], { REDIS_SENTINELS: '10.0.0.5:26380, sentinel-b ,[fd00::7]:26381' });
    assert.deepEqual(s.redisSentinels, [
      { host: '10.0.0.5', port: 26380 },
      { host: 'sentinel-b', port: 26379 },
      { host: 'fd00::7', port: 26381 },
    ]);
    assert.equal(s.redisSentinelName, 'calls');
    assert.equal(s.redisUrl, undefined);
    assert.equal(loadSettings([], { REDIS_SENTINELS: '10.0.0.5:26379' }).redisSentinelName, 'mymaster', 'the name Redis examples use');
  });

  it('reads each password from its variable or from a file (one trailing newline dropped), as a Secret', () => {
    const fromEnv = loadSettings([], { REDIS_SENTINELS: 'a:1', REDIS_PASSWORD: PASSWORD, REDIS_SENTINEL_PASSWORD: `${PASSWORD}-s` });
    assert.ok(fromEnv.redisPassword instanceof Secret);
    assert.equal(fromEnv.redisPassword.reveal(), PASSWORD);
    assert.equal(fromEnv.redisSentinelPassword?.reveal(), `${PASSWORD}-s`);
    const fromFiles = loadSettings(['--redis-sentinel-password-file', file('sentinel', `${PASSWORD}-s\n`)], {
      REDIS_SENTINELS: 'a:1',
      REDIS_PASSWORD_FILE: file('redis', `${PASSWORD}\r\n`),
    });
    assert.equal(fromFiles.redisPassword?.reveal(), PASSWORD);
    assert.equal(fromFiles.redisSentinelPassword?.reveal(), `${PASSWORD}-s`);
    const withUrl = loadSettings([], { REDIS_URL: 'redis://10.0.0.5:6379', REDIS_PASSWORD: PASSWORD });
    assert.equal(withUrl.redisPassword?.reveal(), PASSWORD, 'a password kept out of the URL');
  });

  it('never prints a password: String, JSON, util.inspect of the settings all show ***', () => {
    const s = loadSettings([], { REDIS_SENTINELS: 'a:1', REDIS_PASSWORD: PASSWORD, REDIS_SENTINEL_PASSWORD: PASSWORD });
    for (const shown of [`${s.redisPassword}`, JSON.stringify(s), inspect(s, { depth: 5, showHidden: true }), inspect(s.redisSentinelPassword)]) {
      assert.ok(!shown.includes(PASSWORD), shown);
    }
    assert.ok(JSON.stringify(s).includes(REDACTED));
  });

  const refused: [string, string[], Record<string, string>, RegExp][] = [
    ['REDIS_URL with REDIS_SENTINELS', [], { REDIS_URL: 'redis://10.0.0.5', REDIS_SENTINELS: 'a:1' }, /^REDIS_URL and REDIS_SENTINELS are exclusive/],
    ['--redis with --redis-sentinels', ['--redis', 'redis://h', '--redis-sentinels', 'a:1'], {}, /^--redis and --redis-sentinels are exclusive/],
    ['a Sentinel without a host', [], { REDIS_SENTINELS: ':26379' }, /^REDIS_SENTINELS: expected Sentinels such as/],
    ['a Sentinel port out of range', [], { REDIS_SENTINELS: 'a:1,b:99999' }, /^REDIS_SENTINELS: expected Sentinels .*"b:99999"/],
    ['no Sentinel at all', ['--redis-sentinels', ' , '], {}, /^--redis-sentinels: expected Sentinels/],
    ['a password twice (variable and file)', [], { REDIS_SENTINELS: 'a:1', REDIS_PASSWORD: PASSWORD, REDIS_PASSWORD_FILE: '/x' }, /^REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set/],
    ['a password twice (variable and flag)', ['--redis-sentinel-password-file', '/x'], { REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_PASSWORD: PASSWORD }, /^REDIS_SENTINEL_PASSWORD and --redis-sentinel-password-file are both set/],
    ['a password twice (URL and variable)', [], { REDIS_URL: `redis://:${PASSWORD}@h:6379`, REDIS_PASSWORD: `${PASSWORD}2` }, /^REDIS_URL holds a password and REDIS_PASSWORD another/],
    ['a password without Redis', [], { REDIS_PASSWORD: PASSWORD }, /^REDIS_PASSWORD is set, but no Redis is/],
    ['a Sentinel password without Sentinels', [], { REDIS_URL: 'redis://h', REDIS_SENTINEL_PASSWORD: PASSWORD }, /^REDIS_SENTINEL_PASSWORD is set, but REDIS_SENTINELS is not/],
    ['a missing password file', [], { REDIS_SENTINELS: 'a:1', REDIS_PASSWORD_FILE: '/nonexistent/pw' }, /^REDIS_PASSWORD_FILE: cannot read the password file \/nonexistent\/pw \(ENOENT\)$/],
    ['an empty password file', [], { REDIS_SENTINELS: 'a:1', REDIS_PASSWORD_FILE: file('empty', '\n') }, /^REDIS_PASSWORD_FILE: the password file .* is empty$/],
    ['a malformed URL, without echoing its password', [], { REDIS_URL: `redis://:${PASSWORD}@bad host:6379` }, /^REDIS_URL: expected a URL .*\*\*\*@bad host/],
  ];
  for (const [what, argv, env, message] of refused) {
    it(`refuses ${what} in one line that holds no password`, () => {
      assert.throws(() => loadSettings(argv, env), (error: unknown) => {
        assert.ok(error instanceof SettingsError);
        assert.match(error.message, message);
        assert.doesNotMatch(error.message, /\n/, 'one line');
        assert.ok(!error.message.includes(PASSWORD), `no password in "${error.message}"`);
        return true;
      });
    });
  }

  it('names an unreadable password file without its content', () => {
    // A directory cannot be read as a file, by root either (a mode-000 file can).
    const path = file('locked', PASSWORD);
    const dir = `${path}.d`;
    mkdirSync(dir);
    assert.throws(() => loadSettings([], { REDIS_SENTINELS: 'a:1', REDIS_PASSWORD_FILE: dir }), /^SettingsError: REDIS_PASSWORD_FILE: cannot read the password file .* \(EISDIR\)$/);
  });
});

describe('what the command line asks for', () => {
  it('is the usage for --help or -h anywhere among the settings, the version for --version or -v, else to run', () => {
    assert.equal(brokerRequest([]), 'serve');
    assert.equal(brokerRequest(['--port', '4000']), 'serve');
    assert.equal(brokerRequest(['--help']), 'help');
    assert.equal(brokerRequest(['--port', '4000', '-h']), 'help');
    assert.equal(brokerRequest(['--version']), 'version');
    assert.equal(brokerRequest(['--port=4000', '-v']), 'version');
    assert.equal(brokerRequest(['-v', '--help']), 'help');
  });

  it('takes a setting\'s value as a value even when it looks like --help: the settings then judge it', () => {
    assert.equal(brokerRequest(['--host', '--help']), 'serve');
    assert.equal(brokerRequest(['--redis', '-v']), 'serve');
    assert.throws(() => loadSettings(['--port', '--help'], {}), SettingsError);
  });
});
