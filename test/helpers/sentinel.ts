/**
 * A real Redis Sentinel deployment on 127.0.0.1, for the tests and the bench:
 * a primary, a replica (`replicaof`), and Sentinels (`redis-server <conf>
 * --sentinel`), each with its own conf file in one temp directory (Sentinel
 * rewrites its conf), on free ports, with passwords on Redis and on the
 * Sentinels. Removed when the test file ends, or as `cleanup` arranges.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { Redis } from 'ioredis';
import { freePort } from './ports.ts';
import { exitOf } from './redis.ts';

const BINARY = process.env.REDIS_SERVER ?? 'redis-server';
/** The primary's name in the Sentinels' configuration. */
export const SENTINEL_NAME = 'mymaster';
/** Longest wait for one process to say it is ready. */
const START_TIMEOUT_MS = 10_000;
/** Attempts at starting a process, each on a new free port (another may take a port meanwhile). */
const START_ATTEMPTS = 5;
/** What a server prints once it listens. */
const REDIS_READY = /Ready to accept connections/;
/** What a Sentinel prints once it watches its primary (it listens before). */
const SENTINEL_READY = /\+monitor master/;
/** What a replica prints once it holds the primary's data. */
const REPLICA_SYNCED = /MASTER <-> REPLICA sync: Finished with success/;

/** One redis-server process (a server or a Sentinel) with its conf file. */
export class RedisProcess {
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #log = '';

  constructor(
    /** Its port on 127.0.0.1. */
    readonly port: number,
    /** Its conf file. */
    readonly conf: string,
    /** Whether it runs as a Sentinel. */
    readonly sentinel: boolean,
  ) {}

  /** Everything it printed. */
  get log(): string {
    return this.#log;
  }

  /** True while the process runs. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts it; resolves once its log matches `ready`. */
  start(ready: RegExp): Promise<void> {
    const child = spawn(BINARY, this.sentinel ? [this.conf, '--sentinel'] : [this.conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#exited = exitOf(child);
    void this.#exited.then(() => {
      if (this.#child === child) this.#child = undefined;
    });
    const onOutput = (chunk: string): void => {
      this.#log += chunk;
    };
    child.stdout!.setEncoding('utf8').on('data', onOutput);
    child.stderr!.setEncoding('utf8').on('data', onOutput);
    return this.waitLog(ready, START_TIMEOUT_MS).catch((error: Error) => {
      child.kill('SIGKILL');
      throw error;
    });
  }

  /** Resolves once the log matches `pattern`; rejects if the process ends first or after `ms`. */
  waitLog(pattern: RegExp, ms: number): Promise<void> {
    const child = this.#child;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`timed out waiting for ${pattern} from port ${this.port}: ${this.#log.slice(-500)}`)), ms);
      const check = (): void => {
        if (pattern.test(this.#log)) done();
      };
      const onExit = (): void => done(new Error(`redis-server on port ${this.port} exited: ${this.#log.slice(-500)}`));
      const done = (error?: Error): void => {
        clearTimeout(timer);
        child?.stdout?.off('data', check);
        child?.off('exit', onExit);
        if (error) reject(error);
        else resolve();
      };
      if (!child) return done(new Error(`redis-server on port ${this.port} is not running`));
      child.stdout!.on('data', check);
      child.once('exit', onExit);
      check();
    });
  }

  /** Sends `signal` and resolves once the process has exited. */
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#child;
    if (!child) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Kills it at once, for a process `exit` handler. */
  killNow(): void {
    this.#child?.kill('SIGKILL');
  }
}

/** How a {@link SentinelGroup} is made. */
export interface SentinelGroupOptions {
  /** Number of Sentinels (a quorum of a majority); 0 for a primary and a replica alone. Default 3. */
  readonly sentinels?: number;
  /** Lines added to the primary's conf (and the replica's, which may become primary), such as `min-replicas-to-write 1`. */
  readonly serverConf?: readonly string[];
  /** AOF on the servers; on by default, as in production. */
  readonly appendOnly?: boolean;
  /** Sentinel's `down-after-milliseconds`: how long a silent primary is still believed up. Default 1000. */
  readonly downAfterMs?: number;
  /** Sentinel's `failover-timeout`. Default 3000. */
  readonly failoverTimeoutMs?: number;
  /**
   * The port the replica replicates from, given the primary's: by default the
   * primary's own; the bench puts a proxy there to make the replication link slower.
   */
  readonly replicationPort?: (primaryPort: number) => Promise<number>;
  /** Arranges for the group to be removed; by default when the test file ends (node:test `after`). */
  readonly cleanup?: (group: SentinelGroup) => void;
}

const removeAfterTests = (group: SentinelGroup): void => after(() => group.remove());

/**
 * A primary, its replica and its Sentinels, all with passwords.
 *
 * @example
 * const group = await SentinelGroup.start();
 * await group.watching(); // every Sentinel knows the replica and the other Sentinels
 * await group.primary.kill('SIGKILL'); // a failover
 * await group.promoted(); // the replica's address, once the Sentinels say it is the primary
 */
export class SentinelGroup {
  /** The Redis password (requirepass, masterauth). */
  readonly password = `redis-${randomBytes(12).toString('hex')}`;
  /** The Sentinels' own password. */
  readonly sentinelPassword = `sentinel-${randomBytes(12).toString('hex')}`;
  primary!: RedisProcess;
  replica!: RedisProcess;
  readonly sentinels: RedisProcess[] = [];
  readonly #clients = new Map<number, Redis>();

