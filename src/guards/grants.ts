/**
 * Grants: what one credential may do, in the platform's terms (docs/security.md#grants).
 * Pure: no Socket.IO, no Express.
 *
 * A grant lists names or patterns, where `*` stands for any run of characters
 * (`endpoint:*`, `report_*`, `*`). Names are matched as whole strings: nothing
 * is looked up on an object, so `__proto__` or `constructor` match only a
 * pattern that says so.
 */

/** The HTTP resources a credential may read. */
export const READABLE = ['metrics', 'routes', 'monitor'] as const;
export type Readable = (typeof READABLE)[number];

/** A credential's grants as written in the credentials file; every field may be left out (nothing granted). */
export interface GrantsSpec {
  /** Buses and rooms it may join, by `configure` or `join`/`subscribe`. */
  readonly join?: readonly string[];
  /** Events it may emit (routed events, and `ping`, `shout`, `notify_users`). */
  readonly publish?: readonly string[];
  /** Events it may `register` a route for. */
  readonly register?: readonly string[];
  /** Messages it may push through `POST /_notify/:msg`. */
  readonly notify?: readonly string[];
  /** HTTP resources it may read: `metrics`, `routes`, `monitor`. */
  readonly read?: readonly Readable[];
  /** Whether it may change routes over HTTP (`DELETE /routes/:event`). */
  readonly routes?: boolean;
}

/** The actions a grant names. */
export type Action = 'join' | 'publish' | 'register' | 'notify';

/** Names matching a list of patterns, compiled once. */
export class NameSet {
  /** Matches every name. */
  static readonly ALL = new NameSet(['*']);
  /** Matches no name. */
  static readonly NONE = new NameSet([]);

  readonly #exact: ReadonlySet<string>;
  readonly #patterns: readonly RegExp[];
  readonly #all: boolean;
  /** The patterns as given, for messages and listings. */
  readonly source: readonly string[];

  constructor(patterns: readonly string[]) {
    this.source = Object.freeze([...patterns]);
    this.#all = patterns.includes('*');
    this.#exact = new Set(patterns.filter((p) => !p.includes('*')));
    this.#patterns = patterns.filter((p) => p.includes('*') && p !== '*').map(globToRegExp);
  }

  /** True when `name` is one of the names or matches one of the patterns. */
  has(name: string): boolean {
    if (this.#all || this.#exact.has(name)) return true;
    for (const pattern of this.#patterns) if (pattern.test(name)) return true;
    return false;
  }
}

/** `*` → any run of characters; every other character stands for itself. */
function globToRegExp(pattern: string): RegExp {
  const body = pattern.split('*').map((part) => part.replace(/[\\^$.|?+()[\]{}]/g, '\\$&')).join('[\\s\\S]*');
  return new RegExp(`^${body}$`);
}

/** What one credential may do, compiled for checking. */
export class Grants {
  /** Everything: the shared `BROKER_TOKEN`, and a broker without any credential. */
  static readonly ALL = new Grants({ join: ['*'], publish: ['*'], register: ['*'], notify: ['*'], read: [...READABLE], routes: true });

  readonly #sets: Readonly<Record<Action, NameSet>>;
  readonly #read: ReadonlySet<Readable>;
  readonly #routes: boolean;
  /** The grants as given. */
  readonly spec: GrantsSpec;

  constructor(spec: GrantsSpec) {
    this.spec = spec;
    this.#sets = {
      join: new NameSet(spec.join ?? []),
      publish: new NameSet(spec.publish ?? []),
      register: new NameSet(spec.register ?? []),
      notify: new NameSet(spec.notify ?? []),
    };
    this.#read = new Set(spec.read ?? []);
    this.#routes = spec.routes === true;
  }

  /** True when the credential may do `action` on `name` (a room, an event, a message). */
  may(action: Action, name: string): boolean {
    return this.#sets[action].has(name);
  }

  /** True when the credential may read `resource` over HTTP. */
  mayRead(resource: Readable): boolean {
    return this.#read.has(resource);
  }

  /** True when the credential may change routes over HTTP. */
  get mayChangeRoutes(): boolean {
    return this.#routes;
  }
}

/** Why a grants object from a file is not valid, or undefined when it is. */
export function grantsProblem(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'grants must be an object';
  for (const [key, field] of Object.entries(value)) {
    switch (key) {
      case 'join':
      case 'publish':
      case 'register':
      case 'notify':
        if (!Array.isArray(field) || !field.every((p) => typeof p === 'string' && p.length > 0)) return `grants.${key} must be a list of non-empty names or patterns`;
        break;
      case 'read':
        if (!Array.isArray(field) || !field.every((r) => (READABLE as readonly unknown[]).includes(r))) return `grants.read must list some of ${READABLE.join(', ')}`;
        break;
      case 'routes':
        if (typeof field !== 'boolean') return 'grants.routes must be true or false';
        break;
      default:
        return `unknown grant "${key}" (known: join, publish, register, notify, read, routes)`;
    }
  }
  return undefined;
}
