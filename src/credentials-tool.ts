/**
 * `spicy-action credentials ...`: adds a client or a secret to a credentials
 * file and prints the new secret once (docs/security.md#credentials). The file
 * keeps only hashes; the secret is shown here and nowhere else.
 *
 *     spicy-action credentials add dashboard --grant join=calls,support --grant read=monitor
 *     spicy-action credentials add dashboard        a second secret, for a rotation
 *     spicy-action credentials retire dashboard     only the newest secret stays
 *     spicy-action credentials remove dashboard
 *     spicy-action credentials list
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readCommandLine, type FlagSpec } from './command-line.ts';
import { grantsProblem, type GrantsSpec } from './guards/grants.ts';
import { CredentialsError, hashSecret, NAME_PATTERN, newSecret, parseCredentials } from './guards/credentials.ts';

const USAGE = `usage: spicy-action credentials add NAME [--grant KIND=a,b,...]... [--file FILE]
       spicy-action credentials retire NAME [--file FILE]
       spicy-action credentials remove NAME [--file FILE]
       spicy-action credentials list [--file FILE]

add      adds NAME with the grants given, or a second secret to NAME (its grants
         are replaced by those given, if any); prints the new secret once
retire   keeps only NAME's newest secret (the end of a rotation)
remove   removes NAME
list     prints every client and its grants, never a secret

--grant join=calls,endpoint:*     buses and rooms it may join
--grant publish=call,report_*     events it may emit
--grant register=queuer           events it may register routes for
--grant notify=call               messages it may push to /_notify
--grant read=metrics,routes,monitor
--grant routes                    it may change routes (DELETE /routes/:event)
--file FILE                       the credentials file; default: $CREDENTIALS_FILE

After a change, reload each broker: systemctl reload spicy-action (SIGHUP).
`;

/** The flags the tool knows. */
const FLAGS: readonly FlagSpec[] = [
  { flag: '--grant', takesValue: true },
  { flag: '--file', takesValue: true },
  { flag: '--help', takesValue: false, short: 'h' },
];

/** A client as the file holds it. */
interface StoredClient {
  secrets: string[];
  grants?: GrantsSpec;
}

/** Thrown for a command line or file the tool cannot use; its message is one line. */
class ToolError extends Error {}

/** `KIND=a,b` or `routes`, into grants. */
function parseGrant(text: string, into: Record<string, unknown>): void {
  if (text === 'routes') {
    into.routes = true;
    return;
  }
  const equals = text.indexOf('=');
  if (equals <= 0) throw new ToolError(`--grant ${text}: expected KIND=name,... or routes`);
  const kind = text.slice(0, equals);
  const list = text.slice(equals + 1).split(',').filter((name) => name.length > 0);
  into[kind] = [...((into[kind] as string[] | undefined) ?? []), ...list];
}

function readFile(file: string): { clients: Record<string, StoredClient> } {
  if (!existsSync(file)) return { clients: {} };
  const text = readFileSync(file, 'utf8');
  parseCredentials(text, file); // refuses a file the broker would refuse
  return JSON.parse(text) as { clients: Record<string, StoredClient> };
}

/**
 * Writes beside the file and renames, so that a broker reloading never reads
 * half a file. Mode 0644: the file holds hashes of long random secrets, which
 * reveal nothing, and the broker's unprivileged (systemd dynamic) user reads
 * it again at each reload.
 */
function writeFile(file: string, document: { clients: Record<string, StoredClient> }): void {
  const temporary = join(dirname(file), `.${Date.now()}.${process.pid}.credentials.tmp`);
  writeFileSync(temporary, `${JSON.stringify(document, null, 2)}\n`, { mode: 0o644 });
  renameSync(temporary, file);
}

/**
 * Runs the tool on `argv` (the words after `credentials`); returns the exit
 * code. Output goes to `out`, problems to `err`, each one line.
 */
export function runCredentialsTool(argv: readonly string[], env: NodeJS.ProcessEnv, out: (line: string) => void, err: (line: string) => void): number {
  try {
    const values: { grant: string[]; file?: string; help: boolean } = { grant: [], help: false };
    const positionals: string[] = [];
    for (const argument of readCommandLine(argv, FLAGS)) {
      if (argument.kind === 'positional') positionals.push(argument.value);
      else if (!argument.known) throw new ToolError(`unknown option ${argument.flag}`);
      else if (argument.flag === '--help') values.help = true;
      else if (argument.value === undefined) throw new ToolError(`${argument.flag} needs a value`);
      else if (argument.flag === '--grant') values.grant.push(argument.value);
      else values.file = argument.value;
    }
    const [command, name, ...extra] = positionals;
    if (values.help || command === undefined) {
      out(USAGE.trimEnd());
      return values.help ? 0 : 2;
    }
    if (extra.length > 0) throw new ToolError(`unexpected ${extra.join(' ')}`);
    const file = values.file ?? env.CREDENTIALS_FILE;
    if (!file) throw new ToolError('no credentials file: give --file FILE or set CREDENTIALS_FILE');
    const document = readFile(file);
    const clients = document.clients;
    if (command === 'list') {
      for (const [client, entry] of Object.entries(clients)) out(`${client}  ${entry.secrets.length} secret(s)  ${JSON.stringify(entry.grants ?? {})}`);
      return 0;
    }
    if (name === undefined) throw new ToolError(`${command} needs a client NAME`);
    const existing = Object.hasOwn(clients, name) ? clients[name] : undefined;
    switch (command) {
      case 'add': {
        if (!NAME_PATTERN.test(name)) throw new ToolError(`"${name}": a name is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit`);
        const grants: Record<string, unknown> = {};
        for (const grant of values.grant) parseGrant(grant, grants);
        const problem = grantsProblem(grants);
        if (problem) throw new ToolError(problem);
        const secret = newSecret();
        const entry: StoredClient = existing ?? { secrets: [], grants: {} };
        entry.secrets.push(hashSecret(secret));
        if (!existing || values.grant.length > 0) entry.grants = grants as GrantsSpec;
        clients[name] = entry;
        parseCredentials(JSON.stringify(document), file); // what is written is what a broker accepts
        writeFile(file, document);
        err(existing ? `${name}: a new secret added (${entry.secrets.length} now valid); retire the old one once every client has the new` : `${name}: added`);
        out(secret);
        return 0;
      }
      case 'retire': {
        if (!existing) throw new ToolError(`no client "${name}" in ${file}`);
        existing.secrets = existing.secrets.slice(-1);
        writeFile(file, document);
        err(`${name}: only its newest secret is valid now`);
        return 0;
      }
      case 'remove': {
        if (!existing) throw new ToolError(`no client "${name}" in ${file}`);
        delete clients[name];
        writeFile(file, document);
        err(`${name}: removed`);
        return 0;
      }
      default:
        throw new ToolError(`unknown command "${command}" (add, retire, remove, list)`);
    }
  } catch (error) {
    if (error instanceof ToolError || error instanceof CredentialsError) {
      err(`spicy-action credentials: ${(error as Error).message}`);
      return 2;
    }
    throw error;
  }
}
