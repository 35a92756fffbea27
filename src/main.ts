/**
 * The process entry: `spicy-action [flags]` runs the broker until SIGTERM or
 * SIGINT. Any start-up failure prints one line on stderr and exits non-zero.
 */
// First: it reads DEBUG before the `debug` package, loaded by the imports below, rewrites it.
import { DEBUG_AT_START, DEFAULT_DEBUG } from './debug-env.ts';
import createDebug from 'debug';
import { BusesError } from './buses.ts';
import { brokerRequest, DURATION_UNITS, loadSettings, SETTING_NAMES, SettingsError, SIZE_UNITS } from './settings.ts';
import { NAME, VERSION } from './package-info.ts';
import { installLastResort } from './guards/last-resort.ts';
import { processSecrets, redactText } from './redact.ts';
import { StartError, startServer, type RunningBroker } from './server.ts';

/** Grace period between SIGTERM and a forced exit. */
const SHUTDOWN_TIMEOUT_MS = 9_000;

// Logs are on by default; DEBUG narrows or widens them (never payloads), and `DEBUG=` turns them off.
// `tail` keeps stderr for its own lines.
if (DEBUG_AT_START === undefined && process.argv[2] !== 'tail' && process.argv[2] !== 'credentials') createDebug.enable(DEFAULT_DEBUG);
const debug = createDebug('spicy-action:main');

function usage(): string {
  const rows = SETTING_NAMES.map(({ env, flag, shown, help }) => `  ${flag} (${env})\n      ${help}; default: ${shown}`);
  return (
    `usage: spicy-action [flags]         run the broker\n` +
    `       spicy-action tail --help     follow buses and rooms from a terminal\n` +
    `       spicy-action credentials --help   add, rotate and remove clients' secrets\n` +
    `       spicy-action --version, -v   print the version\n` +
    `       spicy-action --help, -h      print this help\n\n` +
    `flags (--port 4000 or --port=4000), each also read from its environment variable; a flag wins:\n` +
    `${rows.join('\n')}\n` +
    `  DEBUG (environment only)\n      debug namespaces to log; default: ${DEFAULT_DEBUG} (spicy-action:* adds a line per routed event; DEBUG= logs nothing)\n\n` +
    `durations take ${DURATION_UNITS.join(', ')} (a bare number is seconds); ` +
    `sizes take ${SIZE_UNITS.join(', ')} (a bare number is bytes)\n`
  );
}

async function serve(argv: string[]): Promise<void> {
  const settings = loadSettings(argv, process.env);
  // Signal handlers first: a supervisor may signal as soon as it reads the listening line.
  let running: RunningBroker | undefined;
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    debug('%s: closing', signal);
    if (!running) process.exit(0); // still starting: nothing to close gracefully
    const force = setTimeout(() => {
      console.error(`${NAME}: clients did not close within ${SHUTDOWN_TIMEOUT_MS / 1000} s; exiting anyway`);
      process.exit(0);
    }, SHUTDOWN_TIMEOUT_MS);
    force.unref();
    void running.close().then(() => {
      debug('closed');
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // SIGHUP (systemctl reload) re-reads the credentials file; it never stops the broker.
  process.on('SIGHUP', () => {
    if (!running) return;
    if (settings.credentialsFile === undefined) console.warn(`${NAME}: SIGHUP: no CREDENTIALS_FILE to reload`);
    else running.reloadCredentials();
  });
  // What no one caught: a rejection is logged and the broker goes on; an exception is logged and the process exits 1.
  const secrets = processSecrets(argv, process.env);
  installLastResort(process, (line) => console.error(`${NAME}: ${redactText(line, secrets)}`));
  running = await startServer(settings);
  console.log(`${NAME} ${VERSION} listening on ${running.url}`);
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'tail') {
    // A client, not the broker: loaded only when asked for.
    const { runTail } = await import('./tail/tail.ts');
    const code = await runTail(argv.slice(1));
    // Let stdout drain (a pipe to jq), then leave without waiting for idle HTTP connections.
    process.stdout.write('', () => process.exit(code));
    return;
  }
  if (argv[0] === 'credentials') {
    const { runCredentialsTool } = await import('./credentials-tool.ts');
    process.exitCode = runCredentialsTool(argv.slice(1), process.env, (line) => console.log(line), (line) => console.error(line));
    return;
  }
  const request = brokerRequest(argv);
  if (request === 'help') {
    process.stdout.write(usage());
    return;
  }
  if (request === 'version') {
    console.log(VERSION);
    return;
  }
  await serve(argv);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const secrets = processSecrets(process.argv.slice(2), process.env);
  const message = redactText(error instanceof Error ? error.message : String(error), secrets);
  console.error(`${NAME}: ${message}`);
  // Expected failures say all in their one line; anything else is a bug, and its stack helps.
  const expected = error instanceof SettingsError || error instanceof BusesError || error instanceof StartError;
  if (!expected && error instanceof Error) debug('%s', redactText(error.stack ?? '', secrets));
  process.exit(1);
});
