/** Access (docs/protocol.md#access): with BROKER_TOKEN set, Socket.IO connections and HTTP requests need the token. */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { describe, it } from 'node:test';
import { httpToken, isLoopback, openAccessWarning, tokenChecker } from '../src/guards/access.ts';
import { notify, request, spawnBroker, startBroker } from './helpers/broker.ts';
import { closeAll, connect, connectRefused, GENERATIONS, withTimeout } from './helpers/clients.ts';
import { parseMetrics } from './helpers/metrics.ts';

const TOKEN = 'tok-3f9a7c1e';
// This suite fails on purpose many times from one address; the limit on failed attempts has tests of its own.
const broker = await startBroker({ token: TOKEN, authFailuresPerMinute: 100_000 });
const bearer = { Authorization: `Bearer ${TOKEN}` };

async function refusedCount(): Promise<number> {
  const text = (await request(`${broker.url}/metrics`, { headers: bearer })).body as string;
  return parseMetrics(text).value('spicy_action_refused_total', { reason: 'unauthorized' });
}

/** A GET through node:http with credentials in the URL, as OpenSIPS's notify URL carries them. */
function postWithUrlCredentials(url: string, body: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('token check (pure)', () => {
  it('accepts exactly the token', () => {
    const check = tokenChecker(TOKEN);
    assert.equal(check(TOKEN), true);
    for (const wrong of ['', 'tok', `${TOKEN}x`, TOKEN.toUpperCase(), undefined, null, 42, [TOKEN], { token: TOKEN }]) {
      assert.equal(check(wrong), false, `refuses ${JSON.stringify(wrong)}`);
    }
  });

  it('reads the token of a request from Bearer, Basic password or ?token=', () => {
    assert.equal(httpToken('/', `Bearer ${TOKEN}`), TOKEN);
    assert.equal(httpToken('/', `bearer   ${TOKEN}`), TOKEN);
    assert.equal(httpToken('/', `Basic ${Buffer.from(`notify:${TOKEN}`).toString('base64')}`), TOKEN);
    assert.equal(httpToken('/', `Basic ${Buffer.from(`:a:b`).toString('base64')}`), 'a:b', 'a password may hold colons');
    assert.equal(httpToken('/', `Basic ${Buffer.from('nocolon').toString('base64')}`), undefined);
    assert.equal(httpToken(`/_notify/x?a=1&token=${TOKEN}`, undefined), TOKEN);
    assert.equal(httpToken('/_notify/x', undefined), undefined);
    assert.equal(httpToken('/_notify/x', 'Digest abc'), undefined);
  });

  it('warns about a broker open to the network without a token', () => {
    for (const host of ['127.0.0.1', '127.0.1.1', 'localhost', '::1', '[::1]']) assert.equal(openAccessWarning(host, undefined), undefined, host);
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'broker.example.net']) {
      assert.match(openAccessWarning(host, undefined) ?? '', /without BROKER_TOKEN/, host);
      assert.equal(openAccessWarning(host, TOKEN), undefined, `${host} with a token`);
    }
    assert.equal(isLoopback('127.0.0.1'), true);
    assert.equal(isLoopback('0.0.0.0'), false);
  });
});

describe('Socket.IO connections with a token set', () => {
  for (const generation of GENERATIONS) {
    for (const transport of ['polling', 'websocket']) {
      it(`refuses socket.io-client ${generation} over ${transport} without the token or with a wrong one, and lets it in with it`, async () => {
        const before = await refusedCount();
        assert.equal(await connectRefused(generation, broker.url, { transports: [transport] }), 'unauthorized');
        assert.equal(await connectRefused(generation, broker.url, { transports: [transport], token: `${TOKEN}x` }), 'unauthorized');
        assert.equal(await refusedCount(), before + 2, 'each refusal is counted');
        const client = await connect(generation, broker.url, { transports: [transport], token: TOKEN });
        try {
          assert.equal(await client.ack('join', 'calls'), true);
        } finally {
          client.close();
        }
      });
    }
  }

  it('accepts ?token= in the URL from 1.x and 2.x clients, as their users write it', async () => {
    for (const generation of ['v1', 'v2'] as const) {
      const client = await connect(generation, `${broker.url}/?token=${TOKEN}`, { transports: ['websocket'] });
      client.close();
    }
  });

  for (const generation of GENERATIONS) {
    it(`accepts the token in an Authorization header (extraHeaders) from socket.io-client ${generation}, over polling and WebSocket`, async () => {
      for (const transports of [['polling'], ['websocket'], ['polling', 'websocket']]) {
        const headers = (value: string) => ({ transports, extra: { extraHeaders: { Authorization: value } } });
        const client = await connect(generation, broker.url, headers(`Bearer ${TOKEN}`));
        try {
          assert.equal(await client.ack('join', 'calls'), true, transports.join(','));
        } finally {
          client.close();
        }
        assert.equal(await connectRefused(generation, broker.url, headers(`Bearer ${TOKEN}x`)), 'unauthorized');
      }
    });
  }

  it('checks the token again when a 4.x client comes back with a session to recover', async () => {
    const first = await connect('v4', broker.url, { transports: ['websocket'], token: TOKEN });
    const raw = first.raw as unknown as { _pid?: string; _lastOffset?: string; io: { engine: { close(): void } } };
    // Drop the transport (a recoverable loss), then come back with the session but a wrong token.
    raw.io.engine.close();
    const pid = raw._pid ?? 'none';
    const offset = raw._lastOffset ?? 'none';
    assert.equal(
      await connectRefused('v4', broker.url, { transports: ['websocket'], extra: { auth: { token: 'wrong', pid, offset } } }),
      'unauthorized',
    );
    first.close();
  });
});

