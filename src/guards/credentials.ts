/**
 * Named credentials (docs/security.md#credentials): who a client is, from the
 * secret it presents, and what it may do. Pure: no Socket.IO, no Express, no
 * file system (the caller reads the file and hands its text in).
 *
 * A secret is a long random string made by `spicy-action credentials add`; the
 * file keeps only its SHA-256 (`sha256:<hex>`). A secret that long needs no
 * slow hash, and checking one is one hash and one map look-up, cheap in a
 * reconnect storm of thousands of clients. The look-up is by the hash of what
 * was presented, so how long it takes tells nothing about any stored secret.
 *
 * The file (JSON):
 *
 *     {"clients": {"dashboard": {"secrets": ["sha256:…"], "grants": {"join": ["calls"]}}}}
 */
import { createHash, randomBytes } from 'node:crypto';
import { Grants, grantsProblem, type GrantsSpec } from './grants.ts';

/** The name the shared `BROKER_TOKEN` goes by in logs, metrics and `/routes`. */
export const TOKEN_NAME = 'BROKER_TOKEN';
/** The name of every client of a broker that checks nothing (no token, no credentials file). */
export const ANONYMOUS_NAME = 'anonymous';
/** What a client name may be: it shows in logs and as a metric label. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** What a stored secret looks like. */
const HASH_PATTERN = /^sha256:[0-9a-f]{64}$/;
/** Random bytes in a secret made by the tool. */
const SECRET_BYTES = 32;
/** The prefix of secrets made by the tool, so that they are recognised in a leak scan. */
const SECRET_PREFIX = 'sa_';

/** One client: its name, what it may do, and the hashes of the secrets it may present (two during a rotation). */
export interface Credential {
  readonly name: string;
  readonly grants: Grants;
  readonly hashes: readonly string[];
}

/** The client behind an accepted secret: its credential, and which of its secrets it presented. */
export interface Principal {
  readonly credential: Credential;
  /** The hash of the presented secret; a reload that drops it closes the client's connections. */
  readonly hash: string;
}

/** A credentials file that cannot be used; `message` names the file and the line. */
export class CredentialsError extends Error {
  override readonly name = 'CredentialsError';
}

/** The stored form of `secret`: `sha256:<hex>`. */
export function hashSecret(secret: string): string {
  return `sha256:${createHash('sha256').update(secret, 'utf8').digest('hex')}`;
}

/** A new secret: 32 random bytes, base64url, with a recognisable prefix. */
export function newSecret(): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64url');
}

/** The credential standing for the shared `BROKER_TOKEN`: allowed everything. */
export function tokenCredential(token: string): Credential {
  return Object.freeze({ name: TOKEN_NAME, grants: Grants.ALL, hashes: Object.freeze([hashSecret(token)]) });
}

/** The principal of every client of a broker that checks nothing. */
export const ANONYMOUS: Principal = Object.freeze({
  credential: Object.freeze({ name: ANONYMOUS_NAME, grants: Grants.ALL, hashes: Object.freeze([]) }),
  hash: '',
});

/** The set of credentials in force: look a secret up, compare with the next set at a reload. */
export class Credentials {
  readonly #byHash: ReadonlyMap<string, Credential>;
  readonly #byName: ReadonlyMap<string, Credential>;

  constructor(credentials: readonly Credential[]) {
    const byHash = new Map<string, Credential>();
    const byName = new Map<string, Credential>();
    for (const credential of credentials) {
      if (byName.has(credential.name)) throw new CredentialsError(`client "${credential.name}" is listed twice`);
      byName.set(credential.name, credential);
      for (const hash of credential.hashes) {
        const other = byHash.get(hash);
        if (other) throw new CredentialsError(`clients "${other.name}" and "${credential.name}" share a secret`);
        byHash.set(hash, credential);
      }
    }
    this.#byHash = byHash;
    this.#byName = byName;
  }

  /** The principal presenting `secret`, or undefined when it is no one's. */
  authenticate(secret: unknown): Principal | undefined {
    if (typeof secret !== 'string' || secret.length === 0) return undefined;
    const hash = hashSecret(secret);
    const credential = this.#byHash.get(hash);
    return credential && { credential, hash };
  }

