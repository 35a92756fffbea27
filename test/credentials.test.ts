/**
 * Named credentials (docs/security.md#credentials): the platform's programs, each with its own
 * secret and the least grants of deploy/credentials.example.json, doing their work with real
 * clients of their generation; a dashboard refused everything it was not given, counted and
 * attributed, and still served; the limit on failed attempts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { notify, request, startBroker } from './helpers/broker.ts';
import { exampleWithSecrets } from './helpers/credentials.ts';
import { clientsClosedAfter, connect, connectRefused, type ClientOptions, type Generation, type TestClient } from './helpers/clients.ts';
import { captureLog } from './helpers/logs.ts';
import { parseMetrics } from './helpers/metrics.ts';
import { until } from './helpers/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'spicy-credentials-'));

const file = join(dir, 'credentials.json');
const secrets = exampleWithSecrets(file);
const broker = await startBroker({ credentialsFile: file });
const clients = clientsClosedAfter({ transports: ['websocket'] });
const as = (name: string, options: ClientOptions = {}): ClientOptions => ({ transports: ['websocket'], ...options, token: secrets[name] });
/** A client of `generation` presenting the secret of `name`. */
const open = async (generation: Generation, name: string): Promise<TestClient> => clients.keep(await connect(generation, broker.url, as(name)));
const bearer = (name: string): Record<string, string> => ({ Authorization: `Bearer ${secrets[name]}` });

async function metrics(): Promise<ReturnType<typeof parseMetrics>> {
  return parseMetrics((await request(`${broker.url}/metrics`, { headers: bearer('prometheus') })).body as string);
}

