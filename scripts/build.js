#!/usr/bin/env node
/**
 * `npm run build`: compiles src/ into dist/ (tsconfig.build.json). The compiler
 * writes into a directory of its own beside dist/; dist/ is replaced by it only
 * once the compiler succeeded, so a failed or interrupted build leaves the
 * dist/ that was there. The staging directory sits at the same depth as dist/,
 * so the source maps' relative paths to src/ hold once it is renamed.
 *
 * The build needs TypeScript, a dev dependency: `npm pack` runs it (prepack),
 * nothing that runs on install does.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const STAGING = join(ROOT, `.dist-build-${process.pid}`);
const RETIRED = join(ROOT, `.dist-old-${process.pid}`);

/** @param {string} message */
function fail(message, code = 1) {
  rmSync(STAGING, { recursive: true, force: true });
  console.error(`build: ${message}; dist/ is left as it was`);
  process.exit(code);
}

let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  fail('TypeScript (a dev dependency) is not installed: run `npm ci` without --omit=dev first');
}

const compiled = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', STAGING], { cwd: ROOT, stdio: 'inherit' });
if (compiled.status !== 0) fail(`tsc ${compiled.signal ? `was killed by ${compiled.signal}` : `exited with ${compiled.status}`}`, compiled.status || 1);

// Two renames: dist/ is missing only between them, never half written.
if (existsSync(DIST)) renameSync(DIST, RETIRED);
renameSync(STAGING, DIST);
rmSync(RETIRED, { recursive: true, force: true });
