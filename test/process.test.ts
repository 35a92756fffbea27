/** The process (README.md#settings): starting as `npm start` does, stopping on signals, failing clearly. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NAME, VERSION } from '../src/package-info.ts';
import { notify, request, spawnBroker } from './helpers/broker.ts';
import { connect, GENERATIONS } from './helpers/clients.ts';

const dir = mkdtempSync(join(tmpdir(), 'spicy-process-'));

describe('the broker process', () => {
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

  it('prints usage for --help', async () => {
    const proc = spawnBroker({}, ['--help']);
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
    assert.match(proc.stdout(), /^usage: spicy-action/);
    for (const flag of ['--port', '--host', '--buses', '--cors-origins', '--redis', '--token']) assert.ok(proc.stdout().includes(flag), flag);
  });
});

describe('start-up failures print one line and exit non-zero', () => {
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

  it('when a flag is unknown', async () => {
    await fails({}, ['--verbose'], /^spicy-action: unknown argument "--verbose" \(try --help\)$/);
  });
});
