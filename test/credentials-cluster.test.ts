/**
 * Credentials on a cluster (docs/security.md#credentials): two nodes on one real redis-server,
 * each reading the same file, enforce the same grants; events cross nodes attributed to their
 * sender on the node that took them; a reload on one node changes that node alone.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { hashSecret, newSecret } from '../src/guards/credentials.ts';
import { request, startBroker } from './helpers/broker.ts';
import { clientsClosedAfter, connect, connectRefused, type Generation, type TestClient } from './helpers/clients.ts';
import { parseMetrics } from './helpers/metrics.ts';
import { RedisServer } from './helpers/redis.ts';
import { until } from './helpers/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'spicy-credentials-cluster-'));

describe('credentials on two nodes', async () => {
  const redis = await RedisServer.start();
  const file = join(dir, 'credentials.json');
  const secret = { handler: newSecret(), dashboard: newSecret(), next: newSecret() };
  const clients = {
    'call-handler': { secrets: [hashSecret(secret.handler)], grants: { join: ['dial_calls'], publish: ['call'], register: ['place-call'] } },
    dashboard: { secrets: [hashSecret(secret.dashboard)], grants: { join: ['calls', 'dial_calls'], read: ['metrics'] } },
  };
  writeFileSync(file, JSON.stringify({ clients }));
  const [a, b] = await Promise.all([startBroker({ redisUrl: redis.url, credentialsFile: file }), startBroker({ redisUrl: redis.url, credentialsFile: file })]);
  const opened = clientsClosedAfter();
  const open = async (generation: Generation, url: string, token: string): Promise<TestClient> => opened.keep(await connect(generation, url, { transports: ['websocket'], token }));
  const refusedOn = async (url: string): Promise<number> =>
    parseMetrics((await request(`${url}/metrics`, { headers: { Authorization: `Bearer ${secret.dashboard}` } })).body as string).value('spicy_action_refused_total', {
      reason: 'forbidden',
      credential: 'dashboard',
    });

  it('enforces the same grants on both nodes, and delivers across them', async () => {
    const handler = await open('v1', b.url, secret.handler);
    await handler.ack('configure', { dial_calls: true });
    assert.deepEqual(await handler.ack('register', { event: 'place-call', default_room: 'dial_calls' }), { ok: true, event: 'place-call', bus: 'dial_calls' });
    // The route is known on A with who set it, and where.
    const stamp = await until('node A has the route', () => a.broker.routes.stampOf('place-call'));
    assert.deepEqual([stamp.by, stamp.node], ['call-handler', b.broker.routes.node]);
    const dashboard = await open('v4', a.url, secret.dashboard);
    assert.equal(await dashboard.ack('join', 'calls'), true);
    handler.emit('call', { call: 'c1' });
    assert.deepEqual((await dashboard.receive('call', 1))[0], { call: 'c1' });
    // The route the handler registered on B is known on A; the dashboard may not use it there.
    assert.deepEqual(await dashboard.ack('place-call', { destination: '33987654321' }), { ok: false, error: 'forbidden' });
    const onB = await open('v2', b.url, secret.dashboard);
    assert.deepEqual(await onB.ack('register', { event: 'place-call', default_room: 'support' }), { ok: false, error: 'forbidden' });
    assert.equal(await refusedOn(a.url), 1);
    assert.equal(await refusedOn(b.url), 1);
    assert.equal(handler.count('place-call'), 0);
  });

  it('reloads one node at a time: a new secret works on the node that re-read the file', async () => {
    writeFileSync(file, JSON.stringify({ clients: { ...clients, dashboard: { ...clients.dashboard, secrets: [hashSecret(secret.dashboard), hashSecret(secret.next)] } } }));
    assert.equal(a.reloadCredentials().ok, true);
    assert.equal((await open('v4', a.url, secret.next)).raw.connected, true);
    assert.equal(await connectRefused('v4', b.url, { transports: ['websocket'], token: secret.next }), 'unauthorized');
    assert.equal(b.reloadCredentials().ok, true);
    assert.equal((await open('v4', b.url, secret.next)).raw.connected, true);
  });
});
