/** Grants and credentials (docs/security.md#credentials): matching, the file, secrets, reloads. Pure. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Grants, NameSet, grantsProblem } from '../src/guards/grants.ts';
import { ANONYMOUS, CredentialsError, hashSecret, newSecret, parseCredentials, tokenCredential, TOKEN_NAME } from '../src/guards/credentials.ts';

/** Names as clients send them, prototype names and regular-expression characters included. */
const names = fc.oneof(
  fc.string({ minLength: 1, maxLength: 20 }),
  fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'calls', 'endpoint:alice@example.net', '.*', '^$', '[a]', '(x)', 'a\nb'),
);
const SEED = Number(process.env.FUZZ_SEED ?? 20261207);

/** The reference: a pattern matches a name when its pieces between `*` appear in order, anchored at both ends. */
function globMatches(pattern: string, name: string): boolean {
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === name;
  const first = parts[0] ?? '';
  const last = parts[parts.length - 1] ?? '';
  if (!name.startsWith(first) || name.length < first.length + last.length || !name.endsWith(last)) return false;
  let at = first.length;
  const end = name.length - last.length;
  for (const middle of parts.slice(1, -1)) {
    const found = name.indexOf(middle, at);
    if (found < 0 || found + middle.length > end) return false;
    at = found + middle.length;
  }
  return true;
}

describe('NameSet', () => {
  it('matches names and patterns exactly as the glob rule says (property)', () => {
    const patterns = fc.array(fc.oneof(names, names.map((n) => `${n}*`), names.map((n) => `*${n}`), fc.tuple(names, names).map(([a, b]) => `${a}*${b}`)), { maxLength: 5 });
    fc.assert(
      fc.property(patterns, names, (list, name) => {
        assert.equal(new NameSet(list).has(name), list.some((p) => globMatches(p, name)), `${JSON.stringify(list)} vs ${JSON.stringify(name)}`);
      }),
      { seed: SEED, numRuns: 2_000 },
    );
  });

  it('gives prototype names no special meaning', () => {
    const set = new NameSet(['calls']);
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) assert.equal(set.has(name), false, name);
    assert.equal(new NameSet(['__proto__']).has('__proto__'), true);
  });

  it('takes regular-expression characters literally', () => {
    const set = new NameSet(['a.b*', '(x)']);
    assert.equal(set.has('a.bcd'), true);
    assert.equal(set.has('axbcd'), false);
    assert.equal(set.has('(x)'), true);
    assert.equal(set.has('x'), false);
  });

  it('matches everything with * and nothing when empty', () => {
    fc.assert(fc.property(names, (name) => NameSet.ALL.has(name) && !NameSet.NONE.has(name)), { seed: SEED });
  });
});

describe('Grants', () => {
  it('allows nothing by default', () => {
    const grants = new Grants({});
    for (const action of ['join', 'publish', 'register', 'notify'] as const) assert.equal(grants.may(action, 'calls'), false, action);
    assert.equal(grants.mayRead('metrics'), false);
    assert.equal(grants.mayChangeRoutes, false);
  });

  it('allows what a dashboard is given and nothing else', () => {
    const dashboard = new Grants({ join: ['calls', 'support', 'endpoint:*'], publish: ['trace'], read: ['monitor'] });
    assert.equal(dashboard.may('join', 'calls'), true);
    assert.equal(dashboard.may('join', 'endpoint:alice@example.net'), true);
    assert.equal(dashboard.may('join', 'dial_calls'), false);
    assert.equal(dashboard.may('publish', 'trace'), true);
    assert.equal(dashboard.may('publish', 'place-call'), false);
    assert.equal(dashboard.may('register', 'location'), false);
    assert.equal(dashboard.may('notify', 'call'), false);
    assert.equal(dashboard.mayRead('monitor'), true);
    assert.equal(dashboard.mayRead('metrics'), false);
    assert.equal(dashboard.mayChangeRoutes, false);
  });

  it('allows everything to the shared token', () => {
    assert.equal(Grants.ALL.may('publish', 'place-call'), true);
    assert.equal(Grants.ALL.mayChangeRoutes, true);
    assert.equal(tokenCredential('s3cret').grants, Grants.ALL);
  });

  it('names what is wrong in grants from a file', () => {
    assert.equal(grantsProblem(undefined), undefined);
    assert.equal(grantsProblem({ join: ['calls'], read: ['metrics'], routes: false }), undefined);
    assert.match(grantsProblem([]) ?? '', /must be an object/);
    assert.match(grantsProblem({ join: 'calls' }) ?? '', /grants.join must be a list/);
    assert.match(grantsProblem({ join: [''] }) ?? '', /grants.join/);
    assert.match(grantsProblem({ read: ['secrets'] }) ?? '', /grants.read must list some of metrics, routes, monitor/);
    assert.match(grantsProblem({ routes: 'yes' }) ?? '', /grants.routes must be true or false/);
    assert.match(grantsProblem({ emit: ['x'] }) ?? '', /unknown grant "emit"/);
  });
});

