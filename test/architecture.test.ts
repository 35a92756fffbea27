/**
 * The shape of the code, as docs/architecture.md draws it: the import graph of
 * src/ has no cycle, the core knows nothing of HTTP, and the pure modules know
 * nothing of Socket.IO or Express.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './helpers/broker.ts';

const SRC = join(ROOT, 'src');

/** Every .ts file under src/, relative to src/. */
function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [relative(SRC, join(dir, entry.name))] : [],
  );
}

/** What `file` imports: relative imports as src/-relative paths, packages by name. */
function imports(file: string): { local: string[]; packages: string[] } {
  const text = readFileSync(join(SRC, file), 'utf8');
  const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)].map((m) => m[1] as string);
  return {
    local: specifiers.filter((s) => s.startsWith('.')).map((s) => relative(SRC, resolve(dirname(join(SRC, file)), s))),
    packages: specifiers.filter((s) => !s.startsWith('.')),
  };
}

const FILES = sources();
const GRAPH = new Map(FILES.map((file) => [file, imports(file)]));

describe('code shape', () => {
  it('reads a graph of the real modules', () => {
    assert.ok(FILES.includes('broker.ts') && FILES.includes('http/notify.ts') && FILES.includes('cluster/cluster.ts'));
    assert.ok(GRAPH.get('server.ts')?.local.includes('broker.ts'));
    for (const [file, { local }] of GRAPH) {
      for (const target of local) {
        // The monitor page's model is plain JavaScript shared with the page, outside src/.
        if (target.startsWith('../monitor/')) continue;
        assert.ok(FILES.includes(target), `${file} imports ${target}, which is not a module of src/`);
      }
    }
  });

  it('has no import cycle in src/', () => {
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return;
      assert.notEqual(state.get(file), 'open', `import cycle: ${[...path, file].join(' → ')}`);
      state.set(file, 'open');
      for (const next of GRAPH.get(file)?.local ?? []) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of FILES) visit(file, []);
  });

  it('keeps Express out of the broker, and Socket.IO and Express out of the pure modules', () => {
    assert.ok(!GRAPH.get('broker.ts')?.packages.includes('express'));
    for (const pure of ['routes.ts', 'targets.ts', 'protocol.ts', 'buses.ts', 'limits.ts', 'settings.ts', 'command-line.ts', 'redact.ts', 'cluster/outage-grace.ts', 'cluster/backoff.ts', 'cluster/sentinel-answer.ts', 'cluster/stream-bounds.ts']) {
      const packages = GRAPH.get(pure)?.packages ?? [];
      assert.deepEqual(packages.filter((p) => p.startsWith('socket.io') || p === 'express'), [], pure);
    }
  });

  it('gives each type, interface and class one module: a name stands for one thing', () => {
    const declared = new Map<string, string[]>();
    for (const file of FILES) {
      const text = readFileSync(join(SRC, file), 'utf8');
      for (const [, name] of text.matchAll(/^(?:export )?(?:declare )?(?:abstract )?(?:type|interface|class) (\w+)/gm)) {
        declared.set(name!, [...(declared.get(name!) ?? []), file]);
      }
    }
    assert.ok(declared.size > 50, `${declared.size} names read`);
    const twice = [...declared].filter(([, files]) => files.length > 1).map(([name, files]) => `${name}: ${files.join(', ')}`);
    assert.deepEqual(twice, []);
  });

  it('reads command lines in one module, with util.parseArgs', () => {
    const readers = FILES.filter((file) => /\bparseArgs\b/.test(readFileSync(join(SRC, file), 'utf8')));
    assert.deepEqual(readers, ['command-line.ts']);
    // process.argv is read by the entry alone, which hands it on.
    const argvReaders = FILES.filter((file) => /process\.argv/.test(readFileSync(join(SRC, file), 'utf8').replace(/^\s*\*.*$/gm, '')));
    assert.deepEqual(argvReaders, ['main.ts']);
    for (const file of ['settings.ts', 'redact.ts', 'tail/tail-format.ts']) assert.ok(GRAPH.get(file)?.local.includes('command-line.ts'), file);
    assert.match(readFileSync(join(ROOT, 'bench', 'run.ts'), 'utf8'), /readCommandLine\(process\.argv/);
  });
});
