/**
 * The process-level last resort (src/guards/last-resort.ts), in a real child
 * process: an unhandled rejection is logged and the process goes on; an
 * uncaught exception is logged and the process exits 1.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { ROOT } from './helpers/broker.ts';
import { withTimeout } from './helpers/clients.ts';

const SCRIPT = `
import { installLastResort } from './src/guards/last-resort.ts';
installLastResort(process, (line) => console.error('LOG ' + line.split('\\n')[0]));
Promise.reject(new RangeError('Maximum call stack size exceeded'));
setTimeout(() => {
  console.log('alive after the rejection');
  setTimeout(() => { throw new Error('a bug'); }, 10);
}, 100);
setInterval(() => {}, 1_000); // a server's handles keep the loop alive
`;

describe('last resort', () => {
  it('absorbs an unhandled rejection, and exits 1 on an uncaught exception', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    const code = await withTimeout(new Promise<number | null>((resolve) => child.once('exit', resolve)), 'the child to exit', 20_000);
    assert.match(err, /LOG unhandled rejection \(the process goes on\): RangeError: Maximum call stack size exceeded/);
    assert.match(out, /alive after the rejection/);
    assert.match(err, /LOG uncaught exception, exiting: Error: a bug/);
    assert.equal(code, 1);
  });
});