  /** The credential named `name`. */
  get(name: string): Credential | undefined {
    return this.#byName.get(name);
  }

  /** Every client's name, in the file's order. */
  get names(): readonly string[] {
    return [...this.#byName.keys()];
  }

  get size(): number {
    return this.#byName.size;
  }

  /**
   * True when `principal` still holds under this set: its secret is still
   * listed, for the same client, with the same grants. A client whose answer
   * is false is disconnected after a reload.
   */
  keeps(principal: Principal): boolean {
    const now = this.#byHash.get(principal.hash);
    return now !== undefined && now.name === principal.credential.name && sameGrants(now.grants.spec, principal.credential.grants.spec);
  }
}

/** Grants equal whatever their order of keys and names. */
function sameGrants(a: GrantsSpec, b: GrantsSpec): boolean {
  return canonical(a) === canonical(b);
}

function canonical(spec: GrantsSpec): string {
  const entries = Object.entries(spec)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => [k, Array.isArray(v) ? [...new Set(v as string[])].sort() : v] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify(entries);
}

/**
 * Reads a credentials file's text. `extra` (the `BROKER_TOKEN` credential)
 * joins the file's clients. A file that cannot be used throws a
 * {@link CredentialsError} whose message is one line naming `file` and the line.
 *
 * @example
 * parseCredentials('{"clients": {}}', 'credentials.json').size; // 0
 */
export function parseCredentials(text: string, file: string, extra: readonly Credential[] = []): Credentials {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const position = /at position (\d+)/.exec(message);
    const line = position ? lineAt(text, Number(position[1])) : text.split('\n').length;
    throw new CredentialsError(`${file}:${line}: not valid JSON (${message.replace(/ in JSON at position \d+.*$/, '')})`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw new CredentialsError(`${file}:1: the file must hold an object {"clients": {...}}`);
  const clients = (document as Record<string, unknown>).clients;
  if (typeof clients !== 'object' || clients === null || Array.isArray(clients)) throw new CredentialsError(`${file}:1: "clients" must be an object of clients by name`);
  const credentials: Credential[] = [];
  for (const [name, entry] of Object.entries(clients)) {
    const fail = (problem: string): never => {
      throw new CredentialsError(`${file}:${lineOfKey(text, name)}: client "${name}": ${problem}`);
    };
    if (!NAME_PATTERN.test(name)) fail(`a name is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit`);
    if (name === TOKEN_NAME || name === ANONYMOUS_NAME) fail(`the name is reserved`);
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return fail('must be an object {"secrets": [...], "grants": {...}}');
    const { secrets, grants, ...rest } = entry as Record<string, unknown>;
    const unknownKey = Object.keys(rest)[0];
    if (unknownKey !== undefined) fail(`unknown field "${unknownKey}" (known: secrets, grants)`);
    if (!Array.isArray(secrets) || secrets.length === 0 || !secrets.every((s) => typeof s === 'string' && HASH_PATTERN.test(s))) {
      fail('"secrets" must list one or more "sha256:<64 hex digits>" (made by `spicy-action credentials add`)');
    }
    const problem = grantsProblem(grants);
    if (problem) fail(problem);
    credentials.push(Object.freeze({ name, grants: new Grants((grants ?? {}) as GrantsSpec), hashes: Object.freeze([...new Set(secrets as string[])]) }));
  }
  try {
    return new Credentials([...credentials, ...extra]);
  } catch (error) {
    throw new CredentialsError(`${file}:1: ${(error as Error).message}`);
  }
}

/** The 1-based line of character `position` in `text`. */
function lineAt(text: string, position: number): number {
  let line = 1;
  for (let i = 0; i < position && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** The line where the key `"name":` first appears, or 1. */
function lineOfKey(text: string, name: string): number {
  const at = text.indexOf(`${JSON.stringify(name)}`);
  return at < 0 ? 1 : lineAt(text, at);
}
