/**
 * Secrets stay out of what is printed (docs/security.md#what-is-logged): the pure
 * redaction of src/redact.ts, then the real processes, `spicy-action` and
 * `spicy-action tail`, given secrets in the ways operators get them wrong.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { processSecrets, quoteArgument, REDACTED, redactText, redactUrl } from '../src/redact.ts';
import { loadSettings, SettingsError } from '../src/settings.ts';
import { ROOT } from './helpers/broker.ts';
import { withTimeout } from './helpers/clients.ts';
import { freePort } from './helpers/ports.ts';

/** Secrets drawn from characters no scheme, host or path below uses, so "not in the output" means hidden. */
const secretArb = fc
  .string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ!$()+,;:/@#?%'), minLength: 1, maxLength: 24 })
  .filter((s) => /[A-Z]/.test(s));
const hostArb = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,20}(:\d{1,5})?$/);
const pathArb = fc.stringMatching(/^(\/[a-z0-9._-]{0,10}){0,3}$/);

describe('redactUrl', () => {
  it('hides the user information, whatever its characters and whether the URL parses', () => {
    fc.assert(
      fc.property(fc.constantFrom('redis', 'rediss', 'http', 'https'), fc.string({ unit: fc.constantFrom(...'abcdefgh'), maxLength: 8 }), secretArb, hostArb, pathArb, (scheme, user, password, host, path) => {
        const out = redactUrl(`${scheme}://${user}:${password}@${host}${path}`);
        assert.equal(out, `${scheme}://${REDACTED}@${host}${path}`);
        assert.ok(!out.includes(password));
      }),
    );
  });

  it('hides secret query parameters and keeps the others', () => {
    fc.assert(
      fc.property(hostArb, fc.constantFrom('token', 'TOKEN', 'access_token', 'password', 'secret'), secretArb.filter((s) => !/[&#@]/.test(s)), (host, name, value) => {
        const out = redactUrl(`http://${host}/?room=calls&${name}=${value}&json=1`);
        assert.equal(out, `http://${host}/?room=calls&${name}=${REDACTED}&json=1`);
      }),
    );
  });

  it('leaves a URL without secrets as it was', () => {
    for (const url of ['http://127.0.0.1:3000', 'redis://redis.example.net:6379/0', 'https://broker.example.net/?room=calls']) {
      assert.equal(redactUrl(url), url);
    }
  });
});

describe('redactText', () => {
  it('hides every known secret, wherever it stands in any text', () => {
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }).filter((s) => !REDACTED.includes(s)), fc.string(), (before, secret, after) => {
        const out = redactText(`${before}${secret}${after}${secret}`, [secret]);
        assert.ok(!out.includes(secret), JSON.stringify(out));
      }),
    );
  });

  it('hides the credentials of URLs and token pairs in a sentence, and keeps the rest', () => {
    assert.equal(redactText('cannot reach http://notify:s3cret@broker:3000/_notify (refused)'), `cannot reach http://${REDACTED}@broker:3000/_notify (refused)`);
    assert.equal(redactText('BROKER_TOKEN=s3cret token=s3cret&x=1'), `BROKER_TOKEN=${REDACTED} token=${REDACTED}&x=1`);
    assert.equal(redactText('listening on http://127.0.0.1:3000'), 'listening on http://127.0.0.1:3000');
  });

  it('withholds the whole line when the redaction itself would spell a secret', () => {
    const secret = `//${REDACTED}@h`;
    assert.ok(!redactText('x://u@h', [secret]).includes(secret));
  });
});

describe('quoteArgument', () => {
  it('quotes a flag by its name, never what follows =', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^--?[a-z][a-z-]{0,15}$/), fc.string(), (flag, value) => {
        assert.equal(quoteArgument(`${flag}=${value}`), JSON.stringify(flag));
      }),
    );
  });

  it('does not quote a value that follows no flag', () => {
    fc.assert(fc.property(fc.string().filter((s) => !s.startsWith('-') || s === '-'), (value) => assert.equal(quoteArgument(value), undefined)));
  });
});

describe('processSecrets', () => {
  it('finds the tokens and the URL passwords of the command line and the environment', () => {
    assert.deepEqual(
      processSecrets(['--port', '3000', '--token', 'flag-token', '--redis=redis://default:p%40ss@r:6379'], { BROKER_TOKEN: 'env-token', REDIS_URL: 'redis://:env-pw@r' }).sort(),
      ['env-pw', 'env-token', 'flag-token', 'p%40ss', 'p@ss'].sort(),
    );
    assert.deepEqual(processSecrets(['--url', 'http://broker/?token=t0k'], {}), ['t0k']);
  });
});

