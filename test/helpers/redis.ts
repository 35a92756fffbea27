/**
 * A real `redis-server` for tests: started on a free port with its own temp
 * directory and AOF persistence, stopped and restarted (same port, same
 * directory, so the streams and the route table come back), and removed when
 * the test file ends.
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

/**
 * A redis-server the test controls.
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
  ) {}

  /** `redis://127.0.0.1:<port>` */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** True while the process runs. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /**
   * Starts redis-server on a free port with AOF on, in a fresh temp directory;
   * it is stopped and its directory removed when the test file ends.
   *
   * @example
   * const redis = await RedisServer.start();
   * const broker = await startBroker({ redisUrl: redis.url });
   * await redis.stop(); await redis.start(); // a restart: same port, same data
   */
  static async start(): Promise<RedisServer> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const server = await RedisServer.prepare();
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
  static async prepare(): Promise<RedisServer> {
    const dir = mkdtempSync(join(tmpdir(), 'spicy-action-redis-'));
    const server = new RedisServer(await freePort(), dir);
    after(async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    return server;
  }

  /** (Re)starts the server on its port and directory; resolves once it accepts connections. */
  start(): Promise<void> {
    if (this.#child) return Promise.resolve();
    const child = spawn(
      BINARY,
      ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes', '--save', '', '--daemonize', 'no', '--loglevel', 'notice'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
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
}
