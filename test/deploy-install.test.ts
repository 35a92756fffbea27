/**
 * The production install and the upgrade runbook (`npm run test:deploy`), run
 * as written from a fresh `git clone` of this repository (its committed HEAD):
 * the install leaves a built, pruned release in which `node dist/main.js`,
 * `npx spicy-action` and `npx spicy-action tail` run without building, no
 * install or npx command deletes anything, and a second release installed
 * beside a running broker costs none of its requests until the restart.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VERSION } from '../src/package-info.ts';
import { notify, request, ROOT } from './helpers/broker.ts';
import { block } from './helpers/docs.ts';
import { serve, shell, type Outcome, type Served } from './helpers/served.ts';
import { sleep, until } from './helpers/wait.ts';

/** The production install (docs/production.md, step 2): a new release directory, built, pruned, and named `next`. */
const INSTALL = block('docs/production.md', 'production-install').text;
/** The switch to the release `next` names, and the restart. */
const SWITCH = block('docs/production.md', 'production-switch').text;
/** Back to the release before. */
const ROLLBACK = block('docs/production.md', 'production-rollback').text;

const UNIT = readFileSync(join(ROOT, 'deploy', 'spicy-action.service'), 'utf8');
const INSTALL_TIMEOUT_MS = 240_000;
/** Between two rounds of the loading client: a browser reloading the monitor page, many times a second. */
const LOAD_PAUSE_MS = 20;
const REQUEST_TIMEOUT_MS = 5_000;
/** What the monitor page loads first: the page, and the Socket.IO client the broker serves. */
const LOADED = ['/monitor', '/socket.io/socket.io.min.js'];

/** A unit's directive, as written. */
function directive(key: string): string {
  const value = new RegExp(`^${key}=(.*)$`, 'm').exec(UNIT)?.[1];
  assert.ok(value, `the unit has ${key}`);
  return value;
}

/** A documented block with this machine's paths: the repository, and a temp directory for /opt/spicy-action. */
function localScript(block: string, repository: string, base: string): string {
  return block.replaceAll('<this repository>', repository).replaceAll('/opt/spicy-action', base);
}

function assertSucceeded(what: string, outcome: Outcome): void {
  assert.equal(outcome.code, 0, `${what} exited ${outcome.code}:\n${outcome.stdout}\n${outcome.stderr}`);
}

/** What `systemctl restart` starts: the unit's ExecStart in its WorkingDirectory, with the base moved. */
function startUnit(base: string, env: Record<string, string>): Served {
  const [node, ...args] = directive('ExecStart').replaceAll('/opt/spicy-action', base).split(' ');
  assert.equal(node, '/usr/bin/node');
  return serve(process.execPath, args, directive('WorkingDirectory').replaceAll('/opt/spicy-action', base), env);
}

/** Every file under `dir` with its inode and modification time: what a build or an install would change. */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else {
        const stat = statSync(path);
        files.set(path, `${stat.ino}:${stat.mtimeMs}`);
      }
    }
  };
  walk(dir);
  return files;
}

/** A client that keeps loading the monitor page and its script, and notes each failure with its time. */
class Loader {
  ok = 0;
  readonly failures: { at: number; path: string; error: string }[] = [];
  #running = true;
  readonly #done: Promise<void>;

  constructor(readonly base: string) {
    this.#done = this.#loop();
  }

