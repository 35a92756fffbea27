/**
 * Starting brokers for tests: in this process through the library API, or as
 * a child process exactly as `npm start` runs it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { DEFAULT_SETTINGS, type Settings } from '../../src/settings.ts';
import { startServer, type RunningBroker, type ServerTiming } from '../../src/server.ts';
import type { Buses } from '../../src/buses.ts';
import type { RouteListing } from '../../src/http/routes.ts';
import { withTimeout } from './clients.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Starts a broker in this process on a free loopback port (its clocks
 * shortened as `timing` says); it is closed when the test file ends.
 */
export async function startBroker(overrides: Partial<Settings> = {}, buses?: Buses, timing?: ServerTiming): Promise<RunningBroker> {
  const running = await startServer({ ...DEFAULT_SETTINGS, port: 0, host: '127.0.0.1', ...overrides }, buses, timing);
  after(() => running.close());
  return running;
}

/** A broker running as its own process. */
export interface BrokerProcess {
  readonly child: ChildProcess;
  /** Resolves with the URL from the "listening on" line, or rejects if the process ends first. */
  readonly ready: Promise<string>;
  /** Resolves with the exit code (or signal) once the process has ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
}

/**
 * Runs `node --import tsx src/main.ts ...args` (what `npm start` runs) with
 * `env` added to a clean environment. It is killed when the test file ends.
 */
export function spawnBroker(env: Record<string, string> = {}, args: string[] = []): BrokerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = withTimeout(
    new Promise<string>((resolve, reject) => {
      const check = (): void => {
        const match = /listening on (http:\/\/\S+)/.exec(out);
        if (match) resolve(match[1] as string);
      };
      child.stdout!.on('data', check);
      void exited.then(({ code }) => reject(new Error(`broker exited with ${code} before listening: ${err.trim()}`)));
    }),
    'broker process to listen',
    20_000,
  );
  // A test of a failing start awaits `exited` only; the rejection is expected there.
  ready.catch(() => undefined);
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, ready, exited, stdout: () => out, stderr: () => err };
}

/** An HTTP answer, its body parsed when it is JSON. */
export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: any;
}

/** Sends an HTTP request with `fetch` and parses a JSON answer. */
export async function request(url: string, init: RequestInit = {}): Promise<HttpAnswer> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  if (res.headers.get('content-type')?.includes('json')) body = JSON.parse(text);
  return { status: res.status, headers: res.headers, body };
}

/** POSTs `body` (an object is sent as JSON) to `/_notify/<msg>`, as OpenSIPS does. */
export function notify(base: string, msg: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return request(`${base}/_notify/${encodeURIComponent(msg)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/**
 * The listing of `event` in `GET /routes` of the broker at `url`, or
 * undefined when the table has no such event; fails unless the answer is 200.
 *
 * @example
 * (await listedRoute(broker.url, 'queuer'))?.kind; // 'registered'
 */
export async function listedRoute(url: string, event: string, headers: Record<string, string> = {}): Promise<RouteListing | undefined> {
  const answer = await request(`${url}/routes`, { headers });
  if (answer.status !== 200) throw new Error(`GET /routes answered ${answer.status}`);
  return (answer.body.routes as RouteListing[]).find((r) => r.event === event);
}
