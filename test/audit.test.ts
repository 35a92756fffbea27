/**
 * Who did what (docs/watching.md#who-did-what): the audit feed tells watchers in `_audit` the
 * credential and public id behind every routed event, push, route change and refusal; `tail`
 * shows it; nothing reaches the room that a client could forge.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AUDIT_ROOM } from '../src/audit.ts';
import { notify, request, ROOT, spawnBroker, startBroker } from './helpers/broker.ts';
import { clientsClosedAfter, connect, withTimeout, type Generation, type TestClient } from './helpers/clients.ts';
import { block } from './helpers/docs.ts';
import { until } from './helpers/wait.ts';
import { exampleWithSecrets } from './helpers/credentials.ts';

const dir = mkdtempSync(join(tmpdir(), 'spicy-audit-'));
const file = join(dir, 'credentials.json');
const secrets = exampleWithSecrets(file);

describe('the audit feed', async () => {
  // The last test's broker process starts now, while the others run: it has nothing to do with them.
  const logging = spawnBroker({ CREDENTIALS_FILE: file, DEBUG: 'spicy-action:audit' });
  const broker = await startBroker({ credentialsFile: file });
  const opened = clientsClosedAfter();
  const open = async (generation: Generation, name: string): Promise<TestClient> =>
    opened.keep(await connect(generation, broker.url, { transports: ['websocket'], token: secrets[name] }));
  const bearer = (name: string): Record<string, string> => ({ Authorization: `Bearer ${secrets[name]}` });
  /** The records of the first test, as received. */
  const received: Record<string, unknown>[] = [];

  it('names the credential and public id behind each event, push, route change and refusal', async () => {
    const watcher = await open('v4', 'operator');
    assert.equal(await watcher.ack('join', AUDIT_ROOM), true);
    const handler = await open('v1', 'call-handler');
    const dashboard = await open('v2', 'dashboard');

    await handler.ack('register', { event: 'queuer', default_room: 'calls' });
    handler.emit('call', { call: 'c1', _in: ['endpoint:alice@example.net'] });
    await notify(broker.url, 'report_csr', { error: 'endpoint_rate_limit', endpoint: 'alice@example.net' }, bearer('opensips-notify'));
    await dashboard.ack('place-call', { destination: '33987654321' });
    await request(`${broker.url}/routes/queuer`, { method: 'DELETE', headers: bearer('operator') });

    await watcher.receive('audit', 5);
    received.push(...(watcher.payloads('audit') as Record<string, unknown>[]));
    const records = watcher.payloads('audit').map((record) => {
      const { at, ...rest } = record as { at: string };
      assert.ok(!Number.isNaN(Date.parse(at)), 'stamped');
      return rest;
    });
    assert.deepEqual(records, [
      { kind: 'route', event: 'queuer', bus: 'calls', by: 'call-handler', id: handler.welcome.publicId },
      { kind: 'routed', event: 'call', by: 'call-handler', id: handler.welcome.publicId, rooms: ['calls', 'endpoint:alice@example.net'] },
      { kind: 'routed', event: 'report_csr', by: 'opensips-notify', id: null, rooms: ['support', 'endpoint:alice@example.net'] },
      { kind: 'refused', what: 'place-call', reason: 'forbidden', error: 'forbidden', by: 'dashboard', id: dashboard.welcome.publicId },
      { kind: 'route', event: 'queuer', by: 'operator', id: null },
    ]);
    // Never the socket id, which for 1.x and 2.x clients is their Engine.IO session id.
    assert.ok(!JSON.stringify(records).includes(handler.id));
  });

  it('has the shape docs/watching.md shows, record for record', () => {
    const shown = block('docs/watching.md', 'audit-records').text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(shown.length, 4);
    for (const record of shown) {
      const real = received.find((r) => r.kind === record.kind && (r.event ?? r.what) === (record.event ?? record.what));
      assert.ok(real, `a real ${String(record.kind)} record of ${String(record.event ?? record.what)}`);
      assert.deepEqual(Object.keys(real).sort(), Object.keys(record).sort());
      for (const key of ['kind', 'event', 'what', 'reason', 'error', 'by', 'bus', 'rooms']) assert.deepEqual(real[key], record[key], key);
      assert.equal(typeof real.id, typeof record.id);
    }
  });

  it('cannot be forged: `audit` cannot be registered, and no `_in` reaches the room', async () => {
    const watcher = await open('v4', 'operator');
    await watcher.ack('join', AUDIT_ROOM);
    // The shared token may register anything: it is still refused this name.
    const tokenBroker = await startBroker({ token: 'audit-token' });
    const anyone = opened.keep(await connect('v4', tokenBroker.url, { transports: ['websocket'], token: 'audit-token' }));
    assert.deepEqual(await anyone.ack('register', { event: 'audit', default_room: 'calls' }), { ok: false, error: '"audit" is sent by the broker and cannot be registered' });
    const handler = await open('v1', 'call-handler');
    handler.emit('call', { call: 'forged', _in: [AUDIT_ROOM] });
    await until('the call is audited', () => watcher.payloads('audit').some((r) => (r as { event?: string }).event === 'call'));
    const record = watcher.payloads('audit').find((r) => (r as { event?: string }).event === 'call') as { rooms: string[] };
    assert.deepEqual(record.rooms, ['calls']);
    assert.equal(watcher.count('call'), 0, 'the call itself did not reach the audit room');
  });

  it('is shown by tail, beside each event', async () => {
    const tail = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'tail', '--url', broker.url, '--token', secrets.operator!, 'calls', AUDIT_ROOM], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    after(() => tail.kill('SIGKILL'));
    let out = '';
    tail.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    let err = '';
    tail.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    await withTimeout(until('tail watches', () => /watching/i.test(err) || err.includes('calls'), 20_000), 'tail to start', 25_000);
    const handler = await open('v1', 'call-handler');
    for (let i = 0; i < 20 && !/ audit _audit .*"by":"call-handler"/.test(out); i++) {
      handler.emit('call', { call: `t${i}` });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.match(out, / call calls \{"call":"t\d+"\}/);
    assert.match(out, / audit _audit \{"kind":"routed","event":"call","by":"call-handler","id":"[\w-]{16}","rooms":\["calls"\]/);
  });

  it('is logged, a line per record, under DEBUG=spicy-action:audit', async () => {
    const proc = logging;
    const url = await proc.ready;
    const handler = opened.keep(await connect('v1', url, { transports: ['websocket'], token: secrets['call-handler'] }));
    handler.emit('call', { call: 'logged' });
    await until('the audit line', () => /spicy-action:audit \{"kind":"routed","event":"call","by":"call-handler","id":"[\w-]{16}","rooms":\["calls"\]/.test(proc.stderr()));
    assert.ok(!proc.stderr().includes('logged'), 'never the payload');
  });
});
