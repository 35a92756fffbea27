/**
 * deploy/haproxy.cfg end to end (`npm run test:deploy`): a real redis-server,
 * two broker processes sharing it, and a real HAProxy running the shipped
 * configuration, driven by socket.io-client 1.x, 2.x and 4.x over
 * long-polling and WebSocket. HAProxy runs within an open-file limit of 20,000,
 * the usual one, with the file's own maxconn.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { notify, request, ROOT, spawnBroker, type BrokerProcess } from './helpers/broker.ts';
import { parseMetrics } from './helpers/metrics.ts';
import { type ClientOptions, closeAll, connect, flush, type Generation, rawRequest, type TestClient, withTimeout } from './helpers/clients.ts';
import { freePort, RedisServer, redisMissing } from './helpers/redis.ts';
import { until } from './helpers/wait.ts';
import { WebSocket } from 'ws';

const TEMPLATE = readFileSync(join(ROOT, 'deploy', 'haproxy.cfg'), 'utf8');
/** The open-file limit the shipped file must start within. */
const OPEN_FILE_LIMIT = 20_000;
const COOKIE = /cookie (\w+) insert/.exec(TEMPLATE)?.[1] ?? 'SPICY_NODE';

/** Debian installs it in /usr/sbin, which a user's PATH may not have. */
const HAPROXY = process.env.HAPROXY ?? (existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : 'haproxy');

function haproxyMissing(): string | undefined {
  if (spawnSync(HAPROXY, ['-v']).status === 0) return undefined;
  const reason = 'haproxy not found: install the Debian package haproxy to test deploy/haproxy.cfg';
  if (process.env.CI) throw new Error(`${reason}; CI must run it`);
  return reason;
}

describe('deploy/haproxy.cfg', { skip: haproxyMissing() }, () => {
  /** The directives in effect: comments and blank lines dropped. */
  const lines = TEMPLATE.split('\n').map((l) => l.replace(/#.*$/, '').trim()).filter(Boolean);

  it('is valid for HAProxy as shipped', () => {
    const check = spawnSync(HAPROXY, ['-c', '-f', join(ROOT, 'deploy', 'haproxy.cfg')], { encoding: 'utf8' });
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  });

  it('checks GET /health for a 200, keeps WebSocket tunnels open, and never cuts the sessions of a node marked down', () => {
    for (const directive of ['option httpchk GET /health', 'http-check expect status 200', 'timeout tunnel 1h', 'option redispatch 1']) {
      assert.ok(lines.includes(directive), directive);
    }
    assert.ok(lines.some((l) => /^cookie \w+ insert indirect nocache/.test(l)), 'a sticky cookie');
    assert.ok(!lines.some((l) => /shutdown-sessions/.test(l)), 'no on-marked-down shutdown-sessions');
    assert.ok(lines.filter((l) => l.startsWith('server ')).length >= 2, 'two brokers or more');
  });
});

/**
 * The shipped configuration with these lines changed, and no other: HAProxy
 * runs in the foreground as this user, so `chroot`, `user`, `group` and
 * `daemon` go, and its log goes to its stderr rather than syslog (in the
 * shipped format); its runtime API moves from /run/haproxy to a temp
 * directory; the two `bind`s move to free loopback ports and the `server`s to
 * the brokers' ports.
 */
function localConfig(frontPort: number, statsPort: number, socket: string, brokers: readonly number[]): string {
  let cfg = TEMPLATE.replace(/^\s*(chroot|user|group|daemon)\b.*$/gm, '')
    .replace(/^(\s*)log \/dev\/log (\w+)$/m, '$1log stderr format raw $2')
    .replace('stats socket /run/haproxy/admin.sock', `stats socket ${socket}`)
    .replace(/^(\s*)bind :3000$/m, `$1bind 127.0.0.1:${frontPort}`)
    .replace(/^(\s*)bind 127\.0\.0\.1:8404$/m, `$1bind 127.0.0.1:${statsPort}`);
  let i = 0;
  cfg = cfg.replace(/^(\s*server \S+ )\S+:\d+/gm, (_all, head: string) => `${head}127.0.0.1:${brokers[i++]!}`);
  assert.equal(i, brokers.length, 'one server line per broker');
  for (const line of [`bind 127.0.0.1:${frontPort}`, `bind 127.0.0.1:${statsPort}`, `stats socket ${socket}`, 'log stderr format raw']) {
    assert.ok(cfg.includes(line), `the template still has the line that becomes "${line}"`);
  }
  return cfg;
}

/** One command on HAProxy's runtime API. */
function runtime(socket: string, command: string): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve, reject) => {
      let out = '';
      const conn = createConnection(socket, () => conn.end(`${command}\n`));
      conn.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
      conn.on('end', () => resolve(out));
      conn.on('error', reject);
    }),
    `haproxy: ${command}`,
  );
}

