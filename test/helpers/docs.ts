/**
 * The documentation as tests read it: README.md and docs/*.md, their fenced
 * blocks by id, their headings' anchors and their links. Every fenced block
 * carries an id in the HTML comment on the line just before it
 * (`<!-- test: quick-start -->`); a test takes the block with `block(page, id)`
 * and runs it, so what the docs show is what the broker does
 * (docs/testing.md#docs-and-their-tests).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './broker.ts';

/** A fenced block: its page, its id (undefined when it has none), its language and its text. */
export interface DocBlock {
  page: string;
  id: string | undefined;
  lang: string;
  text: string;
  /** 1-based line of the opening fence. */
  line: number;
}

/** A Markdown link or image: its page, its target as written, and its line. */
export interface DocLink {
  page: string;
  target: string;
  line: number;
  image: boolean;
}

/** The comment that names the block after it. */
const ID_COMMENT = /^<!--\s*test:\s*([a-z0-9][a-z0-9-]*)\s*-->\s*$/;
const FENCE = /^(`{3,}|~{3,})\s*([\w-]*)\s*$/;

/** The documentation pages, relative to the repository: README.md first, then docs/*.md. */
export function docPages(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...docs];
}

/** The text of a page (`README.md`, `docs/cluster.md`). */
export function pageText(page: string): string {
  return readFileSync(join(ROOT, page), 'utf8');
}

/** The page's lines outside fenced blocks, with their 1-based numbers. */
function prose(page: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let fence: string | undefined;
  pageText(page)
    .split('\n')
    .forEach((text, i) => {
      const opening = FENCE.exec(text);
      if (fence === undefined && opening) fence = opening[1]!;
      else if (fence !== undefined && text.trim() === fence) fence = undefined;
      else if (fence === undefined) out.push({ line: i + 1, text });
    });
  return out;
}

/** Every fenced block of a page, in order. */
export function blocksOf(page: string): DocBlock[] {
  const lines = pageText(page).split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const opening = FENCE.exec(lines[i]!);
    if (!opening) continue;
    const close = lines.findIndex((l, j) => j > i && l.trim() === opening[1]);
    if (close < 0) throw new Error(`${page}:${i + 1}: a fenced block that is never closed`);
    const id = ID_COMMENT.exec(lines[i - 1] ?? '')?.[1];
    blocks.push({ page, id, lang: opening[2] ?? '', text: lines.slice(i + 1, close).join('\n') + '\n', line: i + 1 });
    i = close;
  }
  return blocks;
}

/** Every fenced block of README.md and docs/*.md. */
export function allBlocks(): DocBlock[] {
  return docPages().flatMap(blocksOf);
}

/** The block `id` of `page`; throws when there is none, so a test never runs on nothing. */
export function block(page: string, id: string): DocBlock {
  const found = blocksOf(page).filter((b) => b.id === id);
  if (found.length !== 1) throw new Error(`${page} has ${found.length} blocks with the id ${id}`);
  return found[0]!;
}

/** The commands of a `sh` block: comment lines dropped, continuation lines joined, trailing comments cut. */
export function commands(text: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    if (current === '' && /^\s*(#|$)/.test(raw)) continue;
    if (raw.endsWith('\\')) {
      current += raw.slice(0, -1);
      continue;
    }
    current += raw;
    out.push(stripComment(current).trim());
    current = '';
  }
  return out.filter((c) => c !== '');
}

/** A shell line without its trailing `# comment` (a `#` outside quotes, after a space). */
function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

/** The `# {...}` lines of a block that show an answer, each parsed as JSON (what follows the JSON is a note). */
export function shownAnswers(text: string): unknown[] {
  return text
    .split('\n')
    .filter((l) => /^#\s*[{[]/.test(l))
    .map((l) => {
      const json = l.replace(/^#\s*/, '');
      // The longest prefix that parses: the answer, without the note after it.
      for (let end = json.length; end > 0; end--) {
        if (json[end - 1] !== '}' && json[end - 1] !== ']') continue;
        try {
          return JSON.parse(json.slice(0, end)) as unknown;
        } catch {
          // shorter
        }
      }
      throw new Error(`no JSON in ${l}`);
    });
}

/** GitHub's anchor for a heading's text: lower case, punctuation dropped, spaces as hyphens. */
export function slug(heading: string): string {
  return heading
    .replace(/`/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a page's headings, with GitHub's -1, -2 suffixes for repeated ones. */
export function anchorsOf(page: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { text } of prose(page)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
    if (!heading) continue;
    const base = slug(heading[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** The Markdown links and images of a page, outside fenced blocks and inline code. */
export function linksOf(page: string): DocLink[] {
  const links: DocLink[] = [];
  for (const { line, text } of prose(page)) {
    const bare = text.replace(/`[^`]*`/g, '``');
    for (const m of bare.matchAll(/(!?)\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      links.push({ page, target: m[2]!, line, image: m[1] === '!' });
    }
  }
  return links;
}
