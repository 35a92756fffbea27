/** `spicy-action credentials` (docs/security.md#credentials): the real command adding, rotating, retiring and removing clients. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { runCredentialsTool } from '../src/credentials-tool.ts';
import { parseCredentials } from '../src/guards/credentials.ts';
import { ROOT } from './helpers/broker.ts';
import { block, commands } from './helpers/docs.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'spicy-credentials-'));

/** What one run of the tool did. */
interface ToolRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The command as installed runs it (`spicy-action credentials ...`, through src/main.ts), with its exit code, stdout and stderr. */
async function installed(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ToolRun> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts'), 'credentials', ...args], { cwd: ROOT, env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
  }
}

/** The tool run in this process, as src/main.ts runs it, each line of output ended as the command ends it. */
async function credentials(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ToolRun> {
  let stdout = '';
  let stderr = '';
  const code = runCredentialsTool(args, { ...process.env, ...env }, (line) => (stdout += `${line}\n`), (line) => (stderr += `${line}\n`));
  return { code, stdout, stderr };
}

describe('spicy-action credentials', () => {
  const file = join(dir, 'credentials.json');

  it('adds a client with its grants, prints its secret once and stores only its hash', async () => {
    const added = await installed(['add', 'dashboard', '--grant', 'join=calls,support', '--grant', 'read=monitor', '--file', file]);
    assert.equal(added.code, 0, added.stderr);
    const secret = added.stdout.trim();
    assert.match(secret, /^sa_[A-Za-z0-9_-]{43}$/);
    assert.match(added.stderr, /dashboard: added/);
    const text = readFileSync(file, 'utf8');
    assert.ok(!text.includes(secret), 'the secret is not in the file');
    assert.equal(statSync(file).mode & 0o777, 0o644, 'hashes only: readable by the broker\'s own user');
    const loaded = parseCredentials(text, file);
    const principal = loaded.authenticate(secret);
    assert.equal(principal?.credential.name, 'dashboard');
    assert.equal(principal?.credential.grants.may('join', 'calls'), true);
    assert.equal(principal?.credential.grants.may('join', 'dial_calls'), false);
    assert.equal(principal?.credential.grants.mayRead('monitor'), true);
  });

  it('rotates: a second secret works beside the first, then retire keeps only the newest', async () => {
    const first = (await credentials(['add', 'handler', '--grant', 'publish=call', '--grant', 'routes'], { CREDENTIALS_FILE: file })).stdout.trim();
    const second = await credentials(['add', 'handler', '--file', file]);
    assert.match(second.stderr, /a new secret added \(2 now valid\)/);
    let loaded = parseCredentials(readFileSync(file, 'utf8'), file);
    assert.equal(loaded.authenticate(first)?.credential.name, 'handler');
    assert.equal(loaded.authenticate(second.stdout.trim())?.credential.name, 'handler');
    assert.equal(loaded.get('handler')?.grants.mayChangeRoutes, true, 'grants kept when none are given');
    assert.equal((await credentials(['retire', 'handler', '--file', file])).code, 0);
    loaded = parseCredentials(readFileSync(file, 'utf8'), file);
    assert.equal(loaded.authenticate(first), undefined);
    assert.equal(loaded.authenticate(second.stdout.trim())?.credential.name, 'handler');
  });

  it('lists clients and grants without a secret or hash, and removes a client', async () => {
    const listed = await credentials(['list', '--file', file]);
    assert.match(listed.stdout, /^dashboard {2}1 secret\(s\) {2}\{"join":\["calls","support"\],"read":\["monitor"\]\}$/m);
    assert.ok(!listed.stdout.includes('sha256'));
    assert.equal((await credentials(['remove', 'dashboard', '--file', file])).code, 0);
    assert.equal(parseCredentials(readFileSync(file, 'utf8'), file).get('dashboard'), undefined);
  });

  it('refuses bad input with one line and exit 2, changing nothing', async () => {
    const before = readFileSync(file, 'utf8');
    const cases: Array<[string[], RegExp]> = [
      [['add', 'bad name', '--file', file], /a name is 1 to 64/],
      [['add', 'x', '--grant', 'emit=call', '--file', file], /unknown grant "emit"/],
      [['add', 'x', '--grant', 'read=secrets', '--file', file], /grants.read must list/],
      [['add', 'x', '--grant', 'join', '--file', file], /expected KIND=name/],
      [['retire', 'nobody', '--file', file], /no client "nobody"/],
      [['frobnicate', 'x', '--file', file], /unknown command/],
      [['add', 'x'], /no credentials file/],
      [['add', 'x', '--nope', '--file', file], /unknown option --nope/],
    ];
    for (const [args, message] of cases) {
      const result = await credentials(args, { CREDENTIALS_FILE: '' });
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, message, args.join(' '));
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    }
    assert.equal(readFileSync(file, 'utf8'), before);
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"clients": {\n  "a": 1\n}}');
    const refused = await credentials(['add', 'b', '--file', broken]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /broken\.json:2: client "a": must be an object/);
  });
});

describe('the docs', () => {
  it('run as docs/security.md shows them: add, a second secret, retire, list', async () => {
    const documented = join(dir, 'documented.json');
    const lines = commands(block('docs/security.md', 'credentials-tool').text);
    assert.equal(lines.length, 4);
    const outputs: string[] = [];
    for (const line of lines) {
      // The words as the shell gives them: no variable, no glob, single quotes only.
      const words = line.replace('/etc/spicy-action/credentials.json', documented).split(/\s+/).map((word) => word.replace(/'/g, ''));
      assert.deepEqual(words.splice(0, 2), ['spicy-action', 'credentials']);
      const result = await credentials(words);
      assert.equal(result.code, 0, `${line}: ${result.stderr}`);
      outputs.push(result.stdout);
    }
    assert.match(outputs[0]!, /^sa_[\w-]{43}\n$/);
    assert.match(outputs[1]!, /^sa_[\w-]{43}\n$/);
    const loaded = parseCredentials(readFileSync(documented, 'utf8'), documented);
    assert.equal(loaded.authenticate(outputs[0]!.trim()), undefined, 'retired');
    assert.equal(loaded.authenticate(outputs[1]!.trim())?.credential.grants.may('join', 'endpoint:alice@example.net'), true);
    assert.match(outputs[3]!, /^dashboard {2}1 secret\(s\) {2}\{"join":\["calls","support","endpoint:\*"\],"read":\["monitor"\]\}\n$/);
  });

  it('show the dashboard of deploy/credentials.example.json as it is', () => {
    const shown = JSON.parse(`{${block('docs/security.md', 'credentials-example').text}}`) as Record<string, unknown>;
    const example = JSON.parse(readFileSync(join(ROOT, 'deploy/credentials.example.json'), 'utf8')) as { clients: Record<string, unknown> };
    assert.deepEqual(shown, { dashboard: example.clients.dashboard });
    // The example loads, and no one can present its placeholders.
    const loaded = parseCredentials(JSON.stringify(example), 'example');
    assert.equal(loaded.names.length, 9);
  });
});
