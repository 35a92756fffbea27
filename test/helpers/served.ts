/** Programs the deploy tests run as an operator would: a command that serves, and a shell script. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { after } from 'node:test';
import { withTimeout } from './clients.ts';

/** A clean environment with what npm needs: its cache in $HOME, the registry only when the cache lacks a package. */
export const NPM_ENV: Record<string, string> = {
  PATH: process.env.PATH ?? '',
  HOME: process.env.HOME ?? '/root',
  npm_config_prefer_offline: 'true',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
};

/** How long a command may take to listen: `npx` and a loaded machine take their time. */
const LISTEN_TIMEOUT_MS = 60_000;

/** A child process that prints `listening on <url>` once it serves. */
export interface Served {
  readonly child: ChildProcess;
  /**
   * Sends `signal` to the process and everything it started, as Ctrl-C in a
   * terminal does: `npx` itself does not pass a signal on to the command it runs.
   */
  signal(signal: NodeJS.Signals): void;
  /** Whether nothing of its process group runs any more. */
  groupEnded(): boolean;
  /** The URL of its `listening on` line; rejects if it exits first. */
  readonly url: Promise<string>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
}

/** Starts `command args` in `cwd`, in a process group of its own; the group is killed when the test file ends. */
export function serve(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Served {
  const child = spawn(command, args, { cwd, env: { ...NPM_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const signal = (name: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, name);
    } catch {
      // the group has ended
    }
  };
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal })),
  );
  const url = withTimeout(
    new Promise<string>((done, fail) => {
      child.stdout.on('data', () => {
        const match = /listening on (http:\/\/\S+)/.exec(out);
        if (match) done(match[1]!);
      });
      void exited.then(({ code }) => fail(new Error(`${command} exited with ${code} before listening: ${err}`)));
    }),
    `${command} ${args.join(' ')} to listen`,
    LISTEN_TIMEOUT_MS,
  );
  url.catch(() => undefined); // a test of a failing start awaits `exited`
  const groupEnded = (): boolean => {
    try {
      process.kill(-child.pid!, 0);
      return false;
    } catch {
      return true;
    }
  };
  after(() => signal('SIGKILL'));
  return { child, signal, groupEnded, url, exited, stdout: () => out, stderr: () => err };
}

/** What a command printed, and how it ended. */
export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `script` with `bash -euo pipefail` in `cwd`, as an operator pastes it:
 * it stops at the first failing command. Never rejects: the outcome says.
 */
export function shell(script: string, cwd: string, env: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile('bash', ['-euo', 'pipefail', '-c', script], { cwd, env: { ...NPM_ENV, ...env }, maxBuffer: 64e6 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