/** Each server's status in the backend `brokers` (UP, DOWN, ...), from `show stat`. */
async function serverStatus(socket: string): Promise<Record<string, string>> {
  const [header, ...rows] = (await runtime(socket, 'show stat')).trim().split('\n');
  const names = header!.replace(/^# /, '').split(',');
  const status: Record<string, string> = {};
  for (const row of rows) {
    const fields = Object.fromEntries(row.split(',').map((v, k) => [names[k], v]));
    if (fields.pxname === 'brokers' && fields.svname !== 'BACKEND') status[fields.svname!] = fields.status!;
  }
  return status;
}

/** HAProxy running the shipped configuration ({@link localConfig}) in front of `brokers`. */
interface Front {
  /** Its frontend's base URL. */
  readonly front: string;
  /** The path of its runtime API. */
  readonly socket: string;
  /** What it wrote on stderr so far: its log, in the shipped format. */
  log(): string;
}

/** Starts HAProxy in front of `nodes`, stopped when the file ends; resolves once it sees every node UP. */
async function startHaproxy(dir: string, nodes: readonly { name: string; url: string }[]): Promise<Front> {
  const [frontPort, statsPort] = [await freePort(), await freePort()];
  const socket = join(dir, 'admin.sock');
  const cfgFile = join(dir, 'haproxy.cfg');
  writeFileSync(cfgFile, localConfig(frontPort, statsPort, socket, nodes.map((n) => Number(new URL(n.url).port))));
  // The usual open-file limit of a host: the file's maxconn must fit in it.
  const haproxy = spawn('bash', ['-c', `ulimit -n ${OPEN_FILE_LIMIT} && exec "$0" -db -f "$1"`, HAPROXY, cfgFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let haproxyErr = '';
  haproxy.stderr.setEncoding('utf8').on('data', (chunk: string) => (haproxyErr += chunk));
  const haproxyExited = new Promise((resolve) => haproxy.once('exit', resolve));
  after(async () => {
    haproxy.kill('SIGTERM');
    await haproxyExited;
  });
  await until(
    'HAProxy to see every broker UP',
    async () => {
      if (haproxy.exitCode !== null) throw new Error(`haproxy exited: ${haproxyErr}`);
      try {
        const status = await serverStatus(socket);
        return nodes.every((n) => status[n.name] === 'UP');
      } catch {
        return false; // not listening on its socket yet
      }
    },
    20_000,
  );
  return { front: `http://127.0.0.1:${frontPort}`, socket, log: () => haproxyErr };
}

/** The transport a client uses now: `polling` or `websocket`. */
function transportOf(client: TestClient): string {
  // 4.x: socket.io.engine; 1.x and 2.x: socket.io.engine too (the Manager), with the same transport.name.
  const manager = client.raw.io as { engine?: { transport?: { name?: string } } } | undefined;
  const name = manager?.engine?.transport?.name;
  assert.ok(name, `${client.generation} has a transport`);
  return name;
}

/** Sockets connected to a broker, as its own /health says. */
async function connections(url: string): Promise<number> {
  return (await request(`${url}/health`)).body.connections as number;
}

describe('two brokers behind HAProxy with deploy/haproxy.cfg', { skip: haproxyMissing() ?? redisMissing() }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'spicy-haproxy-'));
  const open: TestClient[] = [];
  after(() => {
    closeAll(open);
    rmSync(dir, { recursive: true, force: true });
  });

  // Started here (not in a hook) so that the helpers' `after` stops them when the file ends.
  const redis = await RedisServer.start();
  const nodes: { name: string; proc: BrokerProcess; url: string }[] = [];
  for (const name of ['broker1', 'broker2']) {
    const proc = spawnBroker({ REDIS_URL: redis.url });
    nodes.push({ name, proc, url: await proc.ready });
  }
  const { front, socket } = await startHaproxy(dir, nodes);
  // The first answer to a client without the cookie names the node its address hashes to.
  const probe = await fetch(`${front}/socket.io/?EIO=4&transport=polling`);
  await probe.text();
  const cookie = new RegExp(`${COOKIE}=(\\w+)`).exec(probe.headers.get('set-cookie') ?? '');
  /** The node HAProxy's address hash gives cookie-less clients from 127.0.0.1, and the other one. */
  const hashed = nodes.find((n) => n.name === cookie?.[1]);
  const other = nodes.find((n) => n !== hashed)!;

  it(`takes the file's maxconn within an open-file limit of ${OPEN_FILE_LIMIT}, as its comment says`, async () => {
    const maxconn = /^\s*maxconn (\d+)$/m.exec(TEMPLATE)?.[1];
    assert.ok(maxconn, 'global has a maxconn');
    const info = Object.fromEntries(
      (await runtime(socket, 'show info'))
        .trim()
        .split('\n')
        .map((line) => line.split(': ')),
    ) as Record<string, string>;
    assert.equal(info.Maxconn, maxconn);
    assert.ok(Number(info.Maxsock) <= OPEN_FILE_LIMIT, `HAProxy needs ${info.Maxsock} file descriptors`);
    const needed = 2 * Number(maxconn) + 31;
    assert.equal(Number(info.Maxsock), needed);
    const comment = TEMPLATE.replace(/\n\s*#\s*/g, ' ');
    assert.ok(comment.includes(`${needed.toLocaleString('en')} in all`), 'the comment says how many descriptors it takes');
    assert.ok(comment.includes('maxconn N needs a limit of 2N + 31'), 'the comment says what a larger maxconn needs');
  });

  it('sets its cookie on the first answer, naming a node', () => {
    assert.ok(cookie, `HAProxy sets ${COOKIE}: ${probe.headers.get('set-cookie')}`);
    assert.ok(hashed);
  });

  /** A client through HAProxy; `pin` sends the cookie naming a node, as a browser that kept it would. */
  async function client(generation: Generation, options: ClientOptions & { pin?: string } = {}): Promise<TestClient> {
    const { pin, extra, ...rest } = options;
    const headers = pin ? { extraHeaders: { Cookie: `${COOKIE}=${pin}` } } : {};
    const c = await connect(generation, front, { reconnection: true, ...rest, extra: { ...headers, ...extra } });
    open.push(c);
    // The helper closes a client on its first connection error; here a failed attempt must be retried.
    c.raw.off('connect_error');
    c.raw.off('error');
    return c;
  }

  let onHashed: TestClient[];
  let onOther: TestClient[];

  it('keeps long-polling sessions on their node, by address hash or by cookie, and upgrades to WebSocket', async () => {
    const before = await Promise.all(nodes.map((n) => connections(n.url)));
    assert.deepEqual(before, [0, 0]);
    // Cookie-less, as the platform's Node servers are: placed by their address.
    onHashed = [
      await client('v1'),
      await client('v2'),
      await client('v2', { transports: ['polling'] }),
      // 4.x in Node keeps cookies with withCredentials: it is pinned by the cookie it is given.
      await client('v4', { extra: { withCredentials: true } }),
      await client('v4', { transports: ['polling'], extra: { withCredentials: true } }),
      await client('v4', { transports: ['websocket'] }),
    ];
    // Pinned to the other node by the cookie.
    onOther = [
      await client('v1', { pin: other.name, transports: ['polling'] }),
      await client('v1', { pin: other.name, transports: ['websocket'] }),
      await client('v2', { pin: other.name }),
      await client('v4', { pin: other.name }),
      await client('v4', { pin: other.name, transports: ['polling'] }),
    ];
    assert.equal(await connections(hashed!.url), onHashed.length, `${hashed!.name} holds the cookie-less clients`);
    assert.equal(await connections(other.url), onOther.length, `${other.name} holds the pinned clients`);
    // Every session still works after its polls and upgrade went through HAProxy.
    for (const c of [...onHashed, ...onOther]) assert.equal(await c.ack('join', 'calls'), true, `${c.generation} joined`);
    // The default transports (polling first) upgrade to WebSocket through HAProxy.
    for (const c of [onHashed[0]!, onHashed[1]!, onHashed[3]!, onOther[2]!, onOther[3]!]) {
      await until(`${c.generation} upgrades to WebSocket`, () => transportOf(c) === 'websocket', 20_000);
    }
    for (const c of [onHashed[2]!, onHashed[4]!, onOther[0]!, onOther[4]!]) assert.equal(transportOf(c), 'polling');
  });

  it('delivers events published on either node, and /_notify through HAProxy, to every client once', async () => {
    const everyone = [...onHashed, ...onOther];
    onHashed[1]!.emit('call', { n: 1, from: 'hashed' });
    onOther[3]!.emit('call', { n: 2, from: 'other' });
    assert.deepEqual((await notify(front, 'call', { n: 3, from: 'notify' })).body, { ok: true });
    for (const c of everyone) await c.receive('call', 3, 15_000);
    await flush(onOther[3]!, everyone);
    await flush(onHashed[1]!, everyone);
    for (const c of everyone) {
      const ns = (c.payloads('call') as { n: number }[]).map((p) => p.n).sort();
      assert.deepEqual(ns, [1, 2, 3], `${c.generation} got each event once`);
    }
  });

  it('drains a node stopped with SIGTERM: its clients reconnect through HAProxy to the other, and 4.x clients recover', async () => {
    const v4 = onHashed.filter((c) => c.generation === 'v4');
    const older = onHashed.filter((c) => c.generation !== 'v4');
    const ids = v4.map((c) => c.id);
    const disconnects = onHashed.map(
      (c) => new Promise<string>((resolve) => c.raw.on('disconnect', (reason: unknown) => resolve(String(reason)))),
    );
    const transports = onHashed.map((c) => transportOf(c));
    const welcomes = onHashed.map((c) => c.next('welcome', 30_000));
    const baseline = new Map(onHashed.map((c) => [c, c.count('call')]));

    hashed!.proc.child.kill('SIGTERM');
    assert.deepEqual(await withTimeout(hashed!.proc.exited, 'the stopped broker to exit', 15_000), { code: 0, signal: null });
    const reasons = await Promise.all(disconnects);
    // WebSocket clients get a clean close from the broker (HAProxy does not cut them). A pending
    // long-poll is answered with an error when the broker drops its HTTP connections.
    onHashed.forEach((c, k) => {
      const expected = transports[k] === 'websocket' ? /^transport close$/ : /^transport (close|error)$/;
      assert.match(reasons[k]!, expected, `${c.generation} over ${transports[k]}`);
    });
    assert.ok(transports.filter((t) => t === 'websocket').length >= 3, `clients over WebSocket: ${transports.join(', ')}`);

    // Published on the surviving node while the drained clients are away.
    const publisher = onOther[3]!;
    for (let seq = 10; seq < 20; seq++) publisher.emit('call', { n: seq });
    await flush(publisher, [publisher]);

    await until(`HAProxy marks ${hashed!.name} DOWN`, async () => (await serverStatus(socket))[hashed!.name]?.startsWith('DOWN') === true, 20_000);
    await Promise.all(welcomes);
    await until(`every client on ${other.name}`, async () => (await connections(other.url)) === onHashed.length + onOther.length, 20_000);

    // 4.x: the same session, its rooms, and every event it missed, once, in order.
    for (const [k, c] of v4.entries()) {
      assert.equal(c.raw.recovered, true, `4.x client ${k} recovered`);
      assert.equal((c.raw as { id?: string }).id, ids[k], 'the same socket id');
      await c.receive('call', baseline.get(c)! + 10, 15_000);
      const missed = (c.payloads('call') as { n: number }[]).slice(baseline.get(c)).map((p) => p.n);
      assert.deepEqual(missed, [10, 11, 12, 13, 14, 15, 16, 17, 18, 19], 'no event lost or repeated');
    }
    // 1.x and 2.x: a new session on the other node; they join again, as they always did.
    for (const c of older) assert.equal(await c.ack('join', 'calls'), true);
    publisher.emit('call', { n: 20 });
    for (const c of [...onHashed, ...onOther]) await c.receive('call', (c.payloads('call') as { n: number }[]).filter((p) => p.n !== 20).length + 1, 15_000);
    await flush(publisher, [...onHashed, ...onOther]);
    for (const c of [...onHashed, ...onOther]) {
      assert.equal((c.payloads('call') as { n: number }[]).filter((p) => p.n === 20).length, 1, `${c.generation} got the next event once`);
    }
    assert.equal(await connections(other.url), onHashed.length + onOther.length);
  });
});

/** What came back from a raw request through HAProxy. */

/** Upgrades a session to a WebSocket of one's own and probes it: '3probe' when it was handed over, 'refused' otherwise. */
function rawUpgrade(url: string, localAddress: string, headers: Record<string, string>): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve) => {
      const ws = new WebSocket(url.replace(/^http/, 'ws'), { localAddress, headers });
      ws.on('open', () => ws.send('2probe'));
      ws.on('message', (data) => {
        ws.close();
        resolve(String(data));
      });
      ws.on('error', () => resolve('refused'));
      ws.on('close', () => resolve('refused'));
    }),
    `upgrade of ${url}`,
  );
}

