/**
 * The published package (`npm run test:deploy`): what `npm pack` ships, source
 * maps that carry their sources, and the embedding examples of docs/embedding.md
 * (JavaScript, and TypeScript compiled with `tsc --strict`) and the
 * `spicy-action` command run from a fresh project that installed the tarball
 * with its peers, with the commands the page gives.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { NAME, VERSION } from '../src/package-info.ts';
import { notify, request, ROOT } from './helpers/broker.ts';
import { closeAll, connect, flush, type TestClient } from './helpers/clients.ts';
import { block, commands, docPages, linksOf } from './helpers/docs.ts';
import { NPM_ENV, serve, shell, type Served } from './helpers/served.ts';

const run = promisify(execFile);

interface PackResult {
  filename: string;
  files: { path: string }[];
}

describe('the npm package', () => {
  const dir = mkdtempSync(join(tmpdir(), 'spicy-package-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let pack: PackResult;
  let tarball: string;
  let unpacked: string;
  let project: string;

  before(async () => {
    // `npm pack` runs `prepack`, which builds dist/ from the current sources.
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, env: NPM_ENV, maxBuffer: 16e6 });
    pack = (JSON.parse(stdout) as PackResult[])[0]!;
    tarball = join(dir, pack.filename);
    unpacked = join(dir, 'unpacked');
    mkdirSync(unpacked);
    await run('tar', ['-xzf', tarball, '-C', unpacked]);
  });

  it('ships the compiled entry, the command, the bus lists, the monitor page, the README and docs/ with their images', () => {
    const paths = new Set(pack.files.map((f) => f.path));
    for (const needed of [
      'package.json',
      'README.md',
      'buses.json',
      'bin/spicy-action.js',
      'dist/main.js',
      'dist/index.js',
      'dist/index.d.ts',
      'monitor/index.html',
      'monitor/monitor.js',
    ]) {
      assert.ok(paths.has(needed), `${needed} is in the package`);
    }
    // The README links the pages of docs/, and they ship with it, with the images they show.
    for (const page of docPages()) assert.ok(paths.has(page), `${page} is in the package`);
    const images = docPages().flatMap((page) =>
      linksOf(page).filter((link) => link.image && !/^\w+:/.test(link.target)).map((link) => normalize(join(dirname(page), link.target))),
    );
    assert.ok(images.includes('docs/monitor.png'), 'the README shows the monitor page');
    for (const image of images) assert.ok(paths.has(image), `the image ${image} is in the package`);
    for (const path of paths) {
      assert.doesNotMatch(path, /^(test|bench|src|deploy\/.*\.test)\//, `${path} does not belong in the package`);
      if (path.endsWith('.js') && path.startsWith('dist/')) assert.ok(paths.has(`${path}.map`), `${path} has its map`);
    }
  });

  it('each source map carries the TypeScript it maps to', () => {
    const maps: string[] = [];
    const walk = (d: string): void => {
      for (const entry of readdirSync(d, { withFileTypes: true })) {
        if (entry.isDirectory()) walk(join(d, entry.name));
        else if (entry.name.endsWith('.js.map')) maps.push(join(d, entry.name));
      }
    };
    walk(join(unpacked, 'package', 'dist'));
    assert.ok(maps.length >= 10, `found ${maps.length} maps`);
    for (const map of maps) {
      const { sources, sourcesContent } = JSON.parse(readFileSync(map, 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
      const name = relative(unpacked, map);
      assert.ok(sourcesContent, `${name} has sourcesContent`);
      assert.equal(sourcesContent.length, sources.length, name);
      sources.forEach((source, i) => {
        // The path points where src/ was at build time; the content must be that file's.
        const original = resolve(dirname(join(ROOT, relative(join(unpacked, 'package'), map))), source);
        assert.equal(sourcesContent[i], readFileSync(original, 'utf8'), `${name}: ${source}`);
      });
    }
  });

  describe('installed into a fresh project', () => {
    const open: TestClient[] = [];
    after(() => closeAll(open));

    /** A documented sh block's commands: all but the last run by `shell`, the last one serves. */
    function runBlock(id: string): { setup: string[]; last: string } {
      const lines = commands(block('docs/embedding.md', id).text);
      return { setup: lines.slice(0, -1), last: lines.at(-1)! };
    }

    before(async () => {
      // docs/embedding.md's project, beside a clone whose `npm pack` made the tarball: ../spicy-action/<tarball>.
      const clone = join(dir, 'spicy-action');
      mkdirSync(clone);
      renameSync(tarball, join(clone, pack.filename));
      tarball = join(clone, pack.filename);
      project = join(dir, 'my-host');
      mkdirSync(project);
      const install = block('docs/embedding.md', 'embedding-install').text;
      assert.ok(install.includes(`../spicy-action/${pack.filename}`), `the docs install ${pack.filename}`);
      const installed = await shell(install, project);
      assert.equal(installed.code, 0, `${installed.stdout}${installed.stderr}`);
      assert.ok(existsSync(join(project, 'node_modules', 'spicy-action', 'dist', 'index.js')));
    });

    /** An example of docs/embedding.md, with the one line the tests change: a free port, and a line saying which. */
    function example(id: string, port: string): string {
      const snippet = block('docs/embedding.md', id).text;
      const listen = 'httpServer.listen(3000);';
      assert.ok(snippet.includes(listen), 'the example listens on 3000');
      return snippet.replace(listen, `httpServer.listen(0, '127.0.0.1', () => console.log(\`listening on http://127.0.0.1:\${${port}}\`));`);
    }

    /** The host an example makes routes a client's event, a /_notify push, and logs a refusal. */
    async function routes(host: Served): Promise<void> {
      const url = await host.url;
      const [sender, listener] = await Promise.all([connect('v4', url), connect('v2', url)]);
      open.push(sender, listener);
      const { publicId, ...welcome } = sender.welcome;
      assert.deepEqual(welcome, { id: sender.id, name: NAME, version: VERSION, public: false });
      assert.match(publicId, /^[\w-]{16}$/);
      assert.equal(await listener.ack('join', 'calls'), true);
      sender.emit('queuer', { waiting: 2 }); // the route the example registers
      assert.deepEqual(await listener.receive('queuer', 1), [{ waiting: 2 }]);
      assert.equal(await listener.ack('join', 'support'), true);
      assert.deepEqual((await notify(url, 'report_ops', { msg: 'x' })).body, { ok: true });
      assert.deepEqual(await listener.receive('report_ops', 1), [{ msg: 'x' }]);
      sender.emit('join', 42); // refused: the example logs it
      await flush(sender, [listener]);
      assert.match(host.stderr(), /^join \S/m, 'the refusal the example logs');
      host.signal('SIGTERM');
      await host.exited;
    }

    it('runs the JavaScript example of docs/embedding.md with its command', async () => {
      writeFileSync(join(project, 'host.js'), example('embedding-js', 'httpServer.address().port'));
      const { setup, last } = runBlock('embedding-js-run');
      assert.deepEqual(setup, []);
      await routes(serve('bash', ['-c', last], project));
    });

    it('compiles the TypeScript example with tsc --strict, with no @types package of its own, and runs it, with its commands', async () => {
      writeFileSync(join(project, 'host.ts'), example('embedding-ts', '(httpServer.address() as { port: number }).port'));
      const { setup, last } = runBlock('embedding-ts-run');
      assert.ok(setup.some((c) => c.includes('tsc --strict')), 'the commands compile with tsc --strict');
      const compiled = await shell(setup.join('\n'), project);
      assert.equal(compiled.code, 0, `${compiled.stdout}${compiled.stderr}`);
      const own = JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')) as { dependencies?: object; devDependencies?: object };
      assert.deepEqual(Object.keys({ ...own.dependencies, ...own.devDependencies }).filter((name) => name.startsWith('@types/')), []);
      await routes(serve('bash', ['-c', last], project));
    });

    it('runs the installed spicy-action command', async () => {
      const bin = join(project, 'node_modules', '.bin', 'spicy-action');
      assert.equal((await run(bin, ['--version'], { env: NPM_ENV })).stdout, `${VERSION}\n`);
      assert.equal((await run(bin, ['-v'], { env: NPM_ENV })).stdout, `${VERSION}\n`);
      assert.match((await run(bin, ['--help'], { env: NPM_ENV })).stdout, /--max-body-bytes \(MAX_BODY_BYTES\)\n.*default: 1mb/);
      const broker = serve(bin, [], project, { PORT: '0', HOST: '127.0.0.1' });
      const url = await broker.url;
      const health = await request(`${url}/health`);
      assert.equal(health.status, 200);
      assert.equal(health.body.version, VERSION);
      const config = await request(`${url}/monitor/config.json`);
      assert.deepEqual(config.body.buses.private, ['calls', 'internal', 'support'], "the package's own buses.json");
      broker.signal('SIGTERM');
      assert.deepEqual(await broker.exited, { code: 0, signal: null });
    });
  });
});