describe('settings errors', () => {
  const cases: [string, string[], Record<string, string>, string][] = [
    ['a mistyped flag with its value after =', ['--tokn=s3cret'], {}, 's3cret'],
    ['a value that follows no flag', ['--host', '--token', 's3cret'], {}, 's3cret'],
    ['an unparseable Redis URL', [], { REDIS_URL: 'redis://:s3cr/et@redis.example.net:99999' }, 's3cr/et'],
    ['an unparseable Redis URL in a flag', ['--redis', 'redis://user:s3cret@[::1'], {}, 's3cret'],
    ['an origin with a password', [], { CORS_ORIGINS: 'https://admin:s3cret@' }, 's3cret'],
  ];
  for (const [what, argv, env, secret] of cases) {
    it(`refuse ${what} without quoting the secret`, () => {
      assert.throws(() => loadSettings(argv, env), (error: unknown) => {
        assert.ok(error instanceof SettingsError);
        assert.ok(!error.message.includes(secret), error.message);
        return true;
      });
    });
  }

  it('still name the flag that is wrong', () => {
    assert.throws(() => loadSettings(['--tokn=s3cret'], {}), /^SettingsError: unknown argument "--tokn" \(try --help\)$/);
    assert.throws(() => loadSettings(['--host', 'h', 's3cret'], {}), /argument 3 is not a flag/);
  });
});

/** Runs `node --import tsx src/main.ts ...args` to its end (or `ms`), with `env` only. */
async function run(args: string[], env: Record<string, string> = {}, ms = 20_000): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const timer = setTimeout(() => child.kill('SIGINT'), ms);
  const code = await withTimeout(exited, `spicy-action ${args.join(' ')}`, ms + 10_000);
  clearTimeout(timer);
  return { code, out };
}

// Each test runs processes of its own, to their end: they run side by side.
describe('the real process prints no secret', { concurrency: true }, () => {
  it('for a mistyped --tokn=s3cret', async () => {
    const { code, out } = await run(['--tokn=s3cret']);
    assert.equal(code, 1);
    assert.match(out, /^spicy-action: unknown argument "--tokn" \(try --help\)\n$/);
  });

  it('for a secret left without its flag, and for a bad REDIS_URL with a password', async () => {
    const [stray, redis] = await Promise.all([run(['--host', '--token', 's3cret']), run([], { REDIS_URL: 'redis://default:s3cr3t-pw@redis.example.net:99999' })]);
    assert.equal(stray.code, 1);
    assert.doesNotMatch(stray.out, /s3cret/);
    assert.equal(redis.code, 1);
    assert.match(redis.out, /^spicy-action: REDIS_URL: expected a URL such as redis:\/\/127\.0\.0\.1:6379, got "redis:\/\/\*\*\*@redis\.example\.net:99999"\n$/);
  });

  it('for any failure line that happens to quote the token (here, through the bus file path)', async () => {
    const { code, out } = await run(['--buses', '/nonexistent/env-s3cret.json'], { BROKER_TOKEN: 'env-s3cret' });
    assert.equal(code, 1);
    assert.match(out, /^spicy-action: bus file \/nonexistent\/\*\*\*\.json: /);
    assert.doesNotMatch(out, /s3cret/);
  });

  it('for tail with a token in its URL, to a broker it cannot reach', async () => {
    const port = await freePort();
    const url = `http://notify:pw-s3cret@127.0.0.1:${port}/?token=query-s3cret`;
    const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'tail', '--url', url, '--token', 'flag-s3cret', 'calls'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', DEBUG: 'spicy-action:*' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    await withTimeout(
      new Promise<void>((resolve) => {
        const check = (): void => void (out.includes('retrying') && resolve());
        proc.stderr.on('data', check);
        check();
      }),
      'tail to say it cannot reach the broker',
      20_000,
    );
    proc.kill('SIGINT');
    await withTimeout(exited, 'tail to stop', 10_000);
    assert.match(out, new RegExp(`tail: cannot reach http://\\*\\*\\*@127\\.0\\.0\\.1:${port}/\\?token=\\*\\*\\* `));
    assert.doesNotMatch(out, /s3cret/);
  });
});
