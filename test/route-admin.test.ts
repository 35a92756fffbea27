/**
 * Route administration on one broker (docs/protocol.md#routes): `GET /routes`
 * lists the table with where each route comes from, `DELETE /routes/:event`
 * removes a route, behind the token, counted and logged. Real broker, real
 * socket.io-client, real HTTP.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { hostname } from 'node:os';
import { format } from 'node:util';
import { afterEach, describe, it } from 'node:test';
import createDebug from 'debug';
import { DEFAULT_BUSES } from '../src/buses.ts';
import { DEFAULT_ROUTES, RouteTable, type RouteChange, type RouteRemoval } from '../src/routes.ts';
import { listedRoute, request, startBroker, type HttpAnswer } from './helpers/broker.ts';
import type { RouteListing } from '../src/http/routes.ts';
import { closeAll, connect, flush, type TestClient } from './helpers/clients.ts';
import { parseMetrics } from './helpers/metrics.ts';

const broker = await startBroker();
const NODE = `${hostname()}:${process.pid}`;
const open: TestClient[] = [];
afterEach(() => closeAll(open.splice(0)));

async function client(url = broker.url, token?: string): Promise<TestClient> {
  const c = await connect('v4', url, token === undefined ? {} : { token });
  open.push(c);
  return c;
}


const list = (url = broker.url, headers: Record<string, string> = {}): Promise<HttpAnswer> => request(`${url}/routes`, { headers });
const remove = (event: string, url = broker.url, headers: Record<string, string> = {}): Promise<HttpAnswer> =>
  request(`${url}/routes/${encodeURIComponent(event)}`, { method: 'DELETE', headers });

/**
 * DELETE with `path` sent as it stands: `fetch` (a WHATWG URL) turns `/routes/..`
 * and `/routes/%2E%2E` into `/`, as browsers do; curl has `--path-as-is`.
 */
