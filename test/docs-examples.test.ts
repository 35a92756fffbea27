/**
 * The docs' blocks, run (docs/testing.md#docs-and-their-tests): the commands
 * and code of README.md and docs/*.md against real brokers, their shown
 * answers compared with the real ones, and the excerpts of deploy/ and of the
 * Redis setup compared with the files the deploy tests run.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { NAME, VERSION } from '../src/package-info.ts';
import { loadSettings, SETTING_NAMES } from '../src/settings.ts';
import { notify, request, ROOT, startBroker } from './helpers/broker.ts';
import { closeAll, connect, type TestClient } from './helpers/clients.ts';
import { block, commands, pageText, shownAnswers } from './helpers/docs.ts';
import { freePort } from './helpers/ports.ts';
import { redisMissing, RedisServer } from './helpers/redis.ts';
import { until } from './helpers/wait.ts';

const run = promisify(execFile);

/** The token of the guarded broker. */
const TOKEN = 'docs-token';
const [open_, guarded_] = await Promise.all([startBroker(), startBroker({ token: TOKEN })]);
/** A broker as `npm start` runs it, and one with a token. */
const url = open_.url;
const guarded = guarded_.url;

/** Where the docs' examples find the broker. */
const DOCS_URL = 'http://127.0.0.1:3000';
const ENV = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root' };

/** Runs a block as a shell script in the repository, the docs' broker address replaced by `url`. */
async function sh(text: string, url: string, env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await run('sh', ['-ec', text.replaceAll(DOCS_URL, url)], { cwd: ROOT, env: { ...ENV, ...env }, timeout: 30_000 });
  return stdout;
}

/** The JSON values of a text holding several, one after the other (what `curl -s` prints in a row). */
function jsonValues(text: string): unknown[] {
  const values: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth++ === 0) start = i;
    } else if ((c === '}' || c === ']') && --depth === 0) values.push(JSON.parse(text.slice(start, i + 1)));
  }
  return values;
}

/** A JavaScript literal of the docs, evaluated. */
function literal(text: string): unknown {
  return new Function(`return (${text.replace(/;\s*$/, '')});`)() as unknown;
}

/** The keys a shape of the docs names at its top level (`{ ok: true, name, version, ... }`). */
function shapeKeys(text: string): string[] {
  let depth = 0;
  let flat = '';
  for (const c of text) {
    if ('{[('.includes(c)) depth++;
    if (depth === 1 || (depth === 0 && !'}])'.includes(c))) flat += c;
    else if (depth === 2 && '{[('.includes(c)) flat += '…';
    if ('}])'.includes(c)) depth--;
  }
  return [...flat.matchAll(/[{,]\s*'?([\w:]+)'?\s*(?=[:,}])/g)].map((m) => m[1]!);
}

/**
 * Runs a client example as its own Node.js process (`node -e`, from the
 * repository so that it finds the packages), the docs' URL replaced.
 */
function runExample(code: string, url: string, module: boolean): { child: ChildProcess; stdout: () => string } {
  const args = module ? ['--input-type=module', '-e', code.replaceAll(DOCS_URL, url)] : ['-e', code.replaceAll(DOCS_URL, url)];
  const child = spawn(process.execPath, args, { cwd: ROOT, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  child.once('exit', (code) => {
    if (code) out += `\n(exited ${code}: ${err})`;
  });
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, stdout: () => out };
}

/** Runs a block that uses `socket` and `console.log` with a real socket, and resolves with what it logged. */
async function runWithSocket(code: string, client: TestClient, logs = 1): Promise<unknown[]> {
  const logged: unknown[] = [];
  new Function('socket', 'console', code)(client.raw, { log: (value: unknown) => logged.push(value) });
  await until(`${logs} lines logged by ${code.slice(0, 60)}`, () => logged.length >= logs);
  return logged;
}

/** What the comment after `console.log(...); //` says is logged, evaluated. */
function loggedInComment(code: string): unknown {
  const comment = /console\.log\([^)]*\)\)?;\s*\/\/\s*(.*)$/m.exec(code)?.[1];
  assert.ok(comment, 'the example says what it logs');
  return literal(comment);
}

