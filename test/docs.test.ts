/**
 * The docs hold together (docs/testing.md#docs-and-their-tests): every fenced
 * block of README.md and docs/*.md has an id of its own that a test under
 * test/ takes with `block(page, id)`; the README stays short and links every
 * page of docs/; every relative link and anchor resolves; and the `DEBUG`
 * namespaces listed in docs/observability.md are exactly the code's, one module each.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './helpers/broker.ts';
import { allBlocks, anchorsOf, docPages, linksOf, pageText } from './helpers/docs.ts';

/** The README a newcomer reads in ten minutes. */
const README_MAX_LINES = 300;

describe('the docs', () => {
  it('give every fenced block an id of its own', () => {
    const blocks = allBlocks();
    assert.ok(blocks.length >= 30, `found ${blocks.length} blocks`);
    const missing = blocks.filter((b) => b.id === undefined).map((b) => `${b.page}:${b.line}`);
    assert.deepEqual(missing, [], 'blocks without <!-- test: id --> on the line before');
    const seen = new Map<string, string>();
    const duplicated: string[] = [];
    for (const b of blocks) {
      if (seen.has(b.id!)) duplicated.push(`${b.page}:${b.line} repeats ${b.id} of ${seen.get(b.id!)}`);
      else seen.set(b.id!, `${b.page}:${b.line}`);
    }
    assert.deepEqual(duplicated, []);
  });

  it('run every block in a test', () => {
    // A test takes a block by its page and id: block('<page>', '<id>'), or through a helper of
    // its own, with the page and the id each written out as a string in the file.
    const files = walk(join(ROOT, 'test')).filter((f) => f.endsWith('.ts') && f !== 'test/docs.test.ts' && f !== 'test/helpers/docs.ts');
    const texts = files.map((f) => pageText(f));
    const usedBy = (page: string, id: string): boolean => texts.some((t) => t.includes(`'${page}'`) && t.includes(`'${id}'`));
    const unused = allBlocks()
      .filter((b) => b.id !== undefined && !usedBy(b.page, b.id))
      .map((b) => `${b.page}:${b.line} (${b.id})`);
    assert.deepEqual(unused, [], 'blocks no test under test/ takes');
  });

  it(`keep the README under ${README_MAX_LINES} lines`, () => {
    const lines = pageText('README.md').split('\n').length;
    assert.ok(lines < README_MAX_LINES, `README.md has ${lines} lines`);
  });

  it('link every page of docs/ from the README', () => {
    const linked = new Set(linksOf('README.md').map((link) => normalize(link.target.split('#')[0]!)));
    const pages = docPages().filter((page) => page !== 'README.md');
    assert.ok(pages.length >= 10, `found ${pages.length} pages`);
    for (const page of pages) assert.ok(linked.has(page), `README.md links ${page}`);
  });

  it('have no relative link or anchor that does not resolve', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const page of docPages()) {
      for (const link of linksOf(page)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(link.target)) continue; // http:, https:, mailto:
        checked++;
        const [path, anchor] = link.target.split('#') as [string, string | undefined];
        const file = path === '' ? page : normalize(join(dirname(page), decodeURIComponent(path)));
        if (file.startsWith('..') || !existsSync(join(ROOT, file))) broken.push(`${page}:${link.line}: ${link.target} (no ${file})`);
        else if (anchor !== undefined && (!file.endsWith('.md') || !anchorsOf(file).has(anchor))) {
          broken.push(`${page}:${link.line}: ${link.target} (no heading #${anchor} in ${file})`);
        }
      }
    }
    assert.ok(checked >= 50, `checked ${checked} links`);
    assert.deepEqual(broken, []);
  });

  it('point code comments at pages and anchors that exist', () => {
    // Comments in src/, test/, bench/ and deploy/ name pages as `docs/<page>.md#<anchor>`.
    const broken: string[] = [];
    const files = ['src', 'test', 'bench', 'deploy', 'monitor'].flatMap((dir) => walk(join(ROOT, dir)));
    for (const file of files) {
      for (const m of pageText(file).matchAll(/\b((?:docs\/[\w-]+|README)\.md)(?:#([\w-]+))?/g)) {
        const page = m[1]!;
        if (!existsSync(join(ROOT, page))) broken.push(`${file}: ${m[0]}`);
        else if (m[2] !== undefined && !anchorsOf(page).has(m[2])) broken.push(`${file}: ${m[0]}`);
      }
    }
    assert.ok(files.length >= 50, `read ${files.length} files`);
    assert.deepEqual(broken, []);
  });

  it('list every debug namespace of src/ with the one module that logs to it (docs/observability.md#logs-debug)', () => {
    // In the code: each `createDebug('spicy-action:…')`, by module; every createDebug call names its namespace literally.
    const inCode: string[] = [];
    const unnamed: string[] = [];
    for (const file of walk(join(ROOT, 'src')).filter((f) => f.endsWith('.ts'))) {
      const text = pageText(file);
      const calls = text.match(/\bcreateDebug\(/g)?.length ?? 0;
      const named = [...text.matchAll(/\bcreateDebug\('(spicy-action:[a-z-]+)'\)/g)].map((m) => `${m[1]} ${file}`);
      if (named.length !== calls) unnamed.push(file);
      inCode.push(...named);
    }
    assert.deepEqual(unnamed, [], 'modules that make a debug logger without a literal spicy-action: namespace');
    const byNamespace = new Map<string, string[]>();
    for (const entry of inCode) {
      const [namespace, file] = entry.split(' ') as [string, string];
      byNamespace.set(namespace, [...(byNamespace.get(namespace) ?? []), file]);
    }
    assert.deepEqual([...byNamespace].filter(([, files]) => files.length > 1), [], 'namespaces shared by two modules');
    // In the docs: the table's rows, `namespace` | `module` | what it logs.
    const section = pageText('docs/observability.md').split(/^## Logs: `DEBUG`$/m)[1]?.split(/^## /m)[0] ?? '';
    const inDocs = [...section.matchAll(/^\| `(spicy-action:[a-z-]+)` \| `(src\/[\w/.-]+)` \|/gm)].map((m) => `${m[1]} ${m[2]}`);
    assert.ok(inCode.length >= 20, `found ${inCode.length} namespaces in src/`);
    assert.deepEqual([...inDocs].sort(), [...inCode].sort());
  });
});

/** The text files under `dir`, relative to the repository (results and node_modules left out). */
function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'results' ? [] : walk(path);
    return /\.(ts|js|cfg|service|example|html|md)$/.test(entry.name) ? [relative(ROOT, path)] : [];
  });
}
