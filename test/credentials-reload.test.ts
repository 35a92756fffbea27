/**
 * Rotation without a restart (docs/security.md#rotation): a reload under load swaps secrets,
 * closes the connections of removed or changed credentials within the bound, keeps every event
 * of the clients whose credential did not change, refuses a file it cannot use; SIGHUP does it
 * for the process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { hashSecret, newSecret } from '../src/guards/credentials.ts';
import { request, spawnBroker, startBroker } from './helpers/broker.ts';
import { clientsClosedAfter, connect, connectRefused, type Generation, type TestClient } from './helpers/clients.ts';
import { sleep, until } from './helpers/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'spicy-reload-'));
/** How long a removed or changed credential's connections may stay: short, for the test. */
const CLOSE_WITHIN_MS = 600;

type Clients = Record<string, { secrets: string[]; grants?: Record<string, unknown> }>;
const write = (file: string, clients: Clients): void => writeFileSync(file, JSON.stringify({ clients }, null, 2));

describe('a reload under load', () => {
  const file = join(dir, 'credentials.json');
  const secret = { support: newSecret(), reporter: newSecret(), reporterNext: newSecret(), dashboard: newSecret(), collector: newSecret() };
  const clients: Clients = {
    'support-console': { secrets: [hashSecret(secret.support)], grants: { join: ['support'] } },
    'error-reporter': { secrets: [hashSecret(secret.reporter)], grants: { publish: ['report_*'] } },
    dashboard: { secrets: [hashSecret(secret.dashboard)], grants: { join: ['support', 'calls'] } },
    'trace-collector': { secrets: [hashSecret(secret.collector)], grants: { join: ['traces'] } },
  };
  write(file, clients);
  const opened = clientsClosedAfter();

  it('swaps secrets with nothing lost for unchanged clients, and closes the others within the bound', async () => {
    const broker = await startBroker({ credentialsFile: file, credentialsCloseWithinMs: CLOSE_WITHIN_MS });
    const open = async (generation: Generation, token: string): Promise<TestClient> => opened.keep(await connect(generation, broker.url, { transports: ['websocket'], token }));
    const support = await open('v1', secret.support);
    await support.ack('configure', { support: true });
    const reporter = await open('v2', secret.reporter);
    const dashboard = await open('v4', secret.dashboard);
    assert.equal(await dashboard.ack('join', 'support'), true);
    const collector = await open('v1', secret.collector);
    const closed = (client: TestClient): Promise<number> =>
      new Promise((resolve) => (client.raw as unknown as NodeJS.EventEmitter).once('disconnect', () => resolve(Date.now())));
    const dashboardClosed = closed(dashboard);
    const collectorClosed = closed(collector);

    // The reporter publishes steadily, acknowledged, throughout the reload.
    const EVENTS = 300;
    const sent = (async () => {
      for (let n = 0; n < EVENTS; n++) {
        assert.deepEqual(await reporter.ack('report_ops', { n }), { ok: true, rooms: 1 });
        if (n % 10 === 0) await sleep(2);
      }
    })();
    await until('the load is under way', () => support.count('report_ops') > 50);
    // A second secret for the reporter, new grants for the dashboard, the collector removed.
    clients['error-reporter']!.secrets.push(hashSecret(secret.reporterNext));
    clients.dashboard!.grants = { join: ['calls'] };
    delete clients['trace-collector'];
    write(file, clients);
    const reloadedAt = Date.now();
    const outcome = broker.reloadCredentials();
    assert.deepEqual(outcome, { ok: true, names: ['support-console', 'error-reporter', 'dashboard'] });
    // The new secret works at once; the old one still does.
    const next = await open('v4', secret.reporterNext);
    assert.deepEqual(await next.ack('report_csr', { from: 'the new secret' }), { ok: true, rooms: 1 });
    assert.equal(await connectRefused('v1', broker.url, { transports: ['websocket'], token: secret.collector }), 'unauthorized');

    for (const at of await Promise.all([dashboardClosed, collectorClosed])) assert.ok(at - reloadedAt <= CLOSE_WITHIN_MS + 500, `closed ${at - reloadedAt} ms after the reload`);
    await sent;
    await support.receive('report_ops', EVENTS);
    assert.deepEqual(support.payloads('report_ops'), Array.from({ length: EVENTS }, (_, n) => ({ n })), 'every event, once, in order');
    assert.equal(reporter.raw.connected, true, 'a client whose credential only gained a secret stays');
    assert.equal(support.raw.connected, true);

    // The end of the rotation: the old secret retired, its connection closed, the new one served.
    clients['error-reporter']!.secrets = [hashSecret(secret.reporterNext)];
    write(file, clients);
    const reporterClosed = closed(reporter);
    assert.equal(broker.reloadCredentials().ok, true);
    await reporterClosed;
    assert.equal(next.raw.connected, true);
    assert.deepEqual(await next.ack('report_ops', { n: 'after' }), { ok: true, rooms: 1 });
  });

  it('refuses a file it cannot use with one line naming the line, and keeps the credentials in force', async (t) => {
    const broker = await startBroker({ credentialsFile: file });
    const errors: string[] = [];
    const original = console.error;
    console.error = (line: string) => errors.push(line);
    t.after(() => (console.error = original));
    writeFileSync(file, '{"clients": {\n  "support-console": {"secrets": ["sha256:nothex"]}\n}}');
    const outcome = broker.reloadCredentials();
    assert.equal(outcome.ok, false);
    assert.deepEqual(errors, [`spicy-action: credentials not reloaded: ${file}:2: client "support-console": "secrets" must list one or more "sha256:<64 hex digits>" (made by \`spicy-action credentials add\`); the previous ones stay in force`]);
    const support = opened.keep(await connect('v1', broker.url, { transports: ['websocket'], token: secret.support }));
    assert.equal(support.raw.connected, true);
    write(file, clients);
  });
});

describe('SIGHUP', () => {
  it('re-reads the credentials file in the running process, and survives a broken one', async () => {
    const file = join(dir, 'hup.json');
    const first = newSecret();
    const second = newSecret();
    write(file, { dashboard: { secrets: [hashSecret(first)], grants: { read: ['metrics'] } } });
    const proc = spawnBroker({ CREDENTIALS_FILE: file });
    const url = await proc.ready;
    const metrics = (secret: string): Promise<number> => request(`${url}/metrics`, { headers: { Authorization: `Bearer ${secret}` } }).then((a) => a.status);
    assert.equal(await metrics(first), 200);
    assert.equal(await metrics(second), 401);

    write(file, { dashboard: { secrets: [hashSecret(first), hashSecret(second)], grants: { read: ['metrics'] } } });
    proc.child.kill('SIGHUP');
    await until('the reload is logged', () => proc.stderr().includes('credentials reloaded: 1 client(s)'));
    assert.equal(await metrics(second), 200);

    writeFileSync(file, '{"clients": {,}}');
    proc.child.kill('SIGHUP');
    await until('the refusal is logged', () => proc.stderr().includes('credentials not reloaded'));
    assert.match(proc.stderr(), new RegExp(`credentials not reloaded: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1: not valid JSON`));
    assert.equal(await metrics(second), 200, 'the previous credentials stay in force');
    assert.equal(proc.child.exitCode, null, 'still running');
    const broken = readFileSync(file, 'utf8');
    assert.equal(broken, '{"clients": {,}}');
    proc.child.kill('SIGTERM');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
  });
});