describe('docs: the README', () => {
  const open: TestClient[] = [];
  after(() => closeAll(open));

  it('quick start: the commands are npm start and the test script', () => {
    const [start, test] = commands(block('README.md', 'quick-start').text);
    // `npm start` itself is run by test/process.test.ts; `npm test` is this suite.
    assert.equal(start, 'npm ci && npm start');
    assert.equal(test, 'npm test');
    const scripts = (JSON.parse(pageText('package.json')) as { scripts: Record<string, string> }).scripts;
    assert.match(scripts.test!, /tsx --test .*test/);
  });

  it('/_notify: the curl lines answer what they show, and the push reaches its bus and endpoint room', async () => {
    const [support, alice] = await Promise.all([connect('v4', url), connect('v2', url)]);
    open.push(support, alice);
    assert.equal(await support.ack('join', 'support'), true);
    assert.equal(await alice.ack('join', 'endpoint:alice@example.net'), true);
    const { text } = block('README.md', 'notify');
    assert.deepEqual(jsonValues(await sh(text, url)), shownAnswers(text));
    const body = { name: 'invalid_source', endpoint: 'alice@example.net', ip: '192.0.2.7' };
    assert.deepEqual(await support.receive('script_register', 1), [body]);
    assert.deepEqual(await alice.receive('script_register', 1), [body]);
    // docs/protocol.md shows the same push without a Content-Type.
    const endpoint = block('docs/protocol.md', 'notify-endpoint').text;
    assert.deepEqual(jsonValues(await sh(endpoint, url)), shownAnswers(endpoint));
    assert.deepEqual(await support.receive('script_register', 2), [body, body]);
  });

  it('register: logs what it shows, and the event then reaches its bus (README and docs/protocol.md)', async () => {
    const [server, placer] = await Promise.all([connect('v4', url), connect('v4', url)]);
    open.push(server, placer);
    for (const { text, page } of [block('README.md', 'register'), block('docs/protocol.md', 'protocol-register')]) {
      assert.deepEqual(await runWithSocket(text, server), [loggedInComment(text)], page);
    }
    assert.equal(await placer.ack('join', 'dial_calls'), true);
    server.emit('place-call', { destination: '33987654321' });
    assert.deepEqual(await placer.receive('place-call', 1), [{ destination: '33987654321' }]);
  });

  it('client 1.x: the OpenSIPS helper answers a location query into the endpoint room', async () => {
    const dashboard = await connect('v4', url);
    open.push(dashboard);
    assert.equal(await dashboard.ack('join', 'endpoint:alice@example.net'), true);
    const code = block('README.md', 'client-v1').text;
    assert.ok(code.includes("require('socket.io-client')"));
    runExample(code.replace("require('socket.io-client')", "require('socket.io-client-v1')"), url, false);
    // The helper joins `locations` once connected: ask until it answers.
    let asked = 0;
    await until(
      'the helper to answer',
      () => {
        if (Date.now() - asked > 300) {
          asked = Date.now();
          dashboard.emit('location', 'alice@example.net');
        }
        return dashboard.count('location:response') > 0;
      },
      20_000,
    );
    const [response] = dashboard.payloads('location:response') as { aor: string; _in: string[] }[];
    assert.equal(response!.aor, 'alice@example.net');
    assert.deepEqual(response!._in, ['endpoint:alice@example.net']);
  });

  it('client 2.x: the error reporter emits before it is connected, and the report reaches support', async () => {
    const support = await connect('v1', url);
    open.push(support);
    assert.equal(await support.ack('join', 'support'), true);
    const code = block('README.md', 'client-v2').text;
    assert.ok(code.includes("require('socket.io-client')"));
    runExample(code.replace("require('socket.io-client')", "require('socket.io-client-v2')"), url, false);
    const [report] = (await support.receive('report_ops', 1, 20_000)) as { msg: string; host: string; stamp: string }[];
    assert.equal(report!.msg, 'registrant failure');
    assert.ok(!Number.isNaN(Date.parse(report!.stamp)));
  });

  it('client 4.x: the dashboard joins with an ack, and prints the calls of its endpoint', async () => {
    const example = runExample(block('README.md', 'client-v4').text, url, true);
    await until('the dashboard to join', () => example.stdout().includes('joined true'), 20_000);
    assert.deepEqual((await notify(url, 'call', { state: 'end', call: 'c1', endpoint: 'alice@example.net' })).body, { ok: true });
    await until('the dashboard to print the call', () => example.stdout().includes('end c1\n'));
  });
});

