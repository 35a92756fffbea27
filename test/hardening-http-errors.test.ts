/**
 * Error answers (docs/security.md#error-answers): a request that fails
 * in a route, a path with a broken percent-escape first of all, gets
 * `{ok: false, error}` in JSON with its status, never Express's HTML page
 * with a stack trace and install paths, and is counted.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import express from 'express';
import { BAD_PATH_ERROR, errorAnswer, errorHandler } from '../src/http/errors.ts';
import { Telemetry } from '../src/telemetry.ts';
import { createMetrics } from '../src/http/metrics.ts';
import { ROOT, startBroker } from './helpers/broker.ts';
import { parseMetrics } from './helpers/metrics.ts';

const TOKEN = 'errors-token';
/** Every prefix the broker answers under. */
const PREFIXES = ['', '/health', '/metrics', '/_notify', '/monitor', '/monitor/config.json', '/socket.io'];
/** Percent-escapes `decodeURIComponent` refuses: cut short, not hex, overlong UTF-8, a lone surrogate, a bare %. */
const BROKEN = ['%E0%A4%A', '%', '%ZZ', '%C0%AF', '%ED%A0%80', 'ok%E0%A4%Aok'];

/** Sends a request with a raw path (fetch would not re-encode it) and reads the answer as text. */
async function raw(base: string, path: string, method: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; text: string }> {
  const res = await fetch(`${base}${path}`, { method, headers, body: method === 'POST' ? '{"x":1}' : undefined });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

/** Checks an answer leaks nothing and is the broker's JSON shape (Engine.IO answers /socket.io/ in its own). */
function assertClean(answer: { status: number; type: string; text: string }, path: string, prefix: string): void {
  const where = `${path}: ${answer.status} ${answer.text}`;
  assert.match(answer.type, /^application\/json/, where);
  assert.doesNotMatch(answer.text, /<html|<pre|\bat \S+ \(|node_modules|URIError|Failed to decode/i, where);
  assert.ok(!answer.text.includes(ROOT), where);
  const broken = BROKEN.find((b) => path.endsWith(b)) ?? path;
  assert.ok(broken === '%' || !answer.text.includes(broken), `the path is not echoed: ${where}`);
  const body = JSON.parse(answer.text) as Record<string, unknown>;
  if (prefix === '/socket.io') return;
  assert.deepEqual(Object.keys(body).sort(), ['error', 'ok'], where);
  assert.equal(body.ok, false);
  assert.equal(typeof body.error, 'string');
}

async function refusedFor(url: string, reason: string, headers: Record<string, string> = {}): Promise<number> {
  return parseMetrics(await (await fetch(`${url}/metrics`, { headers })).text()).value('spicy_action_refused_total', { reason });
}

for (const token of [undefined, TOKEN]) {
  describe(`malformed paths on every route prefix, ${token ? 'with a token set' : 'without a token'}`, async () => {
    // Many requests without the token, from one address, on purpose: the limit on failed attempts has tests of its own.
    const broker = await startBroker({ token, authFailuresPerMinute: 100_000 });
    const auth: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
    const presenting = token ? [false, true] : [false];

    for (const withToken of presenting) {
      it(`answer JSON without stack, path or install path${token ? (withToken ? ', token presented' : ', no token presented') : ''}`, async () => {
        const before = await refusedFor(broker.url, 'bad_request', auth);
        let badRequests = 0;
        for (const prefix of PREFIXES) {
          for (const broken of BROKEN) {
            for (const [method, path] of ['GET', 'POST'].flatMap((m) => [[m, `${prefix}/${broken}`], [m, `${prefix || '/'}${broken}`]] as const)) {
              const answer = await raw(broker.url, path, method, withToken ? auth : {});
              assertClean(answer, path, prefix);
              // Routes that decode a parameter (/_notify/:msg, /monitor/:file: the latter before the token check)
              // meet the broken escape; the others answer 401 or 404 as for any path.
              const decoded = /^\/monitor\/[^/]+$/.test(path) || (/^\/_notify\/[^/]+$/.test(path) && (withToken || !token));
              if (decoded) {
                assert.equal(answer.status, 400, `${method} ${path}: ${answer.text}`);
                assert.deepEqual(JSON.parse(answer.text), { ok: false, error: BAD_PATH_ERROR });
                badRequests++;
              } else {
                assert.ok([400, 401, 404].includes(answer.status), `${method} ${path}: ${answer.status}`);
              }
            }
          }
        }
        assert.ok(badRequests > 0);
        assert.equal(await refusedFor(broker.url, 'bad_request', auth), before + badRequests, 'each is counted');
      });
    }
  });
}

describe('the last error handler', () => {
  it('answers a failing route 500 {ok:false, error: "internal error"}, without the message or stack, and reports it', async () => {
    const app = express();
    app.get('/boom', () => {
      throw new Error(`secret detail from ${ROOT}`);
    });
    app.get('/big', (_req, _res, next) => next(Object.assign(new Error('big'), { status: 413 })));
    app.get('/teapot', (_req, _res, next) => next(Object.assign(new Error('x'), { statusCode: 418 })));
    app.get('/not-a-status', (_req, _res, next) => next(Object.assign(new Error('x'), { status: 200 })));
    const telemetry = new Telemetry();
    app.use(errorHandler((attempt, refusal) => telemetry.refused(attempt.what, refusal)));
    const registry = createMetrics({ broker: { routes: new Map(), telemetry }, connections: () => 0, processMetrics: false });
    const server = createServer(app).listen(0, '127.0.0.1');
    after(() => server.close());
    await new Promise((resolve) => server.once('listening', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const boom = await raw(base, '/boom', 'GET');
    assert.equal(boom.status, 500);
    assert.deepEqual(JSON.parse(boom.text), { ok: false, error: 'internal error' });
    assert.deepEqual(JSON.parse((await raw(base, '/big', 'GET')).text), { ok: false, error: 'request too large' });
    const teapot = await raw(base, '/teapot', 'GET');
    assert.deepEqual([teapot.status, JSON.parse(teapot.text)], [418, { ok: false, error: 'bad request' }]);
    assert.equal((await raw(base, '/not-a-status', 'GET')).status, 500);

    const metrics = parseMetrics(await registry.metrics());
    assert.equal(metrics.value('spicy_action_refused_total', { reason: 'server_error' }), 2);
    assert.equal(metrics.value('spicy_action_refused_total', { reason: 'too_large' }), 1);
    assert.equal(metrics.value('spicy_action_refused_total', { reason: 'bad_request' }), 1);
  });

  it('maps errors to statuses and sentences of its own', () => {
    assert.deepEqual(errorAnswer(new URIError('URI malformed')), { status: 400, refusal: { reason: 'bad_request', error: BAD_PATH_ERROR } });
    assert.deepEqual(errorAnswer(Object.assign(new Error('x'), { status: 503 })), { status: 503, refusal: { reason: 'server_error', error: 'service unavailable' } });
    assert.deepEqual(errorAnswer('a string'), { status: 500, refusal: { reason: 'server_error', error: 'internal error' } });
    assert.deepEqual(errorAnswer({ status: 'nope' }), { status: 500, refusal: { reason: 'server_error', error: 'internal error' } });
  });
});
