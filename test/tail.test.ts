/** `spicy-action tail` (docs/protocol.md#watching-the-buses), run as a child process the way an operator runs it. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { notify, ROOT, spawnBroker, startBroker } from './helpers/broker.ts';
import { connect, withTimeout } from './helpers/clients.ts';


/** A running `spicy-action tail`, with what it printed so far. */
interface TailProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** Complete stdout lines. */
  lines(): string[];
  stderr(): string;
  /** Resolves once `predicate` holds on what was printed. */
  until(what: string, predicate: () => boolean, ms?: number): Promise<void>;
}

function spawnTail(args: string[], env: Record<string, string> = {}): TailProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'tail', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  const changed = (): void => waiters.forEach((w) => w());
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => ((out += chunk), changed()));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => ((err += chunk), changed()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => (changed(), resolve(code))));
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    exited,
    lines: () => out.split('\n').slice(0, -1),
    stderr: () => err,
    until(what, predicate, ms = 20_000) {
      return withTimeout(
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (!predicate()) return;
            waiters.delete(check);
            resolve();
          };
          waiters.add(check);
          check();
        }),
        `tail: ${what} (stderr so far: ${JSON.stringify(err)})`,
        ms,
      );
    },
  };
}

const count = (text: string, part: string): number => text.split(part).length - 1;