describe('docs: the cluster', { skip: redisMissing() }, () => {
  it('two nodes on one Redis, started as the README and docs/cluster.md show, share their buses', async () => {
    const { text } = block('README.md', 'cluster');
    assert.equal(block('docs/cluster.md', 'cluster-two-nodes').text, text, 'the same commands on both pages');
    const redis = await RedisServer.start();
    after(() => redis.stop());
    const nodes = await Promise.all(
      commands(text).map(async (command) => {
        const port = await freePort();
        const line = command.replace('redis://10.0.0.5:6379', redis.url).replace(/PORT=\d+/, `PORT=${port}`);
        assert.notEqual(line, command);
        const child = spawn('sh', ['-c', `${line} --silent`], { cwd: ROOT, env: { ...ENV, HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'inherit'], detached: true });
        after(() => {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            // already gone
          }
        });
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
        await until(`node on ${port} to listen`, () => out.includes('listening on'), 60_000);
        return `http://127.0.0.1:${port}`;
      }),
    );
    assert.equal(nodes.length, 2);
    const [sender, receiver] = await Promise.all([connect('v4', nodes[0]!), connect('v1', nodes[1]!)]);
    try {
      assert.equal(await receiver.ack('join', 'calls'), true);
      assert.deepEqual(await sender.ack('call', { state: 'end', call: 'c1' }), { ok: true, rooms: 1 });
      assert.deepEqual(await receiver.receive('call', 1), [{ state: 'end', call: 'c1' }]);
      assert.equal((await request(`${nodes[1]}/health`)).body.redis, 'up');
    } finally {
      closeAll([sender, receiver]);
    }
  });
});

describe('docs: docs/protocol.md', () => {
  const open: TestClient[] = [];
  after(() => closeAll(open));

  it('welcome: the fields the page shows, with its name and version', async () => {
    const client = await connect('v4', url);
    open.push(client);
    const shown = literal(block('docs/protocol.md', 'welcome').text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(client.welcome).sort(), Object.keys(shown).sort());
    assert.deepEqual({ name: client.welcome.name, version: client.welcome.version, public: client.welcome.public }, { name: shown.name, version: shown.version, public: shown.public });
    assert.equal(shown.version, VERSION);
  });

  it('failed: what a join refused without an ack sends', async () => {
    const client = await connect('v2', url);
    open.push(client);
    const shown = literal(block('docs/protocol.md', 'failed').text);
    const failed = client.next('failed');
    client.emit('join', '');
    assert.deepEqual((await failed)[0], shown);
  });

  it('configure, join and ping: each does what the page says', async () => {
    const [dashboard, host, sender] = await Promise.all([connect('v4', url), connect('v4', url), connect('v4', url)]);
    open.push(dashboard, host, sender);
    const configure = block('docs/protocol.md', 'configure').text;
    new Function('socket', configure)(dashboard.raw);
    assert.deepEqual((await dashboard.receive('configured', 1))[0], { support: true, calls: false });
    const join = block('docs/protocol.md', 'join').text;
    assert.deepEqual(await runWithSocket(join, dashboard), [loggedInComment(join)]);
    assert.deepEqual(await sender.ack('report_ops', { msg: 'x', _in: ['endpoint:alice@example.net'] }), { ok: true, rooms: 2 });
    assert.deepEqual(await dashboard.receive('report_ops', 1), [{ msg: 'x', _in: ['endpoint:alice@example.net'] }], 'once, through support and the room');

    assert.deepEqual(await host.ack('configure', { locations: true }), { ok: true, joined: ['locations'], left: [] });
    new Function('socket', block('docs/protocol.md', 'ping').text)(sender.raw);
    assert.deepEqual((await host.receive('ping', 1))[0], { from: 'dashboard' });
  });

  it('GET /health, GET /routes and /monitor/config.json: the fields the page shows', async () => {
    const health = (await request(`${url}/health`)).body as Record<string, unknown>;
    const healthShape = block('docs/protocol.md', 'health-shape').text;
    assert.deepEqual(shapeKeys(healthShape).sort(), Object.keys(health).sort());
    // The states of Redis the page lists are those /metrics knows.
    const states = [...(/redis: (.*) \}/.exec(healthShape)?.[1] ?? '').matchAll(/'(\w+)'/g)].map((m) => m[1]);
    const metrics = (await request(`${url}/metrics`)).body as string;
    assert.deepEqual(states.sort(), [...metrics.matchAll(/^spicy_action_redis_state\{state="(\w+)"\}/gm)].map((m) => m[1]).sort());

    const client = await connect('v4', url);
    open.push(client);
    await client.ack('register', { event: 'queuer', default_room: 'calls' });
    await client.ack('register', { event: 'report_dev', default_room: 'internal' });
    const routes = (await request(`${url}/routes`)).body as { routes: Record<string, unknown>[] } & Record<string, unknown>;
    const shown = literal(block('docs/protocol.md', 'routes-shape').text) as { routes: Record<string, unknown>[] } & Record<string, unknown>;
    assert.deepEqual(Object.keys(routes).sort(), Object.keys(shown).sort());
    for (const route of shown.routes) {
      const real = routes.routes.find((r) => r.event === route.event);
      assert.ok(real, `${String(route.event)} is listed`);
      assert.deepEqual(Object.keys(real).sort(), Object.keys(route).sort(), String(route.event));
      assert.deepEqual([real.bus, real.kind, real.default], [route.bus, route.kind, route.default], String(route.event));
    }

    const config = (await request(`${url}/monitor/config.json`)).body as Record<string, unknown>;
    const configShape = block('docs/protocol.md', 'monitor-config').text;
    assert.deepEqual(shapeKeys(configShape).sort(), Object.keys(config).sort());
    assert.deepEqual(Object.keys(config.buses as object).sort(), ['host', 'private', 'public']);
    assert.equal(config.notification_rooms, literal(/notification_rooms: ('.*'),/.exec(configShape)![1]!));
  });
});

