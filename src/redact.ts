/**
 * Keeping secrets out of what the broker and `tail` print
 * (docs/security.md#what-is-logged): error lines and log lines may quote a URL or a command
 * line, and those may carry a token or a password. Pure functions, no I/O.
 *
 * What is hidden, each replaced by {@link REDACTED}:
 * - the user information of a URL (`redis://user:password@host` → `redis://***@host`);
 * - the value of a query parameter with a secret's name (`?token=...`, `&password=...`);
 * - every occurrence of a secret the caller knows (the broker's token);
 * - of a command-line argument, all but the flag's name.
 */
import { readCommandLine, type FlagSpec } from './command-line.ts';

/** What stands in for a hidden secret. */
export const REDACTED = '***';

/** Names of query parameters (and `name=value` pairs in text) whose values are secrets; compared case-insensitively. */
const SECRET_PARAMS: readonly string[] = Object.freeze([
  'token',
  'access_token',
  'auth',
  'password',
  'passwd',
  'pass',
  'secret',
  'key',
  'apikey',
  'api_key',
]);

const PARAM_NAMES = SECRET_PARAMS.join('|');
/** `?token=...` or `&token=...` in a URL: the value runs to the next `&` or `#`. */
const URL_PARAM = new RegExp(`([?&;](?:${PARAM_NAMES})=)[^&#]*`, 'gi');
/** `token=...` in free text (also `BROKER_TOKEN=...`): the value runs to the next separator or quote. */
const TEXT_PARAM = new RegExp(`((?:\\b|_)(?:${PARAM_NAMES})=)[^&#\\s"'<>]*`, 'gi');
/** A URL in free text: a scheme, `://`, and everything up to the next whitespace. */
const URL_IN_TEXT = /[a-z][a-z0-9+.-]*:\/\/\S*/gi;
/** What a redaction that could not be made safe gives instead. */
const WHOLLY_REDACTED = `(message hidden: it held a secret) ${REDACTED}`;

/**
 * A URL with its user information and secret query parameters hidden. The
 * text need not be a valid URL (an unparseable `REDIS_URL` is redacted just
 * the same): everything between `://` (or the start, without a scheme) and
 * the last `@` is user information, so a password holding `/`, `#` or `@`
 * is hidden too, at the price of hiding an `@` in a path or query with it.
 *
 * @example
 * redactUrl('redis://default:s3cret@redis.example.net:6379/0'); // 'redis://***@redis.example.net:6379/0'
 * redactUrl('http://broker:3000/?token=s3cret&x=1'); // 'http://broker:3000/?token=***&x=1'
 */
export function redactUrl(url: string): string {
  const scheme = url.indexOf('://');
  const authority = scheme < 0 ? 0 : scheme + 3;
  const at = url.lastIndexOf('@');
  const hidden = at >= authority ? `${url.slice(0, authority)}${REDACTED}${url.slice(at)}` : url;
  return hidden.replace(URL_PARAM, `$1${REDACTED}`);
}

/**
 * A line of text (an error message, a log line) with secrets hidden: every
 * occurrence of the `secrets` given, the user information and secret
 * parameters of every URL in it, and `token=...`-like pairs. Should a
 * secret still show after that (a secret that the redaction itself would
 * spell, such as one ending in `***@`), the whole line is withheld. A secret
 * that is a part of {@link REDACTED} itself (`*`) cannot be hidden.
 *
 * @example
 * redactText('cannot reach http://u:pw@host/ (refused)'); // 'cannot reach http://***@host/ (refused)'
 * redactText('unknown value s3cret', ['s3cret']); // 'unknown value ***'
 */
export function redactText(text: string, secrets: readonly (string | undefined)[] = []): string {
  const known = secrets.filter((s): s is string => typeof s === 'string' && s !== '');
  let out = text;
  for (const secret of known) out = out.split(secret).join(REDACTED);
  out = out.replace(URL_IN_TEXT, (url) => redactUrl(url)).replace(TEXT_PARAM, `$1${REDACTED}`);
  return known.some((secret) => out.includes(secret)) ? WHOLLY_REDACTED : out;
}

/**
 * How an argument the program does not understand may be quoted in an
 * error: a flag by its name alone (what follows `=` may be a secret, as in a
 * mistyped `--tokn=s3cret`), in double quotes; anything else not at all
 * (undefined), since a stray value is most likely the value of a flag that
 * went wrong.
 *
 * @example
 * quoteArgument('--tokn=s3cret'); // '"--tokn"'
 * quoteArgument('s3cret'); // undefined
 */
export function quoteArgument(arg: string): string | undefined {
  if (!arg.startsWith('-') || arg === '-') return undefined;
  const eq = arg.indexOf('=');
  return JSON.stringify(eq > 0 ? arg.slice(0, eq) : arg);
}

/** Flags and environment variables of the process whose values are secrets (the broker's and `tail`'s token, the Redis URL). */
const SECRET_FLAGS: readonly FlagSpec[] = [
  { flag: '--token', takesValue: true },
  { flag: '--redis', takesValue: true },
  { flag: '--url', takesValue: true },
];
const SECRET_ENV: readonly string[] = ['BROKER_TOKEN', 'REDIS_URL', 'BROKER_URL'];

/**
 * The secrets a process was given on its command line and in its
 * environment, for {@link redactText}: the token values, and the
 * passwords of the URLs given.
 *
 * @example
 * processSecrets(['--token', 's3cret'], { REDIS_URL: 'redis://:pw@r:6379' }); // ['s3cret', 'pw']
 */
export function processSecrets(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): string[] {
  const values: string[] = [];
  for (const name of SECRET_ENV) {
    const value = env[name];
    if (value) values.push(value);
  }
  for (const arg of readCommandLine(argv, SECRET_FLAGS)) {
    if (arg.kind === 'flag' && arg.known && arg.value) values.push(arg.value);
  }
  const secrets: string[] = [];
  for (const value of values) {
    if (!value.includes('://')) {
      secrets.push(value);
      continue;
    }
    // A URL is not a secret as a whole (its host helps an error line), but its password and token are.
    for (const part of urlSecrets(value)) secrets.push(part);
  }
  return [...new Set(secrets)];
}

/** The password (or the user, when alone) and the secret parameter values of a URL, as written and decoded. */
function urlSecrets(url: string): string[] {
  const found: string[] = [];
  try {
    const parsed = new URL(url);
    // A user without a password (`redis://s3cret@host`) is one; a user beside a password (`default`) is a plain word.
    const part = parsed.password || parsed.username;
    if (part) found.push(part, safeDecode(part));
    for (const [name, value] of parsed.searchParams) {
      if (value && SECRET_PARAMS.includes(name.toLowerCase())) found.push(value, encodeURIComponent(value));
    }
  } catch {
    // Unparseable: redactUrl still hides what precedes the last `@`.
  }
  return found;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