function rawDelete(path: string, url = broker.url): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/`, { method: 'DELETE', path }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
    });
    req.on('error', reject).end();
  });
}

/** Debug lines of `namespace` logged while `run` runs. */
async function logged(namespace: string, run: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const originalLog = createDebug.log;
  const wasEnabled = createDebug.disable();
  createDebug.log = (...args: unknown[]) => lines.push(format(...(args as [string])));
  createDebug.enable(namespace);
  try {
    await run();
  } finally {
    createDebug.log = originalLog;
    createDebug.enable(wasEnabled);
  }
  return lines;
}

describe('route table: stamps and removal', () => {
  it('stamps each change with its time and node, and lists routes with their origin', () => {
    const table = new RouteTable(DEFAULT_BUSES, { node: 'b1:42' });
    assert.equal(table.node, 'b1:42');
    assert.equal(new RouteTable(DEFAULT_BUSES).node, NODE, 'host name and process id by default');
    const before = Date.now();
    table.register({ event: 'queuer', default_room: 'calls' });
    const stamp = table.stampOf('queuer');
    assert.equal(stamp?.node, 'b1:42');
    assert.ok(stamp && stamp.at >= before && stamp.at <= Date.now());
    table.set('remote', 'support', { at: 1_000, node: 'b2:7' });
    table.set('legacy', null, null);
    assert.equal(table.stampOf('call'), undefined, 'a built-in route never changed has no stamp');
    const listed = new Map([...table.list()].map((info) => [info.event, info]));
    assert.deepEqual(listed.get('call'), { event: 'call', bus: 'calls', kind: 'built-in', default: 'calls' });
    assert.deepEqual(listed.get('remote'), { event: 'remote', bus: 'support', kind: 'registered', stamp: { at: 1_000, node: 'b2:7' } });
    assert.deepEqual(listed.get('legacy'), { event: 'legacy', bus: null, kind: 'registered' }, 'a route of unknown origin has no stamp');
    assert.equal(listed.size, table.size);
  });

  it('removes a registered route, returns a built-in one to its default, and tells only real removals', () => {
    const table = new RouteTable(DEFAULT_BUSES);
    const removals: RouteRemoval[] = [];
    const changes: RouteChange[] = [];
    table.onRemove((removal) => removals.push(removal));
    table.onChange((change) => changes.push(change));
    table.register({ event: 'queuer', default_room: 'calls' });
    table.register({ event: 'call', default_room: 'support' });
    assert.deepEqual(table.remove('queuer'), { event: 'queuer', bus: undefined, changed: true });
    assert.deepEqual(table.remove('call'), { event: 'call', bus: 'calls', changed: true });
    assert.deepEqual(table.remove('call'), { event: 'call', bus: 'calls', changed: false }, 'already at its default');
    assert.equal(table.remove('queuer'), undefined);
    assert.equal(table.remove('__proto__'), undefined);
    assert.deepEqual(removals, [
      { event: 'queuer', bus: undefined },
      { event: 'call', bus: 'calls' },
    ]);
    assert.equal(changes.length, 2, 'removals are not told as changes');
    assert.equal(table.get('queuer'), undefined);
    assert.equal(table.stampOf('call'), undefined);
    assert.equal(table.size, DEFAULT_ROUTES.size);
  });
});

describe('GET /routes', () => {
  it('lists every built-in route with its default, and no stamp while never changed', async () => {
    const answer = await list();
    assert.equal(answer.status, 200);
    assert.match(answer.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(answer.headers.get('cache-control'), 'no-store');
    assert.equal(answer.body.ok, true);
    assert.equal(answer.body.node, NODE);
    assert.equal(answer.body.count, answer.body.routes.length);
    const builtIn = new Map((answer.body.routes as RouteListing[]).filter((r) => r.kind === 'built-in').map((r) => [r.event, r]));
    assert.equal(builtIn.size, DEFAULT_ROUTES.size);
    const call = builtIn.get('call');
    assert.deepEqual(call, { event: 'call', bus: 'calls', kind: 'built-in', default: 'calls' });
  });

  it('shows a route registered over Socket.IO with the node and time it was set', async () => {
    const handler = await client();
    const before = Date.now();
    assert.deepEqual(await handler.ack('register', { event: 'queuer', default_room: 'calls' }), { ok: true, event: 'queuer', bus: 'calls' });
    const after = Date.now();
    const queuer = await listedRoute(broker.url, 'queuer');
    assert.ok(queuer, 'queuer is listed');
    const { set_at: setAt, ...rest } = queuer;
    assert.deepEqual(rest, { event: 'queuer', bus: 'calls', kind: 'registered', set_on: NODE, set_by: 'anonymous' });
    const at = Date.parse(setAt ?? '');
    assert.ok(at >= before && at <= after, `set at ${setAt}, between ${before} and ${after}`);
    assert.equal(setAt, new Date(at).toISOString(), 'ISO 8601');
    // Registering the same route again changes nothing, its stamp included.
    await handler.ack('register', { event: 'queuer', default_room: 'calls' });
    assert.equal((await listedRoute(broker.url, 'queuer'))?.set_at, setAt);
  });
});

describe('DELETE /routes/:event', () => {
  it('removes a registered route: gone from the list, and an event sent after is unrouted', async () => {
    const [handler, listener] = [await client(), await client()];
    assert.equal(await listener.ack('join', 'calls'), true);
    await handler.ack('register', { event: 'mistake', default_room: 'calls' });
    assert.deepEqual(await handler.ack('mistake', { n: 1 }), { ok: true, rooms: 1 });
    await listener.receive('mistake', 1);

    const answer = await remove('mistake');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { ok: true, event: 'mistake' }, 'no bus after: the event has no route');
    assert.equal(await listedRoute(broker.url, 'mistake'), undefined);
    assert.equal(broker.broker.routes.get('mistake'), undefined);
    assert.deepEqual(await handler.ack('mistake', { n: 2 }), { ok: false, error: 'no route for "mistake"' });
    await flush(handler, [listener]);
    assert.equal(listener.count('mistake'), 1, 'nothing after the removal');

    const again = await remove('mistake');
    assert.equal(again.status, 404);
    assert.deepEqual(again.body, { ok: false, error: 'no route for "mistake"' });
  });

  it('returns a changed built-in route to its default, stamp cleared', async () => {
    const [admin, support, internal] = [await client(), await client(), await client()];
    await support.ack('join', 'support');
    await internal.ack('join', 'internal');
    await admin.ack('register', { event: 'report_dev', default_room: 'internal' });
    const changed = await listedRoute(broker.url, 'report_dev');
    assert.equal(changed?.bus, 'internal');
    assert.equal(changed?.kind, 'built-in');
    assert.equal(changed?.default, 'support');
    assert.equal(changed?.set_on, NODE);

    const answer = await remove('report_dev');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { ok: true, event: 'report_dev', bus: 'support' });
    assert.deepEqual(await listedRoute(broker.url, 'report_dev'), { event: 'report_dev', bus: 'support', kind: 'built-in', default: 'support' });
    admin.emit('report_dev', { error: 'x' });
    await flush(admin, [support, internal]);
    assert.equal(support.count('report_dev'), 1);
    assert.equal(internal.count('report_dev'), 0);

    // A built-in route at its default: nothing to remove, the answer says where it goes.
    assert.deepEqual((await remove('call')).body, { ok: true, event: 'call', bus: 'calls' });
    assert.equal(broker.broker.routes.get('call'), 'calls');
  });

  it('frees room in a full table', async () => {
    const small = await startBroker({ maxRoutes: DEFAULT_ROUTES.size + 1 });
    const handler = await client(small.url);
    assert.equal((await handler.ack<{ ok: boolean }>('register', { event: 'by-mistake', default_room: 'calls' })).ok, true);
    assert.deepEqual(await handler.ack('register', { event: 'wanted', default_room: 'calls' }), {
      ok: false,
      error: `the route table is full (${DEFAULT_ROUTES.size + 1} routes)`,
    });
    assert.equal((await remove('by-mistake', small.url)).status, 200);
    assert.deepEqual(await handler.ack('register', { event: 'wanted', default_room: 'calls' }), { ok: true, event: 'wanted', bus: 'calls' });
  });

  it('answers 404 with JSON for an unknown event, prototype names included, and changes nothing', async () => {
    const before = [...broker.broker.routes.entries()];
    for (const event of ['no-such-event', '__proto__', 'constructor', 'toString', 'join', 'connect']) {
      const answer = await remove(event);
      assert.equal(answer.status, 404, event);
      assert.deepEqual(answer.body, { ok: false, error: `no route for ${JSON.stringify(event)}` }, event);
    }
    assert.deepEqual([...broker.broker.routes.entries()], before);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  const weird = ['__proto__', 'constructor', 'a/b', 'a%2Fb', 'with space', '100%', 'what?', 'x#y', 'é:ünïcode', 'statistics:add:extra'];
  it(`removes routes of odd names, percent-encoded: ${weird.join(' ')}`, async () => {
    const handler = await client();
    for (const event of weird) {
      assert.deepEqual(await handler.ack('register', { event, default_room: 'support' }), { ok: true, event, bus: 'support' }, event);
      assert.equal((await listedRoute(broker.url, event))?.kind, 'registered', event);
    }
    for (const event of weird) {
      const answer = await remove(event);
      assert.equal(answer.status, 200, event);
      assert.deepEqual(answer.body, { ok: true, event }, event);
      assert.equal(broker.broker.routes.get(event), undefined, event);
      assert.deepEqual(await handler.ack(event, {}), { ok: false, error: `no route for "${event}"` }, event);
    }
    assert.equal(Object.getPrototypeOf(Object.fromEntries(broker.broker.routes.entries())), Object.prototype);
  });

  it('removes routes named . and .. when the path is sent as it stands', async () => {
    const handler = await client();
    for (const [event, path] of [['..', '/routes/..'], ['.', '/routes/%2E']] as const) {
      await handler.ack('register', { event, default_room: 'support' });
      assert.deepEqual(await rawDelete(path), { status: 200, body: { ok: true, event } }, event);
      assert.equal(broker.broker.routes.get(event), undefined, event);
    }
  });

  it('answers bad percent-encoding, and a missing name, with 400 and JSON', async () => {
    for (const path of ['/routes/%E0%A4%A', '/routes/%zz', '/routes', '/routes/']) {
      const answer = await request(`${broker.url}${path}`, { method: 'DELETE' });
      assert.equal(answer.status, 400, path);
      assert.match(answer.headers.get('content-type') ?? '', /application\/json/, path);
      assert.equal(answer.body.ok, false, path);
      assert.match(answer.body.error, path.includes('%') ? /not valid percent-encoding/ : /name the event/, path);
    }
  });
});

describe('route administration with a token', () => {
  const TOKEN = 'admin-s3cret';

  it('refuses both without the token (401, JSON), and works with it', async () => {
    const guarded = await startBroker({ token: TOKEN });
    const handler = await client(guarded.url, TOKEN);
    await handler.ack('register', { event: 'guarded', default_room: 'calls' });
    for (const [what, answer] of [
      ['GET without token', await list(guarded.url)],
      ['GET with a wrong token', await list(guarded.url, { Authorization: 'Bearer nope' })],
      ['DELETE without token', await remove('guarded', guarded.url)],
    ] as const) {
      assert.equal(answer.status, 401, what);
      assert.deepEqual(answer.body, { ok: false, error: 'unauthorized' }, what);
    }
    assert.equal(guarded.broker.routes.get('guarded'), 'calls', 'still there');
    const auth = { Authorization: `Bearer ${TOKEN}` };
    assert.equal((await list(guarded.url, auth)).status, 200);
    assert.deepEqual((await remove('guarded', guarded.url, auth)).body, { ok: true, event: 'guarded' });
    assert.equal(guarded.broker.routes.get('guarded'), undefined);

    // Refusals count as `unauthorized`; answered requests by action and status.
    const metrics = parseMetrics((await request(`${guarded.url}/metrics`, { headers: auth })).body as string);
    assert.equal(metrics.value('spicy_action_refused_total', { reason: 'unauthorized' }), 3);
    assert.equal(metrics.value('spicy_action_route_admin_requests_total', { action: 'list', status: '200' }), 1);
    assert.equal(metrics.value('spicy_action_route_admin_requests_total', { action: 'remove', status: '200' }), 1);
    assert.equal(metrics.value('spicy_action_route_admin_requests_total', { action: 'remove', status: '404' }), 0);
    assert.equal(metrics.value('spicy_action_routes'), DEFAULT_ROUTES.size);
  });

  it('logs each request with the event and the address, never the token', async () => {
    const guarded = await startBroker({ token: TOKEN });
    guarded.broker.routes.register({ event: 'logged-event', default_room: 'calls' });
    const lines = await logged('spicy-action:route-admin', async () => {
      assert.equal((await request(`${guarded.url}/routes?token=${TOKEN}`)).status, 200);
      assert.equal((await request(`${guarded.url}/routes/logged-event?token=${TOKEN}`, { method: 'DELETE' })).status, 200);
      assert.equal((await request(`${guarded.url}/routes/logged-event`, { method: 'DELETE', headers: { Authorization: `Bearer ${TOKEN}` } })).status, 404);
      assert.equal((await request(`${guarded.url}/routes/%E0%A4%A?token=${TOKEN}`, { method: 'DELETE' })).status, 400);
    });
    assert.equal(lines.length, 4, lines.join('\n'));
    assert.match(lines[0]!, /GET \/routes from 127\.0\.0\.1: \d+ routes/);
    assert.match(lines[1]!, /DELETE route "logged-event" from 127\.0\.0\.1 \(BROKER_TOKEN\): gone/);
    assert.match(lines[2]!, /DELETE route "logged-event" from 127\.0\.0\.1: no such route/);
    assert.match(lines[3]!, /DELETE \/routes\/%E0%A4%A from 127\.0\.0\.1: 400/);
    for (const line of lines) assert.ok(!line.includes(TOKEN), `no token in: ${line}`);
  });
});
