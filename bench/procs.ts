/**
 * The processes of a bench run: servers (the broker through its own entry,
 * the baselines) with the probe preloaded, forked load generators, and a
 * throw-away redis-server (the tests' own launcher). Each is killed when the
 * run ends, even on failure.
 */
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ProbeReport } from './messages.ts';
import { RedisServer } from '../test/helpers/redis.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PROBE = fileURLToPath(new URL('./servers/probe.ts', import.meta.url));

const live = new Set<ChildProcess>();
const cleanups: (() => void)[] = [];

/** Kills every process the bench started and removes its temp dirs. */
export function killAll(): void {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  live.clear();
  for (const cleanup of cleanups.splice(0)) cleanup();
}
process.on('exit', killAll);

/** A server the bench measures. */
export interface ServerProc {
  readonly label: string;
  readonly url: string;
  readonly child: ChildProcess;
  /** Its own `process.cpuUsage()` and memory, after a full GC when `gc`. */
  probe(gc?: boolean, heapSnapshot?: string): Promise<ProbeReport>;
  /** SIGTERM, then SIGKILL after 10 s; resolves once it has exited. */
  stop(): Promise<void>;
  /** The last lines it wrote on stderr. */
  stderr(): string;
}

/** What to start: the broker's entry or a baseline script, with its environment. */
export interface ServerSpec {
  readonly label: string;
  /** Path from the repository root: `src/main.ts`, `bench/servers/bare-socketio.ts`, ... */
  readonly entry: string;
  readonly env?: Record<string, string>;
  /** Node flags such as `--cpu-prof`. */
  readonly nodeFlags?: readonly string[];
}

/**
 * Starts a server as its own process, `node --import tsx --import probe <entry>`,
 * with a clean environment (PATH, HOME, PORT=0, HOST=127.0.0.1 and `env`), and
 * resolves once it prints `listening on <url>`.
 */
export function startServerProc(spec: ServerSpec): Promise<ServerProc> {
  const child = spawn(process.execPath, ['--expose-gc', ...(spec.nodeFlags ?? []), '--import', 'tsx', '--import', PROBE, spec.entry], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: '0', HOST: '127.0.0.1', ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  live.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out = (out + chunk).slice(-4_000)));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err = (err + chunk).slice(-4_000)));
  const waiting = new Map<number, (report: ProbeReport) => void>();
  let nextId = 0;
  child.on('message', (message: ProbeReport) => {
    if (message?.type === 'probe') waiting.get(message.id)?.(message);
  });
  child.on('error', () => undefined);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => live.delete(child));

  const proc: ServerProc = {
    label: spec.label,
    url: '',
    child,
    probe(gc = false, heapSnapshot?: string) {
      const id = ++nextId;
      return new Promise<ProbeReport>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${spec.label} did not answer its probe`)), heapSnapshot ? 300_000 : 30_000);
        waiting.set(id, (report) => {
          clearTimeout(timer);
          waiting.delete(id);
          resolve(report);
        });
        child.send({ type: 'probe', id, gc, ...(heapSnapshot ? { heapSnapshot } : {}) });
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
    stderr: () => err.trim().split('\n').slice(-3).join('\n'),
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${spec.label} did not start within 30 s: ${proc.stderr()}`)), 30_000);
    const check = (): void => {
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (!match) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      resolve({ ...proc, url: match[1] as string });
    };
    child.stdout!.on('data', check);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${spec.label} exited before listening: ${proc.stderr() || `code ${child.exitCode}`}`));
    });
  });
}

/** A forked load generator, spoken to over IPC. */
export interface Worker<Cmd, Report> {
  readonly child: ChildProcess;
  send(command: Cmd): void;
  /** Resolves with the next report that `match` accepts. */
  next<R extends Report>(match: (report: Report) => report is R, timeoutMs?: number): Promise<R>;
  on(listener: (report: Report) => void): void;
}

/** Forks `bench/load/<script>` with tsx. */
export function forkWorker<Cmd, Report extends { type: string }>(script: string): Worker<Cmd, Report> {
  const child = fork(fileURLToPath(new URL(`./load/${script}`, import.meta.url)), [], {
    cwd: ROOT,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const listeners = new Set<(report: Report) => void>();
  child.on('message', (report: Report) => {
    for (const listener of [...listeners]) listener(report);
  });
  return {
    child,
    send: (command) => {
      if (child.connected) child.send(command as object);
    },
    on: (listener) => listeners.add(listener),
    next<R extends Report>(match: (report: Report) => report is R, timeoutMs = 120_000) {
      return new Promise<R>((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(listener);
          reject(new Error(`${script} did not answer within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        const onExit = (): void => {
          clearTimeout(timer);
          reject(new Error(`${script} exited (code ${child.exitCode})`));
        };
        const listener = (report: Report): void => {
          if (report.type === 'failed') {
            clearTimeout(timer);
            listeners.delete(listener);
            child.off('exit', onExit);
            reject(new Error(`${script}: ${(report as unknown as { error: string }).error}`));
          } else if (match(report)) {
            clearTimeout(timer);
            listeners.delete(listener);
            child.off('exit', onExit);
            resolve(report);
          }
        };
        listeners.add(listener);
        child.once('exit', onExit);
      });
    },
  };
}

/**
 * Starts a redis-server of the bench's own on a free port, in a temp dir,
 * without persistence; it is killed and its dir removed when the run ends.
 * Rejects when there is none on PATH.
 */
export function startRedis(): Promise<RedisServer> {
  return RedisServer.start({ appendOnly: false, cleanup: (server) => cleanups.push(() => server.kill()) });
}

/** utime + stime of a process from /proc/<pid>/stat, µs (Linux; NaN elsewhere). */
export function procCpuMicros(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat(5); after the command name, they are the 12th and 13th.
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks / 100) * 1e6;
  } catch {
    return Number.NaN;
  }
}