describe('the platform with a credential per program', () => {
  it('refuses a connection without a secret, with a placeholder of the example, or with a secret of no one', async () => {
    assert.equal(await connectRefused('v4', broker.url, { transports: ['websocket'] }), 'unauthorized');
    assert.equal(await connectRefused('v1', broker.url, { transports: ['websocket'], token: 'sa_guess' }), 'unauthorized');
    assert.equal((await notify(broker.url, 'script_register', { name: 'x' })).status, 401);
  });

  it('runs the seven programs on their least grants, each of its generation, as docs/protocol.md describes them', async () => {
    const support = await open('v1', 'support-console');
    assert.deepEqual(await support.ack('configure', { support: true }), { ok: true, joined: ['support'], left: [] });
    const handler = await open('v1', 'call-handler');
    assert.deepEqual(await handler.ack('configure', { dial_calls: true }), { ok: true, joined: ['dial_calls'], left: [] });
    assert.deepEqual(await handler.ack('register', { event: 'place-call', default_room: 'dial_calls' }), { ok: true, event: 'place-call', bus: 'dial_calls' });
    const opensips = await open('v2', 'opensips-helper');
    assert.deepEqual(await opensips.ack('configure', { locations: true }), { ok: true, joined: ['locations'], left: [] });
    const collector = await open('v1', 'trace-collector');
    await collector.ack('configure', { traces: true });
    const reporter = await open('v2', 'error-reporter');
    const dashboard = await open('v4', 'dashboard');
    assert.equal(await dashboard.ack('join', 'calls'), true);
    assert.equal(await dashboard.ack('join', 'endpoint:alice@example.net'), true);
    assert.equal(await dashboard.ack('join', 'internal'), false, 'not granted');

    // The call handler reports a call; the dashboard sees it on `calls` once.
    handler.emit('call', { state: 'end', call: 'c1', _in: ['endpoint:alice@example.net'] });
    assert.deepEqual((await dashboard.receive('call', 1))[0], { state: 'end', call: 'c1', _in: ['endpoint:alice@example.net'] });
    // The dashboard asks OpenSIPS where alice is; the helper hears it.
    assert.deepEqual(await dashboard.ack('location', 'alice@example.net'), { ok: true, rooms: 1 });
    assert.deepEqual((await opensips.receive('location', 1))[0], 'alice@example.net');
    opensips.emit('location:response', { aor: 'alice@example.net', _in: ['endpoint:alice@example.net'] });
    await dashboard.receive('location:response', 1);
    // A trace: asked by the dashboard, answered by the collector.
    dashboard.emit('trace', { reference: 'r0.1' });
    await collector.receive('trace', 1);
    // An error report reaches the support console.
    reporter.emit('report_ops', { msg: 'disk full', application: 'ccnq4-reporter' });
    assert.deepEqual((await support.receive('report_ops', 1))[0], { msg: 'disk full', application: 'ccnq4-reporter' });
    // OpenSIPS pushes with Basic auth, its client's name as user.
    const basic = { Authorization: `Basic ${Buffer.from(`opensips-notify:${secrets['opensips-notify']}`).toString('base64')}` };
    assert.deepEqual((await notify(broker.url, 'script_register', { name: 'invalid_source', endpoint: 'alice@example.net', ip: '192.0.2.7' }, basic)).body, { ok: true });
    await support.receive('script_register', 1);
    await dashboard.receive('script_register', 1);

    const read = await metrics();
    for (const [event, name] of [['call', 'call-handler'], ['location', 'dashboard'], ['report_ops', 'error-reporter'], ['script_register', 'opensips-notify']]) {
      assert.equal(read.value('spicy_action_events_received_total', { event: event as string, credential: name as string }), 1, `${event} attributed to ${name}`);
    }
  });

  it('refuses the dashboard every forbidden action, counted and logged under its name, and goes on serving it', async (t) => {
    const logged = captureLog(t, 'spicy-action:*');
    const dashboard = await open('v4', 'dashboard');
    const handler = await open('v1', 'call-handler');
    await handler.ack('configure', { dial_calls: true });
    await handler.ack('register', { event: 'place-call', default_room: 'dial_calls' });
    const before = (await metrics()).value('spicy_action_refused_total', { reason: 'forbidden', credential: 'dashboard' });

    assert.deepEqual(await dashboard.ack('place-call', { destination: '33987654321' }), { ok: false, error: 'forbidden' });
    assert.deepEqual(await dashboard.ack('register', { event: 'location', default_room: 'support' }), { ok: false, error: 'forbidden' });
    assert.deepEqual(await dashboard.ack('configure', { dial_calls: true, support: true }), { ok: false, error: 'forbidden' });
    assert.equal(await dashboard.ack('join', 'dial_calls'), false);
    assert.deepEqual(await dashboard.ack('shout', 'hello'), { ok: false, error: 'forbidden' });
    dashboard.emit('report_dev', { msg: 'forged' }); // no callback: told with `failed`
    assert.deepEqual((await dashboard.next('failed'))[0], { event: 'report_dev', msg: 'forbidden' });
    const http = [
      await request(`${broker.url}/routes/place-call`, { method: 'DELETE', headers: bearer('dashboard') }),
      await notify(broker.url, 'call', { state: 'forged' }, bearer('dashboard')),
      await request(`${broker.url}/metrics`, { headers: bearer('dashboard') }),
      await request(`${broker.url}/routes`, { headers: bearer('dashboard') }),
    ];
    for (const answer of http) assert.deepEqual([answer.status, answer.body], [403, { ok: false, error: 'forbidden' }]);

    const after = (await metrics()).value('spicy_action_refused_total', { reason: 'forbidden', credential: 'dashboard' });
    assert.equal(after - before, 10);
    assert.ok(logged.some((line) => /refused place-call from \S+ \(dashboard\): forbidden/.test(line)), logged.join('\n'));
    assert.ok(logged.some((line) => /refused DELETE \/routes\/place-call from \S+ \(dashboard\): forbidden/.test(line)));
    // Nothing changed: place-call still routed to dial_calls, and the handler received nothing forged.
    assert.equal((await request(`${broker.url}/routes`, { headers: bearer('operator') })).status, 200);
    assert.equal(handler.count('place-call'), 0);
    // Still connected and served: its allowed work goes on.
    assert.equal(dashboard.raw.connected, true);
    assert.equal(await dashboard.ack('join', 'calls'), true);
    handler.emit('call', { state: 'ringing', call: 'c2' });
    await until('the dashboard still receives calls', () => dashboard.payloads('call').some((p) => (p as { call: string }).call === 'c2'));
  });

  it('lets the operator read and change routes and the monitor read its configuration, and no one else', async () => {
    assert.equal((await request(`${broker.url}/routes`, { headers: bearer('operator') })).status, 200);
    assert.equal((await request(`${broker.url}/monitor/config.json`, { headers: bearer('dashboard') })).status, 200);
    assert.equal((await request(`${broker.url}/monitor/config.json`, { headers: bearer('call-handler') })).status, 403);
    const removal = await request(`${broker.url}/routes/queuer`, { method: 'DELETE', headers: bearer('operator') });
    assert.notEqual(removal.status, 403);
  });
});

describe('failed attempts', () => {
  it('refuses an address past its failed attempts, even with a right secret, for the rest of its minute, logged once', async (t) => {
    const limited = await startBroker({ credentialsFile: file, authFailuresPerMinute: 5 });
    const warnings: string[] = [];
    const original = console.warn;
    console.warn = (line: string) => warnings.push(line);
    t.after(() => (console.warn = original));
    for (let i = 0; i < 5; i++) assert.equal((await request(`${limited.url}/metrics`, { headers: { Authorization: 'Bearer sa_wrong' } })).status, 401);
    const blocked = await request(`${limited.url}/metrics`, { headers: bearer('prometheus') });
    assert.equal(blocked.status, 429);
    assert.deepEqual(blocked.body, { ok: false, error: 'too many failed attempts; try again later' });
    assert.equal(await connectRefused('v4', limited.url, as('dashboard')), 'too many failed attempts; try again later');
    for (let i = 0; i < 5; i++) await request(`${limited.url}/metrics`, { headers: { Authorization: 'Bearer sa_wrong' } });
    assert.equal(warnings.filter((line) => line.includes('failed authentications from')).length, 1, warnings.join('\n'));
    // Read in process: this address may not ask /metrics for the rest of the minute.
    const counted = parseMetrics(await limited.metrics.metrics());
    assert.equal(counted.value('spicy_action_refused_total', { reason: 'unauthorized' }), 5, 'the five that were checked');
    assert.equal(counted.value('spicy_action_refused_total', { reason: 'too_many_attempts' }), 7, 'the seven refused unchecked');
  });
});