  private constructor(readonly dir: string) {}

  /** `127.0.0.1:<port>,...`: the value of REDIS_SENTINELS. */
  get sentinelList(): string {
    return this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',');
  }

  /** Starts the primary, the replica (once synced) and the Sentinels. */
  static async start(options: SentinelGroupOptions = {}): Promise<SentinelGroup> {
    const group = new SentinelGroup(mkdtempSync(join(tmpdir(), 'spicy-action-sentinel-')));
    (options.cleanup ?? removeAfterTests)(group);
    const { serverConf = [], appendOnly = true } = options;
    const server = (name: string, port: number, extra: readonly string[]): string[] => {
      const dir = join(group.dir, name);
      mkdirSync(dir, { recursive: true });
      return [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `appendonly ${appendOnly ? 'yes' : 'no'}`,
        'save ""',
        `requirepass ${group.password}`,
        `masterauth ${group.password}`,
        // Sync a new replica at once, not after the default 5 s wait for others.
        'repl-diskless-sync-delay 0',
        ...serverConf,
        ...extra,
      ];
    };
    group.primary = await group.#launch('primary', false, REDIS_READY, (port) => server('primary', port, []));
    const upstream = (await options.replicationPort?.(group.primary.port)) ?? group.primary.port;
    group.replica = await group.#launch('replica', false, REDIS_READY, (port) => server('replica', port, [`replicaof 127.0.0.1 ${upstream}`]));
    await group.replica.waitLog(REPLICA_SYNCED, START_TIMEOUT_MS);
    for (let i = 0; i < (options.sentinels ?? 3); i++) {
      const sentinel = await group.#launch(`sentinel${i}`, true, SENTINEL_READY, (port) => [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${join(group.dir, `sentinel${i}`)}`,
        `requirepass ${group.sentinelPassword}`,
        // The Sentinels talk to each other with it (to vote on a failover).
        `sentinel sentinel-pass ${group.sentinelPassword}`,
        `sentinel monitor ${SENTINEL_NAME} 127.0.0.1 ${group.primary.port} 2`,
        `sentinel auth-pass ${SENTINEL_NAME} ${group.password}`,
        `sentinel down-after-milliseconds ${SENTINEL_NAME} ${options.downAfterMs ?? 1_000}`,
        `sentinel failover-timeout ${SENTINEL_NAME} ${options.failoverTimeoutMs ?? 3_000}`,
        `sentinel parallel-syncs ${SENTINEL_NAME} 1`,
      ]);
      group.sentinels.push(sentinel);
    }
    return group;
  }

  /** Writes a conf file and starts a process on a free port, with a few attempts. */
  async #launch(name: string, sentinel: boolean, ready: RegExp, conf: (port: number) => string[]): Promise<RedisProcess> {
    mkdirSync(join(this.dir, name), { recursive: true });
    let lastError: unknown;
    for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
      const port = await freePort();
      const path = join(this.dir, `${name}.conf`);
      writeFileSync(path, `${conf(port).join('\n')}\n`, { mode: 0o600 });
      const process = new RedisProcess(port, path, sentinel);
      try {
        await process.start(ready);
        return process;
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  }

  /** A client of the server on `port`, one per port, closed with the group. */
  server(port: number): Redis {
    return this.#client(port, this.password);
  }

  /** A client of one Sentinel, closed with the group. */
  sentinel(process: RedisProcess): Redis {
    return this.#client(process.port, this.sentinelPassword);
  }

  #client(port: number, password: string): Redis {
    let client = this.#clients.get(port);
    if (!client) {
      // Sentinel kills the normal clients of a server it reconfigures: reconnect (a dead server fails the command).
      client = new Redis({ port, host: '127.0.0.1', password, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: (attempt) => (attempt > 3 ? null : 50) });
      client.on('error', () => {});
      this.#clients.set(port, client);
    }
    return client;
  }

  /** What one running Sentinel knows of the primary (`SENTINEL MASTER`), as fields. */
  async #masterInfo(process: RedisProcess): Promise<Map<string, string>> {
    const flat = (await this.sentinel(process).call('SENTINEL', 'MASTER', SENTINEL_NAME)) as string[];
    const fields = new Map<string, string>();
    for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i] as string, flat[i + 1] as string);
    return fields;
  }

  /**
   * Resolves once every Sentinel knows the replica and every other Sentinel,
   * so that they can agree on a failover; rejects after `ms`.
   */
  async watching(ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      const infos = await Promise.all(this.sentinels.map((s) => this.#masterInfo(s)));
      const others = String(this.sentinels.length - 1);
      if (infos.every((i) => i.get('num-slaves') === '1' && i.get('num-other-sentinels') === others)) return;
      if (Date.now() > deadline) throw new Error(`timed out: Sentinels never all saw the replica and each other: ${JSON.stringify(infos.map((i) => Object.fromEntries(i)))}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The primary's port as each running Sentinel gives it. */
  async primaryPorts(): Promise<number[]> {
    return Promise.all(
      this.sentinels
        .filter((s) => s.running)
        .map(async (s) => Number(((await this.sentinel(s).call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_NAME)) as string[])[1])),
    );
  }

  /** Resolves once every Sentinel names the replica as primary and the replica says it is one; rejects after `ms`. */
  async promoted(ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    const replica = this.server(this.replica.port);
    for (;;) {
      const ports = await this.primaryPorts();
      const role = ((await replica.call('ROLE')) as [string])[0];
      if (role === 'master' && ports.every((p) => p === this.replica.port)) return;
      if (Date.now() > deadline) throw new Error(`timed out: the replica was not promoted (Sentinels say ${ports.join(', ')}; its role: ${role})`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops every process and removes the directory (SIGKILL: a primary stopped gracefully waits up to 10 s for its replica). */
  async remove(): Promise<void> {
    for (const client of this.#clients.values()) client.disconnect();
    await Promise.all([...this.sentinels, this.replica, this.primary].filter(Boolean).map((p) => p.kill('SIGKILL')));
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Kills everything at once and removes the directory, synchronously: for a process `exit` handler. */
  removeNow(): void {
    for (const p of [...this.sentinels, this.replica, this.primary]) p?.killNow();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
