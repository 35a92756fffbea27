/**
 * deploy/spicy-action.service (`npm run test:deploy`): systemd itself checks
 * it (`systemd-analyze verify`, and `security` for its hardening), and it
 * keeps the promises docs/production.md makes about stopping and restarting.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DEFAULT_SETTINGS, SETTING_NAMES } from '../src/settings.ts';
import { ROOT } from './helpers/broker.ts';
import { pageText } from './helpers/docs.ts';

const UNIT = readFileSync(join(ROOT, 'deploy', 'spicy-action.service'), 'utf8');
const ENV_EXAMPLE = readFileSync(join(ROOT, 'deploy', 'env.example'), 'utf8');

/** Why the test cannot run here; under CI it must. */
function systemdMissing(): string | undefined {
  if (spawnSync('systemd-analyze', ['--version']).status === 0) return undefined;
  const reason = 'systemd-analyze not found: install the Debian package systemd to check the unit';
  if (process.env.CI) throw new Error(`${reason}; CI must run it`);
  return reason;
}

/** Every `Key=value` line of the unit, in order (a key may repeat). */
function directives(unit: string): [string, string][] {
  return unit
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#') && !line.startsWith('['))
    .map((line) => {
      const eq = line.indexOf('=');
      return [line.slice(0, eq), line.slice(eq + 1)];
    });
}

function value(key: string): string | undefined {
  return directives(UNIT).find(([k]) => k === key)?.[1];
}

/** Runs a command; resolves with its exit code and everything it printed. */
function outcome(command: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { env: { PATH: process.env.PATH ?? '', SYSTEMD_COLORS: '0' } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, output: `${stdout}${stderr}`.trim() });
    });
  });
}

describe('the systemd unit', { skip: systemdMissing() }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'spicy-systemd-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * The unit with its paths moved to this machine: systemd checks that
   * ExecStart's program exists, and /opt/spicy-action is not installed here.
   */
  function localCopy(): string {
    const envFile = join(dir, 'env');
    writeFileSync(envFile, ENV_EXAMPLE, { mode: 0o600 });
    const unit = UNIT.replaceAll('/usr/bin/node', process.execPath).replaceAll('/opt/spicy-action/current', ROOT).replaceAll('/etc/spicy-action/env', envFile);
    const file = join(dir, 'spicy-action.service');
    writeFileSync(file, unit);
    return file;
  }

  it('passes systemd-analyze verify without a word', async () => {
    const file = localCopy();
    const { code, output } = await outcome('systemd-analyze', ['verify', file]);
    assert.equal(output, '', 'systemd-analyze verify reports nothing');
    assert.equal(code, 0);
  });

  it('is hardened: systemd-analyze security rates its exposure at most 2.5 of 10', async () => {
    const file = localCopy();
    const { code, output } = await outcome('systemd-analyze', ['security', '--offline=true', '--threshold=25', file]);
    assert.equal(code, 0, output.split('\n').slice(-3).join('\n'));
    const score = /Overall exposure level for spicy-action\.service: ([\d.]+)/.exec(output);
    assert.ok(score && Number(score[1]) <= 2.5, `exposure ${score?.[1]}`);
  });

  it('runs the compiled entry of the release /opt/spicy-action/current points to, with its settings from a root-only file', () => {
    assert.equal(value('ExecStart'), '/usr/bin/node /opt/spicy-action/current/dist/main.js');
    assert.equal(value('WorkingDirectory'), '/opt/spicy-action/current');
    assert.equal(value('EnvironmentFile'), '/etc/spicy-action/env');
    assert.match(UNIT, /owned by root, mode 0600/);
    // dist/main.js is what the build makes of src/main.ts.
    const build = readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8');
    assert.match(build, /"rootDir": "src"/);
    assert.match(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8'), /"outDir": "dist"/);
  });

  it("stops with SIGTERM and waits longer than the broker's own shutdown timeout", () => {
    const main = readFileSync(join(ROOT, 'src', 'main.ts'), 'utf8');
    const timeout = /const SHUTDOWN_TIMEOUT_MS = ([\d_]+);/.exec(main);
    assert.ok(timeout, 'src/main.ts declares SHUTDOWN_TIMEOUT_MS');
    const brokerSeconds = Number(timeout[1]!.replaceAll('_', '')) / 1000;
    assert.equal(value('KillSignal'), 'SIGTERM');
    const stop = /^(\d+)s?$/.exec(value('TimeoutStopSec') ?? '');
    assert.ok(stop, 'TimeoutStopSec in seconds');
    assert.ok(Number(stop[1]) >= brokerSeconds + 5, `TimeoutStopSec=${stop[1]} leaves the broker its ${brokerSeconds} s and a margin`);
    assert.equal(value('Restart'), 'on-failure');
    // systemctl reload re-reads the credentials (SIGHUP); test/credentials-reload.test.ts holds the broker to it.
    assert.equal(value('ExecReload'), '/bin/kill -HUP $MAINPID');
  });

  it('has the hardening docs/production.md promises', () => {
    const expected: Record<string, string> = {
      DynamicUser: 'yes',
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
      CapabilityBoundingSet: '',
    };
    for (const [key, want] of Object.entries(expected)) assert.equal(value(key), want, key);
  });

  it('env.example sets only settings the broker knows', () => {
    const known = new Set([...SETTING_NAMES.flatMap((s) => (s.inlineEnv === undefined ? [s.env] : [s.env, s.inlineEnv])), 'DEBUG']);
    const names = [...ENV_EXAMPLE.matchAll(/^#?([A-Z_]+)=/gm)].map((m) => m[1]!);
    assert.ok(names.length >= 4, 'it shows the usual settings');
    for (const name of names) assert.ok(known.has(name), `${name} is a setting`);
    assert.equal(SETTING_NAMES.length, Object.keys(DEFAULT_SETTINGS).length);
  });

  it('matches docs/production.md', () => {
    const section = pageText('docs/production.md').replace(/\s+/g, ' ');
    assert.ok(section.includes(`It runs \`${value('ExecStart')}\``), 'the same ExecStart');
    assert.ok(section.includes(`gives it ${/^\d+/.exec(value('TimeoutStopSec') ?? '')?.[0]} s`), 'the same TimeoutStopSec');
    assert.ok(section.includes(value('EnvironmentFile')!), 'the same env file');
    // Redis Sentinel: the broker's settings, the password files as systemd credentials, and the test that runs it.
    for (const text of ['REDIS_SENTINELS=', 'REDIS_SENTINEL_NAME=', 'LoadCredential=redis-password:', 'REDIS_PASSWORD_FILE=%d/redis-password', 'test/deploy-sentinel.test.ts']) {
      assert.ok(section.includes(text), `the Sentinel setup shows ${text}`);
    }
  });
});