// Each test, or group, has brokers and tails of its own: they run side by side.
describe('spicy-action tail', { concurrency: true }, () => {
  describe('with a broker process that restarts', { concurrency: false }, () => {
    let broker = spawnBroker();

    it('prints one JSON line per event of the watched buses and rooms, for jq', async () => {
      const url = await broker.ready;
      const tail = spawnTail(['--url', url, '--json', 'calls', 'support', 'endpoint:alice@example.net']);
      await tail.until('watching', () => tail.stderr().includes('watching calls, support, endpoint:alice@example.net'));
      assert.match(tail.stderr(), /connected to http:\/\/127\.0\.0\.1:\d+ \(spicy-action /);

      const server = await connect('v4', url);
      try {
        assert.deepEqual((await notify(url, 'script_register', { name: 'invalid_source', endpoint: 'alice@example.net', ip: '192.0.2.7' })).body, { ok: true });
        const call = { state: 'end', call: 'c1', _in: ['endpoint:alice@example.net', 'number:33123456789'] };
        assert.deepEqual(await server.ack('call', call), { ok: true, rooms: 3 });
        // Not watched: `internal`.
        await server.ack('location:update', { aor: 'bob@example.net', _in: ['endpoint:bob@example.net'] });
        await notify(url, 'report_ops', { error: 'core_threshold', host: 'sbc1.example.net' });
        await tail.until('3 lines', () => tail.lines().length >= 3 && tail.lines().some((l) => l.includes('report_ops')));

        const events = tail.lines().map((line) => JSON.parse(line) as { time: string; event: string; rooms: string[]; data: unknown });
        assert.deepEqual(
          events.map(({ event, rooms, data }) => ({ event, rooms, data })),
          [
            { event: 'script_register', rooms: ['support', 'endpoint:alice@example.net'], data: { name: 'invalid_source', endpoint: 'alice@example.net', ip: '192.0.2.7' } },
            { event: 'call', rooms: ['calls', 'endpoint:alice@example.net'], data: call },
            { event: 'report_ops', rooms: ['support'], data: { error: 'core_threshold', host: 'sbc1.example.net' } },
          ],
        );
        for (const { time } of events) assert.ok(Math.abs(Date.parse(time) - Date.now()) < 60_000, `ISO time ${time}`);
      } finally {
        server.close();
      }

      tail.child.kill('SIGINT');
      assert.equal(await withTimeout(tail.exited, 'tail to exit on SIGINT', 10_000), 0);
      assert.doesNotMatch(tail.stderr(), /Error|at .*\.ts:\d+/);
    });

    it('prints text lines, says so when the broker restarts, joins again, and exits 0 on Ctrl-C', async () => {
      const url = await broker.ready;
      const tail = spawnTail(['--url', url, 'calls']);
      await tail.until('watching', () => tail.stderr().includes('watching calls'));
      await notify(url, 'call', { state: 'answer' });
      await tail.until('a line', () => tail.lines().length >= 1);
      assert.match(tail.lines()[0] as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z call calls \{"state":"answer"\}$/);

      // The broker restarts on the same port.
      const port = new URL(url).port;
      broker.child.kill('SIGTERM');
      assert.equal((await broker.exited).code, 0);
      await tail.until('connection lost', () => tail.stderr().includes('connection lost'));
      broker = spawnBroker({ PORT: port });
      assert.equal(await broker.ready, url);
      await tail.until('reconnected', () => tail.stderr().includes('reconnected to') && count(tail.stderr(), 'watching calls') === 2, 30_000);

      await notify(url, 'call', { state: 'after-restart' });
      await tail.until('a line after the restart', () => tail.lines().some((l) => l.includes('after-restart')));
      assert.equal(tail.lines().length, 2);

      tail.child.kill('SIGINT');
      assert.equal(await withTimeout(tail.exited, 'tail to exit on SIGINT', 10_000), 0);
    });
  });

  it('says which rooms the broker knows no bus or room pattern of, and watches them anyway', async () => {
    const local = await startBroker();
    try {
      const tail = spawnTail(['--url', local.url, 'nosuchbus', 'calls', 'endpoint:alice@example.net']);
      await tail.until('watching', () => tail.stderr().includes('watching nosuchbus, calls, endpoint:alice@example.net'));
      await tail.until('the warning', () => tail.stderr().includes('no bus or room'));
      assert.equal(count(tail.stderr(), 'no bus or room pattern of that name is known'), 1, tail.stderr());
      assert.match(tail.stderr(), /^tail: no bus or room pattern of that name is known: "nosuchbus" \(watching it anyway\)$/m);
      local.io.to('nosuchbus').emit('typo_event', { state: 'typo' });
      await tail.until('a line', () => tail.lines().length >= 1);
      assert.match(tail.lines()[0] as string, / typo_event \S+ \{"state":"typo"\}$/);
      tail.child.kill('SIGINT');
      assert.equal(await withTimeout(tail.exited, 'tail to exit on SIGINT', 10_000), 0);
    } finally {
      await local.close();
    }
  });

  it('presents its token, and exits 1 with a clear line when the broker refuses it', async () => {
    const guarded = await startBroker({ token: 'tail-token' });
    const none = spawnTail(['--url', guarded.url, 'calls']);
    const wrong = spawnTail(['--url', guarded.url, '--token', 'not-it', 'calls']);
    // The refused never join the namespace: the only socket there is the one with the token.
    const right = spawnTail(['--url', guarded.url, '--json', 'calls'], { BROKER_TOKEN: 'tail-token' });
    assert.equal(await withTimeout(none.exited, 'tail without token to give up', 20_000), 1);
    assert.match(none.stderr(), /tail: the broker needs a token: --token or BROKER_TOKEN/);
    assert.equal(await withTimeout(wrong.exited, 'tail with a wrong token to give up', 20_000), 1);
    assert.match(wrong.stderr(), /tail: the broker refused the token/);
    assert.doesNotMatch(wrong.stderr(), /not-it/, 'the token is never printed');

    await right.until('watching', () => right.stderr().includes('watching calls'));
    const socket = [...guarded.io.sockets.sockets.values()][0]!;
    assert.equal(socket.handshake.auth.token, 'tail-token');
    guarded.io.to('calls').emit('call', { state: 'guarded' });
    await right.until('a line', () => right.lines().length === 1);
    assert.deepEqual(JSON.parse(right.lines()[0]!).data, { state: 'guarded' });
    right.child.kill('SIGINT');
    assert.equal(await withTimeout(right.exited, 'tail to exit on SIGINT', 10_000), 0);
  });

  it('explains a bad command line with exit code 2, and prints its usage on --help', async () => {
    const bad = spawnTail(['--url', 'http://127.0.0.1:1']);
    const help = spawnTail(['--help']);
    assert.equal(await withTimeout(bad.exited, 'tail to refuse', 20_000), 2);
    assert.match(bad.stderr(), /spicy-action tail: name at least one bus or room/);
    assert.match(bad.stderr(), /usage: spicy-action tail/);
    assert.deepEqual(bad.lines(), []);

    assert.equal(await withTimeout(help.exited, 'tail --help', 20_000), 0);
    assert.match(help.lines().join('\n'), /usage: spicy-action tail \[--url URL\] \[--token TOKEN\] \[--json\] BUS\|ROOM/);
  });
});