describe('the shipped HAProxy in front of brokers with a token', { skip: haproxyMissing() ?? redisMissing() }, async () => {
  const TOKEN = 'haproxy-shared-token-7c41e0';
  /** Linux answers all of 127.0.0.0/8: a client from here is another host than the victims (127.0.0.1). */
  const STRANGER = '127.0.0.2';
  const dir = mkdtempSync(join(tmpdir(), 'spicy-haproxy-'));
  const open: TestClient[] = [];
  after(() => {
    closeAll(open);
    rmSync(dir, { recursive: true, force: true });
  });
  const redis = await RedisServer.start();
  // One node believes HAProxy's X-Forwarded-For (TRUST_PROXY), the other was not told to: both must hold.
  const nodes: { name: string; url: string; proc: BrokerProcess }[] = [];
  for (const [name, env] of [['broker1', { TRUST_PROXY: '127.0.0.1' }], ['broker2', {}]] as const) {
    const proc = spawnBroker({ REDIS_URL: redis.url, BROKER_TOKEN: TOKEN, ...env });
    nodes.push({ name, proc, url: await proc.ready });
  }
  const { front, log } = await startHaproxy(dir, nodes);
  const bearer = { Authorization: `Bearer ${TOKEN}` };

  /** A client through HAProxy, pinned to `node` by its cookie. */
  async function client(generation: Generation, node: string, options: ClientOptions = {}): Promise<TestClient> {
    const { extra, ...rest } = options;
    const c = await connect(generation, front, { token: TOKEN, ...rest, extra: { ...extra, extraHeaders: { Cookie: `${COOKIE}=${node}` } } });
    open.push(c);
    return c;
  }

  async function unauthorized(url: string): Promise<number> {
    const text = (await request(`${url}/metrics`, { headers: bearer })).body as string;
    return parseMetrics(text).value('spicy_action_refused_total', { reason: 'unauthorized' });
  }

  it("refuses a stranger who knows a 4.x client's sid: its poll, post and upgrade through HAProxy, forged X-Forwarded-For or not", async () => {
    for (const node of nodes) {
      const victim = await client('v4', node.name, { transports: ['polling'] });
      assert.equal(await victim.ack('join', 'calls'), true);
      const sid = (victim.raw.io as { engine: { id: string } }).engine.id;
      const before = await unauthorized(node.url);
      const path = `/socket.io/?EIO=4&sid=${encodeURIComponent(sid)}`;
      const publisher = await client('v4', node.name);
      publisher.emit('call', { call: `secret-${node.name}` });
      for (const forged of [{}, { 'X-Forwarded-For': '127.0.0.1' }] as Record<string, string>[]) {
        const headers = { Cookie: `${COOKIE}=${node.name}`, ...forged };
        const poll = await rawRequest(`${front}${path}&transport=polling`, 'GET', { localAddress: STRANGER, headers });
        assert.equal(poll.status, 400, `a poll on ${node.name}`);
        assert.doesNotMatch(poll.body, /secret/);
        assert.equal((await rawRequest(`${front}${path}&transport=polling`, 'POST', { localAddress: STRANGER, headers, body: '42["shout","as the victim"]' })).status, 400);
        assert.equal(await rawUpgrade(`${front}${path}&transport=websocket`, STRANGER, headers), 'refused');
      }
      // Each was refused by the session binding on the victim's own node (not as an unknown sid).
      assert.equal(await unauthorized(node.url), before + 6, `refusals counted on ${node.name}`);
      await victim.receive('call', 1);
      assert.deepEqual(victim.payloads('call'), [{ call: `secret-${node.name}` }]);
      assert.equal(victim.raw.connected, true);
    }
  });

  it('logs every request, but no token and no session id', async () => {
    const clients = [
      await client('v1', 'broker1'),
      await client('v2', 'broker2', { transports: ['polling'] }),
      await client('v4', 'broker1', { transports: ['polling'] }),
      await client('v2', 'broker1', { extra: { query: {}, extraHeaders: bearer } }),
    ];
    for (const c of clients) assert.equal(await c.ack('join', 'calls'), true);
    const sids = clients.map((c) => (c.raw.io as { engine: { id: string } }).engine.id);
    closeAll(clients);
    // A poll is logged when it ends: wait for the lines of the last clients' polls.
    await until('HAProxy to log the polls', () => (log().match(/"GET \/socket\.io\/[^"]* HTTP\/1\.1"/g) ?? []).length >= 10, 20_000);
    const lines = log();
    assert.match(lines, /127\.0\.0\.1:\d+ \[[^\]]+\] spicy_action brokers\/broker[12] [-\d/]+ (200|101) /, 'requests are logged');
    assert.match(lines, /127\.0\.0\.2:\d+ .* 400 /, "the stranger's refused requests are logged");
    assert.ok(!lines.includes(TOKEN), 'no token in the log');
    for (const sid of sids) assert.ok(!lines.includes(sid), `no sid in the log (${sid.length} characters)`);
    assert.doesNotMatch(lines, /[?&](sid|token|EIO|transport)=/, 'no query string at all');
  });
});
