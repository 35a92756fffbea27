/**
 * Who a request comes from behind proxies (src/client-address.ts):
 * `X-Forwarded-For` believed only from the proxies listed in TRUST_PROXY,
 * and the route a session is bound to.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseProxyList, TrustedProxies } from '../src/client-address.ts';

/** A fixed seed unless told otherwise, so that a failure can be replayed; printed with each property. */
const SEED = process.env.FUZZ_SEED === undefined ? 19 : Number(process.env.FUZZ_SEED);
const RUNS = Number(process.env.FUZZ_RUNS ?? 200);

const PROXY = '10.0.0.2';
const CLIENT = '198.51.100.7';

describe('TRUST_PROXY, read', () => {
  it('takes addresses and CIDR blocks of both families, comma-separated', () => {
    assert.deepEqual(parseProxyList(' 10.0.0.5, 10.0.1.0/24,::1 ,fd00::/8,'), ['10.0.0.5', '10.0.1.0/24', '::1', 'fd00::/8']);
    assert.deepEqual(parseProxyList(''), []);
  });

  it('refuses anything else, naming the entry', () => {
    for (const entry of ['haproxy', '10.0.0.300', '10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0.0/x', 'loopback']) {
      assert.throws(() => parseProxyList(`10.0.0.5,${entry}`), new RegExp(`expected addresses or CIDR blocks .*"${entry.replace(/[.*/]/g, '\\$&')}"`), entry);
    }
  });
});

describe('the client address', () => {
  it('is the peer when no proxy is listed, whatever X-Forwarded-For says', () => {
    const none = new TrustedProxies();
    assert.equal(none.clientAddress(PROXY, CLIENT), PROXY);
    assert.equal(none.clientAddress('::ffff:10.0.0.2', undefined), PROXY, 'IPv4 on a dual-stack socket, plain');
    assert.equal(none.clientAddress(undefined, CLIENT), undefined);
  });

  it('is the address a listed proxy forwarded for, and the peer for any other', () => {
    const proxies = new TrustedProxies([PROXY]);
    assert.equal(proxies.clientAddress(PROXY, CLIENT), CLIENT);
    assert.equal(proxies.clientAddress(`::ffff:${PROXY}`, CLIENT), CLIENT);
    assert.equal(proxies.clientAddress(PROXY, `1.2.3.4, ${CLIENT}`), CLIENT, 'what the client wrote before the proxy is not believed');
    assert.equal(proxies.clientAddress('203.0.113.9', CLIENT), '203.0.113.9', 'a peer that is not a proxy');
    assert.equal(proxies.clientAddress(PROXY, undefined), PROXY, 'a proxy that forwarded nothing');
    assert.equal(proxies.clientAddress(PROXY, 'not-an-address'), PROXY, 'a proxy that forwarded no address');
    assert.equal(proxies.clientAddress(PROXY, ['192.0.2.1', CLIENT]), CLIENT, 'repeated headers');
  });

  it('walks through every listed proxy, by block too, and stops at the first one not listed', () => {
    const proxies = new TrustedProxies(['10.0.0.0/24', '2001:db8::/32']);
    assert.equal(proxies.clientAddress('10.0.0.9', `192.0.2.1, ${CLIENT}, 10.0.0.3`), CLIENT);
    assert.equal(proxies.clientAddress('2001:db8::1', CLIENT), CLIENT);
    assert.equal(proxies.clientAddress('10.0.0.9', '10.0.0.4, 10.0.0.3'), '10.0.0.4', 'every hop trusted: the furthest');
  });
});

describe('the route a session is bound to', () => {
  it('holds the whole chain when no proxy is listed, and drops the listed ones at the end', () => {
    assert.equal(new TrustedProxies().route(PROXY, CLIENT), `${CLIENT},${PROXY}`);
    assert.equal(new TrustedProxies().route(PROXY, undefined), PROXY);
    assert.equal(new TrustedProxies([PROXY]).route(PROXY, CLIENT), CLIENT);
  });

  const address = fc.oneof(fc.ipV4(), fc.ipV6());
  const forged = fc.array(fc.oneof(address, fc.string({ maxLength: 20 }).filter((s) => !s.includes(','))), { maxLength: 3 });

  it(`differs for two clients of different addresses behind the same proxy, listed or not, whatever they forge (seed ${SEED})`, () => {
    fc.assert(
      fc.property(address, address, address, forged, forged, fc.boolean(), (proxy, victim, attacker, victimForged, attackerForged, listed) => {
        const proxies = new TrustedProxies(listed ? [proxy] : []);
        // Two clients, neither of them a listed proxy (a listed proxy is believed, by definition).
        fc.pre(victim !== attacker && !proxies.trusts(victim) && !proxies.trusts(attacker));
        // The proxy appends the address it received each request from after what the client wrote.
        const through = (client: string, written: string[]): string => [...written, client].join(', ');
        assert.notEqual(proxies.route(proxy, through(victim, victimForged)), proxies.route(proxy, through(attacker, attackerForged)));
        // And the same client, coming the same way, always has the same route.
        assert.equal(proxies.route(proxy, through(victim, victimForged)), proxies.route(proxy, through(victim, victimForged)));
        // The client address is the client's when the proxy is listed.
        if (listed) assert.equal(proxies.clientAddress(proxy, through(victim, victimForged)), new TrustedProxies().clientAddress(victim, undefined));
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it(`never matches a direct peer's route from another address (seed ${SEED})`, () => {
    fc.assert(
      fc.property(address, address, forged, forged, (victim, attacker, victimForged, attackerForged) => {
        fc.pre(victim !== attacker);
        const proxies = new TrustedProxies();
        assert.notEqual(proxies.route(victim, victimForged.join(',') || undefined), proxies.route(attacker, attackerForged.join(',') || undefined));
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});