describe('HTTP with a token set', () => {
  const base = (): string => broker.url;

  it('leaves GET /health open', async () => {
    const answer = await request(`${base()}/health`);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.ok, true);
  });

  it('refuses GET /, GET /metrics and POST /_notify without a token, with a wrong one, with a wrong scheme', async () => {
    const before = await refusedCount();
    const wrongs: Record<string, string>[] = [
      {},
      { Authorization: `Bearer ${TOKEN}x` },
      { Authorization: `Basic ${Buffer.from(`notify:${TOKEN}x`).toString('base64')}` },
      { Authorization: `Basic ${Buffer.from(`${TOKEN}:`).toString('base64')}` }, // the token as user name is not a password
      { Authorization: `Token ${TOKEN}` },
    ];
    for (const headers of wrongs) {
      for (const answer of [
        await request(`${base()}/`, { headers }),
        await request(`${base()}/metrics`, { headers }),
        await notify(base(), 'report_ops', { error: 'x' }, headers),
      ]) {
        assert.equal(answer.status, 401, JSON.stringify(headers));
        assert.deepEqual(answer.body, { ok: false, error: 'unauthorized' });
        assert.match(answer.headers.get('www-authenticate') ?? '', /Bearer/);
      }
    }
    const wrongQuery = await request(`${base()}/?token=${TOKEN}x`);
    assert.equal(wrongQuery.status, 401);
    assert.equal(await refusedCount(), before + wrongs.length * 3 + 1, 'each refused request is counted');
  });

  it('accepts the token as Bearer, as Basic password, and as ?token=', async () => {
    const basic = { Authorization: `Basic ${Buffer.from(`notify:${TOKEN}`).toString('base64')}` };
    for (const headers of [bearer, basic]) {
      assert.equal((await request(`${base()}/`, { headers })).status, 200);
      assert.equal((await request(`${base()}/metrics`, { headers })).status, 200);
    }
    assert.equal((await request(`${base()}/?token=${TOKEN}`)).status, 200);
    assert.equal((await request(`${base()}/metrics?token=${TOKEN}`)).status, 200);
  });

  it('delivers an OpenSIPS notification whose URL carries the token as password', async () => {
    const client = await connect('v2', base(), { token: TOKEN });
    try {
      assert.equal(await client.ack('join', 'support'), true);
      const arrival = client.next('pike_blocked');
      const { hostname: host, port } = new URL(base());
      const answer = await postWithUrlCredentials(`http://notify:${TOKEN}@${host}:${port}/_notify/pike_blocked`, JSON.stringify({ type: 'pike_blocked', ip: '192.0.2.9' }));
      assert.deepEqual(answer, { status: 200, body: { ok: true } });
      assert.deepEqual((await arrival)[0], { type: 'pike_blocked', ip: '192.0.2.9' });
      const wrong = await postWithUrlCredentials(`http://notify:nope@${host}:${port}/_notify/pike_blocked`, '{}');
      assert.equal(wrong.status, 401);
      assert.equal((await notify(base(), 'pike_blocked', { ip: '192.0.2.9' }, { Authorization: `Bearer ${TOKEN}` })).status, 200);
    } finally {
      client.close();
    }
  });
});

describe('what the broker says about tokens', () => {
  it('never logs or exposes the token, right or wrong, and warns only when open to the network', async () => {
    const secret = 'zz-secret-93b1';
    const guess = 'zz-guess-51c7';
    const child = spawnBroker({ BROKER_TOKEN: secret, DEBUG: 'spicy-action:*' });
    const url = await child.ready;
    const client = await connect('v4', url, { token: secret });
    const legacy = await connect('v1', `${url}/?token=${secret}`);
    await connectRefused('v4', url, { token: guess });
    await connectRefused('v2', `${url}/?token=${guess}`);
    await request(`${url}/?token=${guess}`);
    await request(`${url}/`, { headers: { Authorization: `Bearer ${guess}` } });
    await notify(url, 'report_ops', { error: 'x' }, { Authorization: `Basic ${Buffer.from(`notify:${guess}`).toString('base64')}` });
    const metrics = (await request(`${url}/metrics?token=${secret}`)).body as string;
    assert.equal(parseMetrics(metrics).value('spicy_action_refused_total', { reason: 'unauthorized' }), 5);
    closeAll([client, legacy]);
    child.child.kill('SIGTERM');
    await withTimeout(child.exited, 'broker exit', 15_000);
    const logs = child.stdout() + child.stderr();
    assert.match(logs, /refused .*unauthorized/, 'refusals are logged');
    for (const text of [logs, metrics]) {
      assert.ok(!text.includes(secret), 'the token appears nowhere');
      assert.ok(!text.includes(guess), 'a wrong token appears nowhere');
    }
    assert.doesNotMatch(logs, /without BROKER_TOKEN/, 'no warning on loopback');
  });
});