describe('docs: observability, security and watching', () => {
  const open: TestClient[] = [];
  after(() => closeAll(open));

  it('GET /health answers what docs/observability.md shows', async () => {
    const { text } = block('docs/observability.md', 'health');
    const [real] = jsonValues(await sh(text, url)) as Record<string, unknown>[];
    const [shown] = shownAnswers(text) as Record<string, unknown>[];
    assert.deepEqual(Object.keys(real!), Object.keys(shown!));
    for (const key of ['ok', 'name', 'version', 'redis']) assert.equal(real![key], shown![key], key);
    assert.equal(typeof real!.uptime, 'number');
    assert.equal(typeof real!.connections, 'number');
  });

  it('the PromQL of docs/observability.md names metrics the broker exports, with their labels', async () => {
    const metrics = (await request(`${url}/metrics`)).body as string;
    const { text } = block('docs/observability.md', 'promql');
    const names = [...text.matchAll(/\b(spicy_action_\w+)/g)].map((m) => m[1]!);
    assert.ok(names.length >= 5);
    for (const name of names) assert.match(metrics, new RegExp(`^# TYPE ${name} `, 'm'), name);
    assert.match(metrics, /^spicy_action_redis_state\{state="down"\} 0$/m);
  });

  it('the token: the curl lines of docs/security.md pass it, as Bearer and as Basic auth', async () => {
    const { text } = block('docs/security.md', 'token-curl');
    const out = await sh(text, guarded, { BROKER_TOKEN: TOKEN });
    assert.match(out, /^# TYPE spicy_action_connected_sockets gauge$/m);
    assert.ok(out.endsWith('{"ok":true}'), out.slice(-100));
    assert.equal((await request(`${guarded}/metrics`)).status, 401, 'and without it, no');
  });

  it('the route administration of docs/production.md answers what it shows', async () => {
    const client = await connect('v4', guarded, { token: TOKEN });
    open.push(client);
    assert.deepEqual(await client.ack('register', { event: 'report_dev', default_room: 'internal' }), { ok: true, event: 'report_dev', bus: 'internal' });
    assert.deepEqual(await client.ack('register', { event: 'queuer', default_room: 'calls' }), { ok: true, event: 'queuer', bus: 'calls' });
    assert.deepEqual(await client.ack('register', { event: 'odd/name', default_room: 'calls' }), { ok: true, event: 'odd/name', bus: 'calls' });
    const { text } = block('docs/production.md', 'route-admin');
    const real = jsonValues(await sh(text, guarded, { BROKER_TOKEN: TOKEN })) as Record<string, unknown>[];
    const shown = shownAnswers(text) as Record<string, unknown>[];
    // The listing holds stamps of this run: where and when each route was set.
    const stamped = (answer: Record<string, unknown>): Record<string, unknown> =>
      'set_at' in answer ? { ...answer, set_at: typeof answer.set_at, set_on: /^.+:\d+$/.test(String(answer.set_on)), set_by: typeof answer.set_by } : answer;
    // The listing shows the routes registered and changed before odd/name, then the removals.
    const listing = real.filter((a) => 'kind' in a && a.event !== 'odd/name');
    const answers = real.filter((a) => !('kind' in a));
    assert.deepEqual([...listing, ...answers.slice(0, 3)].map(stamped), shown.map(stamped));
    assert.deepEqual(answers[3], { ok: true, event: 'odd/name' }, 'the percent-encoded name');
    assert.equal(answers.length, 4);
  });

  it('the monitor page try-out of docs/watching.md: a push and an emit reach calls', async () => {
    const watcher = await connect('v4', url);
    open.push(watcher);
    assert.equal(await watcher.ack('join', 'calls'), true);
    const out = await sh(block('docs/watching.md', 'try-monitor').text, url);
    assert.ok(out.startsWith('{"ok":true}'), out);
    assert.match(out, /\{ ok: true, rooms: 2 \}/);
    const calls = (await watcher.receive('call', 2)) as { state: string }[];
    assert.deepEqual(calls.map((c) => c.state).sort(), ['answer', 'end']);
  });

  it('spicy-action tail prints the lines docs/watching.md shows, and its --json reads with jq', async () => {
    const { text } = block('docs/watching.md', 'tail');
    const lines = commands(text);
    assert.ok(lines.every((l) => l.startsWith('npx spicy-action tail ')));
    // The installed command runs dist/main.js; here, its source, as npm start does.
    const tail = (line: string, base: string): string => line.replace('npx spicy-action', `node --import tsx src/main.ts`).replace(' tail ', ` tail --url ${base} `);
    const env = { BROKER_TOKEN: TOKEN, TOKEN };
    const shownLines = text.split('\n').filter((l) => /^# \d{4}-/.test(l)).map((l) => l.slice(2));
    const guardedLine = lines[3]!.replace('npx spicy-action', 'node --import tsx src/main.ts').replace('http://broker.example.net:3000', guarded);
    // Each in a process group of its own, so that the pipeline's every process is stopped with it.
    const children = [tail(lines[0]!, url), tail(lines[2]!, url), guardedLine].map((line) =>
      spawn('sh', ['-c', line], { cwd: ROOT, env: { ...ENV, ...env }, detached: true }),
    );
    const outs = children.map((child) => {
      const out = { stdout: '', stderr: '' };
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out.stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out.stderr += chunk));
      after(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      });
      return out;
    });
    await until('tail to watch', () => outs.every((o) => o.stderr.includes('watching')), 30_000).catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(outs)}`);
    });
    // The two events the page shows: a call from a call handler, and OpenSIPS's push.
    const [call, push] = shownLines.map((l) => l.split(' ')) as [string[], string[]];
    const sender = await connect('v4', url);
    open.push(sender);
    const internal = await connect('v4', guarded, { token: TOKEN });
    open.push(internal);
    const callData = JSON.parse(call.slice(3).join(' ')) as Record<string, unknown>;
    await sender.ack(call[1]!, callData);
    await sender.ack(call[1]!, { ...callData, _in: ['endpoint:alice@example.net'] });
    assert.deepEqual((await notify(url, push[1]!, JSON.parse(push.slice(3).join(' ')))).body, { ok: true });
    internal.emit('shout', 'hello');
    await until('the lines', () => outs[0]!.stdout.split('\n').length > 3 && outs[2]!.stdout.length > 0, 20_000).catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(outs)}`);
    });
    const printed = outs[0]!.stdout.split('\n').filter(Boolean);
    const noTime = (l: string): string => l.replace(/^\S+ /, '');
    assert.deepEqual([printed[0], printed[2]].map((l) => noTime(l!)), shownLines.map(noTime));
    for (const line of printed) assert.ok(!Number.isNaN(Date.parse(line.split(' ')[0]!)), line);
    // jq writes when its input ends: Ctrl-C (to tail alone) ends tail, and so the pipeline.
    const pipeline = children[1]!;
    const ended = new Promise((resolve) => pipeline.once('exit', resolve));
    const tailPid = readdirSync(`/proc/${pipeline.pid}/task`)
      .flatMap((task) => readFileSync(`/proc/${pipeline.pid}/task/${task}/children`, 'utf8').trim().split(/\s+/))
      .find((pid) => pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('src/main.ts'));
    assert.ok(tailPid, 'the pipeline runs tail');
    process.kill(Number(tailPid), 'SIGINT');
    await ended;
    assert.equal(outs[1]!.stdout, `"${String(callData.state)}"\n`, 'jq picks the state of the call to alice');
    assert.match(outs[2]!.stdout, /^\S+ shouted internal \{"id":"[\w-]+","data":"hello"\}\n$/);
  });
});

