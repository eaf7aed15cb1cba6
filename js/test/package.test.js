// The npm package: entry points, browser safety, published files, type declarations.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

/** Every module reachable from `file` by static imports: Map path -> [import specifiers]. */
function importGraph(file, seen = new Map()) {
  if (seen.has(file)) return seen;
  const specs = [...readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]/gm)]
    .map((m) => m[1] ?? m[2]);
  seen.set(file, specs);
  for (const s of specs) if (s.startsWith('.')) importGraph(resolve(dirname(file), s), seen);
  return seen;
}

test('package.json: name, version, ESM, entries, no runtime dependencies, webgpu optional peer', () => {
  assert.equal(pkg.name, 'webtensor');
  assert.equal(pkg.version, '0.1.0');
  assert.equal(pkg.type, 'module');
  assert.equal(pkg.exports['.'].node, './js/node.js');
  assert.equal(pkg.exports['.'].default, './js/index.js');
  assert.equal(pkg.exports['.'].browser, './js/index.js');
  assert.equal(pkg.exports['.'].types, './js/index.d.ts');
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.peerDependenciesMeta.webgpu.optional, true);
  assert.ok(pkg.devDependencies.webgpu);
  assert.match(pkg.engines.node, />=\s*20/);
  assert.equal(pkg.bin.webtensor, 'js/bin/webtensor.js');
  assert.equal(pkg.exports['./serve'].node, './js/serve.js');
});

test('the browser entry imports nothing from Node', () => {
  const graph = importGraph(join(root, 'js', 'index.js'));
  assert.ok(graph.size >= 6, [...graph.keys()].join(', '));
  for (const [file, specs] of graph) {
    for (const s of specs) assert.ok(s.startsWith('./') || s.startsWith('../'), `${file} imports '${s}'`);
    assert.doesNotMatch(readFileSync(file, 'utf8'), /\b(require\(|process\.|Buffer\b|import\(['"]node:)/, file);
  }
});

test("import 'webtensor' resolves to the Node entry, 'webtensor/browser' to the browser entry", async () => {
  const node = await import('webtensor');
  const browser = await import('webtensor/browser');
  const index = await import('../index.js');
  assert.equal(typeof node.load, 'function');
  assert.notEqual(node.load, browser.load);
  assert.equal(browser.load, index.load);
  assert.equal(node.tensor, browser.tensor);
  assert.equal(node.VERSION, pkg.version);
});

test('index.d.ts declares every export', async () => {
  const dts = readFileSync(join(root, 'js', 'index.d.ts'), 'utf8');
  for (const name of Object.keys(await import('../node.js'))) {
    assert.match(dts, new RegExp(`export (declare )?(function|class|const|type|interface) ${name}\\b`), name);
  }
});

test('npm pack publishes only the runtime', () => {
  const [info] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString());
  const files = info.files.map((f) => f.path).sort();
  const runtime = [...importGraph(join(root, 'js', 'node.js')).keys()].map((f) => f.slice(root.length + 1).split('\\').join('/'));
  for (const f of runtime) assert.ok(files.includes(f), `${f} is not published`);
  for (const f of files) assert.match(f, /^(package\.json|README\.md|LICENSE|js\/[a-z_]+\.js|js\/backends\/[a-z_]+\.js|js\/bin\/[a-z_]+\.js|js\/index\.d\.ts)$/, `${f} is published`);
  assert.ok(info.size < 100_000, `packed size ${info.size}`);
});