  async #loop(): Promise<void> {
    while (this.#running) {
      for (const path of LOADED) {
        const at = Date.now();
        try {
          const res = await fetch(`${this.base}${path}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
          await res.arrayBuffer();
          if (res.status === 200) this.ok++;
          else this.failures.push({ at, path, error: `status ${res.status}` });
        } catch (error) {
          // When it failed, not when it was sent: a request in flight as the old process stops fails within the restart.
          this.failures.push({ at: Date.now(), path, error: String((error as Error).cause ?? error) });
        }
      }
      await sleep(LOAD_PAUSE_MS);
    }
  }

  stop(): Promise<void> {
    this.#running = false;
    return this.#done;
  }
}

/** /opt/spicy-action on this machine: the install below, then the upgrade from it. */
const base = mkdtempSync(join(tmpdir(), 'spicy-install-'));
after(() => rmSync(base, { recursive: true, force: true }));

describe('the production install, from a fresh clone', () => {
  const current = join(base, 'current');
  let release: string;
  let dist: Map<string, string>;

  before(async () => {
    const install = await shell(localScript(INSTALL, ROOT, base), base);
    assertSucceeded('the install', install);
    assert.deepEqual(install.stdout.trim().split('\n').slice(-2), [VERSION, VERSION], 'node dist/main.js and npx spicy-action print the version');
    assertSucceeded('the switch', await shell(localScript(SWITCH, ROOT, base).replace(/^systemctl .*$/m, ''), base));
    release = realpathSync(current);
    dist = snapshot(join(release, 'dist'));
  }, { timeout: INSTALL_TIMEOUT_MS });

  it('leaves a release without the build tools, current pointing to it', () => {
    assert.match(release, /\/releases\/\d{8}-\d{6}$/);
    assert.ok(existsSync(join(current, 'dist', 'main.js')));
    for (const tool of ['typescript', 'tsx']) assert.ok(!existsSync(join(release, 'node_modules', tool)), `${tool} is pruned`);
    assert.ok(!existsSync(join(base, 'next')), 'next became current');
  });

  it('runs npx spicy-action, and npx spicy-action tail, there without building', async () => {
    const broker = serve('npx', ['spicy-action'], current, { PORT: '0', HOST: '127.0.0.1' });
    const url = await broker.url;
    assert.equal((await request(`${url}/health`)).body.version, VERSION);
    const tail = serve('npx', ['spicy-action', 'tail', '--url', url, 'support'], current);
    await until('tail to watch support', () => tail.stderr().includes('watching support'), 60_000);
    assert.deepEqual((await notify(url, 'report_ops', { msg: 'through tail' })).body, { ok: true });
    await until('tail to print the event', () => tail.stdout().includes('report_ops support {"msg":"through tail"}'), 30_000);
    // Ctrl-C, and a SIGTERM, to npx and what it runs: npx ends with the signal, the command on its own.
    tail.signal('SIGINT');
    await tail.exited;
    await until('tail to end', () => tail.groupEnded());
    assert.doesNotMatch(tail.stderr(), /Error|at .*\.js:\d+/);
    broker.signal('SIGTERM');
    await broker.exited;
    await until('the broker to end', () => broker.groupEnded(), 20_000);
    assert.match(broker.stderr(), /SIGTERM: closing/);
    assert.deepEqual(snapshot(join(release, 'dist')), dist, 'dist/ is as the build left it');
  });

  it('says what to run when dist/ is missing, and builds nothing', async () => {
    const saved = join(release, 'dist.saved');
    renameSync(join(release, 'dist'), saved);
    try {
      const run = await shell('npx spicy-action --version', release);
      assert.equal(run.code, 1);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /dist\/main\.js is missing: this copy is not built\. In a clone of the repository run `npm ci && npm run build`/);
      assert.ok(!existsSync(join(release, 'dist')), 'nothing was built');
    } finally {
      renameSync(saved, join(release, 'dist'));
    }
  });

  it('keeps dist/ when a build fails: without TypeScript, then with a type error', async () => {
    const noTools = await shell('npm run build', release);
    assert.notEqual(noTools.code, 0);
    assert.match(noTools.stderr, /build: TypeScript \(a dev dependency\) is not installed: run `npm ci` without --omit=dev first; dist\/ is left as it was/);
    assert.deepEqual(snapshot(join(release, 'dist')), dist);

    assertSucceeded('npm ci', await shell('npm ci', release));
    writeFileSync(join(release, 'src', 'broken.ts'), 'export const broken: number = "not a number";\n');
    try {
      const typeError = await shell('npm run build', release);
      assert.notEqual(typeError.code, 0);
      assert.match(typeError.stdout, /src\/broken\.ts.*error TS2322/);
      assert.match(typeError.stderr, /build: tsc exited with 2; dist\/ is left as it was/);
    } finally {
      rmSync(join(release, 'src', 'broken.ts'));
    }
    assert.deepEqual(snapshot(join(release, 'dist')), dist);
    assert.deepEqual(readdirSync(release).filter((name) => name.startsWith('.dist-')), [], 'no staging directory is left behind');
  });

  it('survives npm ci && npm prune --omit=dev && npx spicy-action --version in place', async () => {
    const run = await shell('npm ci && npm prune --omit=dev && npx spicy-action --version && node dist/main.js --version', release);
    assertSucceeded('the commands', run);
    assert.equal(run.stdout.trim().split('\n').slice(-2).join(','), `${VERSION},${VERSION}`);
    assert.deepEqual(snapshot(join(release, 'dist')), dist, 'dist/ is untouched');
  });
});

describe('an upgrade: a new release installed beside the running broker, the switch and the restart, then a rollback', () => {
  const NEXT_VERSION = `${VERSION}-next`;

  /** A block that ends with `systemctl restart spicy-action`: its commands, then the restart as systemd makes it. */
  async function switchAndRestart(script: string, running: Served, port: string): Promise<{ restarted: Served; stopping: number; listening: number }> {
    const lines = script.trim().split('\n');
    assert.equal(lines.at(-1), 'systemctl restart spicy-action', 'the block ends with the restart');
    assertSucceeded('the switch', await shell(lines.slice(0, -1).join('\n'), base));
    // systemd: SIGTERM, wait for the process to end, start ExecStart again.
    const stopping = Date.now();
    running.signal('SIGTERM');
    assert.deepEqual(await running.exited, { code: 0, signal: null });
    const restarted = startUnit(base, { PORT: port, HOST: '127.0.0.1' });
    await restarted.url;
    return { restarted, stopping, listening: Date.now() };
  }

  it('serves every request while the new release installs and current switches; only the restarts refuse, until the new process listens', { timeout: 2 * INSTALL_TIMEOUT_MS }, async () => {
    const first = realpathSync(join(base, 'current'));
    const running = startUnit(base, { PORT: '0', HOST: '127.0.0.1' });
    const url = await running.url;
    const port = new URL(url).port;
    const page = await request(`${url}/monitor`);
    assert.match(page.body, /<script src="[^"]*socket\.io\.min\.js"/, 'the monitor page loads the Socket.IO client');

    // The new version: this repository with a version of its own, so that each restart shows which one runs.
    const next = join(base, 'source-next');
    mkdirSync(next);
    assertSucceeded(
      'the next version',
      await shell(
        `git clone -q ${ROOT} . && node -e '
          const fs = require("fs");
          for (const f of ["package.json", "package-lock.json"]) {
            const p = JSON.parse(fs.readFileSync(f, "utf8"));
            p.version = "${NEXT_VERSION}";
            if (p.packages) p.packages[""].version = "${NEXT_VERSION}";
            fs.writeFileSync(f, JSON.stringify(p, null, 2) + "\\n");
          }' && git -c user.name=test -c user.email=test@localhost commit -qam "${NEXT_VERSION}"`,
        next,
      ),
    );

    const loader = new Loader(url);
    const install = await shell(localScript(INSTALL, next, base), base);
    assertSucceeded('the install of the next version', install);
    assert.equal(install.stdout.trim().split('\n').at(-1), NEXT_VERSION);
    const installed = { ok: loader.ok, failures: loader.failures.length };
    assert.deepEqual([...loader.failures], [], 'no failed request while the new release installs');
    assert.ok(installed.ok >= 100, `the client kept loading (${installed.ok} answers)`);
    assert.equal((await request(`${url}/health`)).body.version, VERSION, 'the running broker is still the old version');

    const upgrade = await switchAndRestart(localScript(SWITCH, next, base), running, port);
    assert.equal((await request(`${url}/health`)).body.version, NEXT_VERSION);
    const okAfterUpgrade = loader.ok;
    await until('the client to load the page again', () => loader.ok >= okAfterUpgrade + 2 * LOADED.length, 20_000);

    const rollback = await switchAndRestart(localScript(ROLLBACK, next, base).replaceAll('<previous>', basename(first)), upgrade.restarted, port);
    assert.equal((await request(`${url}/health`)).body.version, VERSION, 'back to the version before');
    assert.equal(realpathSync(join(base, 'current')), first);
    const okAfterRollback = loader.ok;
    await until('the client to load the page again', () => loader.ok >= okAfterRollback + 2 * LOADED.length, 20_000);
    await loader.stop();

    const windows = [upgrade, rollback];
    for (const failure of loader.failures) {
      assert.ok(
        windows.some((w) => failure.at >= w.stopping && failure.at <= w.listening),
        `a failure outside the restarts: ${JSON.stringify(failure)}`,
      );
    }
    const errors = [...new Set(loader.failures.map((f) => f.error))].join('; ');
    console.log(
      `upgrade: ${installed.ok} answers while the next release installed, none failed; restarts: ` +
        `${windows.map((w) => `${w.listening - w.stopping} ms`).join(' and ')} from SIGTERM to the new process listening, ` +
        `${loader.failures.length} requests refused then (${errors})`,
    );
    rollback.restarted.signal('SIGTERM');
    await rollback.restarted.exited;
  });
});
