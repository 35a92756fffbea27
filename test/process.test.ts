/** The process (docs/configuration.md#settings): starting as `npm start` does, stopping on signals, failing clearly. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NAME, VERSION } from '../src/package-info.ts';
import { DEFAULT_SETTINGS, DURATION_UNITS, loadSettings, SETTING_NAMES, SIZE_UNITS, type Settings } from '../src/settings.ts';
import { notify, request, ROOT, spawnBroker } from './helpers/broker.ts';
import { connect, GENERATIONS, withTimeout } from './helpers/clients.ts';
import { pageText } from './helpers/docs.ts';

const dir = mkdtempSync(join(tmpdir(), 'spicy-process-'));

// Every test runs its own process on a port of its own: they run side by side, four at a time.
describe('the broker process', { concurrency: 4 }, () => {
  it('starts with PORT and HOST, logs one listening line, and serves every generation', async () => {
    const proc = spawnBroker({ PORT: '0', HOST: '127.0.0.1' });
    const url = await proc.ready;
    assert.match(proc.stdout(), new RegExp(`^${NAME} ${VERSION} listening on http://127\\.0\\.0\\.1:\\d+\\n$`));
    assert.deepEqual((await request(`${url}/`)).body, { ok: true, name: NAME, version: VERSION });
    const clients = await Promise.all(GENERATIONS.map((g) => connect(g, url)));
    await Promise.all(clients.map((c) => c.ack('join', 'support')));
    assert.deepEqual((await notify(url, 'report_ops', { error: 'x' })).body, { ok: true });
    for (const c of clients) assert.deepEqual(await c.receive('report_ops', 1), [{ error: 'x' }]);
    proc.child.kill('SIGTERM');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} closes connected clients and exits 0 within 10 s`, async () => {
      const proc = spawnBroker();
      const url = await proc.ready;
      const clients = await Promise.all(GENERATIONS.map((g) => connect(g, url, { transports: ['websocket'] })));
      const polling = await connect('v2', url, { transports: ['polling'] });
      const disconnected = [...clients, polling].map((c) => once(c.raw as unknown as NodeJS.EventEmitter, 'disconnect'));
      const started = Date.now();
      proc.child.kill(signal);
      assert.deepEqual(await proc.exited, { code: 0, signal: null });
      assert.ok(Date.now() - started < 10_000, `exited after ${Date.now() - started} ms`);
      await Promise.all(disconnected);
    });
  }

  it('reads flags as well as the environment', async () => {
    const proc = spawnBroker({ PORT: '1' }, ['--port', '0', '--host=127.0.0.1']);
    const url = await proc.ready;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(url, 'http://127.0.0.1:1');
    proc.child.kill('SIGTERM');
    assert.equal((await proc.exited).code, 0);
  });

  it('prints usage for --help: every flag, its variable, its default and its meaning', async () => {
    const proc = spawnBroker({}, ['--help']);
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
    const out = proc.stdout();
    assert.match(out, /^usage: spicy-action/);
    for (const flag of ['--port', '--host', '--buses', '--cors-origins', '--redis', '--token']) assert.ok(out.includes(flag), flag);
    assert.equal(SETTING_NAMES.length, Object.keys(DEFAULT_SETTINGS).length, 'one help row per setting');
    for (const { env, flag, shown, help } of SETTING_NAMES) {
      assert.ok(out.includes(`  ${flag} (${env})\n      ${help}; default: ${shown}\n`), `${flag} with its default and meaning`);
    }
    assert.ok(out.includes(`durations take ${DURATION_UNITS.join(', ')}`) && out.includes(`sizes take ${SIZE_UNITS.join(', ')}`));
    assert.match(out, /DEBUG= logs nothing/);
    assert.equal(proc.stderr(), '');
  });

  it('--help prints no password given in the environment', async () => {
    const secret = 'pw-help-7c1e';
    const proc = spawnBroker({ REDIS_SENTINELS: '127.0.0.1:1', REDIS_PASSWORD: secret, REDIS_SENTINEL_PASSWORD: secret }, ['--help']);
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
    assert.match(proc.stdout(), /--redis-password-file \(REDIS_PASSWORD_FILE\)/);
    assert.ok(!proc.stdout().includes(secret) && !proc.stderr().includes(secret));
  });

  it('--help shows the defaults the broker really uses', () => {
    const defaults = DEFAULT_SETTINGS as unknown as Record<string, unknown>;
    // A path beside the package, or unset.
    const notValues = new Set(['BUSES_FILE', 'REDIS_URL', 'BROKER_TOKEN', 'CREDENTIALS_FILE', 'REDIS_SENTINELS', 'REDIS_PASSWORD_FILE', 'REDIS_SENTINEL_PASSWORD_FILE', 'TRUST_PROXY']);
    for (const { env, shown } of SETTING_NAMES) {
      if (notValues.has(env)) continue;
      const read = loadSettings([], { [env]: shown }) as unknown as Record<string, unknown>;
      assert.deepEqual(read, defaults, `${env}=${shown} is the default`);
    }
    assert.match(SETTING_NAMES.find((s) => s.env === 'BUSES_FILE')!.shown, /buses\.json/);
  });

  for (const flag of ['--version', '-v']) {
    it(`prints the version for ${flag}`, async () => {
      const proc = spawnBroker({}, [flag]);
      assert.deepEqual(await proc.exited, { code: 0, signal: null });
      assert.equal(proc.stdout(), `${VERSION}\n`);
      assert.equal(proc.stderr(), '');
    });
  }

  it('logs spicy-action:* by default, and nothing with DEBUG= (empty)', async () => {
    const run = async (env: Record<string, string>): Promise<string> => {
      const proc = spawnBroker(env);
      const url = await proc.ready;
      const client = await connect('v4', url);
      client.close();
      proc.child.kill('SIGTERM');
      assert.deepEqual(await proc.exited, { code: 0, signal: null });
      return proc.stderr();
    };
    const [byDefault, none, narrowed] = await Promise.all([run({}), run({ DEBUG: '' }), run({ DEBUG: 'spicy-action:main' })]);
    assert.match(byDefault, /spicy-action:broker .*connect/);
    assert.doesNotMatch(byDefault, /spicy-action:audit/, 'no line per routed event by default');
    assert.equal(none, '');
    assert.match(narrowed, /spicy-action:main SIGTERM: closing/);
    assert.doesNotMatch(narrowed, /spicy-action:broker/);
  });
});

describe('refused pushes are logged', () => {
  it('logs every refused /_notify body in one line naming the message: not JSON, not an object, too deep', async () => {
    const proc = spawnBroker({ MAX_PAYLOAD_DEPTH: '2' });
    const url = await proc.ready;
    const post = (msg: string, body: string): Promise<number> =>
      fetch(`${url}/_notify/${msg}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body }).then((res) => res.status);
    assert.equal(await post('call', '[1]'), 400);
    assert.equal(await post('call_state', '"x"'), 400);
    assert.equal(await post('report_ops', '{'), 400);
    assert.equal(await post('script_register', '{"a":{"b":{"c":1}}}'), 400);
    proc.child.kill('SIGTERM');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
    const lines = proc.stderr().split('\n');
    for (const logged of [
      /spicy-action:notify refused call: 400 body must be a JSON object/,
      /spicy-action:notify refused call_state: 400 body must be a JSON object/,
      /spicy-action:notify refused report_ops: 400 body is not valid JSON/,
      /spicy-action:notify refused script_register: 400 .*deep/,
    ]) {
      assert.equal(lines.filter((line) => logged.test(line)).length, 1, `${logged} in:\n${proc.stderr()}`);
    }
  });
});

describe('start-up failures print one line and exit non-zero', { concurrency: 4 }, () => {
  async function fails(env: Record<string, string>, args: string[], line: RegExp): Promise<void> {
    const proc = spawnBroker(env, args);
    const { code } = await proc.exited;
    assert.notEqual(code, 0);
    assert.equal(proc.stdout(), '', 'nothing on stdout');
    const lines = proc.stderr().split('\n').filter(Boolean);
    assert.equal(lines.length, 1, `one line on stderr, got: ${proc.stderr()}`);
    assert.match(lines[0]!, line);
  }

  it('when the port is taken', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const { port } = taken.address() as { port: number };
    try {
      await fails({ PORT: String(port) }, [], new RegExp(`^spicy-action: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE$`));
    } finally {
      taken.close();
    }
  });

  it('when the address cannot be used', async () => {
    await fails({ HOST: '192.0.2.1' }, [], /^spicy-action: cannot listen on 192\.0\.2\.1:0: EADDRNOTAVAIL$/);
  });

  it('when the bus file is missing', async () => {
    const missing = join(dir, 'missing.json');
    await fails({ BUSES_FILE: missing }, [], new RegExp(`^spicy-action: bus file ${missing}: cannot be read \\(ENOENT\\)$`));
  });

  it('when the bus file is malformed', async () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{"private_buses": ["calls",]}');
    await fails({}, ['--buses', file], new RegExp(`^spicy-action: bus file ${file}: not valid JSON`));
  });

  it('when the bus file holds a bad list', async () => {
    const file = join(dir, 'bad-list.json');
    writeFileSync(file, '{"host_buses": "traces"}');
    await fails({ BUSES_FILE: file }, [], /^spicy-action: bus file .*: host_buses must be an array of bus names$/);
  });

  it('when a setting is bad', async () => {
    await fails({ PORT: 'eighty' }, [], /^spicy-action: PORT: expected a whole number, got "eighty"$/);
  });

  it("when a duration is past what Node's timers hold", async () => {
    await fails({}, ['--redis-outage-grace', '600h'], /^spicy-action: --redis-outage-grace: expected a duration from 0ms to 2147483647ms \(the longest delay Node's timers hold\), got "600h"$/);
  });

  it('when a flag is unknown', async () => {
    await fails({}, ['--verbose'], /^spicy-action: unknown argument "--verbose" \(try --help\)$/);
  });
});

describe('units of durations and sizes', () => {
  const SIZES: Record<string, number> = { b: 1, kb: 1_000, mb: 1_000_000, gb: 1_000_000_000, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };
  const DURATIONS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

  it('reads every size unit, in either case', () => {
    assert.deepEqual([...SIZE_UNITS].sort(), Object.keys(SIZES).sort());
    for (const [unit, factor] of Object.entries(SIZES)) {
      assert.equal(loadSettings(['--recovery-backlog-bytes', `2${unit}`], {}).recoveryBacklogBytes, 2 * factor, unit);
      assert.equal(loadSettings([], { MAX_BUFFERED_BYTES: `3${unit.toUpperCase()}` }).maxBufferedBytes, 3 * factor, unit.toUpperCase());
    }
    assert.equal(loadSettings([], { MAX_MESSAGE_BYTES: '1.5kb' }).maxMessageBytes, 1_500);
    assert.equal(loadSettings([], { MAX_MESSAGE_BYTES: '4096' }).maxMessageBytes, 4096, 'a bare size is bytes');
  });

  it('reads every duration unit', () => {
    assert.deepEqual([...DURATION_UNITS].sort(), Object.keys(DURATIONS).sort());
    for (const [unit, factor] of Object.entries(DURATIONS)) {
      assert.equal(loadSettings(['--recovery-window', `2${unit}`], {}).recoveryWindowMs, 2 * factor, unit);
    }
    assert.equal(loadSettings([], { REDIS_OUTAGE_GRACE: '45' }).redisOutageGraceMs, 45_000, 'a bare duration is seconds');
  });

  it('refuses an unknown unit, naming the setting', () => {
    assert.throws(() => loadSettings([], { MAX_BODY_BYTES: '2tb' }), /^SettingsError: MAX_BODY_BYTES: expected a size such as/);
    assert.throws(() => loadSettings(['--recovery-window', '1d'], {}), /^SettingsError: --recovery-window: expected a duration such as/);
  });

  it('docs/configuration.md documents every unit', () => {
    const readme = pageText('docs/configuration.md');
    const start = readme.indexOf('## Settings');
    assert.ok(start >= 0, 'docs/configuration.md has a Settings section');
    const section = readme.slice(start, readme.indexOf('\n## ', start + 1)).replace(/\s+/g, ' ');
    const sizes = /Sizes take ([\s\S]*?)\(a bare number is bytes\)/.exec(section);
    const durations = /Durations take ([\s\S]*?)\(a bare number is seconds\)/.exec(section);
    assert.ok(sizes && durations, 'the Settings section names the units');
    const listed = (text: string): string[] => [...text.matchAll(/`([a-z]+)`/g)].map((m) => m[1]!);
    assert.deepEqual(listed(sizes[1]!).sort(), [...SIZE_UNITS].sort());
    assert.deepEqual(listed(durations[1]!).sort(), [...DURATION_UNITS].sort());
  });
});

describe('npm start', { concurrency: 4 }, () => {
  /** The pids of `pid`'s children, from /proc. */
  function children(pid: number): number[] {
    const pids: number[] = [];
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (text) pids.push(...text.split(/\s+/).map(Number));
    }
    return pids;
  }
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`passes ${signal} to the broker: it closes, frees its port, and npm exits 0`, async () => {
      const npm = spawn('npm', ['start', '--silent'], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', PORT: '0', HOST: '127.0.0.1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      npm.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
      npm.stderr!.resume();
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        npm.once('exit', (code, sig) => resolve({ code, signal: sig })),
      );
      const url = await withTimeout(
        new Promise<string>((resolve) => {
          const check = (): void => {
            const match = /listening on (http:\/\/\S+)/.exec(out);
            if (match) resolve(match[1]!);
          };
          npm.stdout!.on('data', check);
        }),
        'npm start to listen',
        30_000,
      );
      // Everything npm started, so that a broker left behind is found and then cleaned up.
      const descendants: number[] = [];
      const walk = (pid: number): void => {
        for (const child of children(pid)) {
          descendants.push(child);
          walk(child);
        }
      };
      walk(npm.pid!);
      assert.ok(descendants.length > 0, 'npm started the broker');
      after(() => descendants.filter(alive).forEach((pid) => process.kill(pid, 'SIGKILL')));
      assert.equal((await request(`${url}/health`)).status, 200);

      npm.kill(signal);
      assert.deepEqual(await withTimeout(exited, 'npm to exit', 15_000), { code: 0, signal: null });
      assert.deepEqual(descendants.filter(alive), [], 'no process left behind');
      await assert.rejects(fetch(`${url}/health`), 'the port is closed');
    });
  }
});
