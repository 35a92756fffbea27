/**
 * The one reader of command lines: the broker's settings, `tail`, the
 * redaction of a process's secrets and `bench/run.ts` all read their
 * arguments here, through Node's `util.parseArgs`. Pure: no I/O.
 *
 * It reads leniently (parseArgs' `strict: false`) and hands back every
 * argument in order, known or not, so that each command words its own
 * refusals: the broker must never quote what follows `=` in a mistyped
 * flag (it may be a secret), `tail` names the option it does not know.
 */
import { parseArgs } from 'node:util';

/** One flag a command understands. */
export interface FlagSpec {
  /** Its long form, such as `--port`. */
  readonly flag: `--${string}`;
  /** Whether it takes a value (`--port 4000`, `--port=4000`) or stands alone (`--json`). */
  readonly takesValue: boolean;
  /** A one-letter form, such as `h` for `-h`. */
  readonly short?: string;
}

/** A flag as it appeared on the command line. */
export interface FlagArgument {
  readonly kind: 'flag';
  /** The long form of a known flag (`--help` for `-h`); an unknown one as written, up to its first `=`. */
  readonly flag: string;
  /** Whether the command knows this flag. */
  readonly known: boolean;
  /** Its value: after `=`, or the next argument for a flag that takes one; undefined when none was given. */
  readonly value: string | undefined;
  /** Whether the value was given after `=` (the only way a flag that takes none can get one). */
  readonly inline: boolean;
  /** Where the flag is in the command line, from 0. */
  readonly index: number;
}

/** An argument that is no flag (or anything after `--`). */
export interface PositionalArgument {
  readonly kind: 'positional';
  readonly value: string;
  readonly index: number;
  /** Whether it came after `--`, where nothing is a flag. */
  readonly afterTerminator: boolean;
}

export type Argument = FlagArgument | PositionalArgument;

/**
 * Reads `argv` against the flags a command knows, and gives every argument
 * back in order. A flag that takes a value takes the next argument whatever
 * it looks like (`--host --token` sets the host to `--token`); an unknown
 * flag takes no value (what follows it is a positional argument).
 *
 * @example
 * readCommandLine(['--port=4000', 'x', '--json'], [{ flag: '--port', takesValue: true }]);
 * // [{ kind: 'flag', flag: '--port', known: true, value: '4000', inline: true, index: 0 },
 * //  { kind: 'positional', value: 'x', index: 1, afterTerminator: false },
 * //  { kind: 'flag', flag: '--json', known: false, value: undefined, inline: false, index: 2 }]
 */
export function readCommandLine(argv: readonly string[], flags: readonly FlagSpec[]): Argument[] {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const { flag, takesValue, short } of flags) {
    options[flag.slice(2)] = short === undefined ? { type: takesValue ? 'string' : 'boolean' } : { type: takesValue ? 'string' : 'boolean', short };
  }
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const out: Argument[] = [];
  let terminated = false;
  /** Arguments already given as an unknown flag: a group of short flags (`-abc`) is one. */
  const unknownAt = new Set<number>();
  for (const token of tokens) {
    if (token.kind === 'option-terminator') {
      terminated = true;
      continue;
    }
    if (token.kind === 'positional') {
      out.push({ kind: 'positional', value: token.value, index: token.index, afterTerminator: terminated });
      continue;
    }
    const known = Object.hasOwn(options, token.name);
    if (!known && unknownAt.has(token.index)) continue;
    if (!known) unknownAt.add(token.index);
    out.push({
      kind: 'flag',
      // Unknown: the argument as written up to its first `=` (`-abc` whole, not `-a`; `--=s3cret` as `--`).
      flag: known ? `--${token.name}` : (argv[token.index] as string).split('=')[0] as string,
      known,
      value: token.value,
      inline: token.inlineValue === true,
      index: token.index,
    });
  }
  return out;
}
