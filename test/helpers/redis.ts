/**
 * A real `redis-server`, for the tests and the bench: started on a free port
 * with its own temp directory, stopped and restarted (same port, same
 * directory, so with AOF on the streams and the route table come back), and
 * removed when the test file (or the bench run) ends.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { freePort } from './ports.ts';

export { freePort };

const BINARY = process.env.REDIS_SERVER ?? 'redis-server';

/**
 * Why Redis tests cannot run here, or undefined when they can. Without
 * `redis-server`, tests skip with this reason, except under CI, where they must
 * run: there it throws.
 *
 * @example
 * describe('cluster', { skip: redisMissing() }, () => { ... });
 */
export function redisMissing(): string | undefined {
  const probe = spawnSync(BINARY, ['--version'], { encoding: 'utf8' });
  if (probe.status === 0) return undefined;
  const reason = `redis-server not found (${BINARY}): install Redis to run the cluster tests`;
  if (process.env.CI) throw new Error(`${reason}; CI must run them`);
  return reason;
}

/** How a {@link RedisServer} runs and when it goes away. */
export interface RedisOptions {
  /** AOF persistence, so that the data outlives a restart; on by default (the bench runs without). */
  readonly appendOnly?: boolean;
  /**
   * Arranges for the server to be stopped and its directory removed. By
   * default, when the test file ends (node:test `after`); the bench, which is
   * no test, passes its own.
   */
  readonly cleanup?: (server: RedisServer) => void;
}

const removeAfterTests = (server: RedisServer): void => after(() => server.remove());

/**
 * A redis-server the test (or the bench) controls.
 *
 * @example
 * const redis = await RedisServer.start();
 * await redis.stop(); // an outage
 * await redis.start(); // back, same port and data
 */
export class RedisServer {
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();

  private constructor(
    /** Its port on 127.0.0.1. */
    readonly port: number,
    /** Its working directory, where the AOF lives. */
    readonly dir: string,
    /** Whether it writes an AOF. */
    readonly appendOnly: boolean,
  ) {}

  /** `redis://127.0.0.1:<port>` */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** True while the process runs. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Its process id while it runs (the bench reads its CPU time). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /**
   * Starts redis-server on a free port (AOF on unless `options` say otherwise),
   * in a fresh temp directory; it is stopped and its directory removed when the
   * test file ends, or as `options.cleanup` arranges.
   *
   * @example
   * const redis = await RedisServer.start();
   * const broker = await startBroker({ redisUrl: redis.url });
   * await redis.stop(); await redis.start(); // a restart: same port, same data
   */
  static async start(options: RedisOptions = {}): Promise<RedisServer> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const server = await RedisServer.prepare(options);
      try {
        await server.start();
        return server;
      } catch (error) {
        lastError = error; // the port was taken meanwhile: try another
      }
    }
    throw lastError;
  }

  /** A server with a free port and a temp directory, not started yet (to test a Redis that comes up late). */
  static async prepare({ appendOnly = true, cleanup = removeAfterTests }: RedisOptions = {}): Promise<RedisServer> {
    const dir = mkdtempSync(join(tmpdir(), 'spicy-action-redis-'));
    const server = new RedisServer(await freePort(), dir, appendOnly);
    cleanup(server);
    return server;
  }

  /** (Re)starts the server on its port and directory; resolves once it accepts connections. */
  start(): Promise<void> {
    if (this.#child) return Promise.resolve();
    const child = spawn(
      BINARY,
      ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', this.appendOnly ? 'yes' : 'no', '--save', '', '--daemonize', 'no', '--loglevel', 'notice'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    this.#exited = exitOf(child);
    void this.#exited.then(() => {
      if (this.#child === child) this.#child = undefined;
    });
    let out = '';
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`redis-server did not start on port ${this.port}: ${out.slice(-500)}`)), 10_000);
      const fail = (error: Error): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(error);
      };
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        if (/Ready to accept connections/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
      child.once('exit', (code) => fail(new Error(`redis-server exited with ${code}: ${out.slice(-500)}`)));
      child.once('error', (error) => fail(new Error(`cannot run ${BINARY}: ${error.message}`)));
    });
  }

  /** Stops the server as an operator would (SIGTERM: the AOF is flushed); resolves once it has exited. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Stops the server, then removes its directory. */
  async remove(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Kills the server at once and removes its directory, synchronously: for a process `exit` handler. */
  kill(): void {
    this.#child?.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Resolves when `child` has ended: on `exit`, or on `error` for a binary
 * that cannot run (it gives `error` and no `exit`).
 *
 * @example
 * const exited = exitOf(spawn('redis-server', ['--port', '0']));
 */
export function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
}