describe('Credentials', () => {
  const dashboardSecret = newSecret();
  const handlerSecret = newSecret();
  const file = (clients: object) => JSON.stringify({ clients }, null, 2);
  const text = file({
    dashboard: { secrets: [hashSecret(dashboardSecret)], grants: { join: ['calls'] } },
    'call-handler': { secrets: [hashSecret(handlerSecret)], grants: { join: ['calls'], publish: ['call'] } },
  });

  it('makes long random secrets and keeps only their hash', () => {
    assert.match(dashboardSecret, /^sa_[A-Za-z0-9_-]{43}$/);
    assert.notEqual(newSecret(), newSecret());
    assert.ok(!text.includes(dashboardSecret));
    assert.match(hashSecret(dashboardSecret), /^sha256:[0-9a-f]{64}$/);
  });

  it('finds the client behind a secret, and no one behind anything else', () => {
    const credentials = parseCredentials(text, 'credentials.json');
    assert.equal(credentials.authenticate(dashboardSecret)?.credential.name, 'dashboard');
    assert.equal(credentials.authenticate(handlerSecret)?.credential.name, 'call-handler');
    for (const wrong of [undefined, '', 'guess', hashSecret(dashboardSecret), dashboardSecret.slice(0, -1), 42, ['x']]) assert.equal(credentials.authenticate(wrong), undefined, String(wrong));
    assert.deepEqual(credentials.names, ['dashboard', 'call-handler']);
  });

  it('takes the shared token as one more credential, allowed everything', () => {
    const credentials = parseCredentials(text, 'credentials.json', [tokenCredential('the-token')]);
    assert.equal(credentials.authenticate('the-token')?.credential.name, TOKEN_NAME);
    assert.equal(ANONYMOUS.credential.grants, Grants.ALL);
  });

  it('accepts two secrets for one client during a rotation', () => {
    const next = newSecret();
    const credentials = parseCredentials(file({ dashboard: { secrets: [hashSecret(dashboardSecret), hashSecret(next)] } }), 'c.json');
    assert.equal(credentials.authenticate(dashboardSecret)?.credential.name, 'dashboard');
    assert.equal(credentials.authenticate(next)?.credential.name, 'dashboard');
  });

  it('keeps a client whose secret and grants are unchanged, and only that one', () => {
    const before = parseCredentials(text, 'c.json');
    const dashboard = before.authenticate(dashboardSecret)!;
    const handler = before.authenticate(handlerSecret)!;
    const reordered = file({
      'call-handler': { secrets: [hashSecret(handlerSecret), hashSecret(newSecret())], grants: { publish: ['call'], join: ['calls'] } },
      dashboard: { secrets: [hashSecret(dashboardSecret)], grants: { join: ['calls', 'support'] } },
    });
    const after = parseCredentials(reordered, 'c.json');
    assert.equal(after.keeps(handler), true, 'a second secret and another key order change nothing');
    assert.equal(after.keeps(dashboard), false, 'changed grants');
    const removed = parseCredentials(file({ 'call-handler': { secrets: [hashSecret(newSecret())], grants: { join: ['calls'], publish: ['call'] } } }), 'c.json');
    assert.equal(removed.keeps(handler), false, 'secret retired');
    assert.equal(removed.keeps(dashboard), false, 'client removed');
  });

  it('refuses a file it cannot use with one line naming the file and the line', () => {
    const cases: Array<[string, RegExp]> = [
      ['{"clients": {\n  "a": {"secrets": []\n}', /^c\.json:\d+: not valid JSON/],
      ['{"clients": {\n  "a": {"secrets": ["sha256:00"]}\n}}', /^c\.json:2: client "a": "secrets" must list/],
      [`{"clients": {\n\n  "bad name": {"secrets": ["${hashSecret('x')}"]}}}`, /^c\.json:3: client "bad name": a name is/],
      [`{"clients": {"a": {"secrets": ["${hashSecret('x')}"], "grants": {"emit": []}}}}`, /^c\.json:1: client "a": unknown grant "emit"/],
      [`{"clients": {"a": {"secrets": ["${hashSecret('x')}"]}, "b": {"secrets": ["${hashSecret('x')}"]}}}`, /^c\.json:1: clients "a" and "b" share a secret/],
      [`{"clients": {"${TOKEN_NAME}": {"secrets": ["${hashSecret('x')}"]}}}`, /reserved/],
      ['[]', /^c\.json:1: the file must hold an object/],
      ['{"clients": []}', /"clients" must be an object/],
    ];
    for (const [bad, message] of cases) {
      assert.throws(() => parseCredentials(bad, 'c.json'), (error: unknown) => error instanceof CredentialsError && message.test(error.message) && !error.message.includes('\n'), bad);
    }
  });
});
