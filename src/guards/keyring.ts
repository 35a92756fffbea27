/**
 * The credentials in force (docs/security.md#credentials): the shared
 * `BROKER_TOKEN`, the clients of `CREDENTIALS_FILE`, or nobody checked at all;
 * swapped whole at a reload, so that a check never sees half of a change.
 */
import { readFileSync } from 'node:fs';
import { ANONYMOUS, Credentials, CredentialsError, parseCredentials, tokenCredential, type Credential, type Principal } from './credentials.ts';

/** Where the credentials come from. */
export interface KeyringOptions {
  /** The shared token, a credential allowed everything. */
  readonly token?: string | undefined;
  /** The credentials file, re-read by {@link Keyring.reload}. */
  readonly file?: string | undefined;
  /** Reads the file; `readFileSync` by default. */
  readonly read?: (file: string) => string;
}

/** What a reload did: the clients now in force, or why the file was refused (the previous ones stay). */
export type ReloadOutcome = { ok: true; names: readonly string[] } | { ok: false; error: string };

export class Keyring {
  readonly #token: Credential | undefined;
  readonly #file: string | undefined;
  readonly #read: (file: string) => string;
  #credentials: Credentials | undefined;

  /** Reads the file at once; a file that cannot be used throws a {@link CredentialsError} naming the line. */
  constructor(options: KeyringOptions = {}) {
    this.#token = options.token === undefined ? undefined : tokenCredential(options.token);
    this.#file = options.file;
    this.#read = options.read ?? ((file) => readFileSync(file, 'utf8'));
    this.#credentials = this.#load();
  }

  /** A keyring from a token alone (or nobody checked when undefined): what the one-token API takes. */
  static of(token: string | undefined | Keyring): Keyring {
    return token instanceof Keyring ? token : new Keyring({ token });
  }

  /** True when nothing is checked: no token, no credentials file. */
  get open(): boolean {
    return this.#credentials === undefined;
  }

  /** The credentials file, if any. */
  get file(): string | undefined {
    return this.#file;
  }

  /** The names of the clients in force, the token's included; bounded by the file, so fit for a metric label. */
  get names(): readonly string[] {
    return this.#credentials?.names ?? [ANONYMOUS.credential.name];
  }

  /** The client presenting `secret`: anyone when nothing is checked, undefined when it is no one's. */
  authenticate(secret: unknown): Principal | undefined {
    if (this.#credentials === undefined) return ANONYMOUS;
    return this.#credentials.authenticate(secret);
  }

  /** True when a client accepted earlier still holds: same secret, same client, same grants. */
  keeps(principal: Principal): boolean {
    return this.#credentials === undefined ? principal === ANONYMOUS : this.#credentials.keeps(principal);
  }

  /** Re-reads the credentials file. A file that cannot be used is refused and the previous credentials stay. */
  reload(): ReloadOutcome {
    try {
      this.#credentials = this.#load();
      return { ok: true, names: this.names };
    } catch (error) {
      if (error instanceof CredentialsError) return { ok: false, error: error.message };
      const code = (error as NodeJS.ErrnoException).code;
      return { ok: false, error: `${this.#file}: cannot read (${code ?? (error as Error).message})` };
    }
  }

  #load(): Credentials | undefined {
    const extra = this.#token ? [this.#token] : [];
    if (this.#file === undefined) return this.#token ? new Credentials(extra) : undefined;
    return parseCredentials(this.#read(this.#file), this.#file, extra);
  }
}
