#!/usr/bin/env node
// The installed command: runs the compiled broker, dist/main.js. It never builds (that needs the
// dev dependencies); a copy without dist/ gets one line saying what to run.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MAIN = new URL('../dist/main.js', import.meta.url);
const NOT_BUILT_EXIT_CODE = 1;

if (!existsSync(MAIN)) {
  process.stderr.write(
    `spicy-action: ${fileURLToPath(MAIN)} is missing: this copy is not built. ` +
      'In a clone of the repository run `npm ci && npm run build` (then `npm prune --omit=dev` if you like), ' +
      'or start it from the sources with `npm start`.\n',
  );
  process.exit(NOT_BUILT_EXIT_CODE);
}
await import(MAIN.href);