describe('docs: the deployment pages', () => {
  const unit = pageText('deploy/spicy-action.service');
  const haproxy = pageText('deploy/haproxy.cfg');

  it('Node.js: the version installed is the one package.json asks for', () => {
    const { text } = block('docs/production.md', 'install-node');
    const engines = (JSON.parse(pageText('package.json')) as { engines: { node: string } }).engines.node;
    const major = /(\d+)/.exec(engines)![1];
    assert.ok(text.includes(`setup_${major}.x`), `nodesource ${major}`);
    assert.ok(text.includes(`# v${major}.x`));
  });

  it('Redis and Sentinel: every directive shown is one the Sentinel test runs', () => {
    const harness = pageText('test/helpers/sentinel.ts');
    const directives = ({ text }: { text: string }): string[] =>
      text
        .split('\n')
        .map((l) => /^#\s+([a-z-]+(?: [a-z-]+)?)\s/.exec(l)?.[1])
        .filter((d): d is string => d !== undefined && !d.startsWith('num-'))
        .map((d) => (d.startsWith('sentinel ') ? d : d.split(' ')[0]!));
    const shown = [
      ...directives(block('docs/production.md', 'install-redis')),
      ...directives(block('docs/production.md', 'sentinel-redis')),
      ...directives(block('docs/production.md', 'sentinel-sentinels')),
    ];
    for (const directive of ['bind', 'appendonly', 'requirepass', 'masterauth', 'replicaof', 'port', 'sentinel monitor', 'sentinel auth-pass', 'sentinel sentinel-pass']) {
      assert.ok(shown.includes(directive), `the docs show ${directive}`);
    }
    for (const directive of shown) assert.ok(harness.includes(`${directive} `), `test/helpers/sentinel.ts sets ${directive}`);
    assert.match(block('docs/production.md', 'install-redis').text, /appendonly yes/);
  });

  it('the Sentinel settings and credentials are settings the broker reads', () => {
    const env = Object.fromEntries(
      block('docs/production.md', 'sentinel-env')
        .text.trim()
        .split('\n')
        .map((l) => l.split('=') as [string, string])
        .map(([k, v]) => [k, v.replace(/<[^>]+>/g, 'secret')]),
    );
    const settings = loadSettings([], env);
    assert.deepEqual(settings.redisSentinels?.length, 3);
    assert.equal(settings.redisSentinelName, 'mymaster');
    const credentials = block('docs/production.md', 'sentinel-credentials').text;
    const known = new Set(SETTING_NAMES.flatMap((s) => (s.inlineEnv === undefined ? [s.env] : [s.env, s.inlineEnv])));
    const loaded = [...credentials.matchAll(/LoadCredential=([\w-]+):(\S+)/g)].map((m) => [m[1]!, m[2]!] as const);
    assert.equal(loaded.length, 2);
    for (const [id, path] of loaded) {
      assert.ok(credentials.includes(`install -m 0600 /dev/null ${path}`), `${path} is created root-only`);
      const variable = new RegExp(`(\\w+)=%d/${id}\\b`).exec(credentials)?.[1];
      assert.ok(variable && known.has(variable), `${id} is read through a setting (${variable})`);
    }
  });

  it('the settings file, the unit and HAProxy: the files named are those of deploy/', () => {
    const envBlock = block('docs/production.md', 'install-env').text;
    assert.ok(/\/opt\/spicy-action\/(current\/)?deploy\/env\.example/.test(envBlock) && existsSync(join(ROOT, 'deploy', 'env.example')));
    const target = /install -m 0600 \S+ (\S+)/.exec(envBlock)![1]!;
    assert.match(unit, new RegExp(`^EnvironmentFile=-?${target}$`, 'm'), 'the unit reads the file installed');

    const unitBlock = block('docs/production.md', 'install-unit').text;
    assert.ok(/\/opt\/spicy-action\/(current\/)?deploy\/spicy-action\.service/.test(unitBlock) && existsSync(join(ROOT, 'deploy', 'spicy-action.service')));
    const listening = /# (spicy-action \S+ listening on http:\/\/\S+)/.exec(unitBlock)?.[1];
    assert.equal(listening, `${NAME} ${VERSION} listening on http://10.0.0.11:3000`, 'the line the broker logs');

    const proxy = block('docs/production.md', 'install-haproxy').text;
    assert.ok(/\/opt\/spicy-action\/(current\/)?deploy\/haproxy\.cfg/.test(proxy) && existsSync(join(ROOT, 'deploy', 'haproxy.cfg')));
    const socket = /socat stdio (\S+)/.exec(proxy)![1]!;
    assert.match(haproxy, new RegExp(`stats socket ${socket}\\b`), 'the admin socket');
    for (const [, backend, server] of proxy.matchAll(/^# (\w+),(\w+),UP$/gm)) {
      assert.match(haproxy, new RegExp(`^backend ${backend}$`, 'm'));
      assert.match(haproxy, new RegExp(`^\\s+server ${server} `, 'm'));
    }
  });

  it('docs/testing.md: each command is a script of package.json, and CI runs it', () => {
    const scripts = (JSON.parse(pageText('package.json')) as { scripts: Record<string, string> }).scripts;
    const ci = pageText('.ci/run');
    const lines = commands(block('docs/testing.md', 'test-commands').text);
    assert.ok(lines.length >= 5);
    for (const line of lines) {
      const script = /^npm (?:run )?(\S+)$/.exec(line)?.[1];
      assert.ok(script && scripts[script], `${line} is a script`);
      assert.ok(ci.includes(line.replace(/^npm test$/, 'npm test')) || ci.includes(`npm run ${script}`), `.ci/run runs ${line}`);
    }
  });

  it('docs/architecture.md: the tree names every module, and the tree and the diagram only modules that exist', () => {
    const tree = block('docs/architecture.md', 'architecture-tree').text;
    let dir = '';
    const named: string[] = [];
    for (const line of tree.split('\n')) {
      const entry = /^(\s*)([\w./-]+\.(?:ts|js|json|css|html)|[\w-]+\/)(?:\s|$)/.exec(line);
      if (!entry) continue;
      if (entry[2]!.endsWith('/')) dir = entry[1]!.length === 0 ? entry[2]! : `${dir.split('/')[0]}/${entry[2]}`;
      else named.push(`${dir}${entry[2]}`);
    }
    assert.ok(named.length >= 20, `${named.length} files named`);
    for (const path of named) assert.ok(existsSync(join(ROOT, path)), `${path} exists`);
    const modules = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => `src/${f}`);
    assert.deepEqual(modules.filter((module) => !named.includes(module)), [], 'every module of src/ is in the tree');
    const flow = block('docs/architecture.md', 'architecture-flow').text;
    const drawn = [...flow.matchAll(/\[([\w/-]+(?:\.ts|\/))(?:<br\/>[^\]]*)?\]/g)].map((m) => m[1]!);
    assert.ok(drawn.length >= 8, `${drawn.length} modules drawn`);
    for (const module of drawn) assert.ok(existsSync(join(ROOT, 'src', module)), `src/${module} exists`);
    assert.ok(readdirSync(join(ROOT, 'src', 'cluster')).includes('route-sync.ts'));
  });
});

