/** The one reader of command lines (src/command-line.ts), shared by the broker, `tail`, the redaction of secrets and the bench. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { readCommandLine, type FlagSpec } from '../src/command-line.ts';

const FLAGS: readonly FlagSpec[] = [
  { flag: '--port', takesValue: true },
  { flag: '--json', takesValue: false },
  { flag: '--help', takesValue: false, short: 'h' },
];

describe('readCommandLine', () => {
  it('reads both flag forms, a lone flag, a short form and positionals, in order, with their places', () => {
    assert.deepEqual(readCommandLine(['--port', '4000', 'calls', '--port=5000', '-h', '--json'], FLAGS), [
      { kind: 'flag', flag: '--port', known: true, value: '4000', inline: false, index: 0 },
      { kind: 'positional', value: 'calls', index: 2, afterTerminator: false },
      { kind: 'flag', flag: '--port', known: true, value: '5000', inline: true, index: 3 },
      { kind: 'flag', flag: '--help', known: true, value: undefined, inline: false, index: 4 },
      { kind: 'flag', flag: '--json', known: true, value: undefined, inline: false, index: 5 },
    ]);
  });

  it('gives an unknown flag by its name alone, its value kept apart, and takes no value for it', () => {
    assert.deepEqual(readCommandLine(['--tokn=s3cret', '--verbose', 'x'], FLAGS), [
      { kind: 'flag', flag: '--tokn', known: false, value: 's3cret', inline: true, index: 0 },
      { kind: 'flag', flag: '--verbose', known: false, value: undefined, inline: false, index: 1 },
      { kind: 'positional', value: 'x', index: 2, afterTerminator: false },
    ]);
  });

  it('says when a flag that takes a value has none, and lets a flag take a value that looks like a flag', () => {
    assert.deepEqual(readCommandLine(['--port'], FLAGS), [{ kind: 'flag', flag: '--port', known: true, value: undefined, inline: false, index: 0 }]);
    assert.equal((readCommandLine(['--port', '--json'], FLAGS)[0] as { value?: string }).value, '--json');
    assert.equal((readCommandLine(['--port='], FLAGS)[0] as { value?: string }).value, '');
  });

  it('takes everything after -- as positionals, and - as one', () => {
    assert.deepEqual(readCommandLine(['-', '--', '--json', '-h'], FLAGS), [
      { kind: 'positional', value: '-', index: 0, afterTerminator: false },
      { kind: 'positional', value: '--json', index: 2, afterTerminator: true },
      { kind: 'positional', value: '-h', index: 3, afterTerminator: true },
    ]);
  });

  it('names an unknown group of short flags as written, and an unknown flag never by what follows its first =', () => {
    assert.deepEqual(readCommandLine(['-xyz', '--=s3cret', '-a=s3cret'], FLAGS).map((arg) => arg.kind === 'flag' && arg.flag), ['-xyz', '--', '-a']);
    const flagLike = fc.oneof(fc.string(), fc.tuple(fc.constantFrom('-', '--', '-h', '--port', '--x'), fc.string()).map(([a, b]) => a + b));
    fc.assert(
      fc.property(fc.array(flagLike), (argv) => {
        for (const arg of readCommandLine(argv, FLAGS)) {
          if (arg.kind === 'flag' && !arg.known) assert.equal(arg.flag, argv[arg.index]?.split('=')[0]);
        }
      }),
    );
  });
});
